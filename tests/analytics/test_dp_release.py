"""The release mechanism end to end: the ledger, the budget, and the side doors that used to show
exact counts (the audience size of the rule builder, the segment detail page)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from analytics import privacy
from analytics.models import CustomerProfile, DPRelease, Segment
from analytics.services import get_settings
from shop_recs.activity.models import Customer
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db

N, K, KEY = 60, 5, "cd" * 32


def _url(name, store, **kw):
    return reverse(f"analytics:{name}", kwargs={"store_slug": store.slug, **kw})


@pytest.fixture
def shop(store):
    """N buyers of whom the first 10 spend 500, the rest 50; one rule segment of the big spenders."""
    with unscoped():
        Customer.objects.bulk_create([Customer(store=store, external_id=f"c{i}") for i in range(N)])
        customers = list(Customer.objects.filter(store=store).order_by("pk"))
        CustomerProfile.objects.bulk_create(
            [
                CustomerProfile(store=store, customer=c, frequency=1, monetary=500.0 if i < 10 else 50.0)
                for i, c in enumerate(customers)
            ]
        )
        big = Segment.objects.create(
            store=store, name="big", kind="rule", rules={"field": "monetary", "op": ">=", "value": 500}
        )
    return {"store": store, "big": big}


def _set(store, **values):
    cfg = get_settings(store)
    for name, value in {"noise_key": KEY, "min_cell_size": K, **values}.items():
        setattr(cfg, name, value)
    with store_scope(store):
        cfg.save()


def _ledger(store):
    with store_scope(store):
        return list(DPRelease.objects.order_by("pk"))


def _add_profile(store, name):
    with store_scope(store):
        c = Customer.objects.create(store=store, external_id=name)
        CustomerProfile.objects.create(store=store, customer=c, frequency=0)


def _audience(client, store, rules):
    r = client.post(_url("audience", store), json.dumps({"rules": rules}), content_type="application/json")
    assert r.status_code == 200
    return r.json()


def test_the_page_states_the_epsilon_it_spends_and_reloads_spend_nothing(client, merchant, shop):
    store = shop["store"]
    _set(store, dp_epsilon=0.5, dp_budget=10.0)
    client.force_login(merchant)
    r = client.get(_url("segments", store))
    rel = r.context["release"]
    # One rule segment (m = 1): sizes L1 1, no pairs, RFM 1, total 1 -> 3 counts at ε 0.5 each.
    assert rel.status == "fresh" and rel.epsilon == pytest.approx(3 * 0.5)
    assert rel.epsilon == pytest.approx(privacy.epsilon_spent(privacy.scale_for(0.5), 3))
    html = r.content.decode()
    assert "ε = 1.500 spent" in html and 'data-dp-status="fresh"' in html
    for _ in range(3):
        again = client.get(_url("segments", store))
        assert again.context["release"].status == "cached"
        assert again.context["data"]["sizes"] == r.context["data"]["sizes"]
        assert "spends nothing" in again.content.decode()
    [row] = _ledger(store)
    assert (row.kind, row.epsilon, row.user_id) == ("segments", pytest.approx(1.5), merchant.pk)
    assert set(row.values) == {
        "total",
        f"size:{shop['big'].pk}",
        *(f"rfm:{r}:{f}" for r in range(1, 6) for f in range(1, 6)),
    }


def test_new_data_is_a_new_release_and_the_budget_stops_it(client, merchant, shop):
    store = shop["store"]
    _set(store, dp_epsilon=0.5, dp_budget=2.0)  # room for one page release (1.5), not two
    client.force_login(merchant)
    first = client.get(_url("segments", store)).context["data"]
    _add_profile(store, "newcomer")  # the data changes: a new release is needed
    r = client.get(_url("segments", store))
    rel = r.context["release"]
    assert rel.status == "stale" and rel.spent == pytest.approx(1.5) and rel.budget == 2.0
    # The figures already released are shown again; nothing new is drawn or recorded.
    assert r.context["data"]["sizes"] == first["sizes"] and r.context["data"]["rfm"] == first["rfm"]
    assert "Privacy budget used up." in r.content.decode()
    assert len(_ledger(store)) == 1
    # A bigger budget lets the new version out, with its own noise, and the ledger records it.
    _set(store, dp_budget=5.0)
    rel = client.get(_url("segments", store)).context["release"]
    assert rel.status == "fresh" and rel.spent == pytest.approx(3.0)
    assert len(_ledger(store)) == 2
    assert sum(row.epsilon for row in _ledger(store)) <= 5.0


def test_nothing_released_before_and_no_budget_shows_no_figures(client, analyst, shop):
    store = shop["store"]
    _set(store, dp_epsilon=1.0, dp_budget=1.0)  # the page costs 3
    client.force_login(analyst)
    r = client.get(_url("segments", store))
    assert r.context["release"].status == "exhausted"
    assert r.context["rows"][0]["size"] == "—" and "fig-sizes" not in r.content.decode()
    assert _ledger(store) == []


def test_the_audience_endpoint_no_longer_returns_exact_counts(client, analyst, shop):
    store = shop["store"]
    _set(store, dp_epsilon=0.5, dp_budget=100.0)
    client.force_login(analyst)
    # Twenty distinct trees with the same true audience (the 10 big spenders).
    trees = [{"field": "monetary", "op": ">=", "value": 100 + 10 * i} for i in range(20)]
    answers = [_audience(client, store, t) for t in trees]
    counts = [a["count"] for a in answers]
    assert any(c != 10 for c in counts) and len(set(counts)) > 2
    assert all(a["status"] == "fresh" and a["epsilon"] == pytest.approx(0.5) for a in answers)
    assert all(a["display"] == privacy.display(a["count"], K) for a in answers)
    # The same tree again is the same release: same answer, nothing spent.
    again = _audience(client, store, trees[0])
    assert again["count"] == counts[0] and again["status"] == "cached"
    assert len(_ledger(store)) == 20 and again["budget_left"] == pytest.approx(100 - 20 * 0.5)


def test_the_audience_endpoint_stops_at_the_budget(client, analyst, shop):
    store = shop["store"]
    _set(store, dp_epsilon=0.5, dp_budget=1.0)  # two audience queries
    client.force_login(analyst)
    a = _audience(client, store, {"field": "monetary", "op": ">=", "value": 100})
    b = _audience(client, store, {"field": "monetary", "op": ">=", "value": 200})
    c = _audience(client, store, {"field": "monetary", "op": ">=", "value": 300})
    assert a["status"] == b["status"] == "fresh"
    assert c["status"] == "exhausted" and c["count"] is None and c["display"] == "—"
    assert "budget used up" in c["note"]
    assert _audience(client, store, {"field": "monetary", "op": ">=", "value": 100})["count"] == a["count"]
    assert len(_ledger(store)) == 2


def test_the_segment_detail_goes_through_the_mechanism(client, analyst, shop):
    store = shop["store"]
    _set(store, dp_epsilon=0.5, dp_budget=100.0, revenue_clip=1000.0)
    client.force_login(analyst)
    url = _url("segment_detail", store, segment_id=shop["big"].pk)
    r = client.get(url)
    rel = r.context["release"]
    # Size (sensitivity 1) and revenue clipped at 1000 (scale 1000 / ε): 2 × 0.5.
    assert rel.status == "fresh" and rel.epsilon == pytest.approx(1.0)
    [row] = _ledger(store)
    assert row.kind == "segment" and row.subject == str(shop["big"].pk)
    assert r.context["sample"] == []  # no member list: its length would give the size away
    assert "Revenue share" not in r.content.decode().split("Other figures")[0]
    assert client.get(url).context["size_display"] == r.context["size_display"]  # a reload: the same
    assert len(_ledger(store)) == 1
    # Across data versions the size is noisy, not the true 10 every time.
    sizes = []
    for i in range(15):
        _add_profile(store, f"x{i}")
        sizes.append(client.get(url).context["size_display"])
    assert len(set(sizes)) > 2 and any(s != "10" for s in sizes)


def test_without_epsilon_the_side_doors_stay_exact_and_record_nothing(client, analyst, shop):
    store = shop["store"]
    _set(store, dp_epsilon=None)
    client.force_login(analyst)
    assert _audience(client, store, {"field": "monetary", "op": ">=", "value": 500}) == {
        "ok": True,
        "count": 10,
        "display": "10",
    }
    r = client.get(_url("segment_detail", store, segment_id=shop["big"].pk))
    assert r.context["size_display"] == "10" and len(r.context["sample"]) == 10
    assert _ledger(store) == []


def test_rule_builder_asks_before_spending(client, analyst, shop):
    store = shop["store"]
    _set(store, dp_epsilon=0.5)
    client.force_login(analyst)
    assert 'id="audience-check"' in client.get(_url("segment_new", store)).content.decode()
    _set(store, dp_epsilon=None)
    assert 'id="audience-check"' not in client.get(_url("segment_new", store)).content.decode()


def test_only_merchants_set_the_budget_and_bad_values_are_refused(client, merchant, analyst, shop):
    store = shop["store"]
    url = _url("privacy", store)
    form = {"dp_epsilon": "0.5", "dp_budget": "4", "dp_budget_window_days": "7", "min_cell_size": "5"}
    form |= {"revenue_clip": "1000", "segment_k": ""}
    client.force_login(analyst)
    assert client.post(url, form).status_code in (403, 404)
    assert get_settings(store).dp_budget == 10.0
    client.force_login(merchant)
    assert client.post(url, form).status_code == 302
    cfg = get_settings(store)
    assert (cfg.dp_epsilon, cfg.dp_budget, cfg.dp_budget_window_days) == (0.5, 4.0, 7)
    r = client.post(url, {**form, "dp_budget": "0"})
    assert r.status_code == 200 and "The privacy budget must be a positive number." in r.content.decode()
    r = client.post(url, {**form, "dp_budget_window_days": "0"})
    assert "The budget window must be at least one day." in r.content.decode()
    # The Privacy page shows the spend and the ledger.
    client.get(_url("segments", store))
    page = client.get(url).content.decode()
    assert "ε spent in the last 7 days: 1.500 of 4.000." in page and "Segments page" in page


def test_the_ledger_is_read_only_in_the_admin(client, make_user, shop):
    store = shop["store"]
    _set(store, dp_epsilon=0.5)
    boss = make_user("boss", store, is_staff=True)
    client.force_login(boss)
    client.get(_url("segments", store))
    [row] = _ledger(store)
    assert client.get(reverse("admin:analytics_dprelease_changelist")).status_code == 200
    assert client.get(reverse("admin:analytics_dprelease_add")).status_code == 403
    assert client.post(reverse("admin:analytics_dprelease_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    assert len(_ledger(store)) == 1
    # The settings admin applies the Privacy form's checks.
    cfg = get_settings(store)
    url = reverse("admin:analytics_storeanalyticssettings_change", args=[cfg.pk])
    page = client.get(url).content.decode()
    assert "dp_budget" in page and "noise_key" not in page
    data = {"store": store.pk, "dp_epsilon": "0.5", "dp_budget": "-1", "dp_budget_window_days": "30"}
    data |= {"min_cell_size": "5", "revenue_clip": "1000", "segment_k": "", "segmentation": "{}"}
    r = client.post(url, data)
    assert r.status_code == 200 and "The privacy budget must be a positive number." in r.content.decode()
    assert get_settings(store).dp_budget == 10.0
