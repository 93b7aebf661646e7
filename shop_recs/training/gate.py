"""The activation gate: whether a freshly trained candidate may replace the live model on its own.

Two kinds of candidate are judged differently, because they answer different questions:

* **A refresh** (the live configuration, retrained on newer data) is how a model stays current. It
  goes live unless it is clearly broken: its holdout metric more than ``max_drop`` below the live
  version's, or its catalog coverage down by more than ``max_coverage_loss``.
* **A switch** (another algorithm or other hyperparameters) changes what every shopper sees, so a
  tie is no reason to do it. Both configurations are scored on the *same* held-out customers and
  the switch needs evidence: the paired bootstrap interval of the per-customer difference in the
  primary metric lies above 0, the relative lift is at least ``min_lift``, and coverage does not
  fall by more than ``max_coverage_loss``. The 0.2828 vs 0.2826 NDCG@10 edge that once swapped a
  79%-coverage hybrid for a 60%-coverage EASE fails both tests.

A refused candidate stays a version a merchant can activate by hand; the verdict says why.
:func:`decide` is pure (plain numbers in, a verdict out); :func:`paired_comparison` computes the
paired figures from two models fitted on the same split.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from shop_recs.recsys import metrics as mx
from shop_recs.recsys.base import Recommender
from shop_recs.recsys.evaluate import evaluate

#: Defaults when a store has no settings row (the Evaluation page edits them).
DEFAULT_MAX_DROP = 0.2
DEFAULT_MIN_LIFT = 0.0
DEFAULT_MAX_COVERAGE_LOSS = 0.1
#: Resamples of the paired bootstrap: the interval's ends move by < 0.001 NDCG between seeds at 1,000.
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class GateConfig:
    """A run's gate settings (``params["_gate"]``); ``force`` skips it, ``activate=False`` only judges."""

    max_drop: float = DEFAULT_MAX_DROP
    min_lift: float = DEFAULT_MIN_LIFT
    max_coverage_loss: float = DEFAULT_MAX_COVERAGE_LOSS
    force: bool = False
    activate: bool = True

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> GateConfig:
        raw = dict(raw or {})
        values: dict[str, Any] = {}
        for name in ("max_drop", "min_lift", "max_coverage_loss"):
            if raw.get(name) is None:
                continue
            value = float(raw[name])
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"gate setting {name} must be between 0 and 1, got {raw[name]!r}")
            values[name] = value
        return cls(**values, force=bool(raw.get("force", False)), activate=bool(raw.get("activate", True)))


@dataclass(frozen=True)
class Paired:
    """Candidate and live configuration scored on the same held-out customers."""

    metric: str
    n_users: int
    candidate_mean: float
    active_mean: float
    diff_mean: float
    diff_low: float
    diff_high: float
    candidate_coverage: float
    active_coverage: float


@dataclass(frozen=True)
class Candidate:
    """What the gate needs to know about one version (the candidate or the live one)."""

    version_id: int | None
    algorithm: str
    params: dict[str, Any]
    metric: float | None
    coverage: float | None


def same_configuration(a: Candidate, b: Candidate) -> bool:
    return a.algorithm == b.algorithm and _canonical(a.params) == _canonical(b.params)


def decide(
    candidate: Candidate, active: Candidate | None, config: GateConfig, paired: Paired | None, metric: str
) -> dict[str, Any]:
    """The verdict: ``passed``, ``kind`` (refresh/switch/first/forced), ``reason`` and every figure used."""
    verdict: dict[str, Any] = {
        "metric": metric,
        "candidate_version": candidate.version_id,
        "candidate": candidate.metric,
        "candidate_coverage": candidate.coverage,
        "max_drop": config.max_drop,
        "min_lift": config.min_lift,
        "max_coverage_loss": config.max_coverage_loss,
    }
    if config.force:
        return {**verdict, "kind": "forced", "passed": True, "reason": "forced"}
    if active is None:
        return {**verdict, "kind": "first", "passed": True, "reason": "no active version"}
    verdict.update(active_version=active.version_id, active=active.metric, active_coverage=active.coverage)
    if same_configuration(candidate, active):
        return {**verdict, "kind": "refresh", **_judge_refresh(candidate, active, config, metric)}
    verdict["kind"] = "switch"
    if paired is None:
        return {
            **verdict,
            "passed": False,
            "reason": "a different configuration needs a holdout to compare on, and there was none",
        }
    verdict["paired"] = asdict(paired)
    return {**verdict, **_judge_switch(paired, config, metric)}


