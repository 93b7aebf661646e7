"""Issue 12 §5: the dashboard's 500s from hostile input, each as a regression test.

Superscript digits (``"²".isdigit()`` is true, ``int("²")`` fails), huge integers and deep nesting
in the segment audience endpoint, NUL bytes in URLs and forms, uploads with NUL bytes, deep JSONL
nesting or integers over 4,300 digits, and the admin as an anonymous user or through its
autocomplete view.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.urls import reverse

from analytics.evaluation.models import EvaluationRun
from shop_recs.activity.models import Event
from shop_recs.catalog.models import Product
from shop_recs.imports.importers import import_catalog, import_events
from shop_recs.imports.models import ImportStatus
from shop_recs.stores.scoping import unscoped

pytestmark = pytest.mark.django_db

SUPERSCRIPT_TWO = "²"


@pytest.fixture
def logged_in(client, merchant):
    client.force_login(merchant)
    return client


def test_experiments_days_with_a_superscript_digit(logged_in, store):
    url = reverse("experiments:index", args=[store.slug])
    for days in (SUPERSCRIPT_TWO, "9" * 5000, "-3", ""):
        assert logged_in.get(url, {"days": days}).status_code == 200, days


def test_evaluation_compare_with_a_superscript_digit(logged_in, store):
    with unscoped():
        run = EvaluationRun.objects.create(store=store, algorithms=["popularity"], ks=[10])
    url = reverse("evaluation:run", args=[store.slug, run.pk])
    for compare in (SUPERSCRIPT_TWO, "9" * 5000):
        assert logged_in.get(url, {"compare": compare}).status_code == 404, compare


def test_task_status_keys_with_a_superscript_digit(logged_in, store):
    url = reverse("dashboard:task_status", args=[store.slug])
    for key in (f"training.trainingrun:{SUPERSCRIPT_TWO}", "training.trainingrun:" + "9" * 5000):
        assert logged_in.get(url, {"key": key}).status_code == 400, key


@pytest.mark.parametrize(
    "body",
    [
        '{"rules": {"all": [{"field": "monetary", "op": ">", "value": 1%s}]}}' % ("0" * 400),
        '{"rules": {"all": [{"field": "monetary", "op": ">", "value": %s}]}}' % ("9" * 5000),
        '{{"rules": {}1{}}}'.format("[" * 50_000, "]" * 50_000),
        '{"rules": {"all": [{"field": "monetary", "op": "between", "value": [0, 1%s]}]}}' % ("0" * 400),
    ],
)
def test_segment_audience_with_huge_numbers_or_deep_nesting_is_a_400(logged_in, store, body):
    url = reverse("analytics:audience", args=[store.slug])
    response = logged_in.generic("POST", url, body.encode(), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["ok"] is False


@pytest.mark.parametrize(
    "url_name", ["dashboard:catalog", "dashboard:customers", "dashboard:overview", "recs:preview", "search:insights"]
)
def test_nul_in_a_dashboard_query_parameter_is_a_400(logged_in, store, url_name):
    url = reverse(url_name, args=[store.slug])
    for name in ("q", "customer", "product", "period", "brand"):
        assert logged_in.get(f"{url}?{name}=a%00b").status_code == 400


def test_nul_in_a_posted_form_is_refused(logged_in, store):
    from urllib.parse import urlencode

    from analytics.models import Segment

    url = reverse("analytics:segment_new", args=[store.slug])
    data = {"name": "a\x00b", "rules": json.dumps({"all": [{"field": "monetary", "op": ">", "value": 1}]})}
    # url-encoded: the middleware's 400; multipart: Django's form validation (no NUL in a CharField).
    encoded = logged_in.post(url, urlencode(data), content_type="application/x-www-form-urlencoded")
    assert encoded.status_code == 400
    assert logged_in.post(url, data).status_code == 200
    with unscoped():
        assert not Segment.objects.exists()


# --- uploads ------------------------------------------------------------------------------------------


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


EVENT_HEADER = "customer,type,sku,timestamp\n"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("nul.csv", EVENT_HEADER + "c\x001,view,SKU-1,2025-01-01T00:00:00Z\n"),
        (
            "nul.jsonl",
            '{"customer": "c\\u00001", "type": "view", "sku": "SKU-1", "timestamp": "2025-01-01T00:00:00Z"}\n',
        ),
        ("deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n"),
        (
            "deep-context.jsonl",
            '{"customer": "c1", "type": "view", "sku": "SKU-1", "timestamp": '
            '"2025-01-01T00:00:00Z", "context": %s}\n' % ('{"a":' * 60 + "1" + "}" * 60),
        ),
        (
            "bigint.jsonl",
            '{"customer": "c1", "type": "rating", "sku": "SKU-1", "value": %s, '
            '"timestamp": "2025-01-01T00:00:00Z"}\n' % ("9" * 5000),
        ),
        (
            "bigint-qty.jsonl",
            '{"customer": "c1", "type": "purchase", "sku": "SKU-1", "order_id": "o1", '
            '"quantity": 99999999999, "timestamp": "2025-01-01T00:00:00Z"}\n',
        ),
        ("bigint.csv", "customer,type,sku,value,timestamp\nc1,rating,SKU-1,%s,2025-01-01T00:00:00Z\n" % ("9" * 5000)),
        ("epoch.jsonl", '{"customer": "c1", "type": "view", "sku": "SKU-1", "timestamp": 1e20}\n'),
        ("year-one.csv", EVENT_HEADER + "c1,view,SKU-1,0001-01-01T00:00:00+14:00\n"),
        ("slash.csv", EVENT_HEADER + "a/b,view,SKU-1,2025-01-01T00:00:00Z\n"),
        (
            "huge-value.csv",
            "customer,type,sku,order_id,value,quantity,timestamp\n"
            "c1,purchase,SKU-1,o1,1e300,2147483647,2025-01-01T00:00:00Z\n",
        ),
    ],
)
def test_hostile_event_files_are_rejected_with_a_line_error(store, make_product, tmp_path, name, text):
    make_product(store, "SKU-1")
    job = import_events(store, _file(tmp_path, name, text))
    assert job.status == ImportStatus.FAILED, (job.status, job.message)
    assert job.errors and job.errors[0]["line"] >= 1
    with unscoped():
        assert not Event.objects.exists()


@pytest.mark.parametrize(
    "text",
    [
        "sku,title\nSKU-1,Mug\x00\n",
        "sku,title,colour\nSKU-1,Mug,red\x00\n",
        "sku,title,price\nSKU-1,Mug,%s\n" % ("9" * 5000),
        "sku,title\nA B,Mug\n",
    ],
)
def test_hostile_catalog_files_are_rejected_with_a_line_error(store, tmp_path, text):
    job = import_catalog(store, _file(tmp_path, "catalog.csv", text))
    assert job.status == ImportStatus.FAILED, (job.status, job.message)
    with unscoped():
        assert not Product.objects.exists()


def test_an_upload_with_nul_bytes_answers_without_a_500(logged_in, store, make_product):
    from django.core.files.uploadedfile import SimpleUploadedFile

    make_product(store, "SKU-1")
    upload = SimpleUploadedFile("events.csv", (EVENT_HEADER + "c\x001,view,SKU-1,2025-01-01T00:00:00Z\n").encode())
    response = logged_in.post(reverse("imports:index", args=[store.slug]), {"kind": "events", "file": upload})
    assert response.status_code in (200, 302)
    with unscoped():
        assert not Event.objects.exists()


# --- admin --------------------------------------------------------------------------------------------


def test_admin_login_page_as_anonymous(client):
    client.raise_request_exception = True
    response = client.get("/admin/login/")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "?app_label=activity&model_name=event&field_name=customer&term=x",
        "?app_label=catalog&model_name=product&field_name=category&term=x",
        "?app_label=activity&model_name=event&field_name=product&term=SKU",
    ],
)
def test_admin_autocomplete_answers_only_with_own_store_rows(
    client, make_user, store, other_store, make_product, query
):
    staff = make_user("staffer", store, "merchant", is_staff=True)
    make_product(store, "SKU-MINE", title="Mine")
    make_product(other_store, "SKU-THEIRS", title="Theirs")
    client.force_login(staff)
    client.raise_request_exception = True
    response = client.get("/admin/autocomplete/" + query)
    assert response.status_code == 200
    assert "THEIRS" not in response.content.decode()
    if "field_name=product" in query:
        assert [r["text"] for r in response.json()["results"]] == ["SKU-MINE · Mine"]
