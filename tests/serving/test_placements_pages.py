"""The Placements pages: list, create, edit (rules without JSON), delete; confirmation and change
records; analysts read only; isolation between stores; the preview of any placement."""

from __future__ import annotations

import pytest
from django.urls import reverse

from shop_recs.serving import placements as plc
from shop_recs.serving.models import DEFAULT_PLACEMENT_KEY, Placement, ShopperFacingChange, StoreRules
from shop_recs.stores.models import Role
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture
def login(client):
    def _login(user):
        client.force_login(user)
        return client

    return _login


def url(name: str, slug: str = "alpha", **kwargs) -> str:
    return reverse(f"recs:{name}", kwargs={"store_slug": slug, **kwargs})


def placement_url(placement: Placement, slug: str = "alpha") -> str:
    return url("placement", slug, placement_id=placement.pk)


def rules_post(**extra) -> dict:
    data = {
        "name": "Product page",
        "algorithm": "",
        "exclude_inactive": "on",
        "exclude_out_of_stock": "on",
        "exclude_purchased": "on",
        "boost_weight": "1.5",
        "default_diversity": "0",
        "blocked": "",
        "pinned": "",
        "boosted": "",
        "confirm": "on",
    }
    data.update(extra)
    return data


def placements_of(store) -> dict[str, Placement]:
    with store_scope(store):
        return {p.key: p for p in Placement.objects.all()}


def changes_of(store) -> list[ShopperFacingChange]:
    with store_scope(store):
        return list(ShopperFacingChange.objects.order_by("pk"))


def skus(body: dict) -> list[str]:
    return [i["sku"] for i in body["items"]]


@pytest.fixture
def pdp(store):
    with store_scope(store):
        return plc.create_placement(store, None, key="pdp", name="Product page")


# --- list and create --------------------------------------------------------------------------------


def test_the_list_shows_every_placement_default_first(store, pdp, merchant, login):
    resp = login(merchant).get(url("placements"))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert [row.placement.key for row in resp.context["rows"]] == [DEFAULT_PLACEMENT_KEY, "pdp"]
    assert 'data-placement="pdp"' in html and 'id="new-placement"' in html
    assert html.index('data-placement="default"') < html.index('data-placement="pdp"')
    # The default placement has no delete link; the others do.
    assert url("placement_delete", placement_id=pdp.pk) in html
    default = placements_of(store)[DEFAULT_PLACEMENT_KEY]
    assert url("placement_delete", placement_id=default.pk) not in html


def test_a_merchant_creates_a_placement_with_confirmation_and_it_is_recorded(store, shop, merchant, login):
    client = login(merchant)
    unticked = client.post(url("placements"), {"key": "home", "name": "Home page", "algorithm": ""})
    assert unticked.status_code == 400 and "confirm" in unticked.context["form"].errors
    assert "home" not in placements_of(store)

    resp = client.post(url("placements"), {"key": "home", "name": "Home page", "algorithm": "", "confirm": "on"})
    home = placements_of(store)["home"]
    assert resp.status_code == 302 and resp["Location"] == placement_url(home)
    assert home.name == "Home page" and not home.is_default
    change = changes_of(store)[-1]
    assert change.kind == "placement" and change.user == merchant and "home" in change.summary


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("home page", "slug"),  # spaces are not allowed in a key
        ("pdp", "already has a placement"),
        (DEFAULT_PLACEMENT_KEY, "already has a placement"),
        ("", "required"),
        ("x" * 65, "at most 64"),
    ],
)
def test_a_bad_key_is_refused_with_a_clear_error(store, pdp, merchant, login, key, error):
    resp = login(merchant).post(url("placements"), {"key": key, "name": "Some", "confirm": "on"})
    assert resp.status_code == 400
    assert error in " ".join(resp.context["form"].errors["key"])
    assert set(placements_of(store)) == {DEFAULT_PLACEMENT_KEY, "pdp"}


