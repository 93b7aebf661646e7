from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from analytics.models import CustomerProfile, Segment, SegmentExport
from analytics.services import build_profiles, get_settings
from shop_recs.stores.scoping import store_scope, unscoped

from .conftest import AS_OF


@pytest.fixture
def built(shop):
    build_profiles(shop["store"], "full", as_of=AS_OF)
    s = get_settings(shop["store"])
    s.min_cell_size = 1
    with store_scope(shop["store"]):
        s.save()
        seg = Segment.objects.filter(kind="auto").first()
    return {**shop, "segment": seg}


def _url(name, store, **kw):
    return reverse(f"analytics:{name}", kwargs={"store_slug": store.slug, **kw})


@pytest.mark.django_db
def test_pages_render_and_isolation(client, built, merchant, make_user, other_store):
    store, seg = built["store"], built["segment"]
    pages = [
        ("segments", {}),
        ("segment_new", {}),
        ("segment_detail", {"segment_id": seg.pk}),
        ("privacy", {}),
    ]
    client.force_login(merchant)
    for name, kw in pages:
        r = client.get(_url(name, store, **kw))
        assert r.status_code == 200, name
    outsider = make_user("outsider", other_store)
    client.force_login(outsider)
    for name, kw in pages:
        assert client.get(_url(name, store, **kw)).status_code == 404, name
    assert client.post(_url("audience", store), "{}", content_type="application/json").status_code == 404
    assert client.post(_url("segment_export", store, segment_id=seg.pk)).status_code == 404
    # a member of B cannot reach A's segment through B's URL either
    assert client.get(_url("segment_detail", other_store, segment_id=seg.pk)).status_code == 404


@pytest.mark.django_db
def test_audience_endpoint(client, built, analyst):
    client.force_login(analyst)
    url = _url("audience", built["store"])
    r = client.post(
        url, json.dumps({"rules": {"field": "frequency", "op": ">=", "value": 1}}), content_type="application/json"
    )
    assert r.status_code == 200 and r.json() == {"ok": True, "count": 4, "display": "4"}
    r = client.post(
        url, json.dumps({"rules": {"field": "nope", "op": ">", "value": 1}}), content_type="application/json"
    )
    assert r.status_code == 400 and "unknown field 'nope'" in r.json()["error"]
    assert client.post(url, "not json", content_type="application/json").status_code == 400
    s = get_settings(built["store"])
    s.min_cell_size = 5
    with store_scope(built["store"]):
        s.save()
    r = client.post(
        url, json.dumps({"rules": {"field": "frequency", "op": ">=", "value": 1}}), content_type="application/json"
    )
    assert r.json() == {"ok": True, "count": None, "display": "<5"}


@pytest.mark.django_db
def test_rule_segment_create(client, built, analyst):
    client.force_login(analyst)
    rules = {"all": [{"field": "monetary", "op": ">", "value": 500}]}
    r = client.post(_url("segment_new", built["store"]), {"name": "Big", "rules": json.dumps(rules)})
    assert r.status_code == 302
    with store_scope(built["store"]):
        seg = Segment.objects.get(name="Big")
        assert seg.size == 2
    r = client.post(_url("segment_new", built["store"]), {"name": "Bad", "rules": '{"field": "x"}'})
    assert r.status_code == 200 and "unknown field" in r.content.decode()


@pytest.mark.django_db
def test_export_permissions_and_log(client, built, merchant, analyst):
    store = built["store"]
    with store_scope(store):
        seg = Segment.objects.create(
            store=store, kind="rule", name="Buyers", rules={"field": "frequency", "op": ">=", "value": 1}
        )
    url = _url("segment_export", store, segment_id=seg.pk)
    client.force_login(analyst)
    assert client.post(url, {"fields": ["monetary"]}).status_code == 403
    client.force_login(merchant)
    r = client.post(url, {"fields": ["monetary", "frequency"]})
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode())))
    assert rows[0] == ["external_id", "monetary", "frequency"]
    assert {row[0] for row in rows[1:]} == {"c1", "c2", "c3", "c5"}
    with unscoped():
        log = SegmentExport.objects.get()
    assert (log.user, log.row_count, log.fields, log.segment_id) == (merchant, 4, ["monetary", "frequency"], seg.pk)
    assert client.post(url, {"fields": ["password"]}).status_code == 400


@pytest.mark.django_db
def test_profile_run_task_and_status(client, shop, merchant, django_capture_on_commit_callbacks):
    client.force_login(merchant)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(_url("start_run", shop["store"]), {"mode": "full"})
    assert r.status_code == 302
    with store_scope(shop["store"]):
        from analytics.models import ProfileRun

        run = ProfileRun.objects.get()
    status = client.get(_url("run_status", shop["store"], run_id=run.pk)).json()
    assert status["status"] == "succeeded" and status["n_customers"] == 6


@pytest.mark.django_db
def test_profile_page_shows_the_served_recommendations_with_reasons(client, built, merchant):
    from shop_recs.serving.services import recommend_for_customer
    from shop_recs.training.services import train_store

    store = built["store"]
    train_store(store, algorithms=["item_knn", "popularity"])
    with store_scope(store):
        customer = store_customer(store, "c4")  # viewed E1 only: E2 and H1 are left to recommend
    expected = recommend_for_customer(store, customer, n=10, log=False).items
    assert expected, "the trained store should serve something to a customer with views"
    client.force_login(merchant)
    old_address = client.get(_url("customer_profile", store, external_id=customer.external_id))
    assert old_address.status_code == 302 and old_address["Location"].endswith(
        f"/customers/{customer.external_id}/#profile"
    )
    html = client.get(old_address["Location"]).content.decode()
    for item in expected:
        assert item["title"] in html
    assert expected[0]["reason"]["text"] in html


def store_customer(store, external_id):
    from shop_recs.activity.models import Customer

    return Customer.objects.get(external_id=external_id)


@pytest.mark.django_db
def test_one_customer_page_holds_profile_segments_recommendations_and_erase(client, built, merchant, analyst):
    """The customer detail page and the profile page were two overlapping pages; now one holds it all."""
    store = built["store"]
    with store_scope(store):
        customer = store_customer(store, "c1")
        profile = CustomerProfile.objects.get(customer=customer)
        in_segments = list(Segment.objects.filter(pk__in=profile.segment_ids or []))
    url = reverse("dashboard:customer_detail", kwargs={"store_slug": store.slug, "external_id": "c1"})
    client.force_login(merchant)
    html = client.get(url).content.decode()
    assert 'id="profile"' in html, html[:3000]
    assert "Value (RFM)" in html and 'id="fig-activity"' in html
    assert f"R{profile.r_score} F{profile.f_score} M{profile.m_score}" in html
    assert in_segments and all(f"/segments/{s.pk}/" in html for s in in_segments)
    assert 'id="recommendations"' in html and "/erase/" in html
    client.force_login(analyst)
    html = client.get(url).content.decode()
    assert "Value (RFM)" in html and "/erase/" not in html
