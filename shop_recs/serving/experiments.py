"""Serving-side experiment lookup and variant resolution (called from ``recommend.api_views``).

Per process and store we keep the running experiments by placement (TTL ``EXPERIMENTS_CACHE_TTL``,
10 s; an ``Experiment.save()`` drops this process's copy at once). A request on a placement with a
running experiment is assigned with :func:`assign_bucket` on ``(experiment id, customer key)``:
deterministic, hence sticky with nothing stored.

A variant's model is loaded here, not through ``recommend.services.load_version``: that cache keeps
one version per store, so loading a second one would evict the active model on every request. The
variant model is wrapped in :class:`RemappedModel` so it speaks the active model's column space
(serving maps columns to the catalog with the active version's item ids).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.utils import timezone

from shop_recs.platform.cache import register_process_cache
from shop_recs.recsys import registry
from shop_recs.serving.models import Experiment, ExperimentStatus, RecommendationList, Variant
from shop_recs.serving.overrides import InvalidOverride, clean_overrides
from shop_recs.serving.runtime import serving_state
from shop_recs.serving.snapshot import DB_UNREACHABLE, OUTAGE_RETRY_SECONDS
from shop_recs.stores.scoping import store_scope
from shop_recs.training.artifacts import _ITEM_IDS_KEY, _USER_IDS_KEY, artifact_path, verify_artifact
from shop_recs.training.errors import TrainingError
from shop_recs.training.models import ModelVersion

logger = logging.getLogger(__name__)


def unit_hash(experiment_id: int, key: str) -> float:
    """sha256 of ``"<experiment id>:<key>"`` mapped to a uniform number in [0, 1)."""
    digest = hashlib.sha256(f"{experiment_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_bucket(experiment_id: int, key: str, splits: Sequence[float]) -> int:
    """The index of the bucket ``key`` falls in, for traffic shares ``splits`` (any positive scale).

    Deterministic, so sticky without storing anything: the same experiment and key always give the
    same bucket; a different experiment reshuffles everyone independently.
    """
    total = float(sum(splits))
    u = unit_hash(experiment_id, key) * total
    acc = 0.0
    for i, share in enumerate(splits):
        acc += share
        if u < acc:
            return i
    return len(splits) - 1


@dataclass(frozen=True)
class VariantSpec:
    """What serving needs of one variant (plain values, safe to share between threads)."""

    pk: int
    name: str
    kind: str
    traffic: int
    model_version_id: int | None
    algorithm: str
    rule_overrides: dict[str, Any]
    tag: str


@dataclass(frozen=True)
class ExperimentSpec:
    pk: int
    name: str
    placement: str
    variants: tuple[VariantSpec, ...]

    def assign(self, key: str) -> VariantSpec:
        return self.variants[assign_bucket(self.pk, key, [v.traffic for v in self.variants])]


@dataclass
class _Entry:
    at: float
    by_placement: dict[str, ExperimentSpec] = field(default_factory=dict)


_cache: dict[int, _Entry] = {}
_models: dict[tuple[int, int], Any] = {}  # (variant version id, active version id) -> RemappedModel
_lock = threading.Lock()


def invalidate(store_id: int | None = None) -> None:
    with _lock:
        if store_id is None:
            _cache.clear()
            _models.clear()
        else:
            _cache.pop(store_id, None)


register_process_cache("serving.experiments", invalidate)


def running_experiments(store_id: int) -> dict[str, ExperimentSpec]:
    """Placement -> running experiment of the store (cached ``EXPERIMENTS_CACHE_TTL`` seconds; while
    the database is unreachable the expired entry is kept, ``snapshot.DB_UNREACHABLE``)."""
    ttl = float(settings.EXPERIMENTS_CACHE_TTL)
    entry = _cache.get(store_id)
    if entry is not None and time.monotonic() - entry.at < ttl:
        return entry.by_placement
    by_placement: dict[str, ExperimentSpec] = {}
    try:
        with store_scope(store_id):
            exps = list(Experiment.objects.filter(status=ExperimentStatus.RUNNING).order_by("pk"))
            variants = list(Variant.objects.filter(experiment__in=exps).order_by("position", "pk")) if exps else []
    except DB_UNREACHABLE:
        if entry is None:
            raise
        # The database is down: keep assigning as before, and look again after a short back-off.
        with _lock:
            _cache[store_id] = _Entry(time.monotonic() - ttl + OUTAGE_RETRY_SECONDS, entry.by_placement)
        logger.warning("database unreachable: store %s's running experiments served as they were", store_id)
        return entry.by_placement
    for exp in exps:
        vs = _safe_variants(exp, [v for v in variants if v.experiment_id == exp.pk])
        if vs and sum(v.traffic for v in vs) > 0:
            by_placement[exp.placement] = ExperimentSpec(exp.pk, exp.name, exp.placement, vs)
    with _lock:
        _cache[store_id] = _Entry(time.monotonic(), by_placement)
    return by_placement


def _safe_variants(exp: Experiment, variants: list[Variant]) -> tuple[VariantSpec, ...]:
    """The experiment's variants as served. A variant whose rule overrides are invalid (saved before
    validation existed, or edited in the database) serves the control's configuration under its own
    name, and the fallback is logged: a bad override must never reach the hot path."""
    specs: list[VariantSpec] = []
    for v in variants:
        try:
            overrides = clean_overrides(v.rule_overrides)
        except InvalidOverride as exc:
            if not specs:
                logger.error(
                    "experiment %s: the control %r has invalid rule overrides (%s); not serving it", exp.pk, v.name, exc
                )
                return ()
            control = specs[0]
            logger.error(
                "experiment %s: variant %r has invalid rule overrides (%s); serving the control %r instead",
                exp.pk,
                v.name,
                exc,
                control.name,
            )
            specs.append(replace(control, pk=v.pk, name=v.name, traffic=v.traffic, tag=v.tag))
            continue
        specs.append(VariantSpec(v.pk, v.name, v.kind, v.traffic, v.model_version_id, v.algorithm, overrides, v.tag))
    return tuple(specs)


class RemappedModel:
    """A model of another version, answering in the active version's item columns.

    History rows come in over the active columns and are moved to this model's columns; scores go
    back the other way (products this model never saw score 0). The user id is always this model's
    "new user" id, so factor models fold the history in rather than read a trained user's row.
    """

    def __init__(self, model: Any, n_users: int, own_item_ids: np.ndarray, active_item_ids: np.ndarray) -> None:
        self.model = model
        self.n_users = int(n_users)
        own_index = {int(pk): i for i, pk in enumerate(own_item_ids.tolist())}
        self.a2o = np.array([own_index.get(int(pk), -1) for pk in active_item_ids.tolist()], dtype=np.int64)
        self.n_own = len(own_item_ids)
        self.ok = self.a2o >= 0

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        coo = user_items.tocoo()
        cols = self.a2o[coo.col] if len(coo.col) else np.zeros(0, dtype=np.int64)
        keep = cols >= 0
        own = sp.csr_matrix(
            (coo.data[keep], (coo.row[keep], cols[keep])), shape=(user_items.shape[0], self.n_own), dtype=np.float32
        )
        uid = np.full(len(user_ids), self.n_users, dtype=np.int64)
        scores = np.asarray(self.model.score_users(uid, own), dtype=np.float32)
        out = np.zeros((scores.shape[0], len(self.a2o)), dtype=np.float32)
        out[:, self.ok] = np.nan_to_num(scores[:, self.a2o[self.ok]], neginf=0.0, posinf=0.0)
        return out

    def _similar_scores(self, item_ids: np.ndarray) -> np.ndarray:
        out = np.zeros((len(item_ids), len(self.a2o)), dtype=np.float32)
        own = self.a2o[np.asarray(item_ids, dtype=np.int64)]
        have = own >= 0
        if have.any():
            try:
                rows = np.asarray(self.model._similar_scores(own[have]), dtype=np.float32)
            except NotImplementedError:  # popularity and friends have no item-item similarity
                return out
            out[np.ix_(have, self.ok)] = rows[:, self.a2o[self.ok]]
        return out


def _load_variant_model(version: Any, active: Any) -> RemappedModel:
    key = (version.pk, active.version.pk)
    hit = _models.get(key)
    if hit is not None:
        return hit
    verify_artifact(version)
    path = artifact_path(version)
    model = registry.load_model(path)
    with np.load(path, allow_pickle=False) as archive:
        user_ids = archive[_USER_IDS_KEY]
        item_ids = archive[_ITEM_IDS_KEY].astype(np.int64)
    remapped = RemappedModel(model, len(user_ids), item_ids, active.item_ids)
    with _lock:
        for k in [k for k in _models if k[1] != active.version.pk and k[0] == version.pk]:
            del _models[k]
        _models[key] = remapped
    return remapped


def resolve_version(store_id: int, spec: VariantSpec, active_version: Any) -> Any:
    """The ModelVersion a variant serves, or ``None`` to serve the active model (rules variants)."""
    if spec.kind == "model_version":
        if active_version is not None and spec.model_version_id == active_version.pk:
            return None
        with store_scope(store_id):
            return ModelVersion.objects.filter(pk=spec.model_version_id, corrupt_at__isnull=True).first()
    if spec.kind == "algorithm":
        if active_version is None:
            return None
        if active_version.algorithm == spec.algorithm:
            return None
        with store_scope(store_id):
            return (
                ModelVersion.objects.filter(
                    run_id=active_version.run_id, algorithm=spec.algorithm, corrupt_at__isnull=True
                )
                .order_by("-pk")
                .first()
            )
    return None


def variant_model(store: Any, spec: VariantSpec) -> tuple[Any, Any]:
    """``(model or None, ModelVersion or None)`` for a variant; ``None`` model: serve the active one."""
    state = serving_state(store)
    active = state.loaded
    if active is None:
        return None, None
    cache_key = ("v", spec.pk, active.version.pk)
    hit = _models.get(cache_key)  # type: ignore[arg-type]
    if hit is not None:
        return hit
    version = resolve_version(store.pk, spec, active.version)
    result = (None, None) if version is None else (_load_variant_model(version, active), version)
    with _lock:
        _models[cache_key] = result  # type: ignore[index]
    return result


def algorithm_model(store: Any, algorithm: str) -> tuple[Any, Any]:
    """``(model, ModelVersion)`` of ``algorithm`` in the active run, for a placement that serves it.

    ``(None, None)`` serves the active model: it is that algorithm already, no model is active, the
    active run trained no usable version of it, or that version cannot be loaded (logged; a
    placement's choice must never turn its lists into errors)."""
    active = serving_state(store).loaded
    if active is None or not algorithm or active.version.algorithm == algorithm:
        return None, None
    cache_key = ("a", algorithm, active.version.pk)
    hit = _models.get(cache_key)  # type: ignore[arg-type]
    if hit is not None:
        return hit
    spec = VariantSpec(0, "", "algorithm", 100, None, algorithm, {}, "")
    version = resolve_version(store.pk, spec, active.version)
    result: tuple[Any, Any] = (None, None)
    if version is not None:
        try:
            result = (_load_variant_model(version, active), version)
        except (OSError, ValueError, KeyError, TrainingError) as exc:
            logger.error(
                "store %s: cannot load %s version %s for a placement: %s", store.pk, algorithm, version.pk, exc
            )
    with _lock:
        _models[cache_key] = result  # type: ignore[index]
    return result


def log_variant_list(
    store_id: int,
    product_ids: list[int],
    *,
    placement: str,
    customer_id: int | None,
    model_version_id: int | None,
    algorithm: str,
    variant: str,
    endpoint: str = "customer",
) -> str:
    """Write the served list of an experiment request (one INSERT) and return its list id."""
    list_id = uuid.uuid4()
    RecommendationList.all_stores.bulk_create(
        [
            RecommendationList(
                store_id=store_id,
                list_id=list_id,
                endpoint=endpoint,
                placement=placement[:64],
                customer_id=customer_id,
                model_version_id=model_version_id,
                algorithm=algorithm[:64],
                variant=variant[:64],
                product_ids=list(product_ids),
                created_at=timezone.now(),
            )
        ]
    )
    return str(list_id)
