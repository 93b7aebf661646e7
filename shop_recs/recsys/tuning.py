"""Hyperparameter search on a validation split carved from training data only.

:func:`tune` takes a VALIDATION :class:`~shop_recs.recsys.splits.Split` (build it with
:func:`~shop_recs.recsys.splits.validation_split` from the outer split's train part); it has no
parameter through which test data could reach it. Each trial fits on ``validation.train`` and
scores ``metric`` on ``validation.test``. Grid search runs every configuration when the grid has
at most ``n_iter`` of them, otherwise a seeded random sample of ``n_iter``; the constructor defaults
are always tried first, so tuning can never do worse (on validation) than not tuning.

The configuration is chosen by the one-standard-error rule (:mod:`~shop_recs.recsys.selection`):
among the trials within one per-user-bootstrap SE of the best, the defaults if they qualify, else
the most strongly regularised. The result records which validation was used, the rule's record and
the chosen configuration's +-1 SE interval.
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
    #: configurations not tried: past a clear loser on their regularisation path
    skipped: list[dict[str, Any]] = field(default_factory=list)
    #: which validation the scores come from (``temporal``, ``random``, ...) and why
    validation: dict[str, Any] = field(default_factory=dict)
    #: how the configuration was chosen (one-SE rule record) and its +-1 SE interval on validation
    selection: dict[str, Any] = field(default_factory=dict)
    best_interval: dict[str, float] = field(default_factory=dict)
    #: the chosen trial's validation metric per user (not serialised), for blends and comparisons
    best_per_user: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "metric": self.metric,
            "best_params": self.best_params,
            "best_score": self.best_score,
            "n_trials": self.n_trials,
            "seconds": self.seconds,
            "stopped_by_budget": self.stopped_by_budget,
            "skipped": self.skipped,
            "validation": self.validation,
            "selection": self.selection,
            "best_interval": self.best_interval,
            "leaderboard": self.leaderboard,
        }


def candidate_configs(
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]] | None,
    n_iter: int | None = 20,
    seed: int = 0,
    search: str = "auto",
    include_defaults: bool = True,
    defaults: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The configurations to try, in order: ``{}`` (defaults) first, then the grid or a sample of it.

    With ``include_defaults`` and the model's ``defaults`` given, a grid point that only restates
    default values is left out: it is the ``{}`` trial again, and at 16k items one EASE fit is 80 s.
    """
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
            if include_defaults and defaults is not None and _restates_defaults(cfg, defaults):
                continue
            if cfg not in configs:
                configs.append(cfg)
    return configs or [{}]


def _restates_defaults(cfg: Mapping[str, Any], defaults: Mapping[str, Any]) -> bool:
    """True when every key of ``cfg`` is a default parameter set to its default value."""
    return all(key in defaults and _plain(defaults[key]) == value for key, value in cfg.items())


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


