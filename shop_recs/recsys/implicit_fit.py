"""Fitting one of implicit's CPU models: shared by the factor models (:mod:`.mf`) and the peers (:mod:`.peers`).

implicit is optional at import time: the model class is named as ``"module:ClassName"`` and only
imported when a model is fitted.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import scipy.sparse as sp
from threadpoolctl import threadpool_limits


def fit_implicit(model_path: str, user_items: sp.csr_matrix, params: dict[str, Any]) -> Any:
    """Build ``model_path`` (``"module:ClassName"``) with ``params`` and fit it on ``user_items``.

    implicit's own advice: BLAS threads fight its OpenMP threads, so BLAS is pinned to one thread
    (while constructing too, where implicit checks the BLAS configuration and warns). Its cosine
    model converts an internal COO to CSR and warns about its own call: that warning is silenced.
    """
    module, class_name = model_path.split(":")
    factory = getattr(importlib.import_module(module), class_name)
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        model = factory(**params)
        model.fit(user_items, show_progress=False)
    return model
