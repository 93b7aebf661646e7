"""Model artifacts and their loading: write atomically, checksum, store, verify, load (cached per process).

Artifacts go through Django's storage API, ``storages["artifacts"]`` (``ARTIFACT_STORAGE``):

* **filesystem** (default, :class:`~shop_recs.training.storage.ModelDirStorage`): files under
  ``MODEL_DIR``, written and read in place; every process must see the same directory.
* **s3** (django-storages ``S3Storage``): the artifact is written to ``MODEL_DIR`` first, then
  uploaded with one PUT (atomic: an object is either absent or complete). A process that needs a
  version downloads it into its own ``MODEL_DIR``, which is only a local cache, hashing on the way;
  the file is renamed into place only if its SHA-256 matches ``ModelVersion.checksum``. A web replica
  on another machine therefore needs the bucket, not a shared directory.

* **The active model is only ever replaced by a complete, verified artifact.** Artifacts are written
  to a temp file, fsynced and renamed; the checksum is computed from the bytes on disk.
* **Serving never loads a corrupt file.** :func:`load_active_model` checks the SHA-256 first and falls
  back to the previously active good version, marking the broken one. A missing object counts as
  corrupt; an unreachable storage (:class:`ArtifactUnavailable`) does not mark anything.

Loaded models are cached per process by version id (one entry per store); the cache is registered
with ``platform.cache`` as ``"training.models"``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.utils import timezone

from shop_recs.platform.cache import register_process_cache
from shop_recs.platform.jobs import json_safe
from shop_recs.recsys import registry
from shop_recs.recsys.base import Recommender
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.errors import ArtifactCorrupt, ArtifactStorageFull, ArtifactUnavailable
from shop_recs.training.matrix import InteractionData
from shop_recs.training.models import ModelVersion, TrainingRun

logger = logging.getLogger(__name__)

# Keys the Django side adds to the engine's npz (the engine's own keys never start with "shop__").
_USER_IDS_KEY = "shop__user_ids"
_ITEM_IDS_KEY = "shop__item_ids"
_MANIFEST_KEY = "shop__manifest"


def model_dir() -> Path:
    """``MODEL_DIR``: artifacts live in ``MODEL_DIR/<store_slug>/<file>.npz``. Read at call time (tests move it)."""
    return Path(settings.MODEL_DIR)


def artifact_storage() -> Storage:
    """``STORAGES["artifacts"]``: the filesystem under ``MODEL_DIR`` or an S3 bucket."""
    return storages["artifacts"]


def is_remote(storage: Storage | None = None) -> bool:
    """Whether the storage keeps its files elsewhere (S3): then ``MODEL_DIR`` is a local cache."""
    storage = storage or artifact_storage()
    try:
        storage.path("")
    except NotImplementedError:  # Storage.path: "This backend doesn't support absolute paths."
        return True
    return False


def local_path(name: str) -> Path:
    """Where this process reads and writes the file ``name`` (``<store_slug>/<file>.npz``): the
    storage's own file for a local storage, the download cache under ``MODEL_DIR`` for a remote one."""
    storage = artifact_storage()
    if is_remote(storage):
        return model_dir() / name
    return Path(storage.path(name))


def storage_name(path: Path) -> str:
    """The storage name of a local artifact file (its path under ``MODEL_DIR``, with ``/``)."""
    storage = artifact_storage()
    root = model_dir() if is_remote(storage) else Path(storage.path(""))
    return path.relative_to(root).as_posix()


def artifact_path(version: ModelVersion) -> Path:
    """The version's artifact on this machine (with a remote storage: present once fetched)."""
    return local_path(version.artifact_path)


# --- writing ------------------------------------------------------------------------------------


def write_version(
    run: TrainingRun, algorithm: str, model: Recommender, data: InteractionData, metrics: dict[str, Any]
) -> ModelVersion:
    """Write ``model`` with its id maps and a manifest to a new artifact and record it as a (not yet active) version."""
    store = run.store
    rel = Path(store.slug) / f"run{run.pk}-{algorithm}-{uuid.uuid4().hex[:8]}.npz"
    manifest = {
        "store_id": store.pk,
        "run_id": run.pk,
        "algorithm": algorithm,
        "created_at": timezone.now().isoformat(),
        "n_users": data.n_users,
        "n_items": data.n_items,
    }
    arrays = dict(model._state_arrays())
    arrays[_USER_IDS_KEY] = np.asarray(data.user_ids, dtype=np.int64)
    arrays[_ITEM_IDS_KEY] = np.asarray(data.item_ids, dtype=np.int64)
    arrays[_MANIFEST_KEY] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
    path = local_path(rel.as_posix())
    checksum, size = write_artifact_atomic(path, arrays)
    publish(path, size)
    with store_scope(store):
        return ModelVersion.objects.create(
            store=store,
            run=run,
            algorithm=algorithm,
            params=json_safe(model.get_params()),
            artifact_path=rel.as_posix(),
            checksum=checksum,
            size_bytes=size,
            n_users=data.n_users,
            n_items=data.n_items,
            metrics=json_safe(metrics),
        )


