"""Promises of docs/experiments.md: purchases beyond the 7-day window (and clicks beyond 24 h) are
not attributed, 5 minutes of clock skew are allowed, and one experiment runs per store and placement."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from analytics.experiments import services
from analytics.experiments.models import Attribution
from analytics.experiments.services import ExperimentError
from shop_recs.serving.models import Experiment, ExperimentStatus
from shop_recs.stores.scoping import store_scope
from tests.experiments.test_experiments import _event, _list

pytestmark = pytest.mark.django_db


def _attributed(store) -> dict[int, Attribution]:
    services.attribute_events(store)
    with store_scope(store):
        return {a.event_id: a for a in Attribution.objects.all()}


def test_purchase_window_is_seven_days(store, make_product, make_customer):
    t0 = timezone.now() - timedelta(days=30)
    alice, bob = make_customer(store, "alice"), make_customer(store, "bob")
    p1, p2 = make_product(store, "P1"), make_product(store, "P2")
    a_list = _list(store, alice, [p1], when=t0)
    b_list = _list(store, bob, [p2], when=t0)
    inside = _event(store, alice, p1, "purchase", t0 + timedelta(days=6, hours=23), value=10.0)
    beyond = _event(store, alice, p1, "purchase", t0 + timedelta(days=7, hours=1), value=20.0)
    # Naming the list in context does not stretch the window either.
    named_inside = _event(store, bob, p2, "purchase", t0 + timedelta(days=7), list_id=b_list.list_id, value=5.0)
    named_beyond = _event(store, bob, p2, "purchase", t0 + timedelta(days=8), list_id=b_list.list_id, value=6.0)
    got = _attributed(store)
    assert set(got) == {inside.pk, named_inside.pk}
    assert (got[inside.pk].via, got[inside.pk].revenue) == ("window", 10.0)
    assert got[inside.pk].list_id == a_list.list_id
    assert (got[named_inside.pk].via, got[named_inside.pk].revenue) == ("list_id", 5.0)
    assert beyond.pk not in got and named_beyond.pk not in got


def test_click_window_is_24_hours_and_purchases_keep_theirs(store, make_product, make_customer):
    t0 = timezone.now() - timedelta(days=30)
    alice = make_customer(store, "alice")
    p1 = make_product(store, "P1")
    _list(store, alice, [p1], when=t0)
    click_in = _event(store, alice, p1, "click", t0 + timedelta(hours=23))
    click_out = _event(store, alice, p1, "click", t0 + timedelta(hours=25))
    cart_out = _event(store, alice, p1, "add_to_cart", t0 + timedelta(hours=25))
    buy_in = _event(store, alice, p1, "purchase", t0 + timedelta(hours=25), value=3.0)
    got = _attributed(store)
    assert set(got) == {click_in.pk, buy_in.pk}
    assert click_out.pk not in got and cart_out.pk not in got


def test_changed_purchase_window_applies_after_reset(store, make_product, make_customer):
    from analytics.experiments.models import AttributionSettings

    t0 = timezone.now() - timedelta(days=30)
    alice = make_customer(store, "alice")
    p1 = make_product(store, "P1")
    _list(store, alice, [p1], when=t0)
    late = _event(store, alice, p1, "purchase", t0 + timedelta(days=9), value=1.0)
    assert late.pk not in _attributed(store)
    with store_scope(store):
        cfg = AttributionSettings.objects.get()
        cfg.purchase_window_days = 10
        cfg.save()
    services.reset_attribution(store)
    assert late.pk in _attributed(store)


def test_five_minutes_of_clock_skew(store, make_product, make_customer):
    t0 = timezone.now() - timedelta(days=30)
    alice = make_customer(store, "alice")
    p1 = make_product(store, "P1")
    _list(store, alice, [p1], when=t0)
    skewed = _event(store, alice, p1, "click", t0 - timedelta(minutes=4))  # client clock 4 min behind
    too_early = _event(store, alice, p1, "add_to_cart", t0 - timedelta(minutes=6))
    got = _attributed(store)
    assert skewed.pk in got and too_early.pk not in got


def _draft(store, name, placement="home"):
    variants = [
        {"name": "a", "kind": "rules", "rule_overrides": {}, "traffic": 50},
        {"name": "b", "kind": "rules", "rule_overrides": {}, "traffic": 50},
    ]
    return services.create_experiment(store, name=name, placement=placement, variants=variants)


def _status(store, exp) -> str:
    with store_scope(store):
        return Experiment.objects.get(pk=exp.pk).status


def test_one_running_experiment_per_store_and_placement(store, other_store):
    first, second = _draft(store, "first"), _draft(store, "second")
    other_placement = _draft(store, "pdp", placement="pdp")
    other_shop = _draft(other_store, "theirs")
    with store_scope(store):
        services.start_experiment(first)
        with pytest.raises(ExperimentError, match="already running on placement 'home'"):
            services.start_experiment(second)
        services.start_experiment(other_placement)  # another placement: allowed
    with store_scope(other_store):
        services.start_experiment(other_shop)  # same placement, another store: allowed
    assert _status(store, second) == ExperimentStatus.DRAFT
    assert _status(other_store, other_shop) == ExperimentStatus.RUNNING
    # Once the first stops, the second may run.
    with store_scope(store):
        services.stop_experiment(first)
        services.start_experiment(second)
    assert _status(store, second) == ExperimentStatus.RUNNING


def test_database_refuses_a_second_running_experiment(store):
    """The partial unique constraint holds even when the service check is bypassed (a race)."""
    first, second = _draft(store, "first"), _draft(store, "second")
    with store_scope(store):
        services.start_experiment(first)
        with pytest.raises(IntegrityError), transaction.atomic():
            Experiment.objects.filter(pk=second.pk).update(status=ExperimentStatus.RUNNING)
    assert _status(store, second) == ExperimentStatus.DRAFT


def test_start_page_refuses_a_second_running_experiment(client, merchant, store):
    first, second = _draft(store, "first"), _draft(store, "second")
    client.force_login(merchant)

    def start(exp):
        url = reverse("experiments:start", kwargs={"store_slug": store.slug, "experiment_id": exp.pk})
        return client.post(url, {"confirm": "yes"}, follow=True)

    assert start(first).status_code == 200
    response = start(second)
    assert response.status_code == 200
    assert any("already running on placement 'home'" in str(m) for m in response.context["messages"])
    assert (_status(store, first), _status(store, second)) == (ExperimentStatus.RUNNING, ExperimentStatus.DRAFT)
