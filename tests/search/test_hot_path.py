"""Search without per-request database round trips: the buffered query log, the customer path's
round trips, and the unchanged answers around them."""

from __future__ import annotations

import pytest
from django.utils import timezone

from shop_recs.platform import logbuffer
from shop_recs.search.models import SearchQuery
from shop_recs.search.services import QUERY_LOG, search_products
from shop_recs.serving.models import RecommendationList
from shop_recs.stores.scoping import store_scope, unscoped

URL = "/api/v1/search"


@pytest.fixture
def buffered_logs(db, settings, monkeypatch):
    """Log buffering on, with no flusher thread: rows wait for an explicit ``flush_all``, so what a
    test sees does not depend on thread timing. Leftovers are written inside the test's transaction
    (and so rolled back with it)."""
    settings.SERVING_LOG_BUFFER_ROWS = 10_000
    settings.SERVING_LOG_FLUSH_MS = 3_600_000
    monkeypatch.setattr(logbuffer._flusher, "ensure_started", lambda: None)
    yield
    logbuffer.flush_all()


@pytest.fixture
def warm(settings):
    """Index freshness checked on its TTL (not on every search, as the package conftest sets)."""
    settings.SEARCH_INDEX_CHECK_SECONDS = 3600


def test_buffered_query_log_is_written_by_flush_all(api_client, store, catalog, make_customer, buffered_logs):
    customer = make_customer(store, "shopper")
    before = timezone.now()
    response = api_client.get(URL, {"q": "hedphones", "customer": "shopper", "session": "s-1"})
    assert response.status_code == 200
    body = response.json()
    with unscoped():
        assert not SearchQuery.objects.exists()  # buffered, not yet written
    assert QUERY_LOG.pending == 1
    assert logbuffer.flush_all() >= 2  # the query row and the served list
    with unscoped():
        row = SearchQuery.objects.get()
        listed = RecommendationList.objects.get(list_id=body["list_id"])
    assert row.store == store and row.customer_id == customer.pk and row.session_id == "s-1"
    assert row.query == "hedphones" and row.normalized_query == "hedphone"
    assert row.corrected_query == "headphones" and row.n_results == body["total"] == 2
    # The request's time, not the flush's.
    assert before <= row.created_at <= timezone.now()
    assert listed.endpoint == "search" and listed.customer_id == customer.pk
    assert QUERY_LOG.pending == 0


def test_buffered_searches_get_distinct_ids(api_client, catalog, buffered_logs):
    bodies = [api_client.get(URL, {"q": "bose"}).json() for _ in range(3)]
    list_ids = [b["list_id"] for b in bodies]
    assert len(set(list_ids)) == 3
    logbuffer.flush_all()
    with unscoped():
        assert SearchQuery.objects.filter(query="bose").count() == 3
        # Every id the API handed out names its own served list, as attribution looks it up.
        assert RecommendationList.objects.filter(list_id__in=list_ids, endpoint="search").count() == 3


def test_rejected_query_is_not_buffered(api_client, catalog, buffered_logs):
    response = api_client.get(URL, {"q": "mug", "n": "0"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["details"][0]["field"] == "n"
    assert QUERY_LOG.pending == 0


def test_anonymous_search_needs_no_database_round_trip(store, catalog, buffered_logs, warm, django_assert_num_queries):
    with store_scope(store):
        first = search_products(store, "headphones")  # builds the index, rules and catalog snapshot
        with django_assert_num_queries(0):
            again = search_products(store, "headphones")
    assert [h.sku for h in again.hits] == [h.sku for h in first.hits] == ["S-HP", "B-HP"]
    assert QUERY_LOG.pending == 2


def test_customer_search_round_trips(store, bose_fan, buffered_logs, warm, settings, django_assert_num_queries):
    settings.SEARCH_PERSONAL_WEIGHT = 0.5
    with store_scope(store):
        search_products(store, "headphones", customer_external_id="fan")  # warms the serving state
        with django_assert_num_queries(2):  # the customer's pk, then their latest events
            personal = search_products(store, "headphones", customer_external_id="fan")
        with django_assert_num_queries(1):  # an unknown customer: only the lookup
            unknown = search_products(store, "headphones", customer_external_id="nobody")
        with django_assert_num_queries(1):  # nothing found: nothing to re-rank, no events read
            search_products(store, "zzzzqqq", customer_external_id="fan")
    assert personal.personalized and [h.sku for h in personal.hits] == ["B-HP", "S-HP"]
    assert not unknown.personalized and [h.sku for h in unknown.hits] == ["S-HP", "B-HP"]
