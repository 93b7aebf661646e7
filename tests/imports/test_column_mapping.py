"""Issue #14: catalog files in the shop's own words (image/link/availability columns, Merchant Center
feeds, prices with currencies), unknown columns reported, bad values named by line and column."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shop_recs.catalog.models import Product
from shop_recs.imports.columns import map_columns, parse_in_stock, parse_price
from shop_recs.imports.importers import import_catalog
from shop_recs.imports.models import ImportStatus
from shop_recs.stores.scoping import store_scope

# A Google Merchant Center product feed (tab-separated, as Merchant Center exports it), with
# columns we have no field for (condition, gtin, sale_price).
MERCHANT_CENTER_TSV = (
    "id\ttitle\tdescription\tlink\timage_link\tavailability\tprice\tbrand\tgoogle_product_category\t"
    "product_type\tcondition\tgtin\tsale_price\n"
    "MUG-1\tBlue Mug\tStoneware, 350 ml\thttps://shop.example.com/mug-1\thttps://cdn.example.com/mug-1.jpg\t"
    "in stock\t12.50 USD\tNorthwind\tHome & Garden > Kitchen & Dining\tHome > Kitchen > Mugs\tnew\t"
    "0012345678905\t9.99 USD\n"
    "TEE-1\tPlain Tee\t\thttps://shop.example.com/tee-1\t\tout of stock\t15.00 USD\tBasics\t"
    "Apparel & Accessories\t\tnew\t\t\n"
    "PRE-1\tNew Lamp\t\thttps://shop.example.com/pre-1\thttps://cdn.example.com/pre-1.png\tpreorder\t"
    "1,299.00 USD\tLumio\t\tHome > Lighting\tnew\t\t\n"
)


def test_merchant_center_feed_maps_every_usual_column(store, write_file):
    job = import_catalog(store, write_file("feed.txt", MERCHANT_CENTER_TSV))
    assert job.status == ImportStatus.SUCCEEDED, job.errors
    assert job.report["columns_mapped"] == {
        "id": "sku",
        "link": "url",
        "image_link": "image_url",
        "availability": "in_stock",
        "product_type": "category",
    }
    # Reported, never dropped: the columns without a product field are kept as attributes.
    assert job.report["extra_columns"] == ["google_product_category", "condition", "gtin", "sale_price"]
    with store_scope(store):
        mug = Product.objects.get(sku="MUG-1")
        tee = Product.objects.get(sku="TEE-1")
        lamp = Product.objects.get(sku="PRE-1")
    assert (mug.price, mug.currency, mug.in_stock) == (Decimal("12.50"), "USD", True)
    assert mug.url == "https://shop.example.com/mug-1" and mug.image_url == "https://cdn.example.com/mug-1.jpg"
    assert mug.category.path == "Home > Kitchen > Mugs" and mug.brand == "Northwind"
    assert mug.description == "Stoneware, 350 ml"
    assert mug.attributes == {
        "google_product_category": "Home & Garden > Kitchen & Dining",
        "condition": "new",
        "gtin": "0012345678905",
        "sale_price": "9.99 USD",
    }
    assert tee.in_stock is False and tee.image_url == "" and tee.category is None
    assert lamp.in_stock is False and lamp.price == Decimal("1299.00")  # preorder: not in stock now


def test_csv_aliases_symbols_and_decimal_commas(store, write_file):
    store.currency = "EUR"
    store.save(update_fields=["currency"])
    text = (
        "SKU,Title,Image,Product URL,Stock,Price,Colour\n"
        'A,Alpha,https://cdn.example.com/a.jpg,https://shop.example.com/a,12,"12,50 €",red\n'
        "B,Beta,,,0,$3.20,\n"  # "$" in an EUR store: ambiguous, an error naming the column
        'C,Gamma,,https://shop.example.com/c,yes,"1.234,56",\n'
    )
    job = import_catalog(store, write_file("shop.csv", text))
    assert job.status == ImportStatus.FAILED
    assert [e["line"] for e in job.errors] == [3]
    assert job.errors[0]["message"].startswith("price: '$'") and "write the code" in job.errors[0]["message"]

    job = import_catalog(store, write_file("shop2.csv", text.replace("$3.20", "3.20")))
    assert job.status == ImportStatus.SUCCEEDED, job.errors
    assert job.report["columns_mapped"] == {"image": "image_url", "product url": "url", "stock": "in_stock"}
    assert job.report["extra_columns"] == ["colour"]
    with store_scope(store):
        a, b, c = (Product.objects.get(sku=s) for s in "ABC")
    assert (a.price, a.currency, a.in_stock, a.image_url) == (
        Decimal("12.50"),
        "EUR",
        True,
        "https://cdn.example.com/a.jpg",
    )
    assert (b.price, b.in_stock, b.url) == (Decimal("3.20"), False, "")  # stock 0: out of stock
    assert c.price == Decimal("1234.56") and c.url == "https://shop.example.com/c"
    assert a.attributes == {"colour": "red"}


def test_bad_values_name_the_line_and_the_column(store, write_file):
    text = (
        "id,title,link,img,availability,price,currency\n"
        "A,Alpha,javascript:alert(1),,in stock,1.00,\n"  # line 2: a script, not a link
        "B,Beta,,ftp://cdn.example.com/b.jpg,in stock,1.00,\n"  # line 3: not http(s)
        "C,Gamma,,,maybe,1.00,\n"  # line 4: not an availability
        "D,Delta,,,in stock,12.555,\n"  # line 5: three decimals are not silently rounded
        "E,Epsilon,,,in stock,12.50 USD,EUR\n"  # line 6: the price's currency contradicts the column
        f"F,Phi,https://shop.example.com/{'x' * 1000},,in stock,1.00,\n"  # line 7: too long
        "G,Gimel,,,in stock,-3,\n"  # line 8: negative
    )
    job = import_catalog(store, write_file("bad.csv", text))
    assert job.status == ImportStatus.FAILED
    messages = {e["line"]: e["message"] for e in job.errors}
    assert sorted(messages) == [2, 3, 4, 5, 6, 7, 8]
    assert messages[2].startswith("link: 'javascript:alert(1)'") and "http:// or https://" in messages[2]
    assert messages[3].startswith("img: ") and "http:// or https://" in messages[3]
    assert messages[4].startswith("availability: 'maybe' is not an availability")
    assert messages[5] == "price: '12.555' has more than 2 decimal places"
    assert messages[6] == "price: the price is in USD but currency says EUR"
    assert messages[7].startswith("link: ") and "at most 1000 characters" in messages[7]
    assert "negative" in messages[8]
    with store_scope(store):
        assert Product.objects.count() == 0


def test_first_alias_wins_and_the_other_is_kept():
    columns = map_columns(["sku", "title", "image", "image_link", "url", "link", "g:availability", "Image Link"])
    assert columns.source["image_url"] == "image_link"  # image_link is preferred over image
    assert columns.source["url"] == "url" and columns.source["in_stock"] == "g:availability"
    assert columns.extra == ["image", "link", "Image Link"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("in stock", True),
        ("In_Stock", True),
        ("https://schema.org/InStock", True),
        ("limited availability", True),
        ("out of stock", False),
        ("backorder", False),
        ("yes", True),
        ("no", False),
        ("1", True),
        ("0", False),
        ("25", True),
        ("-2", False),
        ("", True),
    ],
)
def test_availability_words(raw, expected):
    assert parse_in_stock(raw, "availability") is expected


@pytest.mark.parametrize(
    ("raw", "store_currency", "expected"),
    [
        ("12.50 USD", "EUR", (Decimal("12.50"), "USD")),
        ("USD 12.50", "EUR", (Decimal("12.50"), "USD")),
        ("€12,50", "USD", (Decimal("12.50"), "EUR")),
        ("12,50", "EUR", (Decimal("12.50"), None)),
        ("1.234,56 €", "EUR", (Decimal("1234.56"), "EUR")),
        ("1,234.56", "USD", (Decimal("1234.56"), None)),
        ("1 234,5", "EUR", (Decimal("1234.50"), None)),
        ("$5", "CAD", (Decimal("5.00"), "CAD")),  # "$" in a dollar store: that store's dollar
        ("¥980", "JPY", (Decimal("980.00"), "JPY")),
        ("", "EUR", (None, None)),
    ],
)
def test_price_formats(raw, store_currency, expected):
    assert parse_price(raw, "price", store_currency) == expected


@pytest.mark.parametrize("raw", ["abc", "12.5.6,7", "1e5", "--1"])
def test_price_garbage_is_refused_with_the_column(raw):
    with pytest.raises(ValueError, match="^cost: "):
        parse_price(raw, "cost", "EUR")