def write_artifact_atomic(path: Path, arrays: dict[str, np.ndarray]) -> tuple[str, int]:
    """Write an npz so that ``path`` is either absent or complete: temp file, fsync, rename, fsync dir.

    Returns ``(sha256, size)`` of the bytes on disk.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        checksum, size = file_sha256(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
            # The run's error should tell the operator what to do, not only "[Errno 28]".
            raise ArtifactStorageFull(
                f"The model storage is full: no space left on the disk of {path.parent} "
                f"({os.strerror(exc.errno)}). Free space in MODEL_DIR, then train again."
            ) from exc
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return checksum, size


def publish(path: Path, size: int | None = None) -> None:
    """Upload a complete local artifact to a remote storage (no-op for the filesystem one).

    One PUT: the object is either absent or complete, so a reader never sees half of it. The size
    the storage reports afterwards is compared with the local file's.
    """
    storage = artifact_storage()
    if not is_remote(storage):
        return
    name = storage_name(path)
    with open(path, "rb") as fh:
        saved = storage.save(name, File(fh, name=path.name))
    if saved != name:  # file_overwrite=False in a hand-made STORAGES would rename it
        raise OSError(f"artifact storage saved {name} as {saved}; set file_overwrite=True")
    expected = size if size is not None else path.stat().st_size
    stored = storage.size(name)
    if stored != expected:
        raise OSError(f"artifact {name} has {stored} bytes in the storage, expected {expected}")


def fetch(path: Path, checksum: str | None = None) -> bool:
    """Make sure the local file ``path`` holds the storage's object (download it if absent).

    Returns ``False`` when the object does not exist. With ``checksum``, the download is hashed on
    the way and kept only if it matches, else :class:`ArtifactCorrupt`; a failing storage raises
    :class:`ArtifactUnavailable`. A local storage has nothing to download: ``path.exists()``.
    """
    storage = artifact_storage()
    if not is_remote(storage) or path.exists():
        return path.exists()
    name = storage_name(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    digest = hashlib.sha256()
    try:
        with storage.open(name, "rb") as src, open(tmp, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        if checksum is not None and digest.hexdigest() != checksum:
            raise ArtifactCorrupt(
                f"artifact {name} in the artifact storage has SHA-256 {digest.hexdigest()}, expected {checksum}"
            )
        os.replace(tmp, path)
    except FileNotFoundError:
        return False
    except ArtifactCorrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - boto/network/disk errors: the storage, not the version, is at fault
        raise ArtifactUnavailable(f"could not download artifact {name}: {type(exc).__name__}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return True


def drop_local_copy(path: Path) -> None:
    """Delete this process's downloaded copy (remote storage only: a local storage's file is the artifact)."""
    if is_remote():
        path.unlink(missing_ok=True)


#: ENOSPC (the filesystem is full) and EDQUOT (the user's disk quota is used up).
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --- checking -----------------------------------------------------------------------------------


def verify_artifact(version: ModelVersion) -> Path:
    """The local file of the version's artifact, verified against the recorded SHA-256.

    Raises :class:`ArtifactCorrupt` if it is missing (no file, or no object in the bucket) or its
    bytes do not match; :class:`ArtifactUnavailable` if a remote storage cannot be read. With a
    remote storage, a local copy that no longer matches is dropped and downloaded again once.
    """
    path = artifact_path(version)
    if is_remote():
        if path.exists():
            if file_sha256(path)[0] == version.checksum:
                return path
            logger.warning(
                "local copy %s of version %s does not match its checksum; downloading it again", path, version.pk
            )
            drop_local_copy(path)
        try:
            present = fetch(path, version.checksum)  # hashed on the way: kept only if it matches
        except ArtifactCorrupt as exc:
            raise ArtifactCorrupt(f"artifact of version {version.pk}: {exc}") from exc
        if not present:
            raise ArtifactCorrupt(
                f"artifact of version {version.pk} is missing: no object {version.artifact_path} in the storage"
            )
        return path
    if not path.exists():
        raise ArtifactCorrupt(f"artifact of version {version.pk} is missing: {path}")
    checksum, _ = file_sha256(path)
    if checksum != version.checksum:
        raise ArtifactCorrupt(f"artifact of version {version.pk} has SHA-256 {checksum}, expected {version.checksum}")
    return path


def mark_corrupt(version: ModelVersion) -> None:
    """Record that the version's file is broken: it is never activated or served again."""
    version.corrupt_at = timezone.now()
    ModelVersion.all_stores.filter(pk=version.pk).update(corrupt_at=version.corrupt_at)


