"""Profiles read and written by COPY on PostgreSQL give exactly what the ORM path gives.

The COPY read compiles the readers' filter through the ORM, the save goes through a staging table
and one ``INSERT … ON CONFLICT``; both must keep the store boundary, skip the rows the readers'
filter skips, keep awkward text intact and leave the segments' column alone on update.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from django.db import connection

from analytics import services
from analytics import sql as analytics_sql
from analytics.models import CustomerProfile
from analytics.profiles import read_events
from shop_recs.activity.models import Event
from shop_recs.stores.scoping import store_scope, unscoped
from tests.conftest import require_postgres

pytestmark = pytest.mark.django_db

AS_OF = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
def awkward(shop, other_store, make_customer, make_product, add_event):
    """The analytics ``shop`` plus rows that test the text format and the filters."""
    store = shop["store"]
    c1 = shop["customers"][0]
    p1 = shop["products"][0]
    add_event(store, c1, "purchase", p1, days_ago=3, value=5, qty=1, order='tab\there "quoted" back\\slash')
    add_event(store, c1, "purchase", p1, days_ago=2, value=5, qty=1, order="line\nbreak")
    add_event(store, c1, "search", None, days_ago=1)  # no product
    with unscoped():  # a stored row the readers' filter skips (value beyond the bound)
        Event.objects.create(store=store, customer=c1, event_type="purchase", product=p1, value=1e300, timestamp=AS_OF)
    stranger = make_customer(other_store, "intruder")
    add_event(other_store, stranger, "purchase", make_product(other_store, "X1"), days_ago=1, value=9, order="o-x")
    return shop


def _orm_read(store) -> pd.DataFrame:
    with store_scope(store):
        return read_events()  # no store_id: the values_list path


def test_the_copy_read_equals_the_orm_read(awkward):
    require_postgres()
    store = awkward["store"]
    orm = _orm_read(store)
    with store_scope(store):
        copied = read_events(store_id=store.pk)
    assert len(copied) == len(orm) == 14  # 11 of the shop + 3 awkward readable; not 1e300, not the other store
    assert copied.attrs["skipped_rows"] == orm.attrs["skipped_rows"] == 1
    pd.testing.assert_frame_equal(copied.drop(columns=["ts"]), orm.drop(columns=["ts"]))
    np.testing.assert_allclose(copied["ts"].to_numpy(), orm["ts"].to_numpy(), rtol=0, atol=1e-6)
    assert {'tab\there "quoted" back\\slash', "line\nbreak"} <= set(copied["order"])


def test_copy_read_takes_only_the_given_store(awkward, other_store):
    require_postgres()
    with store_scope(other_store):
        frame = read_events(store_id=other_store.pk)
    assert len(frame) == 1 and set(frame["order"]) == {"o-x"}


def _profiles(store) -> list[dict]:
    with unscoped():
        rows = CustomerProfile.objects.filter(store=store).order_by("customer_id").values()
        return [{k: v for k, v in row.items() if k not in ("id", "run_id")} for row in rows]


def test_profiles_saved_by_copy_equal_profiles_saved_by_the_orm(awkward, monkeypatch):
    require_postgres()
    store = awkward["store"]
    services.build_profiles(store, as_of=AS_OF, segment=False)
    by_copy = _profiles(store)
    with unscoped():
        CustomerProfile.objects.filter(store=store).delete()
    monkeypatch.setattr(services, "_save", services._save_by_orm)
    services.build_profiles(store, as_of=AS_OF, segment=False)
    by_orm = _profiles(store)
    assert len(by_copy) == len(by_orm) == 6
    assert by_copy == by_orm


def test_an_update_by_copy_keeps_the_segments_column_and_changes_the_rest(awkward, add_event):
    require_postgres()
    store = awkward["store"]
    c4 = awkward["customers"][3]
    services.build_profiles(store, as_of=AS_OF, segment=False)
    with unscoped():
        CustomerProfile.objects.filter(customer=c4).update(segment_ids=[41, 42])
        before = CustomerProfile.objects.get(customer=c4)
    add_event(store, c4, "purchase", awkward["products"][2], days_ago=0.5, value=20, qty=1, order="new")
    services.build_profiles(store, as_of=AS_OF, segment=False)
    with unscoped():
        after = CustomerProfile.objects.get(customer=c4)
        assert CustomerProfile.objects.filter(store=store).count() == 6
    assert after.pk == before.pk and after.segment_ids == [41, 42]
    assert (before.frequency, after.frequency) == (0, 1)


def test_the_copy_save_refuses_a_row_of_another_store(awkward, other_store):
    require_postgres()
    store = awkward["store"]
    with pytest.raises(ValueError, match=f"belongs to store {other_store.pk}"):
        analytics_sql.copy_profiles_in(
            store.pk,
            CustomerProfile._meta.db_table,
            ["store_id", "customer_id"],
            [[store.pk, awkward["customers"][0].pk], [other_store.pk, awkward["customers"][1].pk]],
            conflict="customer_id",
        )
    with unscoped():
        assert not CustomerProfile.objects.exists()
    assert connection.vendor == "postgresql"


def test_the_copy_read_sees_the_same_clock_bound_as_the_orm(awkward, add_event):
    require_postgres()
    store = awkward["store"]
    # a row two days in the future is past the readers' bound (clock skew + a day): both paths skip it
    add_event(store, awkward["customers"][1], "view", awkward["products"][0], at=datetime.now(UTC) + timedelta(days=3))
    orm = _orm_read(store)
    with store_scope(store):
        copied = read_events(store_id=store.pk)
    assert len(copied) == len(orm) and copied.attrs["skipped_rows"] == orm.attrs["skipped_rows"] == 2


def test_segment_memberships_by_copy_rewrite_only_rows_that_change(awkward, monkeypatch):
    require_postgres()
    from analytics import segments

    store = awkward["store"]
    changed: list[int] = []
    real = analytics_sql.copy_update_profiles

    def counting(*args, **kwargs):
        changed.append(real(*args, **kwargs))
        return changed[-1]

    monkeypatch.setattr(analytics_sql, "copy_update_profiles", counting)
    services.build_profiles(store, as_of=AS_OF, segment=True)  # auto segments, then segment_ids
    with unscoped():
        profiles = list(CustomerProfile.objects.filter(store=store))
    assert len(profiles) == 6 and all(p.auto_segment_id is not None for p in profiles)
    assert all(p.segment_ids == [p.auto_segment_id] for p in profiles)
    assert changed == [6, 6]
    changed.clear()
    segments.refresh_segment_memberships(store)  # nothing moved: no row is written again
    assert changed == [0]
