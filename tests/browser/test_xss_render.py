"""Stored text a shop or a shopper controls is shown as text on every dashboard page (issue 12,
"keep what held": the XSS render test, in Chromium).

Payloads sit in product titles, brands and descriptions, a category, a search query, a rule
segment, an experiment and an ad campaign. Each page is loaded in Chromium and must contain none of
the payloads' elements (template escaping), and no payload may have run (``window.__xss``). The
element check does not depend on the Content-Security-Policy, which would also block the handlers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from analytics.models import Segment
from shop_recs.activity.models import Customer, Event
from shop_recs.ads.models import Campaign, CampaignStatus
from shop_recs.catalog.models import Category, Product
from shop_recs.search.models import SearchQuery
from shop_recs.serving.models import Experiment, Variant
from shop_recs.stores.scoping import unscoped
from tests.browser.test_dashboard_browser import browser_page  # noqa: F401 - the Chromium fixture

PAYLOADS = {
    "category": '<img src=x id="xss-category" onerror="window.__xss=1">',
    "title": '<script id="xss-title">window.__xss=2</script>Mug',
    "brand": '"><img src=x id="xss-brand" onerror="window.__xss=3">',
    "description": '<svg id="xss-description" onload="window.__xss=4"></svg>',
    "query": '<img src=x id="xss-query" onerror="window.__xss=5">',
    "segment": '<b id="xss-segment" onmouseover="window.__xss=6">seg</b>',
    "experiment": '<img src=x id="xss-experiment" onerror="window.__xss=7">',
    "campaign": '<img src=x id="xss-campaign" onerror="window.__xss=8">',
}
ELEMENT_IDS = [f"xss-{name}" for name in PAYLOADS]


@pytest.fixture
def hostile_store(store, make_user):
    merchant = make_user("merchant", store)
    now = timezone.now()
    with unscoped():
        cat = Category.objects.create(store=store, name=PAYLOADS["category"], path=PAYLOADS["category"])
        product = Product.objects.create(
            store=store,
            sku="XSS-1",
            title=PAYLOADS["title"],
            brand=PAYLOADS["brand"],
            description=PAYLOADS["description"],
            category=cat,
            price=10,
        )
        other = Product.objects.create(store=store, sku="PLAIN-1", title="Plain mug", category=cat, price=12)
        customer = Customer.objects.create(store=store, external_id="shopper-1")
        Event.objects.bulk_create(
            Event(store=store, customer=customer, product=p, event_type=kind, timestamp=now - timedelta(hours=h))
            for h, (p, kind) in enumerate([(product, "view"), (other, "view"), (product, "purchase")])
        )
        SearchQuery.all_stores.create(store=store, query=PAYLOADS["query"], normalized_query="img", n_results=0)
        Segment.objects.create(store=store, kind=Segment.Kind.RULE, name=PAYLOADS["segment"], rules={})
        exp = Experiment.objects.create(store=store, name=PAYLOADS["experiment"], placement="home")
        Variant.objects.create(store=store, experiment=exp, name="a", kind="rules", traffic=50, position=0)
        Variant.objects.create(store=store, experiment=exp, name="b", kind="rules", traffic=50, position=1)
        campaign = Campaign.objects.create(
            store=store,
            name=PAYLOADS["campaign"],
            title=PAYLOADS["campaign"],
            landing_url="https://shop.example/",
            starts_at=datetime(2024, 1, 1, tzinfo=UTC),
            ends_at=now + timedelta(days=30),
            budget=100,
            status=CampaignStatus.PAUSED,
        )
    return {"merchant": merchant, "experiment": exp, "campaign": campaign}


def _pages(store, data) -> list[str]:
    s = {"store_slug": store.slug}
    return [
        reverse("dashboard:overview", kwargs=s),
        reverse("dashboard:catalog", kwargs=s),
        reverse("dashboard:product_detail", kwargs={**s, "sku": "XSS-1"}),
        reverse("dashboard:customers", kwargs=s),
        reverse("dashboard:customer_detail", kwargs={**s, "external_id": "shopper-1"}),
        reverse("dashboard:tasks", kwargs=s),
        reverse("search:insights", kwargs=s),
        reverse("analytics:segments", kwargs=s),
        reverse("experiments:index", kwargs=s),
        reverse("experiments:detail", kwargs={**s, "experiment_id": data["experiment"].pk}),
        reverse("ads:campaigns", kwargs=s),
        reverse("ads:campaign_detail", kwargs={**s, "campaign_id": data["campaign"].pk}),
        reverse("recs:preview", kwargs=s) + "?customer=shopper-1",
        reverse("recs:rules", kwargs=s),
        reverse("recs:history", kwargs=s),
        reverse("recommend:jobs", kwargs=s),
    ]


def test_stored_payloads_render_as_text_on_every_page(live_server, browser_page, store, hostile_store):  # noqa: F811
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "pw-123456!")
    page.click("button[type=submit].btn-primary")
    page.wait_for_load_state()
    seen_text = set()
    for url in _pages(store, hostile_store):
        response = page.goto(f"{live_server.url}{url}")
        assert response is not None and response.status == 200, url
        page.wait_for_load_state()
        injected = page.evaluate("ids => ids.filter(id => document.getElementById(id) !== null)", ELEMENT_IDS)
        assert injected == [], (url, injected)
        assert page.evaluate("window.__xss === undefined"), url
        text = page.inner_text("body")
        seen_text |= {name for name, payload in PAYLOADS.items() if payload in text}
    assert dialogs == []
    # The payloads were on the pages, shown as text (not dropped by the test's own data).
    assert {"title", "category", "query", "segment", "experiment", "campaign"} <= seen_text, seen_text
