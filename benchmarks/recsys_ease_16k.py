"""EASE tuning time at 16,000 items (issue 13, "Speed and scale"), on a synthetic Amazon-style catalog.

Not a test. Generated locally and seeded (nothing is fetched): 16,000 items whose popularity follows
a power law (Zipf exponent ``--zipf``), grouped in 200 categories; 50,000 customers with a
log-normal number of purchases (about 500,000 in all), 70% of them inside two favourite categories;
timestamps uniform over a year. Split like the retail benchmark: the last 30 days are test, given to
the engine as a given split, so validation is temporal (the last 30 days of train).

Measures: ``tuning.tune("ease", ...)`` over the default grid with a per-algorithm budget (the bench's
rule: start from the defaults, skip clear losers, reuse the Gram matrix across l2, no trial starts
past 110% of the budget), against one plain EASE fit at the default l2 without the shared cache.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/recsys_ease_16k.py --json /tmp/ease16k.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shop_recs.recsys import data as rdata  # noqa: E402
from shop_recs.recsys import registry  # noqa: E402
from shop_recs.recsys import splits as rsplits  # noqa: E402
from shop_recs.recsys.ease import gram_matrix  # noqa: E402
from shop_recs.recsys.tuning import tune  # noqa: E402

DAY = 86_400


def synthetic_catalog(
    n_items: int = 16_000, n_users: int = 50_000, mean_per_user: float = 10.0, zipf: float = 0.9, seed: int = 0
) -> rdata.Interactions:
    """A seeded sparse catalog: power-law item popularity, category structure, a year of timestamps."""
    rng = np.random.default_rng(seed)
    n_cat = 200
    popularity = 1.0 / np.arange(1, n_items + 1) ** zipf
    popularity = popularity[rng.permutation(n_items)]  # popularity independent of the category
    category = rng.integers(n_cat, size=n_items)
    counts = np.maximum(1, np.round(rng.lognormal(np.log(mean_per_user) - 0.5, 1.0, n_users))).astype(np.int64)
    users = np.repeat(np.arange(n_users), counts)
    favourite = rng.integers(n_cat, size=(n_users, 2))
    in_cat = rng.random(len(users)) < 0.7
    cat_of_row = favourite[users, rng.integers(2, size=len(users))]
    items = np.empty(len(users), dtype=np.int64)
    p_global = popularity / popularity.sum()
    items[~in_cat] = rng.choice(n_items, size=int((~in_cat).sum()), p=p_global)
    for c in range(n_cat):
        rows = np.flatnonzero(in_cat & (cat_of_row == c))
        members = np.flatnonzero(category == c)
        if len(rows) and len(members):
            p = popularity[members] / popularity[members].sum()
            items[rows] = rng.choice(members, size=len(rows), p=p)
    # Every item is bought at least twice, so the train matrix really has (about) 16,000 columns.
    items = np.concatenate([items, np.repeat(np.arange(n_items), 2)])
    users = np.concatenate([users, rng.integers(n_users, size=2 * n_items)])
    ts = rng.integers(365 * DAY, size=len(users)) + 1_600_000_000
    return rdata.from_arrays(users, items, timestamps=ts)


def given_temporal_split(log: rdata.Interactions, test_days: float = 30.0) -> rsplits.Split:
    cutoff = int(log.timestamps.max() - test_days * DAY)
    is_test = log.timestamps >= cutoff
    return rsplits.given_split(log.subset(~is_test), log.subset(is_test), exclude_train_items_from_test=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=16_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--zipf", type=float, default=0.9)
    parser.add_argument("--budget", type=float, default=300.0, help="EASE tuning seconds (the training budget)")
    parser.add_argument("--n-iter", type=int, default=12)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"threads": os.environ.get("OPENBLAS_NUM_THREADS"), "load_before": os.getloadavg()}
    t0 = time.perf_counter()
    log = synthetic_catalog(args.items, args.users, zipf=args.zipf)
    split = given_temporal_split(log)
    val = rsplits.validation_split(split)
    top = np.sort(np.asarray(val.train.sum(axis=0)).ravel())[::-1]
    out["data"] = {
        "interactions": int(len(log.users)),
        "train_shape": list(split.train.shape),
        "validation_train_shape": list(val.train.shape),
        "validation_train_nnz": int(val.train.nnz),
        "validation_users": int(len(val.test_users)),
        "validation": val.info.get("validation"),
        "top_1pct_items_share": float(top[: len(top) // 100].sum() / top.sum()),
        "seconds": time.perf_counter() - t0,
    }
    print(f"data: {out['data']}", flush=True)
    t0 = time.perf_counter()
    gram_matrix(val.train.astype(bool).astype(np.float32))  # the part of a fit a shared Gram saves
    out["gram_seconds"] = time.perf_counter() - t0
    print(f"Gram matrix X'X alone: {out['gram_seconds']:.1f}s", flush=True)
    t0 = time.perf_counter()
    registry.make("ease").fit(val.train)  # one l2 (the default, 500), no shared cache
    out["plain_fit_seconds"] = time.perf_counter() - t0
    print(f"plain EASE fit (l2=500): {out['plain_fit_seconds']:.1f}s", flush=True)

    def show(row: dict[str, Any]) -> None:
        print(
            f"  trial {row['params']}: fit {row.get('fit_seconds', 0):.1f}s total {row['seconds']:.1f}s "
            f"ndcg@10 {row['score']:.4f}",
            flush=True,
        )

    t0 = time.perf_counter()
    tuned = tune("ease", val, n_iter=args.n_iter, time_budget=args.budget, seed=0, progress=show)
    tune_s = time.perf_counter() - t0
    out["tuning"] = {
        "budget": args.budget,
        "seconds": tune_s,
        "ratio_to_budget": tune_s / args.budget,
        "n_trials": tuned.n_trials,
        "stopped_by_budget": tuned.stopped_by_budget,
        "skipped": tuned.skipped,
        "best_params": tuned.best_params,
        "best_score": tuned.best_score,
        "selection": tuned.selection,
        "trials": [{k: row.get(k) for k in ("params", "score", "fit_seconds", "seconds")} for row in tuned.leaderboard],
    }
    out["load_after"] = os.getloadavg()
    print(
        f"tuning: {tune_s:.1f}s of a {args.budget:.0f}s budget ({tune_s / args.budget:.2f}x), "
        f"{tuned.n_trials} trials, skipped {len(tuned.skipped)}, budget stop {tuned.stopped_by_budget}, "
        f"chosen {tuned.best_params}; load {out['load_before']} -> {out['load_after']}",
        flush=True,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
