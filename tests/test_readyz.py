"""``/readyz`` reports each dependency and answers 503 naming the one that failed."""

from __future__ import annotations

import pytest

from tests.s3 import moto_s3, s3_bucket  # noqa: F401 - the local S3 server's fixtures


@pytest.mark.django_db
def test_ready_when_everything_answers(client, settings, tmp_path):
    settings.MODEL_DIR = tmp_path / "models"
    settings.CELERY_BROKER_URL = ""
    body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok" and body["checks"]["cache"] == "ok"
    assert body["checks"]["artifacts"] == "ok" and body["checks"]["broker"].startswith("skipped")


@pytest.mark.django_db
def test_an_unwritable_artifact_directory_is_not_ready(client, settings, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings.MODEL_DIR = blocker / "models"  # a path under a regular file cannot be created
    settings.CELERY_BROKER_URL = ""
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready" and body["checks"]["artifacts"].startswith("error: ")
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_an_unreachable_broker_is_not_ready(client, settings, tmp_path):
    settings.MODEL_DIR = tmp_path / "models"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["broker"].startswith("error: ")


@pytest.mark.django_db
def test_a_reachable_broker_is_ok(client, settings, tmp_path):
    from tests.conftest import require_redis

    settings.MODEL_DIR = tmp_path / "models"
    settings.CELERY_BROKER_URL = require_redis()
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["checks"]["broker"] == "ok"


@pytest.mark.django_db
def test_artifacts_in_s3_are_checked_against_the_bucket(
    client,
    settings,
    tmp_path,
    s3_bucket,  # noqa: F811 - the imported fixture
):
    """With ARTIFACT_STORAGE=s3 the bucket itself must answer, not only the local download cache."""
    settings.MODEL_DIR = tmp_path / "models"
    settings.CELERY_BROKER_URL = ""
    settings.ARTIFACT_STORAGE = "s3"
    settings.STORAGES = {**settings.STORAGES, "artifacts": s3_bucket.storage()}
    assert client.get("/readyz").json()["checks"]["artifacts"] == "ok"
    # A bucket that does not exist (a typo in AWS_STORAGE_BUCKET_NAME) is not ready.
    missing = s3_bucket.storage(bucket_name="no-such-bucket-here")
    settings.STORAGES = {**settings.STORAGES, "artifacts": missing}
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["artifacts"].startswith("error: ")
