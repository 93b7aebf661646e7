"""The training pipeline's holdout and model choice: the same validation and selection rules the
accuracy bench uses (``shop_recs.recsys.splits.deployment_split``, ``shop_recs.recsys.selection``),
so a store gets what the bench measured.

* Holdout: unless the run asks for a protocol, a global temporal cut when the store's events have
  timestamps and enough customers remain to score (the model trained today serves tomorrow), else
  leave-last-one-out; ``info["validation"]`` records which, and why.
* Choice: the best primary metric, except that a blend (``hybrid``) must beat the best single model
  by more than one bootstrap standard error of the per-user difference on the holdout; otherwise the
  single model is taken (a blend that only ties adds cost and risk).
* Tuned blend: a run with ``hybrid`` plus two or more single algorithms, and no explicit
  ``params["hybrid"]``, blends those singles with members and weights chosen on the run's own
  holdout (:func:`tune_holdout_blend`: the bench's ``recsys.blend.choose_blend`` search and rule,
  within :data:`BLEND_BUDGET_SECONDS`). ``hybrid`` alone keeps the registry's content hybrid (the
  demo default: nothing to blend), and explicit ``params["hybrid"]`` are used as given.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shop_recs.recsys import selection as rsel
from shop_recs.recsys.base import Recommender
from shop_recs.recsys.blend import choose_blend
from shop_recs.recsys.data import Interactions
from shop_recs.recsys.evaluate import evaluate
from shop_recs.recsys.hybrid import Hybrid
from shop_recs.recsys.splits import Split, deployment_split, make_split

#: Algorithms that blend others: chosen only when the holdout says the blend helps.
BLENDS = frozenset({"hybrid"})
#: Seconds the blend search of a training run may take: no candidate (a pair or the three-model blend)
#: starts once the time spent plus the longest candidate so far would pass 110% of it. On the UCI
#: retail holdout (3,000 users x 3,619 items) a candidate takes about 3 s, so six candidates fit in
#: well under a minute; on a large catalogue the budget stops the search with what it has found.
BLEND_BUDGET_SECONDS = 60.0


def holdout_split(log: Interactions, holdout: dict[str, Any]) -> Split:
    """The run's holdout: ``holdout["protocol"]`` (with its params) when given, else :func:`deployment_split`."""
    holdout = dict(holdout)
    protocol = holdout.pop("protocol", None)
    if protocol is None:
        return deployment_split(log)
    split = make_split(log, protocol, **holdout)
    split.info.update(validation=protocol, validation_reason="requested by the run")
    return split


def compare_blends(per_user: dict[str, np.ndarray], seed: int = 0) -> dict[str, dict[str, Any]]:
    """For each blend, its paired gain over the best single model on the same users and whether that
    gain exceeds one bootstrap SE (``{"versus", "gain", "se", "helps"}``)."""
    singles = {a: v for a, v in per_user.items() if a not in BLENDS and len(v)}
    if not singles:
        return {}
    best = max(singles, key=lambda a: float(np.nanmean(singles[a])))
    out: dict[str, dict[str, Any]] = {}
    for name, values in per_user.items():
        if name in BLENDS and len(values) == len(singles[best]):
            helps, stats = rsel.blend_helps(values, singles[best], seed=seed)
            out[name] = {"versus": best, "gain": stats["gain"], "se": stats["se"], "helps": helps}
    return out


def pick_best(results: dict[str, dict[str, Any]], order: list[str], metric: str) -> str:
    """The algorithm to activate: the best ``metric``; a blend only with ``blend_check["helps"]``."""

    def score(name: str) -> float | None:
        value = (results.get(name) or {}).get(metric)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    scored = [(score(a), a) for a in order if score(a) is not None]
    eligible = [(v, a) for v, a in scored if a not in BLENDS or (results[a].get("blend_check") or {}).get("helps")]
    pool = eligible or scored
    if not pool:
        return order[0]
    return max(pool, key=lambda pair: pair[0])[1]  # type: ignore[arg-type, return-value]


