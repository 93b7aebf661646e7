"""What a store's training uses: the algorithms and hyperparameters, and the activation gate's settings.

Analytics writes these (promoting a tuning job, the evaluation settings form); training reads them
when a run is started by hand or by the schedule. Both rows live here so training never has to
reach up into analytics.
"""

from __future__ import annotations

from typing import Any

from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.models import EvaluationSettings, StoreTrainingConfig
from shop_recs.training.services import DEFAULT_ALGORITHMS, DEFAULT_GATE_MAX_DROP

#: The gate's default when a store has no :class:`EvaluationSettings` row.
DEFAULT_MAX_DROP = DEFAULT_GATE_MAX_DROP


def evaluation_settings(store: Store) -> EvaluationSettings:
    """The store's settings row (an unsaved default when it has none)."""
    with store_scope(store):
        row = EvaluationSettings.objects.filter(store=store).first()
    return row or EvaluationSettings(store=store, max_metric_drop=DEFAULT_MAX_DROP)


def update_settings(store: Store, max_metric_drop: float) -> EvaluationSettings:
    if not 0.0 <= float(max_metric_drop) <= 1.0:
        raise ValueError("max_metric_drop must be between 0 and 1")
    with store_scope(store):
        row, _ = EvaluationSettings.objects.update_or_create(
            store=store, defaults={"max_metric_drop": float(max_metric_drop)}
        )
    return row


def store_gate_config(store: Store) -> dict[str, Any]:
    """The ``params["_gate"]`` a training run of ``store`` should use by default: ``{"max_drop": x}``."""
    return {"max_drop": float(evaluation_settings(store).max_metric_drop)}


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
