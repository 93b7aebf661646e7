"""The Jobs page: who may train, who may activate, the status JSON, other stores."""

from __future__ import annotations

from django.urls import reverse

from shop_recs.platform.jobs import JobStatus
from shop_recs.stores.models import Role
from shop_recs.stores.scoping import store_scope
from shop_recs.training import services
from shop_recs.training.models import ActivationRecord, ModelVersion, TrainingRun


def _url(name, slug="alpha", **kwargs):
    return reverse(f"recommend:{name}", kwargs={"store_slug": slug, **kwargs})


def _login(client, user):
    client.force_login(user)
    return client


def test_jobs_page_renders_history(client, store, shop_data, merchant):
    services.train_store(store, ["popularity"])
    resp = _login(client, merchant).get(_url("jobs"))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "popularity" in body and "Roll back" not in body  # only one version, it is active


def test_analyst_can_start_a_run_but_not_activate(
    client, store, shop_data, analyst, django_capture_on_commit_callbacks
):
    _login(client, analyst)
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(_url("start"), {"algorithms": ["popularity", "item_knn"]})
    assert resp.status_code == 302
    with store_scope(store):
        run = TrainingRun.objects.get()
        assert run.status == JobStatus.SUCCEEDED and run.created_by == analyst
        version = ModelVersion.objects.filter(is_active=False).first()
    assert client.post(_url("activate", version_id=version.pk)).status_code == 403
    assert client.post(_url("rollback", version_id=version.pk)).status_code == 403
    assert client.get(_url("jobs")).status_code == 200


def test_second_start_shows_error_and_creates_nothing(client, store, merchant):
    _login(client, merchant)
    client.post(_url("start"), {"algorithms": ["popularity"]})  # stays queued: on_commit not executed
    resp = client.post(_url("start"), {"algorithms": ["popularity"]}, follow=True)
    assert "already in progress" in resp.content.decode()
    with store_scope(store):
        assert TrainingRun.objects.count() == 1


def test_invalid_form_is_400(client, store, merchant):
    assert _login(client, merchant).post(_url("start"), {"algorithms": ["nope"]}).status_code == 400


def test_merchant_activates_and_rolls_back(client, store, shop_data, merchant):
    services.train_store(store, ["popularity"])
    services.train_store(store, ["item_knn"])
    with store_scope(store):
        first = ModelVersion.objects.get(algorithm="popularity")
    _login(client, merchant)
    # A plain click shows the confirmation with both versions' figures and changes nothing.
    page = client.post(_url("rollback", version_id=first.pk))
    assert page.status_code == 200 and 'id="activation-figures"' in page.content.decode()
    first.refresh_from_db()
    assert not first.is_active
    assert (
        client.post(_url("rollback", version_id=first.pk), {"confirm": "yes", "reason": "bad week"}).status_code == 302
    )
    first.refresh_from_db()
    assert first.is_active
    with store_scope(store):
        record = ActivationRecord.objects.latest("pk")
    assert (record.version_id, record.source, record.user, record.reason) == (
        first.pk,
        "rollback",
        merchant,
        "bad week",
    )
    assert record.previous_version.algorithm == "item_knn"


def test_status_endpoint_json(client, store, merchant):
    run = services.start_training(store, ["popularity"], user=merchant)
    TrainingRun.all_stores.filter(pk=run.pk).update(status=JobStatus.RUNNING, stage="fitting popularity", progress=42)
    data = _login(client, merchant).get(_url("run_status", run_id=run.pk)).json()
    assert data["id"] == run.pk and data["status"] == "running" and data["progress"] == 42
    assert data["stage"] == "fitting popularity" and data["finished"] is False


def test_other_store_user_gets_404(client, store, other_store, make_user, shop_data):
    services.train_store(store, ["popularity"])
    with store_scope(store):
        run = TrainingRun.objects.get()
        version = ModelVersion.objects.get()
    outsider = make_user("outsider", other_store, Role.MERCHANT)
    _login(client, outsider)
    assert client.get(_url("jobs")).status_code == 404
    assert client.get(_url("run_status", run_id=run.pk)).status_code == 404
    assert client.post(_url("activate", version_id=version.pk)).status_code == 404
    # ... and through their own store the ids of another store's rows do not resolve
    assert client.get(_url("run_status", slug="beta", run_id=run.pk)).status_code == 404
    assert client.post(_url("activate", slug="beta", version_id=version.pk)).status_code == 404


def test_anonymous_is_sent_to_login(client, store):
    resp = client.get(_url("jobs"))
    assert resp.status_code == 302 and "login" in resp["Location"]
