"""Serving arrays precomputed per model version: candidates per customer, neighbours per item.

The standard production split: score offline, blend cheaply online.

* **Offline** (:func:`build_serving_arrays`, run by training right after the artifacts are written,
  before activation): for every customer of the training matrix, the top ``USER_CANDIDATES`` (200)
  model columns and their scores (the active blend's ``score_users``, min-max scaled per customer
  to 0..1 over the whole catalog, training history masked out), computed in chunks of
  ``CHUNK_USERS`` customers to bound memory; for every model column its top ``ITEM_NEIGHBOURS`` (50)
  neighbours (``_similar_scores``: collaborative, plus the content part for a hybrid, so items without
  interactions have neighbours too), scaled per row to 0..1; each column's popularity (distinct
  customers). Written as an uncompressed npz next to the artifact (``<artifact>.serving.npz``, no
  pickle), carrying the artifact's SHA-256 so it can never be paired with another model. With a
  remote artifact storage (S3) it is uploaded like the artifact and downloaded into the process's
  ``MODEL_DIR`` cache on first use (``artifacts.publish`` / ``artifacts.fetch``).
* **Online** (:func:`blend`): the union of the customer's precomputed candidates and the neighbour
  lists of their latest events, scored with numpy over a few hundred ids. No full-catalog scoring.

Large sidecars are memory-mapped (the npz members are stored uncompressed), so each web worker
shares the pages with the others instead of holding its own copy.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from shop_recs.recsys.base import as_csr, top_n
from shop_recs.training import artifacts
from shop_recs.training.artifacts import _USER_IDS_KEY, artifact_path, write_artifact_atomic
from shop_recs.training.errors import ArtifactCorrupt, ArtifactUnavailable

logger = logging.getLogger(__name__)

USER_CANDIDATES = 200
ITEM_NEIGHBOURS = 50
CHUNK_USERS = 512
CHUNK_ITEMS = 1024
SIDECAR_SUFFIX = ".serving.npz"
#: Sidecars larger than this are memory-mapped instead of read into each worker's memory.
MMAP_BYTES = 32 * 2**20
FORMAT = 1


def sidecar_path(artifact: Path) -> Path:
    name = artifact.name[:-4] if artifact.name.endswith(".npz") else artifact.name
    return artifact.with_name(name + SIDECAR_SUFFIX)


def _minmax_rows(s: np.ndarray) -> np.ndarray:
    """Per-row 0..1 over the finite entries; non-finite entries become -inf."""
    s = np.asarray(s, dtype=np.float32)
    finite = np.isfinite(s)
    lo = np.where(finite, s, np.inf).min(axis=1, keepdims=True)
    hi = np.where(finite, s, -np.inf).max(axis=1, keepdims=True)
    span = hi - lo
    ok = np.isfinite(span) & (span > 0)
    out = np.where(ok, (s - np.where(np.isfinite(lo), lo, 0)) / np.where(ok, span, 1), np.where(hi > 0, 1.0, 0.0))
    out = out.astype(np.float32)
    out[~finite] = -np.inf
    return out


def _top(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ids, top = top_n(scores, k)
    top = np.where(ids >= 0, top, 0.0).astype(np.float32)
    return ids.astype(np.int32), top


def recent_users(
    users: np.ndarray, timestamps: np.ndarray | None, n_users: int, *, days: float, limit: int
) -> np.ndarray:
    """Model rows of the customers worth precomputing: active within ``days`` of the log's newest
    event, at most ``limit`` of them, most recent first (returned sorted by row). All rows when the
    log has no timestamps.

    Scoring every customer against the whole catalogue is the training's costliest stage at scale
    (5M events, 200k customers x 20k products: 283 of 352 s). A customer left out is still served
    personally: their live history's neighbour lists and content neighbours (the path of customers
    who joined after training), just without the model's own top list.
    """
    if timestamps is None or not len(users):
        return np.arange(n_users, dtype=np.int64)
    last = np.full(n_users, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, users, timestamps)
    cutoff = int(timestamps.max() - days * 86400)
    recent = np.flatnonzero(last >= cutoff)
    if len(recent) > limit:
        recent = recent[np.argsort(-last[recent], kind="stable")[:limit]]
    return np.sort(recent)


def build_serving_arrays(
    model: Any,
    matrix: Any,
    *,
    n_candidates: int = USER_CANDIDATES,
    n_neighbours: int = ITEM_NEIGHBOURS,
    users: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The serving arrays of a fitted model over its training matrix (users x model columns).

    ``users``: the model rows to precompute candidates for (default all); the other rows keep
    ``-1`` columns, which serving reads as "not precomputed".
    """
    x = as_csr(matrix)
    n_users, n_items = x.shape
    kc, kn = min(n_candidates, n_items), min(n_neighbours, max(n_items - 1, 0))
    user_cols = np.full((n_users, kc), -1, dtype=np.int32)
    user_scores = np.zeros((n_users, kc), dtype=np.float32)
    todo = np.arange(n_users, dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
    for lo in range(0, len(todo), CHUNK_USERS):
        chunk = todo[lo : lo + CHUNK_USERS]
        rows = x[chunk]
        scores = _minmax_rows(np.asarray(model.score_users(chunk, rows)))
        r, c = rows.nonzero()
        scores[r, c] = -np.inf  # seen in training: the request path excludes the live history anyway
        user_cols[chunk], user_scores[chunk] = _top(scores, kc)
    item_cols = np.full((n_items, kn), -1, dtype=np.int32)
    item_scores = np.zeros((n_items, kn), dtype=np.float32)
    if kn:
        for lo in range(0, n_items, CHUNK_ITEMS):
            ids = np.arange(lo, min(lo + CHUNK_ITEMS, n_items), dtype=np.int64)
            sims = np.asarray(model._similar_scores(ids), dtype=np.float32).copy()
            sims[np.arange(len(ids)), ids] = -np.inf
            cols, top = _top(_minmax_rows(sims), kn)
            cols[top <= 0] = -1  # a neighbour at the row's minimum is no neighbour (nor an explanation)
            item_cols[lo : lo + len(ids)], item_scores[lo : lo + len(ids)] = cols, np.maximum(top, 0)
    popularity = np.diff(x.tocsc().indptr).astype(np.float32)
    return {
        "user_cols": user_cols,
        "user_scores": user_scores,
        "item_cols": item_cols,
        "item_scores": item_scores,
        "item_popularity": popularity,
    }


def write_sidecar(artifact: Path, checksum: str, arrays: dict[str, np.ndarray]) -> Path:
    """Write the arrays next to ``artifact`` (atomically, uncompressed so members can be mmapped)."""
    meta = {"format": FORMAT, "artifact_sha256": checksum}
    out = dict(arrays)
    out["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = sidecar_path(artifact)
    _checksum, size = write_artifact_atomic(path, out)
    artifacts.publish(path, size)
    return path


def precompute_for_version(version: Any, model: Any, matrix: Any, log: Any = None) -> Path:
    """Training stage: build and write the sidecar of ``version`` (its artifact already on disk).

    With the training ``log`` (``recsys.data.Interactions``), only customers active in the last
    ``SERVING_PRECOMPUTE_DAYS`` (90) days get precomputed candidates, at most
    ``SERVING_PRECOMPUTE_MAX_CUSTOMERS`` (50,000), most recent first (:func:`recent_users`).
    """
    users = None
    if log is not None:
        users = recent_users(
            log.users,
            getattr(log, "timestamps", None),
            matrix.shape[0],
            days=settings.SERVING_PRECOMPUTE_DAYS,
            limit=settings.SERVING_PRECOMPUTE_MAX_CUSTOMERS,
        )
    arrays = build_serving_arrays(model, matrix, users=users)
    return write_sidecar(artifact_path(version), version.checksum, arrays)


def drop_user_candidates(version: Any, customer_ids: set[int]) -> int:
    """Clear the precomputed candidates of these customers in ``version``'s sidecar (an erasure).

    The rows become "not precomputed" (``-1``), which serving treats like a customer new since
    training. The sidecar is rewritten atomically (a zip member cannot be edited in place: its CRC
    would no longer match); processes that memory-mapped the old file keep their copy until they
    reload, which the caller triggers. Returns how many rows were cleared (0: nothing to change).
    """
    try:
        path = artifacts.verify_artifact(version)  # with S3: downloaded into this process's cache
    except (ArtifactCorrupt, ArtifactUnavailable):
        return 0
    side = sidecar_path(path)
    if not artifacts.fetch(side):
        return 0
    with np.load(path, allow_pickle=False) as archive:
        user_ids = archive[_USER_IDS_KEY].astype(np.int64)
    rows = np.flatnonzero(np.isin(user_ids, np.fromiter(customer_ids, dtype=np.int64)))
    if not len(rows):
        return 0
    with np.load(side, allow_pickle=False) as data:
        meta = json.loads(bytes(data["__meta__"]).decode())
        if meta.get("artifact_sha256") != version.checksum:
            return 0  # a stale sidecar is never served (load_sidecar refuses it)
        arrays = {name: np.array(data[name]) for name in data.files if name != "__meta__"}
    arrays["user_cols"][rows] = -1
    arrays["user_scores"][rows] = 0.0
    write_sidecar(path, version.checksum, arrays)
    return len(rows)


# --- loading ----------------------------------------------------------------------------------------


@dataclass
class Precomputed:
    """A model version's serving arrays (rows indexed by model user row / model column)."""

    user_cols: np.ndarray
    user_scores: np.ndarray
    item_cols: np.ndarray
    item_scores: np.ndarray
    item_popularity: np.ndarray


def _mmap_member(path: Path, info: zipfile.ZipInfo) -> np.ndarray:
    """An uncompressed npz member as a read-only memmap (offset of its .npy payload in the zip)."""
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        if dtype.hasobject:
            raise ValueError("object arrays are not allowed in a serving sidecar")
        offset = fh.tell()
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def load_sidecar(artifact: Path, checksum: str, n_users: int, n_items: int) -> Precomputed | None:
    """The sidecar of an artifact, or ``None`` if it is missing, stale or malformed (serving then
    falls back to scoring on the request)."""
    path = sidecar_path(artifact)
    try:
        if not artifacts.fetch(path):  # with S3: downloaded into this process's cache on first use
            return None
    except ArtifactUnavailable as exc:
        logger.warning("serving sidecar %s could not be downloaded (%s); serving without it", path, exc)
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["__meta__"]).decode())
            if meta.get("format") != FORMAT or meta.get("artifact_sha256") != checksum:
                logger.warning("serving sidecar %s does not belong to its artifact; ignored", path)
                return None
            big = path.stat().st_size > MMAP_BYTES
            if big:
                with zipfile.ZipFile(path) as zf:
                    infos = {i.filename[:-4]: i for i in zf.infolist()}
                    if any(i.compress_type != zipfile.ZIP_STORED for i in infos.values()):
                        big = False
            names = ("user_cols", "user_scores", "item_cols", "item_scores", "item_popularity")
            arrays = {n: (_mmap_member(path, infos[n]) if big else data[n]) for n in names}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        logger.warning("serving sidecar %s unreadable (%s); serving without it", path, exc)
        return None
    pre = Precomputed(**arrays)
    if pre.user_cols.shape[0] != n_users or pre.item_cols.shape[0] != n_items:
        logger.warning("serving sidecar %s has the wrong shape; ignored", path)
        return None
    return pre


