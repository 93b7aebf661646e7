"""Catalog and customer lists: search, filters, sorting, pagination and detail pages."""

from __future__ import annotations

import re

import pytest

from shop_recs.catalog.models import Category
from shop_recs.stores.scoping import unscoped

pytestmark = pytest.mark.django_db


def skus(response) -> list[str]:
    return re.findall(r'<td class="mono"><a href="/s/alpha/catalog/([^/]+)/">', response.content.decode())


def customer_ids(response) -> list[str]:
    return re.findall(r'<td class="mono"><a href="/s/alpha/customers/([^/]+)/">', response.content.decode())


@pytest.fixture
def catalog(store, make_product):
    with unscoped():
        home = Category.objects.create(store=store, name="Home", path="Home")
        kitchen = Category.objects.create(store=store, name="Kitchen", parent=home, path="Home > Kitchen")
        garden = Category.objects.create(store=store, name="Garden", path="Garden")
    make_product(store, "MUG-1", title="Blue mug", brand="Acme", category=kitchen)
    make_product(store, "MUG-2", title="Red mug", brand="Acme", category=kitchen, in_stock=False)
    make_product(store, "POT-1", title="Flower pot", brand="Terra", category=garden)
    make_product(store, "OLD-1", title="Retired mug", brand="Acme", category=home, is_active=False)
    return {"home": home, "kitchen": kitchen, "garden": garden}


def test_catalog_search_matches_sku_title_and_brand(merchant, login, catalog):
    client = login(merchant)
    assert skus(client.get("/s/alpha/catalog/?q=mug")) == ["MUG-1", "MUG-2", "OLD-1"]
    assert skus(client.get("/s/alpha/catalog/?q=pot-1")) == ["POT-1"]
    assert skus(client.get("/s/alpha/catalog/?q=terra")) == ["POT-1"]


def test_catalog_filters(merchant, login, catalog):
    client = login(merchant)
    assert skus(client.get(f"/s/alpha/catalog/?category={catalog['home'].pk}")) == ["MUG-1", "MUG-2", "OLD-1"]
    assert skus(client.get(f"/s/alpha/catalog/?category={catalog['garden'].pk}")) == ["POT-1"]
    assert skus(client.get("/s/alpha/catalog/?brand=Acme&active=yes")) == ["MUG-1", "MUG-2"]
    assert skus(client.get("/s/alpha/catalog/?active=no")) == ["OLD-1"]
    assert skus(client.get("/s/alpha/catalog/?in_stock=no")) == ["MUG-2"]
    # Junk filter values are ignored instead of failing.
    assert len(skus(client.get("/s/alpha/catalog/?category=999999&active=maybe"))) == 4


def test_catalog_sorting(merchant, login, catalog):
    client = login(merchant)
    assert skus(client.get("/s/alpha/catalog/?sort=-sku")) == ["POT-1", "OLD-1", "MUG-2", "MUG-1"]
    assert skus(client.get("/s/alpha/catalog/?sort=title")) == ["MUG-1", "POT-1", "MUG-2", "OLD-1"]
    assert skus(client.get("/s/alpha/catalog/?sort=password")) == ["MUG-1", "MUG-2", "OLD-1", "POT-1"]


def test_catalog_pagination(store, merchant, login, make_product):
    for i in range(120):
        make_product(store, f"SKU-{i:03d}")
    client = login(merchant)
    first = skus(client.get("/s/alpha/catalog/"))
    third = skus(client.get("/s/alpha/catalog/?page=3"))
    assert len(first) == 50 and first[0] == "SKU-000"
    assert third == [f"SKU-{i:03d}" for i in range(100, 120)]
    assert skus(client.get("/s/alpha/catalog/?page=99")) == third  # out of range → last page
    html = client.get("/s/alpha/catalog/?q=SKU&page=2").content.decode()
    assert "?q=SKU&amp;page=3" in html  # the page links keep the filters


def test_product_detail_shows_stats_and_events(merchant, login, shop_data):
    html = login(merchant).get("/s/alpha/catalog/A1/").content.decode()
    assert 'data-kpi="views">3<' in html
    assert 'data-kpi="carts">2<' in html
    assert 'data-kpi="purchases">2<' in html
    assert "/s/alpha/customers/c1/" in html


def test_customer_search_filters_and_sort(merchant, login, shop_data):
    client = login(merchant)
    assert customer_ids(client.get("/s/alpha/customers/")) == ["c1", "c2", "c3"]
    assert customer_ids(client.get("/s/alpha/customers/?q=2")) == ["c2"]
    assert customer_ids(client.get("/s/alpha/customers/?country=DE")) == ["c1", "c3"]
    assert customer_ids(client.get("/s/alpha/customers/?age_band=35-44")) == ["c2", "c3"]
    assert customer_ids(client.get("/s/alpha/customers/?country=DE&age_band=35-44")) == ["c3"]
    assert customer_ids(client.get("/s/alpha/customers/?sort=-external_id")) == ["c3", "c2", "c1"]


def test_customer_pagination(store, merchant, login, make_customer):
    for i in range(55):
        make_customer(store, f"u{i:02d}")
    client = login(merchant)
    assert len(customer_ids(client.get("/s/alpha/customers/"))) == 50
    assert customer_ids(client.get("/s/alpha/customers/?page=2")) == [f"u{i:02d}" for i in range(50, 55)]


def test_customer_detail(merchant, login, shop_data, django_assert_max_num_queries):
    client = login(merchant)
    # A fixed number (no query per event or per item): the page, the profile panel (analytics) and the
    # current recommendations (serving's snapshot and the active version, cold in a test).
    with django_assert_max_num_queries(22):
        response = client.get("/s/alpha/customers/c1/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="fig-activity"' in html
    assert "Blue mug" in html and "Red kettle" in html
    assert "plotly.min.js" in html
