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

ALGORITHMS: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (MostPopular, Trending, ItemKNN, UserKNN, RP3beta, EASE, ALS, BPR, PureSVD, ContentBased, Hybrid)
}

#: Small search spaces (4-12 combinations) that have generalised across public datasets.
DEFAULT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "popularity": {"count": ["users", "weight"]},
    "trending": {"half_life_days": [1, 3, 7, 14, 30]},
    "item_knn": {"K": [50, 100, 200], "shrink": [0, 10, 50]},
    "user_knn": {"K": [50, 100, 200], "shrink": [0, 10]},
    "rp3beta": {"alpha": [0.5, 0.8, 1.0], "beta": [0.2, 0.35, 0.5], "K": [100, 200]},
    "ease": {"l2": [50, 200, 500, 1000, 3000]},
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
