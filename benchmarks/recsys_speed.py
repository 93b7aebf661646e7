"""Speed and memory of the recommender engine against its baselines (a script, not a test).

    .venv/bin/python benchmarks/recsys_speed.py                 # 50k x 20k, 2M nonzeros
    .venv/bin/python benchmarks/recsys_speed.py --users 5000 --items 2000 --nnz 100000   # quick
    .venv/bin/python benchmarks/recsys_speed.py --scaling       # fit time/memory at 0.2M..5M nnz
    .venv/bin/python benchmarks/recsys_speed.py --only user_knn,content,hybrid   # latency of a few

Memory is the tracemalloc peak during each fit: numpy/scipy buffers are traced, allocations inside
implicit's C++ code are not (so kNN/ALS peaks are lower bounds); the final ru_maxrss is printed too.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shop_recs.recsys.content import ContentBased  # noqa: E402
from shop_recs.recsys.ease import EASE  # noqa: E402
from shop_recs.recsys.hybrid import Hybrid  # noqa: E402
from shop_recs.recsys.knn import ItemKNN, UserKNN  # noqa: E402
from shop_recs.recsys.mf import ALS, BPR, PureSVD  # noqa: E402
from shop_recs.recsys.popularity import MostPopular, Trending  # noqa: E402
from shop_recs.recsys.rp3beta import RP3beta  # noqa: E402


def synthetic(n_users: int, n_items: int, nnz: int, seed: int = 42) -> tuple[sp.csr_matrix, np.ndarray]:
    """Zipf-like item popularity (p_i ~ 1/rank^0.9) and log-normal user activity; binary values."""
    rng = np.random.default_rng(seed)
    item_p = 1.0 / np.arange(1, n_items + 1) ** 0.9
    item_p /= item_p.sum()
    item_p = item_p[rng.permutation(n_items)]
    user_p = rng.lognormal(0.0, 1.0, n_users)
    user_p /= user_p.sum()
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < nnz:
        m = int((nnz - len(keys)) * 1.3) + 1000
        u = rng.choice(n_users, m, p=user_p)
        i = rng.choice(n_items, m, p=item_p)
        keys = np.unique(np.concatenate([keys, u.astype(np.int64) * n_items + i]))
    keys = rng.permutation(keys)[:nnz]
    x = sp.csr_matrix(
        (np.ones(nnz, np.float32), (keys // n_items, keys % n_items)), shape=(n_users, n_items), dtype=np.float32
    )
    x.sort_indices()
    timestamps = rng.uniform(0, 90 * 86_400, x.nnz)
    return x, timestamps


def documents(n_items: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(5000)])
    p = 1.0 / np.arange(1, 5001)
    p /= p.sum()
    return [
        {
            "title": " ".join(rng.choice(vocab, 6, p=p)),
            "description": " ".join(rng.choice(vocab, 30, p=p)),
            "category": f"cat {rng.integers(200)}",
            "brand": f"brand {rng.integers(500)}",
            "tags": [f"t{t}" for t in rng.integers(0, 300, 3)],
        }
        for _ in range(n_items)
    ]


def measure(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, float, Any]:
    """Best wall time of ``repeat`` runs and the tracemalloc peak (MB) of the first."""
    best, peak, out = float("inf"), 0.0, None
    for r in range(repeat):
        if r == 0:
            tracemalloc.start()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        if r == 0:
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
    return best, peak, out


def latency(model: Any, x: sp.csr_matrix, users: np.ndarray) -> tuple[float, float, float]:
    """Median and p99 wall time and median process CPU time (ms) of one ``recommend`` call.

    CPU time is reported too because the machine is shared: wall time includes waiting for a core.
    """
    with threadpool_limits(1, "blas"):
        model.recommend(int(users[0]), x[int(users[0])], N=10)  # warm-up
        times, cpu = [], []
        for u in users:
            row = x[int(u)]
            c0, t0 = time.process_time(), time.perf_counter()
            model.recommend(int(u), row, N=10)
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(times), float(np.percentile(times, 99)), statistics.median(cpu)


def main_run(args: argparse.Namespace) -> None:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import CosineRecommender

    t0 = time.perf_counter()
    x, ts = synthetic(args.users, args.items, args.nnz)
    print(f"data: {x.shape[0]} x {x.shape[1]}, {x.nnz} nonzeros ({time.perf_counter() - t0:.1f}s to generate)")
    if args.only:
        latency_run(args, x, ts)
        return
    rows: list[tuple[str, float, float, float, str]] = []

    def cosine() -> Any:
        m = CosineRecommender(K=100)
        m.fit(x, show_progress=False)
        return m

    t_imp, m_imp, _ = measure(cosine, repeat=2)
    t_knn0, m_knn0, knn0 = measure(lambda: ItemKNN(K=100, shrink=0).fit(x), repeat=2)
    t_knn, m_knn, knn = measure(lambda: ItemKNN(K=100, shrink=10).fit(x), repeat=2)
    t_knnx, m_knnx, knnx = measure(lambda: ItemKNN(K=100, shrink=10, exact=True).fit(x), repeat=1)
    rows.append(("ItemKNN K=100 shrink=0 vs implicit Cosine K=100", t_knn0, t_imp, m_knn0, "<=1.2x"))
    rows.append((f"ItemKNN K=100 shrink=10 default ({knn.n_inexact_} rows approximate)", t_knn, t_imp, m_knn, "<=1.2x"))
    rows.append(
        (f"ItemKNN K=100 shrink=10 exact=True ({knnx.n_recomputed_} rows recomputed)", t_knnx, t_imp, m_knnx, "info")
    )

    def implicit_als() -> Any:
        with threadpool_limits(1, "blas"):
            m = AlternatingLeastSquares(factors=64, iterations=15, regularization=0.01, random_state=42)
            m.fit(x, show_progress=False)
        return m

    t_ials, _, _ = measure(implicit_als)
    t_als, m_als, als = measure(lambda: ALS(factors=64, iterations=15).fit(x))
    rows.append(("iALS 64 factors, 15 iterations vs implicit ALS", t_als, t_ials, m_als, "<=1.1x"))

    top = np.argsort(-np.bincount(x.indices, minlength=x.shape[1]), kind="stable")[: args.ease_items]
    x_top = x[:, np.sort(top)].tocsr()

    def inv_only() -> Any:
        from shop_recs.recsys.ease import gram_matrix

        g = gram_matrix(x_top)
        g[np.diag_indices_from(g)] += 500.0
        t = time.perf_counter()
        np.linalg.inv(g)
        return time.perf_counter() - t

    _, _, t_inv = measure(inv_only)
    t_ease, m_ease, ease = measure(lambda: EASE(l2=500).fit(x_top))
    rows.append(
        (f"EASE fit (Gram + Cholesky) on {x_top.shape[1]} items vs one np.linalg.inv", t_ease, t_inv, m_ease, "<1.5x")
    )

    print("\n| Benchmark | ours (s) | baseline (s) | ratio | goal | tracemalloc peak of ours (MB) |")
    print("|---|---:|---:|---:|---|---:|")
    for label, ours, base, mem, goal in rows:
        print(f"| {label} | {ours:.2f} | {base:.2f} | {ours / base:.2f}x | {goal} | {mem:.0f} |")
    sys.stdout.flush()

    fits: dict[str, tuple[float, float, Any]] = {
        "item_knn (K=100, shrink=10)": (t_knn, m_knn, knn),
        "als (64 f, 15 it)": (t_als, m_als, als),
        f"ease ({x_top.shape[1]} items)": (t_ease, m_ease, ease),
    }
    docs = documents(x.shape[1])
    cats = np.random.default_rng(3).integers(0, 200, x.shape[1])
    fits["popularity"] = measure(lambda: MostPopular().fit(x, item_categories=cats))
    fits["trending"] = measure(lambda: Trending(half_life_days=7).fit(x, timestamps=ts))
    fits["user_knn (K=100)"] = measure(lambda: UserKNN(K=100).fit(x))
    fits["rp3beta (K=200)"] = measure(lambda: RP3beta(alpha=1.0, beta=0.5, K=200).fit(x))
    fits["pure_svd (64 f)"] = measure(lambda: PureSVD(factors=64).fit(x))
    fits[f"bpr (64 f, {args.bpr_iterations} it)"] = measure(
        lambda: BPR(factors=64, iterations=args.bpr_iterations).fit(x)
    )
    fits["content (TF-IDF, K=100)"] = measure(lambda: ContentBased(K=100).fit(x, item_features=docs))
    models = {k.split(" ")[0]: v[2] for k, v in fits.items()}
    fits["hybrid (item_knn+content+popularity, pre-fitted)"] = measure(
        lambda: Hybrid.from_models(
            {"item_knn": models["item_knn"], "content": models["content"], "popularity": models["popularity"]},
            {"item_knn": 1.0, "content": 0.3, "popularity": 0.05},
        )
    )

    print_latency_table(fits, x, {label: x_top for label in fits if label.startswith("ease")}, args.latency_users)


def print_latency_table(
    fits: dict[str, tuple[float, float, Any]],
    x: sp.csr_matrix,
    data_for: dict[str, sp.csr_matrix],
    n_users: int,
) -> None:
    rng = np.random.default_rng(1)
    active = np.flatnonzero(np.diff(x.indptr) > 0)
    users = rng.choice(active, min(n_users, len(active)), replace=False)
    print(
        "\n| Model | fit (s) | tracemalloc peak (MB) | recommend 1 user, N=10: median (ms) | p99 (ms) "
        "| median CPU time (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, (t_fit, mem, model) in fits.items():
        med, p99, cpu = latency(model, data_for.get(label, x), users)
        print(f"| {label} | {t_fit:.2f} | {mem:.0f} | {med:.2f} | {p99:.2f} | {cpu:.2f} |")
        sys.stdout.flush()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nprocess peak RSS (ru_maxrss): {rss:.0f} MB; latency over {len(users)} users, BLAS at 1 thread")


#: ``--only`` choices; hybrid needs the three models it blends
LATENCY_MODELS = ("user_knn", "content", "hybrid", "item_knn", "popularity")


def latency_run(args: argparse.Namespace, x: sp.csr_matrix, ts: np.ndarray) -> None:
    """Fit only the ``--only`` models (and what hybrid blends) and print their latency rows."""
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(LATENCY_MODELS))
    if unknown:
        raise SystemExit(f"--only: unknown model(s) {', '.join(unknown)}; choose from {', '.join(LATENCY_MODELS)}")
    needed = set(wanted) | ({"item_knn", "content", "popularity"} if "hybrid" in wanted else set())
    fitted: dict[str, tuple[float, float, Any]] = {}
    if "user_knn" in needed:
        fitted["user_knn"] = measure(lambda: UserKNN(K=100).fit(x))
    if "item_knn" in needed:
        fitted["item_knn"] = measure(lambda: ItemKNN(K=100, shrink=10).fit(x))
    if "content" in needed:
        docs = documents(x.shape[1])
        fitted["content"] = measure(lambda: ContentBased(K=100).fit(x, item_features=docs))
    if "popularity" in needed:
        cats = np.random.default_rng(3).integers(0, 200, x.shape[1])
        fitted["popularity"] = measure(lambda: MostPopular().fit(x, item_categories=cats))
    if "hybrid" in needed:
        members = {name: fitted[name][2] for name in ("item_knn", "content", "popularity")}
        fitted["hybrid"] = measure(
            lambda: Hybrid.from_models(members, {"item_knn": 1.0, "content": 0.3, "popularity": 0.05})
        )
    labels = {
        "user_knn": "user_knn (K=100)",
        "item_knn": "item_knn (K=100, shrink=10)",
        "content": "content (TF-IDF, K=100)",
        "popularity": "popularity",
        "hybrid": "hybrid (item_knn+content+popularity, pre-fitted)",
    }
    print_latency_table({labels[name]: fitted[name] for name in wanted}, x, {}, args.latency_users)


def scaling_run(args: argparse.Namespace) -> None:
    print("| nnz | model | fit (s) | tracemalloc peak (MB) |")
    print("|---:|---|---:|---:|")
    for nnz in (200_000, 1_000_000, 2_000_000, 5_000_000):
        x, _ = synthetic(args.users, args.items, nnz)
        top = np.argsort(-np.bincount(x.indices, minlength=x.shape[1]), kind="stable")[: args.ease_items]
        x_top = x[:, np.sort(top)].tocsr()
        for label, fn in (
            ("item_knn", lambda x=x: ItemKNN(K=100, shrink=10).fit(x)),
            ("rp3beta", lambda x=x: RP3beta(K=200).fit(x)),
            ("als", lambda x=x: ALS(factors=64, iterations=15).fit(x)),
            ("pure_svd", lambda x=x: PureSVD(factors=64).fit(x)),
            (f"ease ({args.ease_items} items)", lambda x_top=x_top: EASE(l2=500).fit(x_top)),
        ):
            t, mem, _ = measure(fn)
            print(f"| {nnz:,} | {label} | {t:.2f} | {mem:.0f} |")
            sys.stdout.flush()


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", message="Method expects CSR input")  # implicit's own Cosine baseline
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--nnz", type=int, default=2_000_000)
    parser.add_argument("--ease-items", type=int, default=5_000)
    parser.add_argument("--bpr-iterations", type=int, default=20)
    parser.add_argument("--latency-users", type=int, default=200)
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated models whose recommend latency alone is measured ({', '.join(LATENCY_MODELS)})",
    )
    parser.add_argument("--scaling", action="store_true", help="fit time and memory at 0.2M, 1M, 2M, 5M nonzeros")
    args = parser.parse_args()
    scaling_run(args) if args.scaling else main_run(args)


if __name__ == "__main__":
    main()
