"""The customer page: a merchant erases a customer or deletes bad events, after a confirmation that
states what goes; analysts are refused; every action is recorded."""

from __future__ import annotations

import pytest
from django.urls import reverse

from analytics.models import CustomerProfile
from shop_recs.activity import erasure
from shop_recs.activity.models import Customer, ErasureRecord, Event
from shop_recs.stores.models import Role
from shop_recs.stores.scoping import unscoped
from tests.activity.conftest import fill_every_table

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(store, make_customer, make_product):
    product = make_product(store, "SKU-1", title="Blue mug")
    customer = make_customer(store, "p-1", country="DE")
    fill_every_table(store, customer, product, session_id="sess-p1")
    return customer


def url(name: str, store, customer) -> str:
    return reverse(f"dashboard:{name}", kwargs={"store_slug": store.slug, "external_id": customer.external_id})


def test_customer_page_offers_the_actions_to_merchants_only(client, store, person, merchant, make_user):
    client.force_login(merchant)
    html = client.get(url("customer_detail", store, person)).content.decode()
    assert url("erase_customer", store, person) in html and 'name="ids"' in html
    client.force_login(make_user("ana", store, Role.ANALYST))
    html = client.get(url("customer_detail", store, person)).content.decode()
    assert url("erase_customer", store, person) not in html and 'name="ids"' not in html


def test_erase_needs_a_confirmation_that_states_what_goes(client, store, person, merchant):
    client.force_login(merchant)
    page = client.get(url("erase_customer", store, person))
    assert page.status_code == 200
    html = page.content.decode()
    counts = dict(page.context["counts"])
    assert counts["events"] == 3 and counts["customer profiles"] == 1 and counts["impressions"] == 1
    assert "search queries" in counts and "attributions" in counts and page.context["total"] >= 12
    assert "What stays" in html
    # A POST without the id typed again erases nothing.
    wrong = client.post(url("erase_customer", store, person), {"confirm_id": "p-2"})
    assert wrong.status_code == 200
    assert Customer.all_stores.filter(pk=person.pk).exists()
    assert not ErasureRecord.all_stores.exists()

    done = client.post(url("erase_customer", store, person), {"confirm_id": "p-1"})
    assert done.status_code == 302 and done["Location"] == reverse("dashboard:customers", args=[store.slug])
    assert not Customer.all_stores.filter(pk=person.pk).exists()
    with unscoped():
        assert not Event.objects.filter(session_id="sess-p1").exists()
        assert not CustomerProfile.objects.filter(customer_id=person.pk).exists()
        record = ErasureRecord.objects.get()
    assert record.kind == "erase" and record.via == "dashboard" and record.user == merchant
    assert record.row_counts["activity.Event"] == 3


def test_analysts_cannot_erase_or_delete_events(client, store, person, make_user):
    client.force_login(make_user("ana", store, Role.ANALYST))
    event_id = Event.all_stores.filter(customer=person).values_list("pk", flat=True)[0]
    assert client.get(url("erase_customer", store, person)).status_code == 403
    assert client.post(url("erase_customer", store, person), {"confirm_id": "p-1"}).status_code == 403
    assert client.get(url("delete_customer_events", store, person), {"ids": [event_id]}).status_code == 403
    response = client.post(url("delete_customer_events", store, person), {"ids": [event_id], "confirm": "yes"})
    assert response.status_code == 403
    assert Event.all_stores.filter(customer=person).count() == 2
    assert Customer.all_stores.filter(pk=person.pk).exists() and not ErasureRecord.all_stores.exists()


def test_another_store_cannot_reach_the_actions(client, store, other_store, person, make_user):
    client.force_login(make_user("outsider", other_store, Role.MERCHANT))
    wrong_store = reverse("dashboard:erase_customer", kwargs={"store_slug": other_store.slug, "external_id": "p-1"})
    assert client.post(wrong_store, {"confirm_id": "p-1"}).status_code == 404
    assert client.post(url("erase_customer", store, person), {"confirm_id": "p-1"}).status_code == 404
    assert Customer.all_stores.filter(pk=person.pk).exists()


def test_delete_selected_events_after_confirmation(client, store, person, merchant):
    client.force_login(merchant)
    purchase = Event.all_stores.get(customer=person, event_type="purchase")
    confirm = client.get(url("delete_customer_events", store, person), {"ids": [purchase.pk]})
    assert confirm.status_code == 200
    assert [e.pk for e in confirm.context["events"]] == [purchase.pk]
    assert Event.all_stores.filter(pk=purchase.pk).exists()  # showing the confirmation deletes nothing
    # Without the confirmation box, nothing happens either.
    client.post(url("delete_customer_events", store, person), {"ids": [purchase.pk]})
    assert Event.all_stores.filter(pk=purchase.pk).exists()

    done = client.post(url("delete_customer_events", store, person), {"ids": [purchase.pk], "confirm": "yes"})
    assert done.status_code == 302 and done["Location"] == url("customer_detail", store, person)
    assert not Event.all_stores.filter(pk=purchase.pk).exists()
    assert Event.all_stores.filter(customer=person).count() == 1
    with unscoped():
        record = ErasureRecord.objects.get()
        assert not CustomerProfile.objects.filter(customer_id=person.pk).exists()  # recomputed on next refresh
    assert record.kind == "delete_events" and record.user == merchant
    assert record.row_counts["activity.Event"] == 1 and record.row_counts["experiments.Attribution"] == 1


@pytest.mark.parametrize("ids", [[], ["x"], ["²"], ["1" * 30]])
def test_bad_event_selections_delete_nothing(client, store, person, merchant, ids):
    client.force_login(merchant)
    response = client.post(url("delete_customer_events", store, person), {"ids": ids, "confirm": "yes"})
    assert response.status_code == 302
    assert Event.all_stores.filter(customer=person).count() == 2 and not ErasureRecord.all_stores.exists()


def test_another_customers_event_is_refused(client, store, person, merchant, make_customer):
    other = make_customer(store, "p-2")
    theirs = Event.all_stores.create(store=store, customer=other, event_type="view", timestamp=person.created_at)
    client.force_login(merchant)
    client.post(url("delete_customer_events", store, person), {"ids": [theirs.pk], "confirm": "yes"})
    assert Event.all_stores.filter(pk=theirs.pk).exists() and not ErasureRecord.all_stores.exists()


def test_the_pages_are_translated(client, store, person, merchant):
    client.force_login(merchant)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    html = client.get(url("erase_customer", store, person)).content.decode()
    assert "删除" in html


def test_merchants_read_the_audit_trail_in_the_admin(client, store, other_store, make_user, make_customer):
    mine = erasure.erase_customer(store, make_customer(store, "x-1"), erasure.Actor(via="api"))
    theirs = erasure.erase_customer(other_store, make_customer(other_store, "y-1"), erasure.Actor(via="api"))
    client.force_login(make_user("staffer", store, Role.MERCHANT, is_staff=True))
    listing = client.get("/admin/activity/erasurerecord/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert f"/admin/activity/erasurerecord/{mine.pk}/change/" in html
    assert f"/admin/activity/erasurerecord/{theirs.pk}/change/" not in html
    detail = client.get(f"/admin/activity/erasurerecord/{mine.pk}/change/")
    assert detail.status_code == 200 and "activity.Event" in detail.content.decode()
    # Read-only: nobody adds, changes or deletes an audit row.
    assert client.get("/admin/activity/erasurerecord/add/").status_code == 403
    assert client.post(f"/admin/activity/erasurerecord/{mine.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ErasureRecord.all_stores.filter(pk=mine.pk).exists()