# --- loading for serving ------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A fitted model with its id maps, ready to serve. ``version`` is the row it came from."""

    version: ModelVersion
    model: Recommender
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_index: dict[int, int]
    item_index: dict[int, int]
    is_fallback: bool = False

    def row_of(self, customer_id: int) -> int | None:
        return self.user_index.get(int(customer_id))

    def column_of(self, product_id: int) -> int | None:
        return self.item_index.get(int(product_id))


#: version id -> loaded model, at most one entry per store.
_cache: dict[int, LoadedModel] = {}
_cache_lock = threading.Lock()


def load_version(version: ModelVersion) -> LoadedModel:
    """Verify the checksum, then load model and id maps (cached per process by version id)."""
    with _cache_lock:
        hit = _cache.get(version.pk)
    if hit is not None and hit.version.checksum == version.checksum:
        return hit
    path = verify_artifact(version)
    model = registry.load_model(path)
    with np.load(path, allow_pickle=False) as archive:
        user_ids = archive[_USER_IDS_KEY].astype(np.int64)
        item_ids = archive[_ITEM_IDS_KEY].astype(np.int64)
    loaded = LoadedModel(
        version=version,
        model=model,
        user_ids=user_ids,
        item_ids=item_ids,
        user_index={int(pk): i for i, pk in enumerate(user_ids.tolist())},
        item_index={int(pk): i for i, pk in enumerate(item_ids.tolist())},
    )
    with _cache_lock:
        # Keep one entry per store: the newly loaded version replaces older ones of the same store.
        for key in [k for k, v in _cache.items() if v.version.store_id == version.store_id]:
            del _cache[key]
        _cache[version.pk] = loaded
    return loaded


def load_active_model(store: Store) -> LoadedModel | None:
    """The store's active model for serving; ``None`` if the store has never had one.

    If the active artifact is missing or fails its checksum, the error is logged, the version is
    marked corrupt and the most recently activated good version is served instead
    (``is_fallback=True``). Raises :class:`ArtifactCorrupt` only when no version is loadable.
    """
    with store_scope(store):
        active = ModelVersion.objects.filter(is_active=True).first()
        fallbacks = list(
            ModelVersion.objects.filter(activated_at__isnull=False, is_active=False, corrupt_at__isnull=True).order_by(
                "-activated_at", "-pk"
            )[:5]
        )
    candidates = ([active] if active is not None else []) + fallbacks
    if not candidates:
        return None
    errors: list[str] = []
    unavailable = 0
    for version in candidates:
        try:
            loaded = load_version(version)
        except ArtifactUnavailable as exc:
            # The storage failed, not the version: try an earlier one, but never mark this one corrupt.
            logger.error(
                "store %s: model version %s could not be read (%s); trying an earlier one", store.pk, version.pk, exc
            )
            errors.append(str(exc))
            unavailable += 1
            continue
        except (ArtifactCorrupt, OSError, ValueError, KeyError) as exc:
            logger.error(
                "store %s: model version %s is unusable (%s); trying an earlier one", store.pk, version.pk, exc
            )
            errors.append(str(exc))
            mark_corrupt(version)
            continue
        if version is not active:
            logger.error("store %s: serving fallback version %s instead of the active one", store.pk, version.pk)
            loaded = LoadedModel(**{**loaded.__dict__, "is_fallback": True})
        return loaded
    if unavailable == len(errors):
        raise ArtifactUnavailable("; ".join(errors))
    raise ArtifactCorrupt("; ".join(errors))


def is_loaded(version_id: int) -> bool:
    """Whether this process still holds the loaded model of ``version_id`` (serving checks it per request)."""
    return version_id in _cache


def clear_model_cache(store_id: int | None = None) -> None:
    """Drop loaded models (of one store, or all): the next load reads and verifies the file again."""
    with _cache_lock:
        if store_id is None:
            _cache.clear()
            return
        for key in [k for k, v in _cache.items() if v.version.store_id == store_id]:
            del _cache[key]


register_process_cache("training.models", clear_model_cache)
