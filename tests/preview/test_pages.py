"""The Recommendations pages: preview (customer and product), rules, and their access rules."""

from __future__ import annotations

import pytest
from django.urls import reverse

from shop_recs.serving.models import RecommendationList, ShopperFacingChange, StoreRules
from shop_recs.serving.services import recommend_for_customer
from shop_recs.stores.models import Role
from shop_recs.stores.scoping import store_scope, unscoped
from shop_recs.training.models import ModelVersion

pytestmark = pytest.mark.django_db


def url(name: str, slug: str = "alpha") -> str:
    return reverse(f"recs:{name}", kwargs={"store_slug": slug})


def skus(items) -> list[str]:
    return [i["sku"] for i in items]


def list_count() -> int:
    with unscoped():
        return RecommendationList.objects.count()


# --- preview: customer ----------------------------------------------------------------------


def test_preview_shows_history_and_every_algorithm_of_the_active_run(store, shop, merchant, login):
    client = login(merchant)
    resp = client.get(url("preview"), {"customer": "C0"})
    assert resp.status_code == 200
    html = resp.content.decode()
    result = resp.context["result"]

    # History: C0 bought M0 and M1 and viewed M2 (newest first).
    history = resp.context["history"]
    assert [e.product.sku for e in history] == ["M2", "M1", "M0"]
    assert 'id="history"' in html and "Ceramic coffee mug model 2" in html

    # One column per version of the run plus the blend, each with real items.
    with unscoped():
        versions = ModelVersion.objects.filter(run=shop["run"])
        algorithms = set(versions.values_list("algorithm", flat=True))
    assert algorithms == {"item_knn", "popularity"}
    assert [c.key for c in result.columns][0] == "blend"
    assert {c.label for c in result.columns[1:]} == algorithms
    for col in result.columns:
        assert not col.error
        assert col.items, col.label
        assert f'data-column="{col.key}"' in html
        for item in col.items:
            assert f'data-sku="{item["sku"]}"' in html
            assert item["reason"]["text"]

    # The blend column is exactly what the API path serves for this customer.
    with store_scope(store):
        served = recommend_for_customer(store, shop["customers"][0], n=10, log=False)
    assert skus(result.blend.items) == skus(served.items)
    assert [i["score"] for i in result.blend.items] == [i["score"] for i in served.items]


def test_turning_off_exclude_purchased_brings_a_bought_product_back(store, shop, merchant, login):
    client = login(merchant)
    before = client.get(url("preview"), {"customer": "C0"})
    assert "M0" not in skus(before.context["result"].blend.items)  # bought, so excluded by the store rules
    assert "Store rules applied as saved" in before.content.decode()

    after = client.get(
        url("preview"),
        {"customer": "C0", "rules": "1", "exclude_out_of_stock": "on", "apply_boosts": "on", "diversity": "0"},
    )
    result = after.context["result"]
    blend = skus(result.blend.items)
    assert "M0" in blend or "M1" in blend
    added = skus(result.added)
    assert added and set(added) <= {"M0", "M1"}
    html = after.content.decode()
    assert "Exclude purchased: on → off" in html
    assert 'id="rules-effect"' in html and "added" in html
    # The saved rules did not change.
    with unscoped():
        assert not StoreRules.objects.exists()


def test_boost_toggle_shows_a_pinned_product_only_when_on(store, shop, merchant, login):
    with unscoped():
        StoreRules.objects.create(store=store, pinned_product_ids=[shop["products"]["S3"].pk])
    client = login(merchant)
    on = client.get(url("preview"), {"customer": "C0"}).context["result"]
    assert skus(on.blend.items)[0] == "S3"
    off = client.get(
        url("preview"), {"customer": "C0", "rules": "1", "exclude_purchased": "on", "exclude_out_of_stock": "on"}
    ).context["result"]
    assert skus(off.blend.items)[0] != "S3"
    assert "Boosts and pins: on → off" in off.changes


def test_preview_writes_no_recommendation_lists(store, shop, merchant, login):
    client = login(merchant)
    before = list_count()
    client.get(url("preview"), {"customer": "C0"})
    client.get(url("preview"), {"customer": "C1", "rules": "1", "diversity": "0.5"})
    client.get(url("preview"), {"product": "M0"})
    assert list_count() == before


def test_unknown_customer_gets_an_empty_state(shop, merchant, login):
    resp = login(merchant).get(url("preview"), {"customer": "nobody"})
    assert resp.status_code == 200
    assert 'id="unknown-customer"' in resp.content.decode()


def test_no_active_model_shows_the_jobs_hint(catalog, merchant, login):
    resp = login(merchant).get(url("preview"), {"customer": "C0"})
    html = resp.content.decode()
    assert resp.status_code == 200
    assert 'id="no-model"' in html and "Train a model on the Jobs page" in html
    assert reverse("recommend:jobs", kwargs={"store_slug": "alpha"}) in html


def test_customer_lookup_returns_matching_external_ids(shop, analyst, login):
    data = login(analyst).get(url("lookup"), {"kind": "customer", "q": "C1"}).json()
    assert {r["value"] for r in data["results"]} == {"C1", "C10", "C11"}
    data = login(analyst).get(url("lookup"), {"kind": "product", "q": "shirt"}).json()
    assert {r["value"] for r in data["results"]} == {"S0", "S1", "S2", "S3"}


# --- preview: product -----------------------------------------------------------------------


