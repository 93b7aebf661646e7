"""Hyperparameter search on a validation split carved from training data only.

:func:`tune` takes a VALIDATION :class:`~shop_recs.recsys.splits.Split` (build it with
:func:`~shop_recs.recsys.splits.validation_split` from the outer split's train part); it has no
parameter through which test data could reach it. Each trial fits on ``validation.train`` and
scores ``metric`` on ``validation.test``. Grid search runs every configuration when the grid has
at most ``n_iter`` of them, otherwise a seeded random sample of ``n_iter``; the constructor defaults
are always tried first, so tuning can never do worse (on validation) than not tuning.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import ParameterGrid, ParameterSampler

from .base import Recommender
from .evaluate import evaluate
from .splits import Split

Factory = Callable[..., Recommender]


@dataclass
class TuningResult:
    """Best configuration, its validation score and every trial (``leaderboard``, best first)."""

    algorithm: str
    metric: str
    best_params: dict[str, Any]
    best_score: float
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    n_trials: int = 0
    seconds: float = 0.0
    stopped_by_budget: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "metric": self.metric,
            "best_params": self.best_params,
            "best_score": self.best_score,
            "n_trials": self.n_trials,
            "seconds": self.seconds,
            "stopped_by_budget": self.stopped_by_budget,
            "leaderboard": self.leaderboard,
        }


def candidate_configs(
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]] | None,
    n_iter: int | None = 20,
    seed: int = 0,
    search: str = "auto",
    include_defaults: bool = True,
) -> list[dict[str, Any]]:
    """The configurations to try, in order: ``{}`` (defaults) first, then the grid or a sample of it."""
    configs: list[dict[str, Any]] = [{}] if include_defaults else []
    if grid:
        full = ParameterGrid(grid)
        if search == "grid" or (search == "auto" and (n_iter is None or len(full) <= n_iter)):
            sampled = list(full)
        elif search in ("random", "auto"):
            sampled = list(ParameterSampler(grid, n_iter=min(n_iter or len(full), len(full)), random_state=seed))
        else:
            raise ValueError(f"search must be 'auto', 'grid' or 'random', got {search!r}")
        for cfg in sampled:
            cfg = {k: _plain(v) for k, v in cfg.items()}
            if cfg not in configs:
                configs.append(cfg)
    return configs or [{}]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def accepted_fit_kwargs(model: Recommender, fit_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The subset of ``fit_kwargs`` the model's ``fit`` signature accepts (all of them with ``**kwargs``)."""
    if not fit_kwargs:
        return {}
    params = inspect.signature(model.fit).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {k: v for k, v in fit_kwargs.items() if v is not None}
    return {k: v for k, v in fit_kwargs.items() if k in params and v is not None}


def tune(
    algorithm: str | Factory,
    validation: Split,
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    metric: str = "ndcg@10",
    n_iter: int | None = 20,
    search: str = "auto",
    seed: int = 0,
    time_budget: float | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
    include_defaults: bool = True,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> TuningResult:
    """Search ``grid`` for ``algorithm`` (a registry name or a factory ``f(**params) -> Recommender``).

    ``grid`` defaults to ``registry.DEFAULT_GRIDS[algorithm]``. ``time_budget`` (seconds): no new
    trial starts after it is spent (the first always runs). Ties keep the earlier trial, so the
    result is deterministic for a given ``seed``. A trial that raises is recorded with its error and
    score ``-inf``.
    """
    if isinstance(algorithm, str):
        from . import registry  # late import: the registry is optional for factory callers

        name = algorithm

        def factory(**params: Any) -> Recommender:
            return registry.make(name, **params)

        if grid is None:
            grid = registry.DEFAULT_GRIDS.get(name, {})
    else:
        factory = algorithm
        name = getattr(algorithm, "name", getattr(algorithm, "__name__", "custom"))
    k = int(metric.split("@")[1]) if "@" in metric else 10
    configs = candidate_configs(grid, n_iter=n_iter, seed=seed, search=search, include_defaults=include_defaults)
    train = sp.csr_matrix(validation.train, dtype=np.float32)
    users = validation.test_users
    start = time.perf_counter()
    board: list[dict[str, Any]] = []
    stopped = False
    for i, params in enumerate(configs):
        if time_budget is not None and i > 0 and time.perf_counter() - start >= time_budget:
            stopped = True
            break
        row: dict[str, Any] = {"params": params}
        t0 = time.perf_counter()
        try:
            model = factory(**params)
            model.fit(train, **accepted_fit_kwargs(model, fit_kwargs))
            row["fit_seconds"] = time.perf_counter() - t0
            res = evaluate(model, train, validation.test, ks=[k], users=users, diversity=False)
            row["score"] = float(res.metrics[metric])
        except Exception as exc:  # noqa: BLE001 - a broken config must not end the search
            row["score"] = float("-inf")
            row["error"] = f"{type(exc).__name__}: {exc}"
        row["seconds"] = time.perf_counter() - t0
        board.append(row)
        if progress is not None:
            progress(row)
    ranked = sorted(range(len(board)), key=lambda j: (-_finite(board[j]["score"]), j))
    leaderboard = [board[j] for j in ranked]
    best = leaderboard[0]
    return TuningResult(
        algorithm=name,
        metric=metric,
        best_params=dict(best["params"]),
        best_score=float(best["score"]),
        leaderboard=leaderboard,
        n_trials=len(board),
        seconds=time.perf_counter() - start,
        stopped_by_budget=stopped,
    )


def _finite(x: float) -> float:
    return x if np.isfinite(x) else -np.inf
