"""The search insights page: what customers look for, what they do not find, and a try-it box."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from shop_recs.platform.charts import figure_json
from shop_recs.search import charts, selectors
from shop_recs.search.services import MAX_QUERY_LENGTH, search_products
from shop_recs.stores.access import store_view

TRY_RESULTS = 20


@store_view
def insights(request: HttpRequest) -> HttpResponse:
    """Open to merchants and analysts (reading only; the try-it box does not log its queries)."""
    period, start = selectors.period_start(request.GET.get("period"))
    days, searches, zero = selectors.queries_per_day(start)
    figure = charts.queries_per_day_figure(days, searches, zero, labels=(_("Searches"), _("No results")))

    query = (request.GET.get("q") or "").strip()[:MAX_QUERY_LENGTH]
    customer = (request.GET.get("customer") or "").strip()
    outcome = None
    if query:
        outcome = search_products(request.store, query, n=TRY_RESULTS, customer_external_id=customer or None, log=False)
    reported_total, reported = selectors.reported_searches(start)
    for row in reported:
        # What a shopper would find here today: the zero-result insight for shops with their own search.
        row.matches_now = search_products(request.store, row.example, n=1, log=False).total
    periods = [
        ("7d", gettext_lazy("7 days")),
        ("30d", gettext_lazy("30 days")),
        ("90d", gettext_lazy("90 days")),
    ]
    return render(
        request,
        "search/insights.html",
        {
            "section": "search",
            "period": period,
            "periods": periods,
            "totals": selectors.totals(start),
            "top": selectors.top_searches(start),
            "zero": selectors.zero_result_searches(start),
            "reported": reported,
            "reported_total": reported_total,
            "figure": figure_json(figure) if any(searches) else None,
            "try_query": query,
            "try_customer": customer,
            "outcome": outcome,
        },
    )
