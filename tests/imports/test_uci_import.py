from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from shop_recs.activity.models import Customer, Event
from shop_recs.catalog.models import Product
from shop_recs.imports.importers import import_uci
from shop_recs.imports.models import ImportStatus
from shop_recs.stores.scoping import store_scope
from tests.conftest import require_uci_file
from tests.imports.conftest import FIXTURES

EXCERPT = FIXTURES / "uci_excerpt.csv"
EXPECTED_OUTCOMES = {
    "malformed": 0,
    "non_product_code": 26,
    "cancellation": 11,
    "adjustment_invoice": 0,
    "non_positive_quantity": 8,
    "non_positive_price": 8,
    "purchase": 152,
    "guest_purchase": 18,
}


def test_uci_excerpt_exact_counts(store):
    job = import_uci(store, EXCERPT)
    assert job.status == ImportStatus.SUCCEEDED, job.message
    report = job.report
    assert report["outcomes"] == EXPECTED_OUTCOMES
    assert sum(report["outcomes"].values()) == job.rows_read == 223
    assert job.rows_imported == 170 and job.rows_skipped == 53
    assert job.skipped == {
        "non_product_code": 26,
        "cancellation": 11,
        "non_positive_quantity": 8,
        "non_positive_price": 8,
    }
    assert (report["products_created"], report["customers_created"], report["invoices"]) == (149, 14, 24)
    assert report["guest_invoices"] == 4
    with store_scope(store):
        assert Product.objects.count() == 149
        assert Customer.objects.count() == 14
        assert Event.objects.filter(event_type="purchase").count() == 170
        assert Event.objects.exclude(event_type="purchase").count() == 0
        # No bookkeeping codes became products; 85035a and 85035A are one product.
        skus = set(Product.objects.values_list("sku", flat=True))
        assert not skus & {"POST", "DOT", "M", "D", "S", "C2", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "B"}
        assert "85035A" in skus and "85035a" not in skus and "DCGSSGIRL" in skus
        assert not any(s.startswith("GIFT_") for s in skus)
        # Conflicting descriptions: the most frequent wins, the others are kept as attributes.
        heart = Product.objects.get(sku="85123A")
        assert heart.title == "WHITE HANGING HEART T-LIGHT HOLDER"
        assert heart.attributes["alt_titles"] == ["CREAM HANGING HEART T-LIGHT HOLDER"]
        assert heart.currency == "GBP" and float(heart.price) == pytest.approx(2.55, abs=0.5)
        # Customers: "17850.0" -> "17850"; country = the most frequent one.
        assert Customer.objects.get(external_id="17850").country == "United Kingdom"
        assert Customer.objects.get(external_id="12370").country == "Cyprus"
        line = Event.objects.get(order_id="536365", product__sku="85123A")
        assert (line.quantity, line.value) == (6, 2.55)
        assert line.timestamp == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
        assert line.customer.external_id == "17850"
        guest = Event.objects.filter(customer__isnull=True)
        assert guest.count() == 18 and all(e.session_id.startswith("uci-guest-") for e in guest)
        assert not Event.objects.filter(order_id__startswith="C").exists()


def test_uci_reimport_does_not_duplicate(store):
    import_uci(store, EXCERPT)
    again = import_uci(store, EXCERPT)
    assert again.status == ImportStatus.DUPLICATE
    with store_scope(store):
        assert Event.objects.count() == 170 and Product.objects.count() == 149 and Customer.objects.count() == 14


def test_uci_malformed_file_names_lines_and_writes_nothing(store, tmp_path):
    lines = EXCERPT.read_text().splitlines()
    lines[4] = lines[4].replace(",6,2010-12-01", ",six,2010-12-01", 1)  # line 5
    lines[10] = lines[10].replace("2010-12-01 08:34:00", "01/12/2010 8:34", 1)  # line 11
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    job = import_uci(store, bad)
    assert job.status == ImportStatus.FAILED
    assert [e["line"] for e in job.errors] == [5, 11]
    assert "Quantity 'six'" in job.errors[0]["message"] and "InvoiceDate" in job.errors[1]["message"]
    with store_scope(store):
        assert Product.objects.count() == 0 and Event.objects.count() == 0 and Customer.objects.count() == 0


def test_uci_missing_column(store, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("InvoiceNo,StockCode\n1,2\n")
    job = import_uci(store, bad)
    assert job.status == ImportStatus.FAILED and job.errors[0]["line"] == 1 and "Quantity" in job.errors[0]["message"]


def test_import_uci_command_prints_every_row(store, capsys):
    call_command("import_uci", "--store", store.slug, str(EXCERPT), "--no-progress")
    out = capsys.readouterr().out
    assert "223  total (rows read: 223)" in out
    assert "152  purchase" in out and "11  cancellation" in out


@pytest.mark.slow
def test_uci_real_file(store):
    path = require_uci_file()
    started = time.perf_counter()
    job = import_uci(store, path)
    seconds = time.perf_counter() - started
    assert job.status == ImportStatus.SUCCEEDED, job.message
    outcomes = job.report["outcomes"]
    assert job.rows_read == 541_909 and sum(outcomes.values()) == 541_909
    assert outcomes == {
        "malformed": 0,
        "non_product_code": 2_950,
        "cancellation": 8_704,
        "adjustment_invoice": 0,
        "non_positive_quantity": 1_336,
        "non_positive_price": 1_161,
        "purchase": 396_337,
        "guest_purchase": 131_421,
    }
    assert job.rows_imported == 527_758
    assert job.report["customers_created"] == 4_334
    assert job.report["products_created"] == 3_798
    with store_scope(store):
        assert Event.objects.count() == 527_758
    assert seconds < 180
