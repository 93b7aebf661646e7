"""Text-free blends of two or three strong models, with weights chosen on validation.

:func:`tune_blend` fits the components once on the validation train part, normalises each
component's scores per user (``zscore`` or ``rank``), and searches a small weight grid on the
validation users by NDCG@k. :func:`select_model` then keeps the blend only when validation says it
helps: its per-user gain over the best single model must exceed one bootstrap standard error (on
random MovieLens-style splits a blend was slightly worse than EASE alone). The chosen blend is a
plain :class:`~shop_recs.recsys.hybrid.Hybrid` (no cold/content switching), so training, saving and
serving need nothing new. :func:`choose_blend` is the search and rule on models already fitted, so
the training pipeline (``shop_recs.training.selection.tune_holdout_blend``) runs the bench's exact rule
on its own holdout.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import metrics as mx
from . import selection as sel
from .base import NEG_INF, Recommender, as_csr, top_n
from .hybrid import normalise_rows
from .splits import Split
from .tuning import accepted_fit_kwargs

NORMALISATIONS = ("zscore", "rank")
#: Weights of the 2nd and 3rd components relative to the best single model (weight 1).
WEIGHT_GRID_2 = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5)
WEIGHT_GRID_3 = (0.0, 0.1, 0.25, 0.5, 1.0)
MAX_USERS = 3000


def blend_params(
    components: Sequence[tuple[str, Mapping[str, Any]]], weights: Sequence[float], normalization: str
) -> dict[str, Any]:
    """The ``Hybrid`` hyperparameters of a text-free blend (labels are the algorithm names)."""
    return {
        "components": {name: {"algorithm": name, **dict(params)} for name, params in components},
        "weights": {name: float(w) for (name, _), w in zip(components, weights, strict=True)},
        "normalization": normalization,
        "cold_model": "",
        "content_model": "",
    }


def _per_user_metric(
    scores: np.ndarray, seen: tuple[np.ndarray, np.ndarray], truth: sp.csr_matrix, k: int
) -> np.ndarray:
    scores = scores.copy()
    scores[seen] = NEG_INF
    ids, _ = top_n(scores, k)
    return np.asarray(mx.ranking_metrics(ids, truth, [k])[f"ndcg@{k}"], dtype=np.float64)


# Long on purpose: score once, then one small grid per normalisation.
def tune_blend(
    models: Mapping[str, Recommender],
    validation: Split,
    *,
    k: int = 10,
    normalizations: Sequence[str] = NORMALISATIONS,
    max_users: int = MAX_USERS,
    seed: int = 0,
) -> dict[str, Any]:
    """Blend weights for FITTED ``models`` (fit on ``validation.train``; the first is the reference
    with weight 1), chosen by mean NDCG@k on the validation users.

    Returns ``{"weights", "normalization", "score", "per_user", "single_per_user", "users"}`` where
    ``single_per_user`` is the first model alone on the same users.
    """
    labels = list(models)
    if not 2 <= len(labels) <= 3:
        raise ValueError("a blend takes two or three models")
    train = as_csr(validation.train)
    users = validation.test_users
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    rows = train[users]
    truth = sp.csr_matrix(validation.test[users])
    seen = rows.nonzero()
    raw = [np.asarray(models[lb].score_users(users, rows), dtype=np.float32) for lb in labels]
    single = _per_user_metric(raw[0], seen, truth, k)
    grid = WEIGHT_GRID_2 if len(labels) == 2 else WEIGHT_GRID_3
    best: dict[str, Any] = {"score": -np.inf}
    for method in normalizations:
        parts = [normalise_rows(r, method) for r in raw]
        for parts_ in parts:
            parts_[~np.isfinite(parts_)] = 0.0  # a -inf from one model must not veto another's item
        for combo in itertools.product(grid, repeat=len(labels) - 1):
            if not any(combo):
                continue  # the first model alone is the single reference, not a blend
            weights = (1.0, *combo)
            scores = sum(w * p for w, p in zip(weights, parts, strict=True))
            per_user = _per_user_metric(np.asarray(scores, dtype=np.float32), seen, truth, k)
            score = float(per_user.mean())
            if score > best["score"] + 1e-12:
                best = {"weights": list(weights), "normalization": method, "score": score, "per_user": per_user}
    best.update(single_per_user=single, single_score=float(single.mean()), users=users, labels=labels)
    return best


def choose_blend(
    fitted: Mapping[str, Recommender],
    ranked: Sequence[str],
    validation: Split,
    *,
    k: int = 10,
    max_partners: int = 5,
    seed: int = 0,
    time_budget: float | None = None,
    max_users: int = MAX_USERS,
) -> dict[str, Any] | None:
    """The best blend of FITTED models (fit on ``validation.train``) and whether it helps.

    ``ranked``: the single models' labels, best on validation first. Candidates: the best with each of
    the next ``max_partners``, then the three-model blend of the best with its two best partners.
    The best candidate helps only if its per-user gain over the best single model (same users)
    exceeds one bootstrap SE of the paired difference (:func:`~shop_recs.recsys.selection.blend_helps`).
    ``time_budget`` (seconds): no candidate starts once the time spent plus the longest candidate so
    far would pass 110% of it (the first always runs; the tuner's rule). ``None`` with fewer than two
    models. Returns ``{"labels", "weights", "normalization", "score", "per_user", "single_score",
    "gain", "se", "helps", "candidates", "seconds", "stopped_by_budget"}``.
    """
    labels = [lb for lb in ranked if lb in fitted]
    if len(labels) < 2:
        return None
    name0, partners = labels[0], labels[1 : 1 + max_partners]
    start = time.perf_counter()
    trials: list[dict[str, Any]] = []
    longest, stopped = 0.0, False

    def over_budget() -> bool:
        spent = time.perf_counter() - start
        return time_budget is not None and bool(trials) and spent + longest > 1.1 * time_budget

    plans: list[list[str]] = [[name0, p] for p in partners]
    if len(partners) >= 2:
        plans.append([])  # the three-model blend, filled in once the pairs are ranked
    for plan in plans:
        if not plan:
            by_pair = sorted(trials, key=lambda r: -r["score"])
            if len(by_pair) < 2:
                break
            plan = [name0, by_pair[0]["labels"][1], by_pair[1]["labels"][1]]
        if over_budget():
            stopped = True
            break
        t0 = time.perf_counter()
        trials.append(tune_blend({lb: fitted[lb] for lb in plan}, validation, k=k, seed=seed, max_users=max_users))
        longest = max(longest, time.perf_counter() - t0)
    best = max(trials, key=lambda r: r["score"])
    helps, test = sel.blend_helps(best["per_user"], best["single_per_user"], seed=seed)
    return {
        "labels": best["labels"],
        "weights": best["weights"],
        "normalization": best["normalization"],
        "score": float(best["score"]),
        "per_user": best["per_user"],
        "single": name0,
        "single_score": float(best["single_score"]),
        "gain": test["gain"],
        "se": test["se"],
        "helps": helps,
        "candidates": [
            {"labels": r["labels"], "weights": r["weights"], "normalization": r["normalization"], "score": r["score"]}
            for r in trials
        ],
        "n_users": int(len(best["users"])),
        "seconds": time.perf_counter() - start,
        "stopped_by_budget": stopped,
    }


def select_model(
    tuned: Sequence[dict[str, Any]],
    validation: Split,
    *,
    k: int = 10,
    fit_kwargs: Mapping[str, Any] | None = None,
    max_partners: int = 5,
    seed: int = 0,
    time_budget: float | None = None,
) -> dict[str, Any]:
    """The model to deploy, chosen on validation alone.

    ``tuned``: one entry per single algorithm, ``{"algorithm", "params", "score"}`` (``score`` = its
    validation NDCG@k). The best single model, or the best blend of :func:`choose_blend` when it helps.
    Returns ``{"algorithm", "params", "blend": {...} | None, "validation_score", "record"}``.
    """
    from .registry import make  # why: registry imports hybrid, which this module sits next to

    ranked = sorted((t for t in tuned if np.isfinite(t.get("score", -np.inf))), key=lambda t: -t["score"])
    if not ranked:
        raise ValueError("no tuned model to select from")
    top = ranked[0]
    chosen: dict[str, Any] = {
        "algorithm": top["algorithm"],
        "params": dict(top["params"]),
        "validation_score": float(top["score"]),
        "blend": None,
        "record": {"rule": "best single model on validation", "validation": validation.info.get("validation")},
    }
    partners = [t for t in ranked[1:] if t["algorithm"] not in (top["algorithm"], "hybrid")][:max_partners]
    if not partners:
        return chosen
    params_of = {t["algorithm"]: dict(t["params"]) for t in [top, *partners]}
    fitted: dict[str, Recommender] = {}
    for name, params in params_of.items():
        model = make(name, **params)
        fitted[name] = model.fit(as_csr(validation.train), **accepted_fit_kwargs(model, fit_kwargs))
    best = choose_blend(
        fitted, list(params_of), validation, k=k, max_partners=max_partners, seed=seed, time_budget=time_budget
    )
    if best is None:
        return chosen
    chosen["record"]["blend_search"] = {
        "candidates": best["candidates"],
        "single_score_same_users": best["single_score"],
        "gain": best["gain"],
        "gain_se": best["se"],
        "blend_chosen": best["helps"],
        "seconds": best["seconds"],
        "stopped_by_budget": best["stopped_by_budget"],
    }
    if best["helps"]:
        comps = [(lb, params_of[lb]) for lb in best["labels"]]
        chosen.update(
            algorithm="hybrid",
            params=blend_params(comps, best["weights"], best["normalization"]),
            validation_score=best["score"],
            blend={"labels": best["labels"], "weights": best["weights"], "normalization": best["normalization"]},
        )
        chosen["record"]["rule"] = "blend beats the best single model by more than one SE on validation"
    return chosen