def test_an_unknown_algorithm_is_refused(store, merchant, login):
    resp = login(merchant).post(
        url("placements"), {"key": "home", "name": "Home", "algorithm": "magic", "confirm": "on"}
    )
    assert resp.status_code == 400 and "algorithm" in resp.context["form"].errors


# --- edit ---------------------------------------------------------------------------------------------


def test_a_merchant_edits_a_placements_rules_with_skus_in_any_case_and_the_api_follows_at_once(
    store, shop, pdp, merchant, login, api_client
):
    p = shop["products"]
    before_default = skus(api_client.get(f"{API}/recommendations/customer/C0", {"n": 10}).json())
    resp = login(merchant).post(placement_url(pdp), rules_post(pinned="s2\nS1", blocked="m3", name="PDP", algorithm=""))
    assert resp.status_code == 302, resp.context["form"].errors if resp.context else resp
    with store_scope(store):
        row = StoreRules.objects.get(placement=pdp)
        assert Placement.objects.get(pk=pdp.pk).name == "PDP"
    assert row.pinned_product_ids == [p["S2"].pk, p["S1"].pk] and row.blocked_product_ids == [p["M3"].pk]

    body = api_client.get(f"{API}/recommendations/customer/C0", {"n": 10, "placement": "pdp"}).json()
    assert skus(body)[:2] == ["S2", "S1"] and "M3" not in skus(body)
    # The default placement still serves what it did.
    assert skus(api_client.get(f"{API}/recommendations/customer/C0", {"n": 10}).json()) == before_default

    change = changes_of(store)[-1]
    assert change.kind == "rules" and change.user == merchant
    assert change.summary.startswith("rules of placement pdp: ")
    assert change.details["pinned_product_ids"] == [[], [p["S2"].pk, p["S1"].pk]]
    assert change.details["name"] == ["Product page", "PDP"]

    page = login(merchant).get(placement_url(pdp)).content.decode()
    assert "S2\nS1" in page and 'id="placement-settings"' in page


def test_unknown_skus_are_named_and_nothing_is_saved(store, shop, pdp, merchant, login):
    resp = login(merchant).post(placement_url(pdp), rules_post(pinned="S1, nope-1", boosted="M1\nNOPE-2"))
    assert resp.status_code == 400
    errors = resp.context["form"].errors
    assert "nope-1" in errors["pinned"][0] and "S1" not in errors["pinned"][0]
    assert "NOPE-2" in errors["boosted"][0]
    with store_scope(store):
        assert StoreRules.objects.get(placement=pdp).pinned_product_ids == []
    assert [c.kind for c in changes_of(store)] == ["placement"]  # only its creation


def test_saving_needs_the_confirmation(store, shop, pdp, merchant, login):
    resp = login(merchant).post(placement_url(pdp), rules_post(boost_weight="3", confirm=""))
    assert resp.status_code == 400 and "confirm" in resp.context["form"].errors
    assert "this placement" in resp.context["form"].errors["confirm"][0]
    with store_scope(store):
        assert StoreRules.objects.get(placement=pdp).boost_weight == 1.5


@pytest.mark.parametrize(
    ("field", "value"), [("boost_weight", "11"), ("boost_weight", "-1"), ("default_diversity", "1.5"), ("name", " ")]
)
def test_out_of_range_values_are_refused_on_their_field(store, shop, pdp, merchant, login, field, value):
    resp = login(merchant).post(placement_url(pdp), rules_post(**{field: value}))
    assert resp.status_code == 400
    form = resp.context["settings_form"] if field == "name" else resp.context["form"]
    assert field in form.errors


def test_the_key_cannot_be_changed_once_created(store, shop, pdp, merchant, login):
    assert login(merchant).post(placement_url(pdp), rules_post(key="renamed")).status_code == 302
    assert placements_of(store)["pdp"].pk == pdp.pk and "renamed" not in placements_of(store)


