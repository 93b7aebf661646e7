"""What a store's training uses: the algorithms and hyperparameters, and the activation gate's settings.

Analytics writes these (promoting a tuning job, the evaluation settings form); training reads them
when a run is started by hand or by the schedule. Both rows live here so training never has to
reach up into analytics.
"""

from __future__ import annotations

from typing import Any

from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.gate import DEFAULT_MAX_COVERAGE_LOSS, DEFAULT_MAX_DROP, DEFAULT_MIN_LIFT
from shop_recs.training.models import EvaluationSettings, StoreTrainingConfig
from shop_recs.training.services import DEFAULT_ALGORITHMS


def evaluation_settings(store: Store) -> EvaluationSettings:
    """The store's settings row (an unsaved default when it has none)."""
    with store_scope(store):
        row = EvaluationSettings.objects.filter(store=store).first()
    return row or EvaluationSettings(
        store=store,
        max_metric_drop=DEFAULT_MAX_DROP,
        min_lift=DEFAULT_MIN_LIFT,
        max_coverage_loss=DEFAULT_MAX_COVERAGE_LOSS,
    )


def update_settings(
    store: Store,
    max_metric_drop: float,
    min_lift: float | None = None,
    max_coverage_loss: float | None = None,
) -> EvaluationSettings:
    """Save the store's gate settings (each a fraction in [0, 1]; ``None`` keeps the current value)."""
    values = {"max_metric_drop": max_metric_drop, "min_lift": min_lift, "max_coverage_loss": max_coverage_loss}
    values = {name: float(value) for name, value in values.items() if value is not None}
    for name, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    with store_scope(store):
        row, _ = EvaluationSettings.objects.update_or_create(store=store, defaults=values)
    return row


def store_gate_config(store: Store) -> dict[str, Any]:
    """The ``params["_gate"]`` a training run of ``store`` uses by default (see training/gate.py)."""
    row = evaluation_settings(store)
    return {
        "max_drop": float(row.max_metric_drop),
        "min_lift": float(row.min_lift),
        "max_coverage_loss": float(row.max_coverage_loss),
    }


def training_config(store: Store) -> tuple[list[str], dict[str, Any]]:
    """``(algorithms, params)`` for ``training.services.start_training`` of ``store``.

    The promoted configuration when there is one, else training's defaults; ``params["_gate"]``
    always carries the store's :func:`store_gate_config` unless the configuration sets its own.
    """
    with store_scope(store):
        row = StoreTrainingConfig.objects.filter(store=store).first()
    algorithms = list(row.algorithms) if row and row.algorithms else list(DEFAULT_ALGORITHMS)
    params = dict(row.params) if row else {}
    params.setdefault("_gate", store_gate_config(store))
    return algorithms, params
