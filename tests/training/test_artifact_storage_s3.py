"""Artifacts in S3 (``ARTIFACT_STORAGE=s3``) against a real S3-compatible server on localhost (moto).

Training writes the artifact and its serving sidecar to the bucket; a "replica" that has none of
the trainer's files (an empty ``MODEL_DIR``, every in-process cache empty) downloads, verifies and
serves them. A damaged or missing object is refused with a logged error and serving falls back to
the previous good version, exactly as with a damaged file on disk (tests/faults/test_corrupt_artifact.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
from django.core.files.storage import storages

from shop_recs.serving import runtime
from shop_recs.stores.scoping import unscoped
from shop_recs.training import artifacts, precompute, services
from shop_recs.training.errors import ArtifactUnavailable
from shop_recs.training.models import ModelVersion
from shop_recs.training.storage import ModelDirStorage
from tests.conftest import ROOT, clear_test_caches
from tests.serving.conftest import _fresh_serving, add_events, shop  # noqa: F401 - fixtures

API = "/api/v1"


@pytest.fixture
def s3(s3_bucket, settings):
    """This process's artifacts go to a fresh bucket (settings.STORAGES resets ``storages``)."""
    settings.STORAGES = {**settings.STORAGES, "artifacts": s3_bucket.storage()}
    return s3_bucket


@pytest.fixture
def trained(s3, store, request):
    """The serving ``shop`` fixture's store, trained (item_knn) with artifacts in the bucket."""
    request.getfixturevalue("shop")  # after ``s3``: the training must already write to the bucket
    with unscoped():
        return ModelVersion.objects.get(store=store, is_active=True)


def _object(bucket, name: str) -> bytes:
    return bucket.client().get_object(Bucket=bucket.name, Key=bucket.key(name))["Body"].read()


def _become_replica(settings, tmp_path, name: str):
    """This process now behaves like a web replica on another machine: its own empty MODEL_DIR and
    nothing in memory. The trainer's directory is deleted, so nothing can be read from it."""
    shutil.rmtree(settings.MODEL_DIR, ignore_errors=True)
    settings.MODEL_DIR = tmp_path / name
    clear_test_caches()
    return settings.MODEL_DIR


def test_the_default_storage_is_the_model_dir(settings, tmp_path):
    storage = storages["artifacts"]
    assert isinstance(storage, ModelDirStorage) and not artifacts.is_remote(storage)
    settings.MODEL_DIR = tmp_path / "elsewhere"  # read at call time, like before
    assert artifacts.local_path("alpha/x.npz") == tmp_path / "elsewhere" / "alpha" / "x.npz"


def test_training_uploads_the_artifact_and_sidecar_with_their_checksum(s3, trained):
    assert artifacts.is_remote()
    body = _object(s3, trained.artifact_path)
    assert hashlib.sha256(body).hexdigest() == trained.checksum and len(body) == trained.size_bytes
    sidecar = precompute.sidecar_path(artifacts.artifact_path(trained))
    assert _object(s3, artifacts.storage_name(sidecar))  # the serving arrays travel too


