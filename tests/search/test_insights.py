"""The query log, the insights page and its chart."""

from __future__ import annotations

import re
from datetime import date

from shop_recs.search import charts, selectors
from shop_recs.search.models import SearchQuery
from shop_recs.stores.models import Role
from shop_recs.stores.scoping import store_scope, unscoped

URL = "/api/v1/search"


def test_every_query_is_logged_once(api_client, store, catalog, make_customer):
    customer = make_customer(store, "c1")
    api_client.get(URL, {"q": "Headphones", "customer": "c1", "session": "s-1"})
    api_client.get(URL, {"q": "hedphones"})
    api_client.get(URL, {"q": "unicorn saddle"})
    with unscoped():
        rows = list(SearchQuery.objects.order_by("pk"))
    assert [(r.query, r.normalized_query, r.n_results, r.corrected_query) for r in rows] == [
        ("Headphones", "headphone", 2, ""),
        ("hedphones", "hedphone", 2, "headphones"),
        ("unicorn saddle", "unicorn saddle", 0, ""),
    ]
    assert rows[0].customer == customer and rows[0].session_id == "s-1" and rows[0].store == store


def test_top_and_zero_result_selectors(api_client, store, catalog):
    for q in ["mug", "Mugs", "mug", "unicorn", "unicorn", "dragon"]:
        api_client.get(URL, {"q": q})
    with store_scope(store):
        _, start = selectors.period_start("30d")
        top = selectors.top_searches(start)
        zero = selectors.zero_result_searches(start)
        days, searches, zeros = selectors.queries_per_day(start)
        totals = selectors.totals(start)
    assert [(s.normalized_query, s.searches) for s in top][:2] == [("mug", 3), ("unicorn", 2)]
    assert [(s.normalized_query, s.searches) for s in zero] == [("unicorn", 2), ("dragon", 1)]
    assert len(days) == 30 and sum(searches) == 6 and sum(zeros) == 3
    assert totals == {"searches": 6, "zero": 3, "corrected": 0, "distinct": 3}


def test_queries_per_day_figure_is_pure():
    fig = charts.queries_per_day_figure([date(2024, 1, 1), date(2024, 1, 2)], [5, 3], [1, 0])
    assert [t.meta for t in fig.data] == ["searches", "zero"]
    assert list(fig.data[0].y) == [5, 3] and list(fig.data[1].x) == ["2024-01-01", "2024-01-02"]


def test_insights_page_for_merchant_and_analyst(client, store, catalog, merchant, analyst, api_client):
    api_client.get(URL, {"q": "unicorn"})
    api_client.get(URL, {"q": "mug"})
    for user in (merchant, analyst):
        client.force_login(user)
        response = client.get(f"/s/{store.slug}/search/")
        assert response.status_code == 200
        html = response.content.decode()
        assert "data-zero-results" in html and "unicorn" in html and 'data-figure="fig-searches"' in html


def test_try_it_box_searches_as_a_customer_without_logging(client, store, catalog, merchant):
    client.force_login(merchant)
    response = client.get(f"/s/{store.slug}/search/", {"q": "hedphones", "customer": "nobody"})
    html = response.content.decode()
    assert response.status_code == 200 and "data-try-results" in html and "S-HP" in html and "data-corrected" in html
    with unscoped():
        assert not SearchQuery.objects.exists()


def test_insights_page_404s_for_non_members(client, store, other_store, catalog, make_user):
    outsider = make_user("outsider", other_store, Role.MERCHANT)
    client.force_login(outsider)
    assert client.get(f"/s/{store.slug}/search/").status_code == 404
    assert client.get(f"/s/{other_store.slug}/search/").status_code == 200


def test_insights_page_needs_login(client, store):
    response = client.get(f"/s/{store.slug}/search/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_search_events_the_shop_reports_show_on_the_insights_page(client, store, other_store, catalog, merchant):
    """Regression: a shop with its own search engine sends ``search`` events and never calls the search
    API; its insights page read "0 searches … Every search found something. Nice." """
    from django.utils import timezone

    from shop_recs.activity.services import ingest_events

    now = timezone.now().replace(microsecond=0).isoformat()
    rows = [
        {"customer": f"c{i}", "type": "search", "query": q, "timestamp": now}
        for i, q in enumerate(["Headphones", "headphone", "headphones ", "unicorn saddle", "Mug"])
    ]
    ingest_events(store, rows)
    ingest_events(other_store, [{"customer": "x", "type": "search", "query": "beta-secret-query", "timestamp": now}])
    client.force_login(merchant)
    html = client.get(f"/s/{store.slug}/search/").content.decode()
    assert 'data-kpi="reported">5<' in html
    section = html.split("data-reported-searches", 1)[1]
    assert "Every search found something" not in html and "No searches through the search API" in html
    # Three spellings of one query are one row; what the platform finds for each today is shown.
    rows = [
        (q, int(n), int(found))
        for q, n, found in re.findall(
            r'q=[^"]*">([^<]+)</a></td><td class="num">(\d+)</td><td class="num" data-matches-now>(\d+)<', section
        )
    ]
    assert rows[0][1] == 3 and rows[0][2] == 2
    assert ("unicorn saddle", 1, 0) in rows and "row-warn" in section
    assert "beta-secret-query" not in html