# --- request time -----------------------------------------------------------------------------------


#: ``_aggregate`` sums over a dense array of ``size`` slots (no sort) when ``size`` is at most this
#: many times the number of ids plus ``DENSE_SLACK``; past that (large catalogs) it sorts the ids.
DENSE_FACTOR = 16
DENSE_SLACK = 8192


def _aggregate(pos: np.ndarray, scores: np.ndarray, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sum scores per id (ids >= 0 only); ids ascending. ``size``: every id is below it (optional).

    Both ways add each id's scores in input order in float64 (``bincount``), so they agree bit for bit.
    """
    ok = pos >= 0
    pos, scores = pos[ok], scores[ok]
    if not len(pos):
        return pos.astype(np.int64), scores.astype(np.float32)
    if size is not None and size <= DENSE_FACTOR * len(pos) + DENSE_SLACK:
        seen = np.zeros(size, dtype=bool)
        seen[pos] = True
        ids = seen.nonzero()[0]  # nonzero on bools: several times faster than on counts
        return ids, np.bincount(pos, weights=scores, minlength=size)[ids].astype(np.float32)
    ids, inv = np.unique(pos, return_inverse=True)
    return ids, np.bincount(inv, weights=scores, minlength=len(ids)).astype(np.float32)


def blend(
    parts: list[tuple[np.ndarray, np.ndarray, float]],
    size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``sum(weight * scores)`` per catalog position over ``(positions, scores, weight)`` parts.

    ``size`` (optional): the positions are below it, which lets small catalogs skip the sort.
    """
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    pos = np.concatenate([np.asarray(p).ravel() for p, _s, _w in parts]).astype(np.int64, copy=False)
    # One concatenation and one multiply for all parts (a part's float32 score times its float32
    # weight, element by element, exactly as per part); a weight of 1 multiplies nothing.
    sc = np.concatenate([np.asarray(s).ravel() for _p, s, _w in parts], dtype=np.float32)
    weights = np.array([w for _p, _s, w in parts], dtype=np.float32)
    if (weights != 1).any():
        sc *= np.repeat(weights, [np.size(s) for _p, s, _w in parts])
    return _aggregate(pos, sc, size)
