"""Search index speed and typo recovery on the UCI Online Retail product descriptions (no database).

    .venv/bin/python benchmarks/search_quality.py [--queries 500] [--seed 0]

1. Builds a :class:`SearchIndex` from the distinct ``StockCode -> Description`` pairs (~4k products).
2. Samples ``--queries`` product titles; each query is one or two words of a title.
3. Measures query latency (p50/p95) for clean queries, for queries with one random typo
   (deletion, transposition or substitution in a word of 5+ letters) and for prefixes
   (the last word cut to 3-5 letters).
4. Quality: for the typo queries, the share whose corrected query restores the original words, and
   the share where the product the words came from is still in the top 10 ("recall@10 under typos").

A script, not a test: it prints a table and asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shop_recs.search.index import SearchIndex, fold  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail.csv.gz"


def load_products(path: Path) -> tuple[list[int], list[dict[str, str]]]:
    seen: dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        for row in csv.DictReader(fh):
            code, desc = row.get("StockCode", ""), (row.get("Description") or "").strip()
            if code and desc and code not in seen:
                seen[code] = desc
    docs = [{"title": desc} for desc in seen.values()]
    return list(range(len(docs))), docs


def typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(["delete", "swap", "substitute"])
    if kind == "delete":
        return word[:i] + word[i + 1 :]
    if kind == "swap":
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    return word[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + word[i + 1 :]


def timed(index: SearchIndex, queries: list[str], **kw) -> tuple[list[float], list]:
    times, results = [], []
    for q in queries:
        t0 = time.perf_counter()
        results.append(index.search(q, limit=200, **kw))
        times.append((time.perf_counter() - t0) * 1000)
    return times, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"missing {DATA}")
    rng = random.Random(args.seed)
    ids, docs = load_products(DATA)
    t0 = time.perf_counter()
    index = SearchIndex().build(ids, docs)
    build_ms = (time.perf_counter() - t0) * 1000

    clean, typos, prefixes, targets = [], [], [], []
    while len(clean) < args.queries:
        d = rng.randrange(len(docs))
        words = [w for w in fold(docs[d]["title"]).split() if w.isalpha() and len(w) >= 5]
        if not words:
            continue
        picked = rng.sample(words, min(len(words), rng.choice([1, 2])))
        clean.append(" ".join(picked))
        typos.append(" ".join(picked[:-1] + [typo(picked[-1], rng)]))
        prefixes.append(" ".join(picked[:-1] + [picked[-1][: rng.randint(3, 5)]]))
        targets.append(d)

    rows = []
    for name, queries, kw in (
        ("clean", clean, {"prefix_last": False}),
        ("one typo", typos, {"prefix_last": False}),
        ("prefix (as you type)", prefixes, {"prefix_last": True}),
    ):
        times, results = timed(index, queries, **kw)
        hit10 = sum(t in set(r.doc_indices[:10].tolist()) for t, r in zip(targets, results, strict=True))
        rows.append((name, statistics.median(times), sorted(times)[int(0.95 * len(times))], hit10 / len(queries)))
    _, typo_results = timed(index, typos, prefix_last=False)
    restored = sum((r.corrected_query or "") == c for r, c in zip(typo_results, clean, strict=True)) / len(clean)

    print(f"products: {index.n_docs:,}  terms: {len(index.vocab_):,}  build: {build_ms:.0f} ms")
    print(f"{'queries':<22}{'p50 ms':>9}{'p95 ms':>9}{'target in top 10':>18}")
    for name, p50, p95, hit in rows:
        print(f"{name:<22}{p50:>9.2f}{p95:>9.2f}{hit:>18.1%}")
    print(f"typo queries whose corrected_query restores the original words: {restored:.1%}")


if __name__ == "__main__":
    main()
