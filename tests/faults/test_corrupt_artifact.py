"""A corrupt artifact on disk: the next load detects it (SHA-256), logs and marks it, serves the
previous good version, and the API keeps answering 200 with recommendations."""

from __future__ import annotations

import logging

import pytest

from shop_recs.serving import runtime
from shop_recs.stores.scoping import unscoped
from shop_recs.training import activation, artifacts, services
from shop_recs.training.errors import VersionNotUsable
from shop_recs.training.models import ModelVersion
from tests.conftest import require_postgres, require_redis

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
API = "/api/v1"


def _versions(store) -> dict[int, ModelVersion]:
    with unscoped():
        return {v.pk: v for v in ModelVersion.objects.filter(store=store)}


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_active_artifact_falls_back(damage, shop, store, api_client, caplog):
    require_postgres()
    require_redis()
    first = artifacts.load_active_model(store).version  # the shop fixture's model
    second_run = services.train_store(store, algorithms=["item_knn"])
    with unscoped():
        second = ModelVersion.objects.get(store=store, is_active=True)
    assert second.run_id == second_run.pk and second.pk != first.pk
    assert api_client.get(f"{API}/recommendations/customer/C0?n=3").json()["model_version"] == second.pk

    path = artifacts.artifact_path(second)
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    else:
        path.write_bytes(bytes(raw[: len(raw) // 3]))

    # A new process (or a restarted web worker) has nothing in memory: the next load reads the file.
    artifacts.clear_model_cache()
    runtime.invalidate()
    with caplog.at_level(logging.ERROR, logger="shop_recs.training.artifacts"):
        r = api_client.get(f"{API}/recommendations/customer/C0?n=3")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["model_version"] == first.pk and len(body["items"]) == 3
    assert f"model version {second.pk} is unusable" in caplog.text
    assert "SHA-256" in caplog.text
    versions = _versions(store)
    assert versions[second.pk].corrupt_at is not None and versions[first.pk].corrupt_at is None
    # The other endpoints keep answering too.
    assert api_client.get(f"{API}/products/M0/similar?n=3").status_code == 200
    assert api_client.get(f"{API}/popular?n=3").status_code == 200
    # A corrupt version can never be activated again.
    with pytest.raises(VersionNotUsable):
        activation.activate_version(versions[second.pk])