def test_the_rules_page_still_edits_the_default_placement(store, shop, pdp, merchant, login):
    data = rules_post(pinned="S3")
    del data["name"], data["algorithm"]
    assert login(merchant).post(url("rules"), data).status_code == 302
    default = placements_of(store)[DEFAULT_PLACEMENT_KEY]
    with store_scope(store):
        assert StoreRules.objects.get(placement=default).pinned_product_ids == [shop["products"]["S3"].pk]
        assert StoreRules.objects.get(placement=pdp).pinned_product_ids == []
    assert changes_of(store)[-1].summary.startswith("rules: ")


# --- delete -------------------------------------------------------------------------------------------


def test_deleting_asks_for_confirmation_falls_back_to_the_default_and_is_recorded(
    store, shop, pdp, merchant, login, api_client
):
    client = login(merchant)
    page = client.get(url("placement_delete", placement_id=pdp.pk))
    assert page.status_code == 200 and 'id="delete-placement"' in page.content.decode()
    unticked = client.post(url("placement_delete", placement_id=pdp.pk), {})
    assert unticked.status_code == 400 and "pdp" in placements_of(store)

    resp = client.post(url("placement_delete", placement_id=pdp.pk), {"confirm": "on"})
    assert resp.status_code == 302 and resp["Location"] == url("placements")
    assert "pdp" not in placements_of(store)
    with unscoped():
        assert not StoreRules.objects.filter(placement_id=pdp.pk).exists()
    change = changes_of(store)[-1]
    assert change.kind == "placement" and "deleted" in change.summary and change.details["key"] == "pdp"
    body = api_client.get(f"{API}/popular", {"placement": "pdp"}).json()
    assert body["rules_placement"] == DEFAULT_PLACEMENT_KEY


def test_the_default_placement_cannot_be_deleted(store, merchant, login):
    default = placements_of(store)[DEFAULT_PLACEMENT_KEY]
    resp = login(merchant).post(url("placement_delete", placement_id=default.pk), {"confirm": "on"})
    assert resp.status_code == 400
    assert "cannot be deleted" in resp.content.decode()
    assert DEFAULT_PLACEMENT_KEY in placements_of(store)


# --- analysts and other stores --------------------------------------------------------------------------


def test_analysts_see_placements_but_cannot_change_them(store, shop, pdp, analyst, login):
    client = login(analyst)
    listing = client.get(url("placements"))
    assert listing.status_code == 200 and 'id="read-only"' in listing.content.decode()
    assert 'id="new-placement"' not in listing.content.decode()
    edit = client.get(placement_url(pdp))
    assert edit.status_code == 200 and "Save rules" not in edit.content.decode()
    assert all(f.field.disabled for f in edit.context["form"]) and all(
        f.field.disabled for f in edit.context["settings_form"]
    )
    assert client.post(url("placements"), {"key": "home", "name": "Home", "confirm": "on"}).status_code == 403
    assert client.post(placement_url(pdp), rules_post(pinned="S1")).status_code == 403
    assert client.post(url("placement_delete", placement_id=pdp.pk), {"confirm": "on"}).status_code == 403
    assert set(placements_of(store)) == {DEFAULT_PLACEMENT_KEY, "pdp"}
    with store_scope(store):
        assert StoreRules.objects.get(placement=pdp).pinned_product_ids == []
    assert [c.kind for c in changes_of(store)] == ["placement"]


def test_another_stores_placements_are_not_found(store, other_store, pdp, make_user, login):
    with store_scope(other_store):
        theirs = plc.create_placement(other_store, None, key="secret", name="Beta secret placement")
    client = login(make_user("alpha-merchant", store, Role.MERCHANT))
    # Beta's placement id under alpha's slug: 404, and nothing of it shown or changed.
    for name in ("placement", "placement_delete"):
        assert client.get(url(name, placement_id=theirs.pk)).status_code == 404
        assert client.post(url(name, placement_id=theirs.pk), rules_post(confirm="on")).status_code == 404
    assert "Beta secret placement" not in client.get(url("placements")).content.decode()
    assert "secret" in placements_of(other_store)
    # Alpha's pages under beta's slug: alpha's member is not a member there.
    for path in (url("placements", "beta"), url("placement", "beta", placement_id=pdp.pk)):
        assert client.get(path).status_code == 404


