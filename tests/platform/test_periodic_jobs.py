"""The bodies of the periodic jobs: attribution of every store, campaign upkeep, profile refresh."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from analytics.experiments.models import Attribution
from analytics.experiments.tasks import attribute_all_stores_task
from analytics.models import CustomerProfile, ProfileRun
from analytics.periodic import refresh_due_profiles
from analytics.tasks import purge_old_logs_task, refresh_due_profiles_task
from shop_recs.activity.models import Event
from shop_recs.ads.models import Campaign, CampaignStatus, DailyCap
from shop_recs.ads.tasks import campaign_upkeep_task
from shop_recs.platform.jobs import JobStatus
from shop_recs.platform.models import PeriodicRun, StorePeriodicSettings
from shop_recs.search.models import SearchQuery
from shop_recs.serving.models import RecommendationList
from shop_recs.stores.scoping import store_scope, unscoped
from tests.conftest import ROOT

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _events(store, customers, products, when=T0):
    rows = []
    for c, customer in enumerate(customers):
        for step, product in enumerate(products[:2]):
            rows.append(
                Event(
                    store=store,
                    customer=customer,
                    product=product,
                    event_type="purchase" if step == 0 else "view",
                    timestamp=when + timedelta(hours=c, minutes=step),
                    order_id=f"o{c}" if step == 0 else "",
                )
            )
    with unscoped():
        Event.objects.bulk_create(rows)


@pytest.fixture
def two_shops(store, other_store, make_product, make_customer):
    data = {}
    for s in (store, other_store):
        products = [make_product(s, f"P{i}", price=10 + i) for i in range(3)]
        customers = [make_customer(s, f"C{i}") for i in range(4)]
        data[s.pk] = {"products": products, "customers": customers}
    return data


def test_attribution_runs_for_every_store_that_wants_it(store, other_store, two_shops, make_store):
    now = timezone.now()
    for s in (store, other_store):
        customer, product = two_shops[s.pk]["customers"][0], two_shops[s.pk]["products"][0]
        with unscoped():
            lst = RecommendationList.objects.create(
                store=s, list_id=uuid.uuid4(), customer=customer, product_ids=[product.pk], placement="home"
            )
            Event.objects.create(
                store=s,
                customer=customer,
                product=product,
                event_type="click",
                timestamp=now,
                context={"list_id": str(lst.list_id)},
            )
    quiet = make_store("Quiet", slug="quiet")
    with unscoped():
        StorePeriodicSettings.objects.create(store=other_store, attribution=False)
    result = attribute_all_stores_task.delay().get()
    assert result["events"] == 1 and result["stores"] == 2
    assert result["per_store"] == {store.pk: {"events": 1}, quiet.pk: {"events": 0}}
    with unscoped():
        assert list(Attribution.objects.values_list("store_id", flat=True)) == [store.pk]
    assert PeriodicRun.objects.get(name="attribute-events").summary == "attributed 1 events in 2 stores"


def test_campaign_upkeep_ends_expired_and_spent_campaigns_and_purges_old_counters(store, other_store, make_customer):
    now = timezone.now()

    def campaign(s, name, **kwargs):
        kwargs.setdefault("starts_at", now - timedelta(days=5))
        kwargs.setdefault("ends_at", now + timedelta(days=5))
        with unscoped():
            return Campaign.objects.create(
                store=s,
                name=name,
                title=name,
                landing_url="https://shop.example/",
                budget=10,
                status=CampaignStatus.ACTIVE,
                **kwargs,
            )

    expired = campaign(store, "expired", ends_at=now - timedelta(hours=1))
    # Budget 10.00 at the default CPM bid of 10.00 (0.01 per impression): 1,000 impressions' worth.
    spent = campaign(store, "spent", impressions_served=1000, spend_micros=10_000_000)
    running = campaign(store, "running", impressions_served=3, spend_micros=30_000)
    other_spent = campaign(other_store, "other spent", impressions_served=1000, spend_micros=10_000_000)
    customer = make_customer(store, "C-ads")
    with unscoped():
        five_days_ago = (now - timedelta(days=5)).date()
        old = DailyCap.objects.create(store=store, campaign=running, customer=customer, day=five_days_ago)
        today = DailyCap.objects.create(store=store, campaign=running, customer=customer, day=now.date(), count=1)
    result = campaign_upkeep_task.delay().get()
    assert (result["expired"], result["spent"], result["purged"]) == (1, 2, 1)
    assert result["per_store"] == {store.pk: {"expired": 1, "spent": 1}, other_store.pk: {"expired": 0, "spent": 1}}
    with unscoped():
        status = dict(Campaign.objects.values_list("pk", "status"))
        assert status[expired.pk] == status[spent.pk] == status[other_spent.pk] == CampaignStatus.ENDED
        assert status[running.pk] == CampaignStatus.ACTIVE
        assert set(DailyCap.objects.values_list("pk", flat=True)) == {today.pk}
        assert not DailyCap.objects.filter(pk=old.pk).exists()


def test_profile_refresh_starts_due_stores_only_once_per_cadence(
    store, other_store, two_shops, make_store, django_capture_on_commit_callbacks
):
    for s in (store, other_store):
        _events(s, two_shops[s.pk]["customers"], two_shops[s.pk]["products"])
    make_store("Empty", slug="empty")  # no events: nothing to profile
    with unscoped():
        StorePeriodicSettings.objects.create(store=other_store, profile_refresh_hours=0)  # off
    with django_capture_on_commit_callbacks(execute=True):
        first = refresh_due_profiles_task.delay().get()
    assert first["started"] == 1 and list(first["per_store"]) == [store.pk]
    with store_scope(store):
        run = ProfileRun.objects.get()
        assert (run.status, run.mode, run.segment) == (JobStatus.SUCCEEDED, ProfileRun.Mode.FULL, True)
        assert CustomerProfile.objects.count() == 4
    with store_scope(other_store):
        assert not ProfileRun.objects.exists()
    # Not due again within the cadence (daily by default).
    assert refresh_due_profiles_task.delay().get()["started"] == 0


def test_profile_refresh_after_the_cadence_is_incremental_and_skips_stores_without_new_events(
    store, two_shops, settings, django_capture_on_commit_callbacks
):
    settings.PROFILE_REFRESH_HOURS = 1
    customers, products = two_shops[store.pk]["customers"], two_shops[store.pk]["products"]
    _events(store, customers, products)
    later = timezone.now() + timedelta(hours=2)
    with django_capture_on_commit_callbacks(execute=True):
        refresh_due_profiles_task.delay().get()
    # Two hours on, nothing new happened: profiles would not change, so no run.
    assert refresh_due_profiles(now=later)["started"] == 0
    _events(store, customers[:1], products[1:], when=T0 + timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert refresh_due_profiles(now=later)["started"] == 1
    with store_scope(store):
        assert list(ProfileRun.objects.order_by("pk").values_list("mode", "status")) == [
            (ProfileRun.Mode.FULL, JobStatus.SUCCEEDED),
            (ProfileRun.Mode.INCREMENTAL, JobStatus.SUCCEEDED),
        ]


def _logs(s, *, age: timedelta, variant: str = ""):
    when = timezone.now() - age
    with unscoped():
        lst = RecommendationList.objects.create(
            store=s, list_id=uuid.uuid4(), product_ids=[1], placement="home", variant=variant, created_at=when
        )
        Attribution.objects.create(
            store=s,
            event_id=Attribution.all_stores.count() + 1000,
            event_type="click",
            list_id=lst.list_id,
            list_created_at=when,
            timestamp=when,
            product_id=1,
            variant=variant,
            via="list_id",
        )
        SearchQuery.objects.create(store=s, query="mug", normalized_query="mug", created_at=when)
    return lst


def test_log_retention_is_off_by_default(store, settings):
    assert settings.LOG_RETENTION_DAYS == 0
    _logs(store, age=timedelta(days=3000))
    assert purge_old_logs_task.delay().get() == {"lists": 0, "searches": 0, "attributions": 0, "per_store": {}}
    with unscoped():
        assert RecommendationList.objects.count() == SearchQuery.objects.count() == Attribution.objects.count() == 1


def test_log_retention_deletes_old_rows_but_keeps_running_experiments(store, other_store, settings):
    from analytics.experiments import services as experiment_services

    settings.LOG_RETENTION_DAYS = 90
    exp = experiment_services.create_experiment(
        store,
        name="long test",
        placement="home",
        variants=[
            {"name": "a", "kind": "algorithm", "algorithm": "popularity", "traffic": 50},
            {"name": "b", "kind": "algorithm", "algorithm": "item_knn", "traffic": 50},
        ],
    )
    with store_scope(store):
        experiment_services.start_experiment(exp)
        tag = exp.variants.order_by("pk").first().tag
    old = _logs(store, age=timedelta(days=100))
    kept_running = _logs(store, age=timedelta(days=100), variant=tag)
    recent = _logs(other_store, age=timedelta(days=10))
    result = purge_old_logs_task.delay().get()
    assert result["per_store"] == {store.pk: {"attributions": 1, "lists": 1, "searches": 2}}
    with unscoped():
        assert set(RecommendationList.objects.values_list("pk", flat=True)) == {kept_running.pk, recent.pk}
        assert set(Attribution.objects.values_list("list_id", flat=True)) == {kept_running.list_id, recent.list_id}
        assert not RecommendationList.objects.filter(pk=old.pk).exists()
        assert list(SearchQuery.objects.values_list("store_id", flat=True)) == [other_store.pk]


def test_a_retention_shorter_than_the_metrics_window_is_refused():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; os.environ['DJANGO_SETTINGS_MODULE']='shop_recs.settings';"
            "from django.conf import settings; settings.DEBUG",
        ],
        cwd=ROOT,
        env={**os.environ, "LOG_RETENTION_DAYS": "7"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "LOG_RETENTION_DAYS=7 must be 0 (keep forever) or at least 30" in result.stderr
