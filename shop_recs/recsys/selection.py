"""Model selection that generalises: per-user bootstrap errors, the one-standard-error rule, and
"a blend only when validation says it helps".

Validation scores of neighbouring configurations differ by less than their noise; picking the raw
maximum then rewards whatever fits the validation users' quirks (on the UCI retail split, EASE with
the weakest l2). The one-standard-error rule (Hastie, Tibshirani & Friedman, ESL 7.10) instead takes,
among the configurations within one standard error of the best, the defaults if they qualify, else
the most strongly regularised one. The standard error is the spread of the mean over a per-user
bootstrap of the validation users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Per algorithm, the hyperparameters that make a model simpler/more regularised, with the sign that
#: means "stronger": +1 larger is stronger (l2, regularization, shrink), -1 smaller is (factors, K).
REGULARISATION: dict[str, tuple[tuple[str, int], ...]] = {
    "ease": (("l2", +1),),
    "slim": (("alpha", +1),),
    "als": (("regularization", +1), ("factors", -1)),
    "bpr": (("regularization", +1), ("factors", -1)),
    "pure_svd": (("factors", -1),),
    "item_knn": (("shrink", +1), ("K", -1)),
    "user_knn": (("shrink", +1), ("K", -1)),
    "rp3beta": (("K", -1),),
    "implicit_als": (("regularization", +1), ("factors", -1)),
    "implicit_bpr": (("regularization", +1), ("factors", -1)),
    "implicit_cosine": (("K", -1),),
}

N_RESAMPLES = 200


def bootstrap_se(values: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0) -> float:
    """Standard error of the mean of per-user ``values`` from a per-user bootstrap (NaNs dropped)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for r in range(n_resamples):  # a loop, not one (n_resamples, n) index array: memory stays O(n)
        means[r] = x[rng.integers(0, len(x), size=len(x))].mean()
    return float(means.std(ddof=1))


def interval(values: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict[str, float]:
    """``{"mean", "se", "lo", "hi"}``: the mean of per-user values and its +-1 SE bootstrap interval."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(np.nanmean(x)) if x.size and not np.isnan(x).all() else float("nan")
    se = bootstrap_se(x, n_resamples, seed)
    return {"mean": mean, "se": se, "lo": mean - se, "hi": mean + se}


def regularisation_key(algorithm: str, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[float, ...]:
    """A sortable key, larger = more strongly regularised (unknown algorithms: all equal)."""
    key = []
    for name, sign in REGULARISATION.get(algorithm, ()):
        value = params.get(name, defaults.get(name))
        key.append(sign * float(value) if isinstance(value, (int, float)) else 0.0)
    return tuple(key)


def one_standard_error(
    algorithm: str,
    trials: Sequence[Mapping[str, Any]],
    defaults: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> tuple[int, dict[str, Any]]:
    """Index of the trial the one-standard-error rule picks, and a record of why.

    Each trial has ``params`` and ``per_user`` (the validation metric per user, same users for all).
    Eligible: mean >= best mean - SE(best). Among them: the defaults (``params == {}``) if eligible,
    else the most regularised (:data:`REGULARISATION`), ties to the higher mean, then the earlier trial.
    """
    defaults = dict(defaults or {})
    means = [float(np.nanmean(t["per_user"])) if len(t["per_user"]) else float("-inf") for t in trials]
    means = [m if np.isfinite(m) else float("-inf") for m in means]
    if not trials:
        raise ValueError("no trials to select from")
    best = int(np.argmax(means))
    se = bootstrap_se(np.asarray(trials[best]["per_user"]), seed=seed)
    threshold = means[best] - se
    eligible = [i for i, m in enumerate(means) if m >= threshold and np.isfinite(m)]
    default_ix = [i for i in eligible if not trials[i]["params"]]
    if default_ix:
        chosen, why = default_ix[0], "defaults within one SE of the best"
    else:
        chosen = max(
            eligible,
            key=lambda i: (regularisation_key(algorithm, {**defaults, **trials[i]["params"]}, defaults), means[i], -i),
        )
        why = "best" if chosen == best else "most regularised within one SE of the best"
    record = {
        "rule": "one_standard_error",
        "best_index": best,
        "best_mean": means[best],
        "se": se,
        "threshold": threshold,
        "n_eligible": len(eligible),
        "why": why,
    }
    return chosen, record


def blend_helps(blend: np.ndarray, single: np.ndarray, seed: int = 0) -> tuple[bool, dict[str, float]]:
    """Whether the blend beats the best single model on validation by more than one SE of the paired
    per-user difference (a blend that merely ties is not worth its cost and risk)."""
    diff = np.asarray(blend, dtype=np.float64) - np.asarray(single, dtype=np.float64)
    gain = float(np.nanmean(diff)) if diff.size else 0.0
    se = bootstrap_se(diff, seed=seed)
    return bool(gain > se and gain > 0), {"gain": gain, "se": se}


class ClearLoserPaths:
    """Early stopping for a grid: once a configuration is a clear loser (more than ``n_se`` SEs below
    the best so far) AND worse than the previous, less regularised point of its path (the same other
    parameters), the stronger points of that path are skipped. Validation curves over a regulariser
    such as EASE's l2 rise and then fall, so past a clearly losing fall there is nothing to win.
    The path parameter is the first of :data:`REGULARISATION` for the algorithm (none: never skips).
    """

    def __init__(self, algorithm: str, defaults: Mapping[str, Any] | None = None, n_se: float = 2.0) -> None:
        spec = REGULARISATION.get(algorithm, ())
        self.param, self.sign = spec[0] if spec else (None, 0)
        self.defaults = dict(defaults or {})
        self.n_se = n_se
        self._last: dict[tuple[Any, ...], tuple[float, float]] = {}
        self._dead: dict[tuple[Any, ...], float] = {}

    def _locate(self, params: Mapping[str, Any]) -> tuple[tuple[Any, ...], float] | None:
        full = {**self.defaults, **params}
        value = full.get(self.param) if self.param else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        path = tuple(sorted((k, repr(v)) for k, v in full.items() if k != self.param))
        return path, self.sign * float(value)

    def skip(self, params: Mapping[str, Any]) -> bool:
        """Whether ``params`` lies beyond a clear loser on its path."""
        where = self._locate(params)
        return where is not None and where[0] in self._dead and where[1] > self._dead[where[0]]

    def observe(self, params: Mapping[str, Any], score: float, best_mean: float, best_se: float) -> None:
        """Record a finished trial (``best_*``: the best trial so far, this one included)."""
        where = self._locate(params)
        if where is None or not np.isfinite(score):
            return
        path, strength = where
        prev = self._last.get(path)
        if prev is not None and strength > prev[0] and score < prev[1] and score < best_mean - self.n_se * best_se:
            self._dead[path] = strength
        if prev is None or strength > prev[0]:
            self._last[path] = (strength, score)
