"""Training while the artifact storage is full (ENOSPC): the run fails saying so, leaves no partial
file behind, the active model stays untouched and keeps serving, and once space is freed the next
run trains and activates normally.

The full disk is real: ``MODEL_DIR`` is a tiny tmpfs mounted for the test (root only), filled to
the last byte after the first model was written. Where mounting is impossible (not root, no
``CAP_SYS_ADMIN`` in a container), the fallback writes the artifact's temp file to ``/dev/full``,
the kernel device whose every write fails with ENOSPC: the same error from the same ``write(2)``,
only without a filesystem around it. Either way nothing in the code under test is patched.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from shop_recs.platform.jobs import JobStatus
from shop_recs.serving import runtime
from shop_recs.stores.scoping import unscoped
from shop_recs.training import artifacts, services
from shop_recs.training.models import ModelVersion, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)
API = "/api/v1"
#: The tmpfs: room for the fixture's small item_knn artifact and a little more, then filled up.
TMPFS_SIZE = "2m"


class FullDisk:
    """``MODEL_DIR`` on a filesystem that can be made full (``fill``) and freed again (``free``)."""

    def __init__(self, root: Path, mounted: bool) -> None:
        self.root, self.mounted = root, mounted
        self.filler = root / "filler.bin"
        self._patch = None

    def fill(self, monkeypatch: pytest.MonkeyPatch) -> None:
        if self.mounted:
            chunk = b"\0" * (64 * 1024)
            with open(self.filler, "wb") as fh:
                try:
                    while True:
                        fh.write(chunk)
                        fh.flush()
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
            # tmpfs hands out whole pages: fill the last partial one byte by byte.
            with open(self.filler, "ab", buffering=0) as fh:
                try:
                    while True:
                        fh.write(b"\0")
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
            assert shutil.disk_usage(self.root).free == 0
        else:
            real_open = open

            def open_full(file, mode="r", *args, **kwargs):
                # Only the artifact's temp file: "<MODEL_DIR>/<store>/.<name>.npz.<hex>.tmp".
                if "w" in mode and str(file).endswith(".tmp") and str(file).startswith(str(self.root)):
                    return real_open("/dev/full", mode, *args, **kwargs)
                return real_open(file, mode, *args, **kwargs)

            monkeypatch.setattr("builtins.open", open_full)
            self._patch = monkeypatch

    def free(self) -> None:
        if self.mounted:
            self.filler.unlink()
        elif self._patch is not None:
            self._patch.undo()

    def files(self) -> list[str]:
        """Every file under ``MODEL_DIR``, hidden temp files included (the filler lives outside it)."""
        models = self.root / "models"
        return sorted(str(Path(d, f).relative_to(models)) for d, _dirs, names in os.walk(models) for f in names)


@pytest.fixture
def full_disk(settings):
    """A tmpfs as ``MODEL_DIR`` (unmounted afterwards), or the ``/dev/full`` fallback without root."""
    root = Path(tempfile.mkdtemp(prefix="shop-recs-tinydisk-"))
    mounted = False
    if os.geteuid() == 0:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(root)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        mounted = done.returncode == 0
    disk = FullDisk(root, mounted)
    settings.MODEL_DIR = root / "models"
    artifacts.clear_model_cache()
    try:
        yield disk
    finally:
        artifacts.clear_model_cache()
        if mounted:
            subprocess.run(["umount", "-l", str(root)], capture_output=True, timeout=30, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _active(store) -> ModelVersion:
    with unscoped():
        return ModelVersion.objects.get(store=store, is_active=True)


def _recommended_version(api_client) -> int:
    r = api_client.get(f"{API}/recommendations/customer/C0?n=3")
    assert r.status_code == 200, r.content
    body = r.json()
    assert len(body["items"]) == 3
    return body["model_version"]


def test_training_on_a_full_artifact_disk(full_disk, shop, store, api_client, monkeypatch):
    before = _active(store)  # trained by the ``shop`` fixture, into the tmpfs
    before_bytes = artifacts.artifact_path(before).read_bytes()
    assert _recommended_version(api_client) == before.pk
    files_before = full_disk.files()
    assert before.artifact_path in files_before

    full_disk.fill(monkeypatch)
    run = services.start_training(store, ["item_knn"], {"_gate": {"force": True}}, enqueue=False)
    run = services.run_training(run.pk)

    # The run failed, and its error says what happened and what to do.
    assert run.status == JobStatus.FAILED and run.stage == "writing artifacts"
    headline = run.status_payload()["error"]
    assert headline.startswith("ArtifactStorageFull: The model storage is full"), headline
    assert "no space left" in headline and "Free space in MODEL_DIR" in headline
    # No partial file (the temp file was removed) and no version row of the failed run.
    full_disk.free()
    assert full_disk.files() == files_before
    with unscoped():
        assert not ModelVersion.objects.filter(run=run).exists()
    # The active model is untouched and still serves (also after a restart: read from disk again).
    assert _active(store).pk == before.pk
    assert artifacts.artifact_path(before).read_bytes() == before_bytes
    artifacts.clear_model_cache()
    runtime.invalidate()
    assert _recommended_version(api_client) == before.pk
    with unscoped():
        assert ModelVersion.objects.get(pk=before.pk).corrupt_at is None
        assert not TrainingRun.objects.filter(store=store, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists()

    # Space is free again: the next run trains, writes its artifact and takes over serving.
    again = services.start_training(store, ["item_knn"], {"_gate": {"force": True}}, enqueue=False)
    again = services.run_training(again.pk)
    assert again.status == JobStatus.SUCCEEDED, again.error
    active = _active(store)
    assert active.run_id == again.pk and artifacts.artifact_path(active).exists()
    runtime.invalidate()
    assert _recommended_version(api_client) == active.pk
    assert not [f for f in full_disk.files() if f.endswith(".tmp")]
