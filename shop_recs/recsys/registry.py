"""Name -> class registry, construction by name, loading any saved model, and tuning grids."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from .base import Recommender, read_meta
from .content import ContentBased
from .ease import EASE
from .hybrid import Hybrid
from .knn import ItemKNN, UserKNN
from .mf import ALS, BPR, PureSVD
from .popularity import MostPopular, Trending
from .rp3beta import RP3beta
from .slim import SLIM

ALGORITHMS: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (MostPopular, Trending, ItemKNN, UserKNN, RP3beta, EASE, SLIM, ALS, BPR, PureSVD, ContentBased, Hybrid)
}

#: Small search spaces (4-12 combinations) that have generalised across public datasets.
DEFAULT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "popularity": {"count": ["users", "weight"]},
    "trending": {"half_life_days": [1, 3, 7, 14, 30]},
    "item_knn": {"K": [50, 100, 200], "shrink": [0, 10, 50]},
    "user_knn": {"K": [50, 100, 200], "shrink": [0, 10]},
    # alpha above 1 with row-normalised similarities and a small K won on temporal splits (ML-1M).
    # The defaults (alpha=1, beta=0.5, K=200, raw rows) are always tried besides these 16.
    "rp3beta": {"alpha": [0.5, 1.0, 1.5, 2.5], "beta": [0.3, 0.5], "K": [50, 200], "normalize_similarity": [True]},
    # "debias" sorts before "l2": the grid then walks l2 fastest, so EASE's Gram cache is reused.
    "ease": {"debias": [0.0, 0.2], "l2": [50, 100, 250, 500, 1000, 2000]},
    # time_budget keeps one SLIM fit near its share of the tuning budget (popular items first).
    "slim": {"alpha": [1e-4, 1e-3, 1e-2], "l1_ratio": [0.01, 0.1], "time_budget": [60.0]},
    "als": {"factors": [64, 128], "regularization": [0.01, 0.1], "alpha": [1.0, 10.0]},
    "bpr": {"factors": [64, 128], "learning_rate": [0.01, 0.05], "regularization": [0.001, 0.01]},
    "pure_svd": {"factors": [32, 64, 128, 256]},
    "content": {"K": [50, 100], "ngram_max": [1, 2], "sublinear_tf": [True, False]},
    "hybrid": {"normalization": ["minmax", "zscore"], "thin_history": [2, 3, 5]},
}


def make(name: str, **params: Any) -> Recommender:
    """A new, unfitted model of the registered algorithm ``name``."""
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(ALGORITHMS))}")
    return cls(**params)


def grid(name: str) -> list[dict[str, Any]]:
    """All parameter combinations of ``DEFAULT_GRIDS[name]`` as a list of dicts."""
    space = DEFAULT_GRIDS[name]
    return [dict(zip(space, values, strict=True)) for values in itertools.product(*space.values())]


def load_model(path: str | Path) -> Recommender:
    """Load any model saved with ``Recommender.save``, dispatching on its stored algorithm name."""
    with np.load(path, allow_pickle=False) as data:
        name = read_meta(data)["algorithm"]
        if name not in ALGORITHMS:
            raise ValueError(f"{path} holds an unknown algorithm {name!r}")
        return ALGORITHMS[name]._from_state(data)