# Long on purpose: one trial loop with the budget, the shared cache and the selection rule in one place.
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
    selection: str = "one_se",
) -> TuningResult:
    """Search ``grid`` for ``algorithm`` (a registry name or a factory ``f(**params) -> Recommender``).

    ``grid`` defaults to ``registry.DEFAULT_GRIDS[algorithm]``. ``time_budget`` (seconds): no new
    trial starts once the time spent plus the longest trial so far would pass 110% of it (the first
    always runs), and a model with its own ``time_budget`` (SLIM) gets at most what is left.
    Configurations past a clear loser on their regularisation path are skipped
    (:class:`~shop_recs.recsys.selection.ClearLoserPaths`) and listed in ``skipped``.
    ``selection="one_se"`` (default) applies
    :func:`~shop_recs.recsys.selection.one_standard_error` over a per-user bootstrap of the
    validation users; ``"max"`` takes the highest score (ties keep the earlier trial). A trial that
    raises is recorded with its error and score ``-inf``. Trials share a ``cache`` dict passed to
    ``fit`` (EASE reuses its Gram matrix across l2 values through it).
    """
    from . import selection as sel  # why: selection is imported lazily like the registry below

    if selection not in ("one_se", "max"):
        raise ValueError(f"selection must be 'one_se' or 'max', got {selection!r}")
    defaults: dict[str, Any] = {}
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
    try:
        defaults = factory().get_params()
    except Exception:  # noqa: BLE001 - a factory without defaults: the rule then uses the grid values only
        defaults = {}
    k = int(metric.split("@")[1]) if "@" in metric else 10
    configs = candidate_configs(
        grid, n_iter=n_iter, seed=seed, search=search, include_defaults=include_defaults, defaults=defaults
    )
    train = sp.csr_matrix(validation.train, dtype=np.float32)
    users = validation.test_users
    cache: dict[str, Any] = {}
    kwargs = dict(fit_kwargs or {}, cache=cache)
    start = time.perf_counter()
    board: list[dict[str, Any]] = []
    per_user: list[np.ndarray] = []
    stopped = False
    losers = sel.ClearLoserPaths(name, defaults)
    skipped: list[dict[str, Any]] = []
    best_mean, best_se = -np.inf, 0.0
    for i, params in enumerate(configs):
        spent = time.perf_counter() - start
        longest = max((row["seconds"] for row in board), default=0.0)
        if time_budget is not None and i > 0 and spent + longest > 1.1 * time_budget:
            stopped = True
            break
        if losers.skip(params):
            skipped.append(params)
            continue
        row: dict[str, Any] = {"params": params}
        t0 = time.perf_counter()
        values = np.zeros(len(users))
        try:
            model = factory(**params)
            _cap_model_budget(model, None if time_budget is None else 1.1 * time_budget - spent)
            model.fit(train, **accepted_fit_kwargs(model, kwargs))
            row["fit_seconds"] = time.perf_counter() - t0
            res = evaluate(model, train, validation.test, ks=[k], users=users, diversity=False)
            row["score"] = float(res.metrics[metric])
            values = np.asarray(res.per_user[metric], dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - a broken config must not end the search
            row["score"] = float("-inf")
            row["error"] = f"{type(exc).__name__}: {exc}"
        row["seconds"] = time.perf_counter() - t0
        board.append(row)
        per_user.append(values if np.isfinite(row["score"]) else np.full(len(users), -np.inf))
        if np.isfinite(row["score"]) and row["score"] > best_mean:
            best_mean, best_se = row["score"], sel.bootstrap_se(values, seed=seed)
        losers.observe(params, row["score"], best_mean, best_se)
        if progress is not None:
            progress(row)
    ranked = sorted(range(len(board)), key=lambda j: (-_finite(board[j]["score"]), j))
    leaderboard = [board[j] for j in ranked]
    record: dict[str, Any] = {"rule": "max"}
    chosen = ranked[0]
    ok = [j for j in range(len(board)) if np.isfinite(board[j]["score"])]
    if selection == "one_se" and len(ok) > 1:
        trials = [{"params": board[j]["params"], "per_user": per_user[j]} for j in ok]
        pick, record = sel.one_standard_error(name, trials, defaults, seed=seed)
        chosen = ok[pick]
    best_values = per_user[chosen] if ok else None
    return TuningResult(
        algorithm=name,
        metric=metric,
        best_params=dict(board[chosen]["params"]),
        best_score=float(board[chosen]["score"]),
        leaderboard=leaderboard,
        n_trials=len(board),
        seconds=time.perf_counter() - start,
        stopped_by_budget=stopped,
        skipped=skipped,
        validation={
            "protocol": validation.protocol,
            "reason": validation.info.get("validation_reason", ""),
            "n_users": int(len(users)),
        },
        selection=record,
        best_interval=sel.interval(best_values, seed=seed) if best_values is not None else {},
        best_per_user=best_values,
    )


def _cap_model_budget(model: Recommender, remaining: float | None) -> None:
    """A model with its own ``time_budget`` (SLIM) gets at most what is left of the tuning budget, so
    one slow trial cannot overrun the per-algorithm budget."""
    if remaining is None or "time_budget" not in model.get_params():
        return
    own = model.get_params()["time_budget"]
    model.set_params(time_budget=max(0.0, remaining if own is None else min(float(own), remaining)))


def _finite(x: float) -> float:
    return x if np.isfinite(x) else -np.inf
