"""Erasure leaves nothing about the customer in any table that has a customer column.

The tables are discovered through the app registry, not listed: a new model with a foreign key to
``Customer`` or a customer-id column fails :func:`test_every_customer_column_is_handled` until a
receiver of ``activity.erasure.customer_erasing`` handles it (and reports it on the audit row).
"""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.db import models

from shop_recs.activity import erasure
from shop_recs.activity.models import Customer, ErasureRecord, Event
from shop_recs.stores.scoping import unscoped
from tests.activity.conftest import fill_every_table

pytestmark = pytest.mark.django_db

#: A column that holds a customer's id or external id: customer, customer_id, customer_external_id, ...
CUSTOMER_COLUMN = re.compile(r"(^|_)customer(_id|_pk|_external_id|_ext_id|_key)?$")


def customer_columns() -> list[tuple[type[models.Model], str, str]]:
    """(model, attribute, "pk" | "external") of every column that identifies a customer, in every app."""
    found = [(Customer, "id", "pk"), (Customer, "external_id", "external")]
    for model in apps.get_models(include_auto_created=True):
        for f in model._meta.concrete_fields:
            if f.is_relation and f.related_model is Customer:
                found.append((model, f.attname, "pk"))
            elif not f.is_relation and CUSTOMER_COLUMN.search(f.name):
                text = isinstance(f, (models.CharField, models.TextField))
                found.append((model, f.attname, "external" if text else "pk"))
    return found


def remaining(customer_pk: int, external_id: str) -> dict[str, int]:
    out = {}
    with unscoped():
        for model, attname, kind in customer_columns():
            value = external_id if kind == "external" else customer_pk
            n = model._default_manager.filter(**{attname: value}).count()
            if n:
                out[f"{model._meta.label}.{attname}"] = n
    return out


def test_discovery_finds_the_known_customer_tables():
    labels = {m._meta.label for m, _a, _k in customer_columns()}
    assert {
        "activity.Customer",
        "activity.Event",
        "search.SearchQuery",
        "serving.RecommendationList",
        "ads.Impression",
        "ads.DailyCap",
        "analytics.CustomerProfile",
        "experiments.Attribution",
    } <= labels
    assert "analytics.ProfileRun" not in labels  # n_customers is a count, not a customer column


def test_nothing_about_an_erased_customer_remains(store, make_customer, make_product, merchant):
    product = make_product(store, "SKU-1")
    gone = make_customer(store, "gone-1", country="DE")
    stays = make_customer(store, "stays-1")
    fill_every_table(store, gone, product, session_id="sess-gone")
    fill_every_table(store, stays, product, session_id="sess-stays")
    before = remaining(gone.pk, gone.external_id)
    bystander = remaining(stays.pk, stays.external_id)
    # Every discovered table was filled, so the check below is not vacuous.
    assert {label.rsplit(".", 1)[0] for label in before} == {m._meta.label for m, _a, _k in customer_columns()}

    record = erasure.erase_customer(store, gone, erasure.Actor(via="dashboard", user=merchant))

    assert remaining(gone.pk, gone.external_id) == {}
    with unscoped():
        # The anonymous events of the customer's session went too; another customer's stay whole.
        assert not Event.objects.filter(session_id="sess-gone").exists()
        assert Event.objects.filter(session_id="sess-stays").count() == 3
    assert remaining(stays.pk, stays.external_id) == bystander
    assert record.row_counts["activity.Event"] == 3
    assert record.row_counts["experiments.Attribution"] == 3
    assert record.row_counts["search.SearchQuery"] == 2


def test_every_customer_column_is_handled(store, make_customer, merchant):
    """The audit row names every table with a customer column: a new one must get a receiver."""
    customer = make_customer(store, "c-audit")
    record = erasure.erase_customer(store, customer, erasure.Actor(via="api"))
    handled = set(record.row_counts)
    discovered = {m._meta.label for m, _a, _k in customer_columns()}
    assert discovered - handled == set(), f"tables with a customer column that erasure ignores: {discovered - handled}"


def test_the_audit_row_holds_no_personal_data(store, make_customer, make_product, merchant):
    product = make_product(store, "SKU-1")
    customer = make_customer(store, "secret-person-42", country="DE")
    fill_every_table(store, customer, product, session_id="secret-session-42")
    record = erasure.erase_customer(store, customer, erasure.Actor(via="dashboard", user=merchant))
    with unscoped():
        row = ErasureRecord.objects.filter(pk=record.pk).values().get()
    text = repr(row)
    assert "secret-person-42" not in text and "secret-session-42" not in text
    assert row["kind"] == "erase" and row["via"] == "dashboard" and row["user_id"] == merchant.pk
    assert row["row_counts"]["activity.Customer"] == 1


def test_merge_leaves_nothing_under_the_duplicate(store, make_customer, make_product):
    product = make_product(store, "SKU-1")
    target = make_customer(store, "main-1")
    duplicate = make_customer(store, "dup-1", country="FR")
    fill_every_table(store, duplicate, product, session_id="sess-dup")
    before_target = remaining(target.pk, target.external_id)

    result = erasure.merge_customers(store, target, "dup-1", erasure.Actor(via="api"))

    assert remaining(duplicate.pk, duplicate.external_id) == {}
    after_target = remaining(target.pk, target.external_id)
    assert after_target["activity.Event.customer_id"] == 2
    assert after_target["ads.Impression.customer_id"] == 1
    assert after_target["experiments.Attribution.customer_id"] == 2
    assert before_target.keys() < after_target.keys()
    assert result.merged and result.counts["activity.Event"] == 2 and result.counts["activity.Customer"] == 1
    target.refresh_from_db()
    assert target.country == "FR"  # a blank field taken from the duplicate


def test_events_written_by_a_batch_in_flight_are_swept_after_commit(
    store, make_customer, make_product, django_capture_on_commit_callbacks
):
    """A batch that resolved the customer before the erasure committed writes its events after it
    (ingestion reads customer ids without a lock; events have no database foreign key): the sweep
    that runs on commit removes them, and for a merge moves them to the target."""
    product = make_product(store, "SKU-1")
    gone, dup, target = (make_customer(store, x) for x in ("gone", "dup", "target"))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        erasure.erase_customer(store, gone, erasure.Actor(via="api"))
        erasure.merge_customers(store, target, "dup", erasure.Actor(via="api"))
    # The late batch commits between the erasure's DELETE and its on-commit callbacks.
    with unscoped():
        Event.objects.bulk_create(
            [
                Event(store=store, customer_id=c.pk, product=product, event_type="view", timestamp=c.created_at)
                for c in (gone, dup)
            ]
        )
    for callback in callbacks:
        callback()
    with unscoped():
        assert not Event.objects.filter(customer_id=gone.pk).exists()
        assert not Event.objects.filter(customer_id=dup.pk).exists()
        assert Event.objects.filter(customer_id=target.pk).count() == 1