def tunes_blend(algorithms: list[str], params: dict[str, Any]) -> bool:
    """Whether the run's ``hybrid`` is a blend tuned on its holdout: ``hybrid`` without explicit
    params, with at least two single algorithms to blend."""
    singles = [a for a in algorithms if a not in BLENDS]
    return "hybrid" in algorithms and not (params or {}).get("hybrid") and len(singles) >= 2


def tune_holdout_blend(
    models: dict[str, Recommender],
    scores: dict[str, Any],
    split: Split,
    *,
    time_budget: float = BLEND_BUDGET_SECONDS,
    seed: int = 0,
) -> dict[str, Any] | None:
    """The bench's blend search and rule (``recsys.blend.choose_blend``) on the run's holdout, for
    ``models`` fitted on ``split.train``; ``scores``: each one's holdout metric (ranks the members).

    Returns the record kept in the run's metrics (``members``, ``weights``, ``normalization``, the
    paired ``gain`` and ``se`` against ``versus``, ``helps``, ``why``, the blend's ``interval`` on the
    holdout users it was tuned on, the candidates tried, ``seconds``), or None with fewer than two
    scored models.
    """

    def finite(name: str) -> bool:
        value = scores.get(name)
        return isinstance(value, (int, float)) and math.isfinite(value)

    ranked = sorted((a for a in models if a not in BLENDS and finite(a)), key=lambda a: -float(scores[a]))
    found = choose_blend(models, ranked, split, time_budget=time_budget, seed=seed)
    if found is None:
        return None
    verdict = "beats" if found["helps"] else "does not beat"
    why = (
        f"the best blend ({' + '.join(found['labels'])}) {verdict} {found['single']} alone by more than one SE "
        f"of the paired per-user difference on the holdout (gain {found['gain']:+.4f}, SE {found['se']:.4f})"
    )
    return {
        "members": found["labels"],
        "weights": dict(zip(found["labels"], (float(w) for w in found["weights"]), strict=True)),
        "normalization": found["normalization"],
        "validation": split.info.get("validation", split.protocol),
        "score": found["score"],
        "interval": rsel.interval(found["per_user"], seed=seed),
        "versus": found["single"],
        "single_score": found["single_score"],
        "gain": found["gain"],
        "se": found["se"],
        "helps": found["helps"],
        "why": why,
        "candidates": found["candidates"],
        "n_users": found["n_users"],
        "seconds": found["seconds"],
        "budget_seconds": time_budget,
        "stopped_by_budget": found["stopped_by_budget"],
    }


def blend_model(models: dict[str, Recommender], record: dict[str, Any]) -> Hybrid:
    """The tuned blend as a plain ``Hybrid`` over already-fitted ``models`` (no refit, no cold or
    content switching: exactly what was scored)."""
    return Hybrid.from_models(
        {name: models[name] for name in record["members"]},
        weights=record["weights"],
        normalization=record["normalization"],
        cold_model="",
        content_model="",
    )


def evaluate_holdout_blend(
    on_holdout: dict[str, Recommender],
    on_all: dict[str, Recommender],
    results: dict[str, dict[str, Any]],
    split: Split,
    users: np.ndarray,
    metrics: tuple[str, ...],
    primary: str,
) -> tuple[dict[str, Any], Recommender | None]:
    """The run's ``hybrid`` result and model: the blend tuned on the holdout (:func:`tune_holdout_blend`),
    scored on the same holdout users as the single models; the model over the models fitted on all
    the data only when the blend helps (else None: the single model is activated, nothing is fitted)."""
    scores = {name: (results.get(name) or {}).get(primary) for name in on_holdout}
    record = tune_holdout_blend(on_holdout, scores, split)
    if record is None:
        return {"blend": {"skipped": "fewer than two single models scored on the holdout"}}, None
    result = evaluate(blend_model(on_holdout, record), split.train, split.test, ks=(10,), diversity=False, users=users)
    out: dict[str, Any] = {k: result.metrics.get(k) for k in metrics}
    per_user = np.asarray(result.per_user[primary], dtype=np.float64)
    out.update(
        n_test_users=int(len(result.users)),
        interval=rsel.interval(per_user),
        validation=record["validation"],
        blend=record,
        blend_check={k: record[k] for k in ("versus", "gain", "se", "helps")},
    )
    return out, (blend_model(on_all, record) if record["helps"] else None)
