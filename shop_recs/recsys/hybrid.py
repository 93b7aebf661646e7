"""Hybrid recommender: a weighted blend of normalised component scores, with switching by situation.

* a user with no history gets the cold model's order only (popularity or trending);
* a user with fewer than ``thin_history`` interactions gets the content model's weight multiplied
  by ``thin_content_boost`` (collaborative signals are weak for them);
* items with no interactions stay reachable through the content component.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .base import NEG_INF, Recommender, as_csr, read_meta, top_n

# iALS as the collaborative part because it scales to any catalogue (EASE is capped at 20k items).
# On UCI Online Retail (temporal, last 30 days): als+content+popularity NDCG@10 0.096 with catalogue
# coverage 0.27, against 0.066 for the earlier item_knn blend; ease+content+popularity 0.099.
DEFAULT_COMPONENTS: dict[str, dict[str, Any]] = {"als": {}, "content": {}, "popularity": {}}
DEFAULT_WEIGHTS: dict[str, float] = {"als": 1.0, "content": 0.3, "popularity": 0.05}


def normalise_rows(scores: np.ndarray, method: str) -> np.ndarray:
    """Per-user ``minmax`` (to 0..1), ``zscore`` or ``rank`` (0..1) over the finite scores; ``-inf``
    stays ``-inf``."""
    s = np.asarray(scores, dtype=np.float32)
    finite = np.isfinite(s)
    masked = np.where(finite, s, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), _quiet_nan():
        if method == "minmax":
            lo, hi = np.nanmin(masked, axis=1, keepdims=True), np.nanmax(masked, axis=1, keepdims=True)
            span = hi - lo
            out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 0.0)
        elif method == "zscore":
            mu, sd = np.nanmean(masked, axis=1, keepdims=True), np.nanstd(masked, axis=1, keepdims=True)
            out = np.where(sd > 0, (s - mu) / np.where(sd > 0, sd, 1.0), 0.0)
        elif method == "rank":
            # Rank within the row scaled to 0..1 (best = 1): immune to heavy-tailed score scales.
            order = np.argsort(np.argsort(np.where(finite, s, -np.inf), axis=1, kind="stable"), axis=1)
            n_fin = finite.sum(axis=1, keepdims=True)
            n_inf = s.shape[1] - n_fin
            out = np.where(n_fin > 1, (order - n_inf) / np.maximum(n_fin - 1, 1), 1.0)
        else:
            raise ValueError(f"normalization must be 'minmax', 'zscore' or 'rank', got {method!r}")
    out = np.nan_to_num(out, nan=0.0).astype(np.float32)
    out[~finite] = NEG_INF
    return out


def normalise_one(scores: np.ndarray, method: str) -> np.ndarray:
    """:func:`normalise_rows` of one user's 1-D scores. The common case (minmax over all-finite
    scores) runs as three array passes in float32, the same arithmetic as the 2-D path."""
    s = np.asarray(scores, dtype=np.float32)
    if method == "minmax" and s.size and np.isfinite(s).all():
        lo, hi = s.min(), s.max()
        span = hi - lo
        return (s - lo) / span if span > 0 else np.zeros_like(s)
    return normalise_rows(s[None, :], method)[0]


class _quiet_nan:  # noqa: N801 - a tiny context manager, used like a function
    """Silence numpy's "All-NaN slice" warning for users whose scores are all -inf."""

    def __enter__(self) -> None:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


