"""Serving through experiments, attribution, online metrics, results page, permissions, isolation."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from analytics.experiments import selectors, services, stats
from analytics.experiments.models import Attribution, AttributionSettings
from shop_recs.activity.models import Event
from shop_recs.serving.experiments import assign_bucket
from shop_recs.serving.models import Experiment, ExperimentStatus, RecommendationList
from shop_recs.stores.scoping import store_scope, unscoped
from shop_recs.training.models import ActivationRecord, ModelVersion


@pytest.fixture
def versions(shop, store):
    from shop_recs.training.activation import activate_version
    from shop_recs.training.services import train_store

    with store_scope(store):
        knn = ModelVersion.objects.get(is_active=True)
    train_store(store, algorithms=["popularity"])
    with store_scope(store):
        pop = ModelVersion.objects.filter(algorithm="popularity").latest("pk")
        activate_version(knn)
    return {"knn": knn, "pop": pop}


@pytest.fixture
def experiment(store, versions):
    exp = services.create_experiment(
        store,
        name="knn vs popularity",
        placement="home",
        variants=[
            {"name": "knn", "kind": "model_version", "model_version": versions["knn"], "traffic": 50},
            {"name": "pop", "kind": "model_version", "model_version": versions["pop"], "traffic": 50},
        ],
    )
    with store_scope(store):
        services.start_experiment(exp)
    return exp


def test_serving_reports_variant_and_routes_to_its_model(api_client, store, experiment, versions):
    seen = {}
    for i in range(12):
        cid = f"C{i}"
        first = api_client.get(f"/api/v1/recommendations/customer/{cid}?placement=home&n=4").json()
        again = api_client.get(f"/api/v1/recommendations/customer/{cid}?placement=home&n=4").json()
        assert first["experiment"] == experiment.pk
        assert first["variant"] == again["variant"]  # sticky
        with store_scope(store):
            variants = list(experiment.variants.all())
        expected = variants[assign_bucket(experiment.pk, cid, [50, 50])]
        assert first["variant"] == expected.name
        version = versions[expected.name]
        assert first["model_version"] == version.pk
        assert first["algorithm"] == version.algorithm
        with store_scope(store):
            row = RecommendationList.objects.get(list_id=first["list_id"])
        assert row.variant == expected.tag and row.model_version_id == version.pk
        seen[expected.name] = True
    assert set(seen) == {"knn", "pop"}
    # Other placements are untouched by the experiment.
    plain = api_client.get("/api/v1/recommendations/customer/C0?placement=pdp").json()
    assert "variant" not in plain and plain["model_version"] == versions["knn"].pk


def _list(store, customer, products, *, when, variant="", placement="home", version=None, algorithm="item_knn"):
    with unscoped():
        return RecommendationList.objects.create(
            store=store,
            list_id=uuid.uuid4(),
            endpoint="customer",
            placement=placement,
            customer=customer,
            model_version_id=version,
            algorithm=algorithm,
            variant=variant,
            product_ids=[p.pk for p in products],
            created_at=when,
        )


def _event(store, customer, product, kind, when, list_id=None, value=None):
    with unscoped():
        return Event.objects.create(
            store=store,
            customer=customer,
            product=product,
            event_type=kind,
            timestamp=when,
            value=value,
            quantity=1 if kind == "purchase" else None,
            order_id="o1" if kind == "purchase" else "",
            context={"list_id": str(list_id)} if list_id else None,
        )


def test_attribution_rules(store, other_store, make_product, make_customer):
    now = timezone.now()
    p1, p2, p3 = (make_product(store, f"P{i}") for i in range(3))
    alice, bob = make_customer(store, "alice"), make_customer(store, "bob")
    lst = _list(store, alice, [p1, p2], when=now - timedelta(hours=2))
    e_named = _event(store, alice, p3, "click", now - timedelta(hours=1), list_id=lst.list_id)
    e_window = _event(store, alice, p2, "add_to_cart", now - timedelta(hours=1))
    e_late = _event(store, alice, p1, "click", now + timedelta(hours=30))
    e_other = _event(store, bob, p1, "click", now - timedelta(hours=1))
    e_buy = _event(store, alice, p1, "purchase", now + timedelta(days=3), value=12.5)
    # Store B's event naming A's list must never be attributed to it.
    q = make_product(other_store, "P0")
    carol = make_customer(other_store, "carol")
    e_foreign = _event(other_store, carol, q, "click", now - timedelta(hours=1), list_id=lst.list_id)
    assert services.attribute_events(store) == 3
    assert services.attribute_events(other_store) == 0
    with store_scope(store):
        got = {a.event_id: a for a in Attribution.objects.all()}
    assert set(got) == {e_named.pk, e_window.pk, e_buy.pk}
    assert got[e_named.pk].via == "list_id" and got[e_window.pk].via == "window"
    assert got[e_buy.pk].revenue == 12.5
    assert e_late.pk not in got and e_other.pk not in got and e_foreign.pk not in got
    # Incremental: nothing new, nothing written.
    assert services.attribute_events(store) == 0


def test_attribution_waits_for_events_to_settle(store, make_product, make_customer, settings):
    """With buffered list rows, events younger than ATTRIBUTION_SETTLE_SECONDS wait for the next run,
    and the watermark stops before them instead of passing them by."""
    settings.ATTRIBUTION_SETTLE_SECONDS = 10
    now = timezone.now()
    p1 = make_product(store, "P1")
    alice = make_customer(store, "alice")
    lst = _list(store, alice, [p1], when=now - timedelta(minutes=5))
    old = _event(store, alice, p1, "click", now - timedelta(minutes=1), list_id=lst.list_id)
    fresh = _event(store, alice, p1, "click", now, list_id=lst.list_id)
    with unscoped():
        Event.objects.filter(pk=old.pk).update(received_at=now - timedelta(minutes=1))
    assert services.attribute_events(store) == 1
    with store_scope(store):
        assert set(Attribution.objects.values_list("event_id", flat=True)) == {old.pk}
        assert AttributionSettings.objects.get().last_event_id == old.pk
    # Once it has settled it is attributed.
    with unscoped():
        Event.objects.filter(pk=fresh.pk).update(received_at=now - timedelta(seconds=11))
    assert services.attribute_events(store) == 1
    with store_scope(store):
        assert set(Attribution.objects.values_list("event_id", flat=True)) == {old.pk, fresh.pk}


def test_online_metrics_on_hand_built_log(store, make_product, make_customer):
    now = timezone.now()
    ps = [make_product(store, f"P{i}") for i in range(4)]
    c = make_customer(store, "c")
    a = _list(store, c, ps[:4], when=now - timedelta(hours=3), version=7, algorithm="hybrid")
    _list(store, c, ps[:4], when=now - timedelta(hours=3), version=7, algorithm="hybrid")
    _event(store, c, ps[0], "click", now - timedelta(hours=2), list_id=a.list_id)
    _event(store, c, ps[0], "click", now - timedelta(hours=2), list_id=a.list_id)  # same item: one click
    _event(store, c, ps[1], "click", now - timedelta(hours=2), list_id=a.list_id)
    _event(store, c, ps[1], "add_to_cart", now - timedelta(hours=2), list_id=a.list_id)
    _event(store, c, ps[1], "purchase", now - timedelta(hours=1), list_id=a.list_id, value=20.0)
    services.attribute_events(store)
    with store_scope(store):
        m = selectors.online_metrics(30)
    (tot,) = m["totals"]
    assert tot["impressions"] == 8 and tot["clicks"] == 2 and tot["carts"] == 1 and tot["purchases"] == 1
    assert tot["ctr"] == pytest.approx(2 / 8)
    assert tot["cart_rate"] == pytest.approx(1 / 8)
    assert tot["conversion_rate"] == pytest.approx(1 / 8)
    assert tot["rpm"] == pytest.approx(1000 * 20 / 8)
    with store_scope(store):
        exposure = selectors.catalog_exposure(30)
    assert exposure["n_never"] == 0


def _hand_experiment(store, make_product, make_customer, counts):
    """Variant A/B with ``counts[name] = (customers, clicks per customer)``, 5 items per list."""
    exp = services.create_experiment(
        store,
        name="rules",
        placement="home",
        variants=[
            {"name": "A", "kind": "rules", "rule_overrides": {}, "traffic": 50},
            {"name": "B", "kind": "rules", "rule_overrides": {"boost_weight": 2.0}, "traffic": 50},
        ],
    )
    with store_scope(store):
        tags = {v.name: v.tag for v in exp.variants.all()}
    now = timezone.now()
    ps = [make_product(store, f"P{i}") for i in range(5)]
    for name, (n_customers, n_clicks, buys) in counts.items():
        for i in range(n_customers):
            cust = make_customer(store, f"{name}{i}")
            lst = _list(store, cust, ps, when=now - timedelta(hours=2), variant=tags[name])
            for k in range(n_clicks if i % 2 == 0 else 0):
                _event(store, cust, ps[k], "click", now - timedelta(hours=1), list_id=lst.list_id)
            if i < buys:
                _event(store, cust, ps[0], "purchase", now - timedelta(hours=1), list_id=lst.list_id, value=10.0 + i)
    services.attribute_events(store)
    return exp


def test_results_page_numbers_equal_stats(client, merchant, store, make_product, make_customer):
    exp = _hand_experiment(store, make_product, make_customer, {"A": (20, 1, 3), "B": (20, 3, 6)})
    with store_scope(store):
        res = selectors.experiment_results(exp)
    a, b = res["variants"]
    assert (a["impressions"], a["clicks"], b["clicks"]) == (100, 10, 30)
    z = stats.two_proportion_ztest(10, 100, 30, 100)
    assert b["ctr_test"].p_value == pytest.approx(z.p_value)
    assert b["conversion_test"].p_value == pytest.approx(stats.two_proportion_ztest(3, 20, 6, 20).p_value)
    rev_a = [10.0, 11.0, 12.0] + [0.0] * 17
    rev_b = [10.0 + i for i in range(6)] + [0.0] * 14
    assert b["revenue_test"].p_value == pytest.approx(stats.welch_ttest(rev_a, rev_b).p_value)
    assert a["needed_impressions"]["total"] == stats.required_sample_size(0.1, 0.01)
    assert res["verdict"]["winner"] == "B"
    assert not res["srm"]["warning"]
    client.force_login(merchant)
    page = client.get(reverse("experiments:detail", kwargs={"store_slug": store.slug, "experiment_id": exp.pk}))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-ctr-p="{z.p_value}"' in html
    assert 'data-ctr="0.3"' in html
    index = client.get(reverse("experiments:index", kwargs={"store_slug": store.slug}))
    assert index.status_code == 200


def test_srm_warning_on_skewed_split(client, analyst, store, make_product, make_customer):
    exp = _hand_experiment(store, make_product, make_customer, {"A": (60, 1, 0), "B": (15, 1, 0)})
    with store_scope(store):
        res = selectors.experiment_results(exp)
    assert res["srm"]["warning"]
    client.force_login(analyst)
    page = client.get(reverse("experiments:detail", kwargs={"store_slug": store.slug, "experiment_id": exp.pk}))
    assert 'id="srm-warning"' in page.content.decode()


def test_promote_permissions_and_effect(client, analyst, merchant, store, experiment, versions):
    url = reverse("experiments:promote", kwargs={"store_slug": store.slug, "experiment_id": experiment.pk})
    with store_scope(store):
        pop_variant = experiment.variants.get(name="pop")
    confirmed = {"variant": pop_variant.pk, "confirm": "yes", "promote_anyway": "on"}
    client.force_login(analyst)
    assert client.get(url, {"variant": pop_variant.pk}).status_code == 403
    assert client.post(url, confirmed).status_code == 403
    stop = reverse("experiments:stop", kwargs={"store_slug": store.slug, "experiment_id": experiment.pk})
    client.force_login(merchant)
    # No traffic yet: the confirmation lists the missing evidence, and a confirmation without the
    # override changes nothing.
    page = client.get(url, {"variant": pop_variant.pk}).content.decode()
    assert 'id="promotion-warnings"' in page and "impressions" in page
    assert client.post(url, {"variant": pop_variant.pk, "confirm": "yes"}).status_code == 400
    with store_scope(store):
        assert ModelVersion.objects.get(is_active=True).pk == versions["knn"].pk
    assert client.post(url, confirmed).status_code == 302
    with store_scope(store):
        assert ModelVersion.objects.get(is_active=True).pk == versions["pop"].pk
        exp = Experiment.objects.get(pk=experiment.pk)
    assert exp.status == ExperimentStatus.STOPPED
    assert exp.promoted_by == merchant and exp.promotion_evidence["override"] is True
    with store_scope(store):
        record = ActivationRecord.objects.latest("pk")
    assert (record.version_id, record.previous_version_id) == (versions["pop"].pk, versions["knn"].pk)
    assert (record.source, record.user, record.details["override"]) == ("promotion", merchant, True)
    assert record.details["experiment"] == experiment.pk and "(promoted anyway)" in record.reason
    assert client.post(stop).status_code == 302  # already stopped: a message, not an error


def test_other_stores_experiments_are_404(client, make_user, other_store, experiment, store):
    outsider = make_user("outsider", other_store)
    client.force_login(outsider)
    for name in ("detail", "stop", "start"):
        url = reverse(f"experiments:{name}", kwargs={"store_slug": other_store.slug, "experiment_id": experiment.pk})
        resp = client.get(url) if name == "detail" else client.post(url)
        assert resp.status_code == 404
    url = reverse("experiments:detail", kwargs={"store_slug": store.slug, "experiment_id": experiment.pk})
    assert client.get(url).status_code == 404
