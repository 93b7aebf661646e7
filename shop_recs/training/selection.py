"""The training pipeline's holdout and model choice: the same validation and selection rules the
accuracy bench uses (``shop_recs.recsys.splits.deployment_split``, ``shop_recs.recsys.selection``),
so a store gets what the bench measured.

* Holdout: unless the run asks for a protocol, a global temporal cut when the store's events have
  timestamps and enough customers remain to score (the model trained today serves tomorrow), else
  leave-last-one-out; ``info["validation"]`` records which, and why.
* Choice: the best primary metric, except that a blend (``hybrid``) must beat the best single model
  by more than one bootstrap standard error of the per-user difference on the holdout; otherwise the
  single model is taken (a blend that only ties adds cost and risk).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shop_recs.recsys import selection as rsel
from shop_recs.recsys.data import Interactions
from shop_recs.recsys.splits import Split, deployment_split, make_split

#: Algorithms that blend others: chosen only when the holdout says the blend helps.
BLENDS = frozenset({"hybrid"})


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