class Hybrid(Recommender):
    """Blend of several models (see the module docstring for the switching rules).

    ``components`` maps a label to the parameters of a registry algorithm (the label is the
    algorithm name unless the params carry ``"algorithm"``); ``weights`` maps labels to blend weights
    (missing labels weigh 1). ``fit`` fits every component on the same data (passing
    ``item_features``, ``item_categories`` and ``timestamps`` through) and, given
    ``validation_user_items``, tunes the weights with :meth:`tune_weights`. Pre-fitted models can
    be combined with :meth:`from_models`. Saved as one npz, each component under ``"<label>."``.
    """

    name: ClassVar[str] = "hybrid"
    _artifacts: ClassVar[tuple[str, ...]] = ("weights_", "n_items_")

    def __init__(
        self,
        components: dict[str, dict[str, Any]] | None = None,
        weights: dict[str, float] | None = None,
        normalization: str = "minmax",
        cold_model: str = "popularity",
        content_model: str = "content",
        thin_history: int = 3,
        thin_content_boost: float = 3.0,
    ) -> None:
        self.components = dict(DEFAULT_COMPONENTS if components is None else components)
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.normalization = normalization
        self.cold_model = cold_model
        self.content_model = content_model
        self.thin_history = thin_history
        self.thin_content_boost = thin_content_boost

    @property
    def labels(self) -> list[str]:
        """The blended components: the fitted ones once fitted (a content part without item text is
        skipped), else the configured ones."""
        models = getattr(self, "models_", None)
        return list(models) if models is not None else list(self.components)

    @classmethod
    def from_models(
        cls, models: dict[str, Recommender], weights: dict[str, float] | None = None, **params: Any
    ) -> Hybrid:
        """Combine already-fitted models without refitting them."""
        components = {label: {"algorithm": m.name, **m.get_params()} for label, m in models.items()}
        hybrid = cls(components=components, weights=weights or dict.fromkeys(models, 1.0), **params)
        hybrid.models_ = dict(models)
        hybrid.n_items_ = next(iter(models.values())).n_items
        hybrid.weights_ = hybrid._initial_weights()
        return hybrid

    def _initial_weights(self) -> np.ndarray:
        return np.array([float(self.weights.get(label, 1.0)) for label in self.labels], dtype=np.float64)

    def fit(
        self,
        user_items: sp.csr_matrix,
        validation_user_items: sp.csr_matrix | None = None,
        **kwargs: Any,
    ) -> Hybrid:
        from .registry import make  # why: registry imports this module (cycle)

        x = as_csr(user_items)
        self.n_items_ = x.shape[1]
        self.models_ = {}
        self.skipped_components_ = []
        for label, params in self.components.items():
            params = dict(params)
            algorithm = params.pop("algorithm", label)
            if algorithm == "content" and kwargs.get("item_features") is None:
                # No item text (a bare interaction file): the blend goes on without the content part.
                self.skipped_components_.append(label)
                continue
            self.models_[label] = make(algorithm, **params).fit(x, **kwargs)
        self.weights_ = self._initial_weights()
        if validation_user_items is not None:
            self.tune_weights(x, validation_user_items)
        return self

    # --- scoring ------------------------------------------------------------------------------
    def component_scores(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> list[np.ndarray]:
        rows = as_csr(user_items)
        return [normalise_rows(self.models_[lb].score_users(user_ids, rows), self.normalization) for lb in self.labels]

    def _blend(self, parts: list[np.ndarray], weights: np.ndarray, history_sizes: np.ndarray) -> np.ndarray:
        labels = self.labels
        out = np.zeros_like(parts[0])
        thin = (history_sizes > 0) & (history_sizes < self.thin_history)
        for label, part, weight in zip(labels, parts, weights, strict=True):
            if weight == 0:
                continue
            w = np.full((len(history_sizes), 1), weight, dtype=np.float32)
            if label == self.content_model:
                w[thin] *= self.thin_content_boost
            out += w * part
        if self.cold_model in labels:
            cold = history_sizes == 0
            out[cold] = parts[labels.index(self.cold_model)][cold]
        return out

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        rows = as_csr(user_items)
        return self._blend(self.component_scores(user_ids, rows), self.weights_, np.diff(rows.indptr))

    def _score_one(self, user_id: int, items: np.ndarray, values: np.ndarray) -> np.ndarray:
        # score_users for one user: each member's single-user fast path (or its batch scoring on a
        # one-row matrix when it has none), normalised in 1-D, blended with the same rules.
        parts = []
        row: sp.csr_matrix | None = None
        for label in self.labels:
            model = self.models_[label]
            part = model._score_one(user_id, items, values)
            if part is None:
                if row is None:
                    row = sp.csr_matrix(
                        (values, items, np.array([0, len(items)])), shape=(1, self.n_items), dtype=np.float32
                    )
                part = model.score_users(np.array([user_id]), row)[0]
            parts.append(normalise_one(part, self.normalization)[None, :])
        return self._blend(parts, self.weights_, np.array([len(items)]))[0]

    def _similar_scores(self, item_ids: np.ndarray) -> np.ndarray:
        out = np.zeros((len(item_ids), self.n_items), dtype=np.float32)
        for label, weight in zip(self.labels, self.weights_, strict=True):
            if weight and label != self.cold_model:
                out += weight * normalise_rows(self.models_[label]._similar_scores(item_ids), self.normalization)
        return out

    # --- tuning -------------------------------------------------------------------------------
    def tune_weights(
        self,
        train_user_items: sp.csr_matrix,
        validation_user_items: sp.csr_matrix,
        grid: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0),
        k: int = 10,
        max_users: int = 1000,
        random_state: int = 0,
    ) -> dict[str, float]:
        """Pick blend weights by recall@k on held-out interactions (small grid, first weight fixed
        at 1 since the blend is scale-free). Component scores are computed once per user."""
        train, valid = as_csr(train_user_items), as_csr(validation_user_items)
        users = np.flatnonzero(np.diff(valid.indptr) > 0)
        if len(users) > max_users:
            users = np.sort(np.random.default_rng(random_state).choice(users, max_users, replace=False))
        if len(users) == 0:
            return dict(zip(self.labels, self.weights_.tolist(), strict=True))
        rows = train[users]
        parts = self.component_scores(users, rows)
        sizes = np.diff(rows.indptr)
        seen_r, seen_c = rows.nonzero()
        truth = valid[users]
        best, best_score = self.weights_.copy(), -1.0
        for combo in itertools.product(grid, repeat=len(self.labels) - 1):
            weights = np.array((1.0, *combo))
            scores = self._blend(parts, weights, sizes)
            scores[seen_r, seen_c] = NEG_INF
            ids, _ = top_n(scores, k)
            hits = np.asarray(truth[np.arange(len(users))[:, None], np.maximum(ids, 0)].todense() > 0) & (ids >= 0)
            recall = float(np.mean(hits.sum(axis=1) / np.minimum(np.diff(truth.indptr), k)))
            if recall > best_score + 1e-12:
                best, best_score = weights, recall
        self.weights_ = best.astype(np.float64)
        self.tuned_recall_ = best_score
        return dict(zip(self.labels, self.weights_.tolist(), strict=True))

    # --- persistence --------------------------------------------------------------------------
    def _state_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        arrays = super()._state_arrays(prefix)
        for label, model in self.models_.items():
            arrays.update(model._state_arrays(f"{prefix}{label}."))
        return arrays

    def _after_load(self, data: Any, prefix: str) -> None:
        from .registry import ALGORITHMS  # why: registry imports this module (cycle)

        fitted = [label for label in self.components if f"{prefix}{label}.__meta__" in data.files]
        self.skipped_components_ = [label for label in self.components if label not in fitted]
        self.models_ = {}
        for label in fitted:
            sub = f"{prefix}{label}."
            self.models_[label] = ALGORITHMS[read_meta(data, sub)["algorithm"]]._from_state(data, sub)
