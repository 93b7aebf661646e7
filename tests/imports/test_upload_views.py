from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from shop_recs.activity.models import Event
from shop_recs.catalog.models import Product
from shop_recs.imports.models import ImportJob, ImportStatus
from shop_recs.stores.models import Role
from shop_recs.stores.scoping import store_scope

CATALOG = b"sku,title,price\nA1,Alpha,1.50\nB2,Beta,2.00\n"
EVENTS = b"customer,type,sku,timestamp\nc1,view,A1,2024-05-01T10:00:00Z\nc1,purchase,A1,2024-05-01T10:05:00Z\n"


def _url(store, name="imports:index", **kwargs):
    return reverse(name, kwargs={"store_slug": store.slug, **kwargs})


def _upload(client, store, kind, name, content):
    return client.post(_url(store), {"kind": kind, "file": SimpleUploadedFile(name, content)}, follow=True)


def test_merchant_uploads_catalog_then_events(client, store, merchant):
    client.force_login(merchant)
    assert client.get(_url(store)).status_code == 200
    response = _upload(client, store, "catalog", "products.csv", CATALOG)
    assert response.status_code == 200
    response = _upload(client, store, "events", "events.csv", EVENTS)
    assert response.status_code == 200
    with store_scope(store):
        assert Product.objects.count() == 2 and Event.objects.count() == 2
        jobs = list(ImportJob.objects.order_by("id"))
        assert [j.status for j in jobs] == [ImportStatus.SUCCEEDED, ImportStatus.SUCCEEDED]
        assert jobs[0].created_by == merchant and jobs[1].file_name == "events.csv"
    listing = client.get(_url(store)).content.decode()
    assert "products.csv" in listing and "events.csv" in listing


def test_bad_file_shows_errors_with_line_numbers(client, store, merchant):
    client.force_login(merchant)
    bad = b"sku,title,price\nA1,Alpha,1.50\nB2,Beta,cheap\n"
    response = _upload(client, store, "catalog", "bad.csv", bad)
    html = response.content.decode()
    assert response.status_code == 200
    assert "line 3" in html.lower() or ">3<" in html
    assert "cheap" in html
    with store_scope(store):
        assert Product.objects.count() == 0
        assert ImportJob.objects.get().status == ImportStatus.FAILED


def test_wrong_extension_is_a_form_error(client, store, merchant):
    client.force_login(merchant)
    response = client.post(_url(store), {"kind": "catalog", "file": SimpleUploadedFile("x.jsonl", CATALOG)})
    assert response.status_code == 200
    assert ".csv" in response.content.decode()
    with store_scope(store):
        assert ImportJob.objects.count() == 0


def test_analyst_gets_403(client, store, analyst):
    client.force_login(analyst)
    assert client.get(_url(store)).status_code == 403
    assert _upload(client, store, "catalog", "p.csv", CATALOG).status_code == 403
    with store_scope(store):
        assert Product.objects.count() == 0


def test_other_stores_user_gets_404(client, store, other_store, make_user):
    outsider = make_user("outsider", other_store, Role.MERCHANT)
    client.force_login(outsider)
    assert client.get(_url(store)).status_code == 404
    assert _upload(client, store, "catalog", "p.csv", CATALOG).status_code == 404


def test_job_of_another_store_is_404(client, store, other_store, merchant, make_user):
    other_merchant = make_user("other-merchant", other_store, Role.MERCHANT)
    client.force_login(other_merchant)
    _upload(client, other_store, "catalog", "p.csv", CATALOG)
    with store_scope(other_store):
        job = ImportJob.objects.get()
    client.force_login(merchant)
    assert client.get(_url(store, "imports:detail", job_id=job.pk)).status_code == 404


def test_anonymous_is_sent_to_login(client, store):
    response = client.get(_url(store))
    assert response.status_code == 302 and "login" in response["Location"]


def test_import_jobs_in_the_admin(client, store, django_user_model, write_file):
    from shop_recs.imports.importers import import_catalog

    import_catalog(store, write_file("p.csv", CATALOG.decode()))
    admin_user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456!")
    client.force_login(admin_user)
    response = client.get(reverse("admin:imports_importjob_changelist"))
    assert response.status_code == 200 and "p.csv" in response.content.decode()