def test_product_section_shows_similar_and_fbt_items(shop, merchant, login):
    resp = login(merchant).get(url("preview"), {"product": "M0"})
    html = resp.content.decode()
    assert resp.status_code == 200
    assert 'id="product-section"' in html and "Ceramic coffee mug model 0" in html
    res = resp.context["product_result"]
    similar = skus(res.similar)
    assert similar and "M0" not in similar
    assert set(similar[:3]) <= {"M1", "M2", "M3"}  # the other mugs come first
    fbt = res.fbt
    assert fbt and {i["sku"] for i in fbt} <= {"M1", "M3"}  # bought in the same orders as M0
    assert all(i["lift"] > 0 and i["support"] >= 2 for i in fbt)
    assert 'id="similar-items"' in html and 'id="fbt-items"' in html and "shared baskets" in html


def test_product_detail_links_to_its_recommendations(shop, merchant, login):
    html = login(merchant).get(reverse("dashboard:product_detail", kwargs={"store_slug": "alpha", "sku": "M0"}))
    assert url("preview") + "?product=M0" in html.content.decode()


# --- rules ----------------------------------------------------------------------------------


def test_analyst_reads_preview_and_rules_but_cannot_save(shop, analyst, login):
    client = login(analyst)
    assert client.get(url("preview"), {"customer": "C0"}).status_code == 200
    resp = client.get(url("rules"))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'id="read-only"' in html and "Save rules" not in html
    assert all(f.field.disabled for f in resp.context["form"])
    assert (
        client.post(
            url("rules"), {"exclude_inactive": "on", "boost_weight": "2", "default_diversity": "0", "confirm": "on"}
        ).status_code
        == 403
    )
    with unscoped():
        assert not StoreRules.objects.exists()


def _rules_post(**extra):
    data = {
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


def test_unknown_skus_are_named_in_a_form_error(shop, merchant, login):
    resp = login(merchant).post(url("rules"), _rules_post(blocked="M1, NOPE-1\nNOPE-2"))
    assert resp.status_code == 400
    errors = resp.context["form"].errors["blocked"]
    assert "NOPE-1" in errors[0] and "NOPE-2" in errors[0] and "M1" not in errors[0]
    with unscoped():
        assert not StoreRules.objects.exists()


def test_merchant_saves_rules_and_the_api_follows(store, shop, merchant, login, api_client):
    before = [i["sku"] for i in api_client.get("/api/v1/recommendations/customer/C0?n=10").json()["items"]]
    victim = before[0]
    mugs = shop["categories"]["mugs"]
    resp = login(merchant).post(
        url("rules"),
        _rules_post(
            blocked=victim,
            pinned="S2\nS1",
            boosted="M3",
            repurchasable_categories=[mugs.pk],
            boosted_categories=[mugs.pk],
            boost_weight="2",
            default_diversity="0.25",
        ),
    )
    assert resp.status_code == 302
    with unscoped():
        row = StoreRules.objects.get(store=store)
    p = shop["products"]
    assert row.blocked_product_ids == [p[victim].pk]
    assert row.pinned_product_ids == [p["S2"].pk, p["S1"].pk]
    assert row.boosted_product_ids == [p["M3"].pk]
    assert row.repurchasable_category_ids == [mugs.pk] and row.boosted_category_ids == [mugs.pk]
    assert row.boost_weight == 2.0 and row.default_diversity == 0.25

    after = [i["sku"] for i in api_client.get("/api/v1/recommendations/customer/C0?n=10").json()["items"]]
    assert victim not in after
    assert after[:2] == ["S2", "S1"]

    page = login(merchant).get(url("rules"))
    html = page.content.decode()
    assert "S2\nS1" in html and victim in html  # the form shows skus again
    assert "Never shown: " + victim in html


def test_a_category_of_another_store_cannot_be_chosen(store, other_store, shop, merchant, login):
    from shop_recs.catalog.models import Category

    with unscoped():
        foreign = Category.objects.create(store=other_store, name="Secret", path="Secret")
    client = login(merchant)
    html = client.get(url("rules")).content.decode()
    assert "Secret" not in html
    resp = client.post(url("rules"), _rules_post(repurchasable_categories=[foreign.pk]))
    assert resp.status_code == 400
    assert "repurchasable_categories" in resp.context["form"].errors
    with unscoped():
        assert not StoreRules.objects.exists()


# --- isolation ------------------------------------------------------------------------------


def test_other_stores_member_gets_404_everywhere(store, other_store, shop, make_user, login):
    outsider = make_user("outsider", other_store, Role.MERCHANT)
    client = login(outsider)
    for name in ("preview", "rules", "lookup"):
        assert client.get(url(name), {"customer": "C0", "product": "M0"}).status_code == 404, name
        assert client.post(url(name), _rules_post()).status_code == 404, name
    with unscoped():
        assert not StoreRules.objects.exists()


def test_saving_rules_needs_the_confirmation_and_is_recorded(store, shop, merchant, login):
    client = login(merchant)
    unticked = client.post(url("rules"), _rules_post(boost_weight="3", confirm=""))
    assert unticked.status_code == 400 and "confirm" in unticked.context["form"].errors
    with unscoped():
        assert not StoreRules.objects.exists()
    assert client.post(url("rules"), _rules_post(boost_weight="3", blocked="M1")).status_code == 302
    with store_scope(store):
        change = ShopperFacingChange.objects.get()
    assert change.kind == "rules" and change.user == merchant
    assert change.details["boost_weight"] == [None, 3.0] and "blocked_product_ids" in change.details
    history = client.get(url("history")).content.decode()
    assert history.count('id="change-history"') == 1 and "rules: " in history
    title = history.split("<title>", 1)[1].split("</title>", 1)[0]
    assert "<table" not in title and "Change history" in title