# --- preview of a placement --------------------------------------------------------------------------


def test_the_preview_shows_the_chosen_placements_rules(store, shop, pdp, merchant, login):
    p = shop["products"]
    with store_scope(store):
        row = plc.rules_row(pdp)
        row.pinned_product_ids = [p["S3"].pk]
        row.save()
    client = login(merchant)
    default = client.get(url("preview"), {"customer": "C0"})
    assert [i["sku"] for i in default.context["result"].blend.items][0] != "S3"
    shown = client.get(url("preview"), {"customer": "C0", "placement": "pdp"})
    html = shown.content.decode()
    assert [i["sku"] for i in shown.context["result"].blend.items][0] == "S3"
    assert '<option value="pdp" selected>' in html
    product = client.get(url("preview"), {"product": "M0", "placement": "pdp"})
    assert [i["sku"] for i in product.context["product_result"].similar][0] == "S3"


def test_the_preview_of_an_unknown_placement_says_it_shows_the_default(store, shop, merchant, login):
    resp = login(merchant).get(url("preview"), {"customer": "C0", "placement": "nowhere"})
    assert resp.status_code == 200 and resp.context["placement"] == DEFAULT_PLACEMENT_KEY
    assert 'id="placement-fallback"' in resp.content.decode()


# --- online metrics per placement ---------------------------------------------------------------------


def _served(store, placement: str, lists: int, items: int = 5) -> None:
    import uuid

    from django.utils import timezone

    from shop_recs.serving.models import RecommendationList

    with unscoped():
        RecommendationList.objects.bulk_create(
            RecommendationList(
                store=store,
                list_id=uuid.uuid4(),
                endpoint="customer",
                placement=placement,
                algorithm="item_knn",
                product_ids=list(range(1, items + 1)),
                created_at=timezone.now(),
            )
            for _ in range(lists)
        )


def test_online_metrics_break_down_and_filter_by_placement(store, pdp, merchant, login):
    with store_scope(store):
        plc.create_placement(store, None, key="cart", name="Cart")
    _served(store, "pdp", lists=30)  # 150 impressions: enough for rates
    _served(store, "", lists=2)  # no placement: the default placement's
    _served(store, "nowhere", lists=1)  # unknown key: the default placement's too
    client = login(merchant)
    index = reverse("experiments:index", kwargs={"store_slug": "alpha"})
    resp = client.get(index)
    assert resp.status_code == 200
    rows = {r.key: r for r in resp.context["by_placement"]}
    assert list(rows) == [DEFAULT_PLACEMENT_KEY, "cart", "pdp"]
    assert rows["pdp"].impressions == 150 and rows["pdp"].enough
    assert rows[DEFAULT_PLACEMENT_KEY].impressions == 15 and not rows[DEFAULT_PLACEMENT_KEY].enough
    assert rows["cart"].impressions == 0 and not rows["cart"].enough
    html = resp.content.decode()
    assert html.count("data-not-enough") == 2 and "Not enough data yet" in html

    filtered = client.get(index, {"placement": "pdp"})
    assert {t["placement"] for t in filtered.context["online"]["totals"]} == {"pdp"}
    default = client.get(index, {"placement": DEFAULT_PLACEMENT_KEY})
    assert {t["placement"] for t in default.context["online"]["totals"]} == {"", "nowhere"}
    unknown = client.get(index, {"placement": "nope"})
    assert unknown.context["placement"] == "" and len(unknown.context["online"]["totals"]) == 3


def test_online_metrics_per_placement_with_no_traffic_say_so(store, merchant, login):
    resp = login(merchant).get(reverse("experiments:index", kwargs={"store_slug": "alpha"}))
    assert [r.key for r in resp.context["by_placement"]] == [DEFAULT_PLACEMENT_KEY]
    assert "Not enough data yet" in resp.content.decode()