def test_a_replica_without_the_trainers_files_serves_the_model(s3, trained, settings, tmp_path, api_client):
    local = _become_replica(settings, tmp_path, "replica")
    assert not local.exists()
    r = api_client.get(f"{API}/recommendations/customer/C0?n=3")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["model_version"] == trained.pk and len(body["items"]) == 3
    copy = local / trained.artifact_path
    assert artifacts.file_sha256(copy) == (trained.checksum, trained.size_bytes)  # the verified download
    assert runtime.serving_state(trained.store_id).pre is not None  # sidecar downloaded and used


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_or_missing_object_is_refused_and_serving_falls_back(
    damage, s3, trained, store, settings, tmp_path, api_client, caplog
):
    first = trained
    services.train_store(store, algorithms=["item_knn"])
    with unscoped():
        second = ModelVersion.objects.get(store=store, is_active=True)
    assert second.pk != first.pk
    client, key = s3.client(), s3.key(second.artifact_path)
    raw = bytearray(_object(s3, second.artifact_path))
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
        client.put_object(Bucket=s3.name, Key=key, Body=bytes(raw))
    elif damage == "truncate":
        client.put_object(Bucket=s3.name, Key=key, Body=bytes(raw[: len(raw) // 3]))
    else:
        client.delete_object(Bucket=s3.name, Key=key)

    local = _become_replica(settings, tmp_path, f"replica-{damage}")
    with caplog.at_level(logging.ERROR, logger="shop_recs.training.artifacts"):
        r = api_client.get(f"{API}/recommendations/customer/C0?n=3")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["model_version"] == first.pk and len(body["items"]) == 3
    assert f"model version {second.pk} is unusable" in caplog.text
    assert ("is missing" if damage == "delete" else "SHA-256") in caplog.text
    with unscoped():
        versions = {v.pk: v for v in ModelVersion.objects.filter(store=store)}
    assert versions[second.pk].corrupt_at is not None and versions[first.pk].corrupt_at is None
    # The refused bytes were never kept: nothing of the broken version sits in the replica's cache.
    assert not (local / second.artifact_path).exists()
    assert (local / first.artifact_path).exists()


def test_an_unreachable_storage_marks_nothing_corrupt(s3, trained, store, settings, tmp_path):
    from botocore.config import Config

    dead = s3.storage(endpoint_url="http://127.0.0.1:9", client_config=Config(retries={"max_attempts": 1}))
    settings.STORAGES = {**settings.STORAGES, "artifacts": dead}
    _become_replica(settings, tmp_path, "replica-offline")
    with pytest.raises(ArtifactUnavailable, match="could not download artifact"):
        artifacts.load_active_model(store)
    with unscoped():
        assert ModelVersion.objects.get(pk=trained.pk).corrupt_at is None


def test_a_stale_local_copy_is_replaced_by_the_verified_object(s3, trained, settings, tmp_path):
    local = _become_replica(settings, tmp_path, "replica-stale")
    copy = local / trained.artifact_path
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"left over from a crash")
    assert artifacts.verify_artifact(trained) == copy
    assert artifacts.file_sha256(copy)[0] == trained.checksum


CHECK_SETTINGS = r"""
import importlib, json, os, sys
from django.core.exceptions import ImproperlyConfigured

out = {}
for case, env in json.loads(sys.argv[1]).items():
    for name in ("ARTIFACT_STORAGE", "AWS_STORAGE_BUCKET_NAME", "AWS_S3_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(env)
    sys.modules.pop("shop_recs.settings", None)
    try:
        out[case] = importlib.import_module("shop_recs.settings").STORAGES["artifacts"]
    except ImproperlyConfigured as exc:
        out[case] = str(exc)
print(json.dumps(out))
"""


def test_artifact_storage_settings_are_checked_at_start_up():
    """``ARTIFACT_STORAGE`` builds ``STORAGES["artifacts"]``; a bad value names the variable."""
    cases = {
        "default": {},
        "s3": {"ARTIFACT_STORAGE": "S3", "AWS_STORAGE_BUCKET_NAME": "shop", "AWS_S3_ENDPOINT_URL": "http://minio:9000"},
        "no-bucket": {"ARTIFACT_STORAGE": "s3"},
        "unknown": {"ARTIFACT_STORAGE": "nfs"},
    }
    env = {**os.environ, "DEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK_SETTINGS, json.dumps(cases)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["default"] == {"BACKEND": "shop_recs.training.storage.ModelDirStorage"}
    assert out["s3"]["BACKEND"] == "storages.backends.s3.S3Storage"
    assert out["s3"]["OPTIONS"]["bucket_name"] == "shop"
    assert out["s3"]["OPTIONS"]["endpoint_url"] == "http://minio:9000"
    assert out["s3"]["OPTIONS"]["location"] == "models"
    assert "AWS_STORAGE_BUCKET_NAME" in out["no-bucket"]
    assert "ARTIFACT_STORAGE='nfs'" in out["unknown"]