def _judge_refresh(candidate: Candidate, active: Candidate, config: GateConfig, metric: str) -> dict[str, Any]:
    current, cand = active.metric, candidate.metric
    if not _finite(current):
        return {"passed": True, "reason": "the active version has no holdout metric"}
    if not _finite(cand):
        return {"passed": False, "reason": "the candidate has no holdout metric to compare"}
    floor = current * (1.0 - config.max_drop)
    if cand + 1e-12 < floor:
        return {
            "passed": False,
            "floor": floor,
            "reason": f"{metric} {cand:.4f} is more than {config.max_drop:.0%} below the active {current:.4f}",
        }
    lost = _coverage_loss(candidate.coverage, active.coverage)
    if lost is not None and lost > config.max_coverage_loss + 1e-12:
        return {
            "passed": False,
            "floor": floor,
            "reason": f"catalog coverage {candidate.coverage:.1%} lost {lost:.0%} of the active {active.coverage:.1%}",
        }
    return {"passed": True, "floor": floor, "reason": f"refresh of the live configuration: {metric} {cand:.4f}"}


def _judge_switch(paired: Paired, config: GateConfig, metric: str) -> dict[str, Any]:
    figures = (
        f"{metric} {paired.candidate_mean:.4f} vs {paired.active_mean:.4f} on the same {paired.n_users} customers, "
        f"difference {paired.diff_mean:+.4f} (95% interval {paired.diff_low:+.4f} to {paired.diff_high:+.4f})"
    )
    if not paired.diff_low > 0.0:
        return {"passed": False, "reason": f"no evidence of improvement: {figures}"}
    lift = paired.diff_mean / paired.active_mean if paired.active_mean > 0 else math.inf
    if lift + 1e-12 < config.min_lift:
        return {"passed": False, "lift": lift, "reason": f"lift {lift:.1%} is below the minimum {config.min_lift:.1%}"}
    lost = _coverage_loss(paired.candidate_coverage, paired.active_coverage)
    if lost is not None and lost > config.max_coverage_loss + 1e-12:
        return {
            "passed": False,
            "lift": lift,
            "reason": (
                f"better {metric}, but catalog coverage {paired.candidate_coverage:.1%} lost {lost:.0%} "
                f"of the active {paired.active_coverage:.1%} (at most {config.max_coverage_loss:.0%} allowed)"
            ),
        }
    return {"passed": True, "lift": lift, "reason": f"better: {figures}"}


def paired_comparison(
    candidate: Recommender,
    active: Recommender,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    users: np.ndarray,
    metric: str,
    k: int = 10,
) -> Paired | None:
    """Both models (fitted on ``train``) scored on the same ``users``; None when nobody is held out."""
    if len(users) == 0:
        return None
    cand = evaluate(candidate, train, test, ks=(k,), diversity=False, users=users)
    live = evaluate(active, train, test, ks=(k,), diversity=False, users=users)
    a, b = np.asarray(cand.per_user[metric], dtype=np.float64), np.asarray(live.per_user[metric], dtype=np.float64)
    diff = a - b
    keep = ~np.isnan(diff)
    if not keep.any():
        return None
    low, high = mx.bootstrap_ci(diff[keep], n_resamples=BOOTSTRAP_RESAMPLES, confidence=CONFIDENCE, seed=0)
    coverage = f"coverage@{k}"
    return Paired(
        metric=metric,
        n_users=int(keep.sum()),
        candidate_mean=float(a[keep].mean()),
        active_mean=float(b[keep].mean()),
        diff_mean=float(diff[keep].mean()),
        diff_low=low,
        diff_high=high,
        candidate_coverage=float(cand.metrics.get(coverage, float("nan"))),
        active_coverage=float(live.metrics.get(coverage, float("nan"))),
    )


def _coverage_loss(candidate: float | None, active: float | None) -> float | None:
    """The share of the live coverage the candidate loses (0 when it covers as much or more)."""
    if not (_finite(candidate) and _finite(active)) or active <= 0:
        return None
    return max(0.0, (active - candidate) / active)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _canonical(params: dict[str, Any] | None) -> dict[str, Any]:
    """Parameters as JSON stores them (tuples become lists), so a reloaded version compares equal."""
    return {str(k): list(v) if isinstance(v, tuple) else v for k, v in sorted((params or {}).items())}
