"""The rule segment builder (issue #14): field and operator choices, the store-aware validator (unknown
categories and brands, ranges, types) on the live audience and on the form, editing with the change
record and the running-campaign confirmation, duplicating, permissions and store isolation."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from analytics.models import DPRelease, Segment
from analytics.rule_segments import describe_rules, field_choices
from analytics.rules_builder import ALL_FIELDS, NUMERIC_OPS, STRING_OPS, compile_rules
from analytics.services import build_profiles, get_settings
from shop_recs.ads.models import Campaign, CampaignStatus
from shop_recs.catalog.models import Category
from shop_recs.serving.models import ShopperFacingChange
from shop_recs.stores.models import Role
from shop_recs.stores.scoping import store_scope, unscoped

from .conftest import AS_OF

pytestmark = pytest.mark.django_db

BIG = {"all": [{"field": "monetary", "op": ">", "value": 500}]}


def _url(name, store, **kw):
    return reverse(f"analytics:{name}", kwargs={"store_slug": store.slug, **kw})


@pytest.fixture
def built(shop):
    """The six-customer shop with profiles, a "Fashion > Sneakers" category and one rule segment."""
    store = shop["store"]
    with unscoped():
        fashion = Category.objects.create(store=store, name="Fashion", path="Fashion")
        Category.objects.create(store=store, name="Sneakers", path="Fashion > Sneakers", parent=fashion)
    build_profiles(store, "full", as_of=AS_OF)
    cfg = get_settings(store)
    cfg.min_cell_size = 1
    with store_scope(store):
        cfg.save()
        seg = Segment.objects.create(store=store, kind="rule", name="Big", description="over 500", rules=BIG)
    return {**shop, "segment": seg}


def _audience(client, store, rules):
    return client.post(_url("audience", store), json.dumps({"rules": rules}), content_type="application/json")


def _campaign(store, seg, status=CampaignStatus.ACTIVE, days_left=10):
    now = timezone.now()
    with unscoped():
        campaign = Campaign.objects.create(
            store=store,
            name="Spring sale",
            title="Spring",
            landing_url="https://shop.example/spring",
            starts_at=now - timedelta(days=1),
            ends_at=now + timedelta(days=days_left),
            budget=1000,
            status=status,
        )
        campaign.segments.add(seg)
    return campaign


def _changes(store):
    with store_scope(store):
        return list(ShopperFacingChange.objects.order_by("pk"))


# --- field and operator choices ------------------------------------------------------------------------


def test_every_compiler_field_is_offered_with_a_label_and_only_its_operators():
    choices = {c["field"]: c for c in field_choices()}
    assert set(choices) == set(ALL_FIELDS)
    for field, c in choices.items():
        assert c["label"] and c["label"] != field and "_" not in c["label"]
        ops = [o["op"] for o in c["ops"]]
        if c["kind"] == "number":
            assert ops == list(NUMERIC_OPS)
        elif c["kind"] in ("string", "choice"):
            assert ops == list(STRING_OPS)
        elif c["kind"] == "behaviour":
            assert ops == ["within"]
        else:
            assert "between" not in ops and "in" not in ops
    assert [ch["value"] for ch in choices["price_band"]["choices"]] == ["budget", "mid", "premium"]
    assert (choices["churn_risk"]["min"], choices["churn_risk"]["max"]) == (0.0, 1.0)


def test_every_offered_operator_compiles_for_its_field(store):
    samples = {"number": 1, "choice": "mid", "string": "DE", "category_affinity": 0.5, "brand_affinity": 0.5}
    for c in field_choices():
        for o in c["ops"]:
            if c["kind"] == "behaviour":
                node = {"field": c["field"], "category": "Home", "within_days": 30}
            else:
                value = samples[c["kind"]]
                if o["op"] == "between":
                    value = [1, 2]
                elif o["op"] in ("in", "not_in"):
                    value = [value]
                node = {"field": c["field"], "op": o["op"], "value": value}
                if "affinity" in c["kind"]:
                    node["key"] = "Home"
            with store_scope(store):
                compile_rules(node)  # raises if the builder offered something the compiler refuses


def test_the_new_page_carries_the_builder_config_with_this_stores_catalog(client, built, analyst, other_store):
    with unscoped():
        Category.objects.create(store=other_store, name="Secret", path="Secret")
    client.force_login(analyst)
    r = client.get(_url("segment_new", built["store"]))
    assert r.status_code == 200
    config = r.context["builder"]
    assert config["categories"] == ["Electronics", "Fashion", "Fashion > Sneakers", "Home"]
    assert config["brands"] == ["Acme", "Casa"]
    html = r.content.decode()
    assert 'id="builder-config"' in html and "segment_builder.js" in html and "Secret" not in html


# --- specific errors: unknown names, ranges, types ---------------------------------------------------------


def test_an_unknown_category_is_a_400_naming_the_condition_with_a_suggestion(client, built, analyst):
    client.force_login(analyst)
    store = built["store"]
    rules = {"all": [BIG["all"][0], {"field": "purchased_in_category", "category": "Sneakers", "within_days": 30}]}
    r = _audience(client, store, rules)
    assert r.status_code == 400
    assert r.json()["path"] == "all[1].category"
    assert r.json()["error"] == "all[1].category: Unknown category 'Sneakers' — did you mean 'Fashion > Sneakers'?"
    r = _audience(client, store, {"any": [{"field": "category_affinity", "key": "Electronic", "op": ">", "value": 0}]})
    assert r.status_code == 400 and r.json()["path"] == "any[0].key"
    assert "Unknown category 'Electronic' — did you mean 'Electronics'?" in r.json()["error"]
    # The right names pass and count the real customers (c1 and c4 viewed or bought electronics).
    r = _audience(client, store, {"field": "category_affinity", "key": "Electronics", "op": ">", "value": 0})
    assert r.status_code == 200 and r.json()["count"] == 3


def test_an_unknown_brand_is_an_error_with_or_without_a_close_name(client, built, analyst):
    client.force_login(analyst)
    r = _audience(client, built["store"], {"not": {"field": "brand_affinity", "key": "acme", "op": ">", "value": 0.1}})
    assert r.status_code == 400 and r.json()["path"] == "not.key"
    assert "Unknown brand 'acme' — did you mean 'Acme'?" in r.json()["error"]
    r = _audience(client, built["store"], {"field": "brand_affinity", "key": "Zyxwv", "op": ">", "value": 0.1})
    assert r.status_code == 400
    assert r.json()["error"] == "key: Unknown brand 'Zyxwv': no product of this store has that brand."


def test_a_category_of_another_store_is_unknown_here(client, built, analyst, other_store):
    with unscoped():
        Category.objects.create(store=other_store, name="Garden", path="Garden")
    client.force_login(analyst)
    r = _audience(client, built["store"], {"field": "viewed_in_category", "category": "Garden", "within_days": 7})
    assert r.status_code == 400 and "Unknown category 'Garden'" in r.json()["error"]


@pytest.mark.parametrize(
    ("node", "path", "message"),
    [
        ({"field": "churn_risk", "op": ">", "value": 1.5}, "all[0].value", "Churn risk (0–1) must be between 0 and 1"),
        ({"field": "r_score", "op": "=", "value": 9}, "all[0].value", "between 1 and 5, got 9"),
        ({"field": "recency_days", "op": "between", "value": [10, 99999]}, "all[0].value[1]", "got 99,999"),
        ({"field": "monetary", "op": ">", "value": -5}, "all[0].value", "Total revenue must be between 0 and"),
        ({"field": "monetary", "op": ">", "value": "lots"}, "all[0].value", "expected a finite number, got 'lots'"),
        ({"field": "country", "op": "=", "value": 3}, "all[0].value", "expected a string, got int"),
        ({"field": "brand_affinity", "key": "Acme", "op": ">", "value": 2}, "all[0].value", "between 0 and 1"),
        ({"field": "price_band", "op": "in", "value": ["mid", "cheap"]}, "all[0].value[1]", "price band 'cheap'"),
    ],
)
def test_out_of_range_numbers_and_wrong_types_name_the_value(client, built, analyst, node, path, message):
    client.force_login(analyst)
    r = _audience(client, built["store"], {"all": [node]})
    assert r.status_code == 400 and r.json()["path"] == path and message in r.json()["error"]


def test_the_form_refuses_an_unknown_category_and_marks_the_condition(client, built, analyst):
    client.force_login(analyst)
    rules = {"all": [{"field": "purchased_in_category", "category": "Sneakers", "within_days": 30}]}
    r = client.post(_url("segment_new", built["store"]), {"name": "Sneaker fans", "rules": json.dumps(rules)})
    html = r.content.decode()
    assert r.status_code == 200 and "did you mean &#x27;Fashion &gt; Sneakers&#x27;?" in html
    assert 'data-error-path="all[0].category"' in html
    with store_scope(built["store"]):
        assert not Segment.objects.filter(name="Sneaker fans").exists()


def test_with_differential_privacy_an_unknown_category_spends_nothing(client, built, analyst):
    store = built["store"]
    cfg = get_settings(store)
    cfg.dp_epsilon, cfg.noise_key = 0.5, "ab" * 32
    with store_scope(store):
        cfg.save()
    client.force_login(analyst)
    r = _audience(client, store, {"field": "viewed_in_category", "category": "Sneakers", "within_days": 30})
    assert r.status_code == 400
    r = _audience(client, store, {"field": "viewed_in_category", "category": "Fashion > Sneakers", "within_days": 30})
    assert r.status_code == 200 and r.json()["status"] == "fresh"
    with store_scope(store):
        assert DPRelease.objects.count() == 1
    assert (
        'id="audience-check"'
        in client.get(_url("segment_edit", store, segment_id=built["segment"].pk)).content.decode()
    )


# --- edit, duplicate, permissions -------------------------------------------------------------------------


def test_editing_saves_refreshes_members_and_records_the_change(client, built, analyst):
    store, seg = built["store"], built["segment"]
    client.force_login(analyst)
    r = client.get(_url("segment_edit", store, segment_id=seg.pk))
    assert r.status_code == 200 and json.loads(r.context["form"]["rules"].value()) == BIG
    assert 'id="campaign-warning"' not in r.content.decode()
    new_rules = {
        "any": [{"field": "frequency", "op": ">=", "value": 1}, {"not": {"field": "country", "op": "=", "value": "DE"}}]
    }
    r = client.post(
        _url("segment_edit", store, segment_id=seg.pk),
        {"name": "Buyers or not German", "description": "", "rules": json.dumps(new_rules)},
    )
    assert r.status_code == 302
    with store_scope(store):
        seg.refresh_from_db()
    assert seg.rules == new_rules and seg.name == "Buyers or not German" and seg.size == 6
    [change] = _changes(store)
    assert change.object_id == seg.pk and change.user == analyst
    assert change.details["rules"] == [BIG, new_rules] and change.details["running_campaigns"] == []
    assert "no running campaign" in change.summary
    # Saving the same values again records nothing.
    client.post(
        _url("segment_edit", store, segment_id=seg.pk),
        {"name": "Buyers or not German", "description": "", "rules": json.dumps(new_rules)},
    )
    assert len(_changes(store)) == 1


def test_a_running_campaign_asks_for_confirmation_and_only_merchants_may_save(client, built, merchant, analyst):
    store, seg = built["store"], built["segment"]
    campaign = _campaign(store, seg)
    url = _url("segment_edit", store, segment_id=seg.pk)
    edited = {
        "name": "Big",
        "description": "over 500",
        "rules": json.dumps({"field": "monetary", "op": ">", "value": 50}),
    }

    client.force_login(analyst)
    html = client.get(url).content.decode()
    assert 'id="campaign-warning"' in html and "Spring sale" in html and "Only a merchant" in html
    assert client.post(url, edited).status_code == 403

    client.force_login(merchant)
    r = client.post(url, edited)
    assert r.status_code == 200 and "Tick the confirmation" in r.content.decode()
    with store_scope(store):
        seg.refresh_from_db()
    assert seg.rules == BIG and _changes(store) == []
    # A name-only change does not change the audience: no confirmation needed.
    assert client.post(url, {**edited, "rules": json.dumps(BIG), "name": "Big spenders"}).status_code == 302
    r = client.post(url, {**edited, "confirm": "on"})
    assert r.status_code == 302
    with store_scope(store):
        seg.refresh_from_db()
    assert seg.rules == {"field": "monetary", "op": ">", "value": 50}
    last = _changes(store)[-1]
    assert last.details["running_campaigns"] == [campaign.pk] and "Spring sale" in last.summary
    detail = client.get(_url("segment_detail", store, segment_id=seg.pk)).content.decode()
    assert 'id="campaign-targets"' in detail and 'id="edit-segment"' in detail


def test_an_ended_or_draft_campaign_needs_no_confirmation(client, built, merchant):
    store, seg = built["store"], built["segment"]
    _campaign(store, seg, status=CampaignStatus.DRAFT)
    client.force_login(merchant)
    r = client.post(
        _url("segment_edit", store, segment_id=seg.pk),
        {"name": "Big", "rules": json.dumps({"field": "monetary", "op": ">", "value": 50})},
    )
    assert r.status_code == 302


def test_duplicate_prefills_a_new_segment_and_leaves_the_original(client, built, analyst):
    store, seg = built["store"], built["segment"]
    client.force_login(analyst)
    url = _url("segment_duplicate", store, segment_id=seg.pk)
    r = client.get(url)
    assert r.status_code == 200
    assert r.context["form"]["name"].value() == "Copy of Big" and json.loads(r.context["form"]["rules"].value()) == BIG
    with store_scope(store):
        assert Segment.objects.filter(kind="rule").count() == 1  # nothing created by looking
    r = client.post(url, {"name": "Copy of Big", "rules": json.dumps({"field": "monetary", "op": ">", "value": 100})})
    assert r.status_code == 302
    with store_scope(store):
        copy = Segment.objects.get(name="Copy of Big")
        seg.refresh_from_db()
    assert copy.pk != seg.pk and copy.created_by == analyst and copy.size == 2 and seg.rules == BIG


def test_automatic_segments_and_other_stores_segments_cannot_be_edited_or_duplicated(
    client, built, merchant, make_user, other_store
):
    store = built["store"]
    with store_scope(store):
        auto = Segment.objects.filter(kind="auto").first()
    client.force_login(merchant)
    for name in ("segment_edit", "segment_duplicate"):
        assert client.get(_url(name, store, segment_id=auto.pk)).status_code == 404
    outsider = make_user("outsider", other_store, role=Role.MERCHANT)
    client.force_login(outsider)
    for name in ("segment_edit", "segment_duplicate"):
        # Not a member of the store: 404; through its own store's URL, the id is not found either.
        assert client.get(_url(name, store, segment_id=built["segment"].pk)).status_code == 404
        assert client.get(_url(name, other_store, segment_id=built["segment"].pk)).status_code == 404
    r = client.post(_url("segment_edit", other_store, segment_id=built["segment"].pk), {"name": "x", "rules": "{}"})
    assert r.status_code == 404


def test_the_detail_page_says_the_conditions_in_words(client, built, analyst):
    client.force_login(analyst)
    html = client.get(_url("segment_detail", built["store"], segment_id=built["segment"].pk)).content.decode()
    assert "all of (Total revenue more than 500)" in html and 'id="duplicate-segment"' in html
    assert describe_rules({"not": {"field": "viewed_in_category", "category": "Home", "within_days": 7}}) == (
        "not (Viewed in category Home within the last 7 days)"
    )


def test_the_builder_page_renders_in_chinese(client, built, analyst, settings):
    """Labels are lazy translations turned into text for the page's JSON: in zh-Hans they are the
    translated ones where the catalog has them, and the page renders either way."""
    client.force_login(analyst)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    r = client.get(_url("segment_edit", built["store"], segment_id=built["segment"].pk))
    first = r.context["builder"]["fields"][0]
    assert r.status_code == 200 and (first["field"], first["label"]) == ("recency_days", "距上次购买天数")
    assert 'lang="zh-hans"' in r.content.decode()
