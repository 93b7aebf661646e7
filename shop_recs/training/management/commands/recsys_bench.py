"""Offline accuracy benchmark of the engine's recommenders (and implicit's, with ``--peers``).

Needs no database: it reads files, splits, tunes each algorithm on a validation split carved from
TRAIN only, fits on the whole train part, evaluates on test and prints a table. Examples::

    python manage.py recsys_bench --uci --protocol temporal --test-days 30 --peers --json bench.json
    python manage.py recsys_bench --interactions log.csv --protocol random --test-fraction 0.2
    python manage.py recsys_bench --train train.csv --test test.csv --algorithms ease,rp3beta
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from shop_recs.recsys import data as rdata
from shop_recs.recsys import peers, registry
from shop_recs.recsys import splits as rsplits
from shop_recs.recsys.evaluate import evaluate
from shop_recs.recsys.tuning import accepted_fit_kwargs, tune

#: Algorithms that need item text; they run only when the data has it (e.g. ``--uci``).
NEEDS_TEXT = ("content", "hybrid")


class Command(BaseCommand):
    help = "Tune, train and evaluate recommenders offline on an interaction file (no database needed)."

    # Pure file-in/table-out tool: skip system checks and migration checks, which may touch the DB.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        src = parser.add_argument_group("data (one of)")
        src.add_argument("--interactions", help="CSV with user,item[,value][,timestamp]")
        src.add_argument("--train", help="train CSV (with --test): a given split")
        src.add_argument("--test", help="test CSV (with --train)")
        src.add_argument("--uci", action="store_true", help="UCI Online Retail purchases (../shared/data)")
        src.add_argument("--uci-file", default=None, help="path of online_retail.csv.gz (default: ../shared/data)")
        prot = parser.add_argument_group("protocol")
        prot.add_argument("--protocol", choices=["random", "temporal", "leave_last"], default="temporal")
        prot.add_argument("--test-days", type=float, default=30.0, help="temporal: last N days are test")
        prot.add_argument("--test-fraction", type=float, default=0.2, help="random: share of each user's items")
        prot.add_argument("--leave-k", type=int, default=1, help="leave_last: latest k interactions per user")
        prot.add_argument("--seed", type=int, default=0)
        prot.add_argument(
            "--new-items-only",
            action=argparse_bool(),
            default=None,
            help="only items new to each user count as test positives (default: on, except random)",
        )
        run = parser.add_argument_group("run")
        run.add_argument("--algorithms", default="", help="comma list of registry names (default: all sensible)")
        run.add_argument("--k", type=int, default=10)
        run.add_argument("--peers", action="store_true", help="also run implicit's ALS, BPR and cosine")
        run.add_argument("--no-tune", action="store_true", help="use each algorithm's defaults")
        run.add_argument("--n-iter", type=int, default=12, help="max configurations per algorithm")
        run.add_argument("--tune-budget", type=float, default=300.0, help="seconds of tuning per algorithm")
        run.add_argument("--cold-threshold", type=int, default=5, help="cold users have <= this many train items")
        out = parser.add_argument_group("output")
        out.add_argument("--json", dest="json_path", help="write all results as JSON")
        out.add_argument("--dump-recs", help="write DIR/<algorithm>.csv (user,item,rank) for every test user")

    # ------------------------------------------------------------------------------------------
    def handle(self, *args: Any, **opts: Any) -> None:
        k = int(opts["k"])
        if k < 1:
            raise CommandError("--k must be >= 1")
        self._jobs(opts, has_text=True)  # validate --algorithms before the (slow) loading
        split, source = self._load_split(opts)
        info = split.info
        self._err(
            f"{source}: {info['n_users']} users x {info['n_items']} items, {info['train_pairs']} train pairs, "
            f"{info['test_pairs']} test pairs over {info['test_users']} test users "
            f"(dropped: {info['cold_test_users']} cold users, {info['unseen_test_items']} unseen items, "
            f"{info['test_pairs_already_in_train']} repeat pairs "
            f"{'removed' if info['exclude_train_items_from_test'] else 'kept'})"
        )
        if info["test_pairs"] == 0:
            raise CommandError("the test part has no usable interactions")

        val = rsplits.validation_split(split, seed=opts["seed"], test_fraction=opts["test_fraction"])
        has_text = split.train_log.item_text is not None
        jobs = self._jobs(opts, has_text)
        val_fit = self._fit_kwargs(val)
        full_fit = self._fit_kwargs(split)

        results: list[dict[str, Any]] = []
        bar = tqdm(jobs, desc="recsys_bench", file=sys.stderr, unit="algo")
        for kind, name, factory, grid in bar:
            results.append(self._bench_one(bar, opts, k, split, val, val_fit, full_fit, kind, name, factory, grid))
        bar.close()

        self.stdout.write(self._table(results, k))
        if opts["json_path"]:
            payload = {
                "source": source,
                "protocol": split.protocol,
                "split": split.info,
                "validation": val.info,
                "k": k,
                "options": {key: opts[key] for key in _OPTION_KEYS if key in opts},
                "results": results,
            }
            Path(opts["json_path"]).write_text(json.dumps(_clean(payload), indent=2))
            self._err(f"wrote {opts['json_path']}")

    # ------------------------------------------------------------------------------------------
    def _bench_one(
        self,
        bar: Any,
        opts: dict[str, Any],
        k: int,
        split: Any,
        val: Any,
        val_fit: dict[str, Any],
        full_fit: dict[str, Any],
        kind: str,
        name: str,
        factory: Any,
        grid: dict[str, Any],
    ) -> dict[str, Any]:
        """Tune one algorithm on the validation split, fit it on train, score it on test: its result row."""
        bar.set_postfix_str(f"{name}: tuning")
        row: dict[str, Any] = {"algorithm": name, "kind": kind}
        try:
            if opts["no_tune"]:
                params: dict[str, Any] = {}
                row["tuning"] = None
            else:
                tuned = tune(
                    factory,
                    val,
                    grid,
                    metric=f"ndcg@{k}",
                    n_iter=opts["n_iter"],
                    seed=opts["seed"],
                    time_budget=opts["tune_budget"],
                    fit_kwargs=val_fit,
                    progress=lambda r, name=name: bar.set_postfix_str(f"{name}: {r['params']} -> {r['score']:.4f}"),
                )
                params = tuned.best_params
                row["tuning"] = tuned.to_dict()
            bar.set_postfix_str(f"{name}: fit on train")
            model = factory(**params)
            t0 = time.perf_counter()
            model.fit(split.train, **accepted_fit_kwargs(model, full_fit))
            fit_seconds = time.perf_counter() - t0
            res = evaluate(model, split.train, split.test, ks=[k], cold_threshold=opts["cold_threshold"])
        except Exception as exc:  # noqa: BLE001 - one broken algorithm must not sink the run
            row["error"] = f"{type(exc).__name__}: {exc}"
            self._err(f"{name} failed: {row['error']}")
            return row
        row.update(
            params=params,
            metrics=res.metrics,
            slices=res.slices,
            fit_seconds=fit_seconds,
            recommend_seconds=res.recommend_seconds,
            n_users=int(len(res.users)),
        )
        if opts["dump_recs"]:
            self._dump(Path(opts["dump_recs"]), name, split, res.users, res.recs)
        return row

    # ------------------------------------------------------------------------------------------
    def _err(self, msg: str) -> None:
        self.stderr.write(msg)

    def _load_split(self, opts: dict[str, Any]) -> tuple[rsplits.Split, str]:
        given = bool(opts["train"] or opts["test"])
        n_sources = sum([bool(opts["interactions"]), given, bool(opts["uci"])])
        if n_sources != 1:
            raise CommandError("give exactly one of --interactions FILE, --train FILE --test FILE, or --uci")
        protocol = opts["protocol"]
        new_only = opts["new_items_only"]
        if new_only is None:
            new_only = protocol != "random" or given
        try:
            if given:
                if not (opts["train"] and opts["test"]):
                    raise CommandError("--train and --test go together")
                train, test = rdata.load_csv(opts["train"]), rdata.load_csv(opts["test"])
                return rsplits.given_split(train, test, exclude_train_items_from_test=new_only), (
                    f"{opts['train']} + {opts['test']}"
                )
            if opts["uci"]:
                log = rdata.load_online_retail(opts["uci_file"])
                source = "UCI Online Retail (purchases)"
            else:
                log = rdata.load_csv(opts["interactions"])
                source = str(opts["interactions"])
        except (rdata.DataError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        try:
            if protocol == "temporal":
                split = rsplits.temporal_split(log, test_days=opts["test_days"], exclude_train_items_from_test=new_only)
            elif protocol == "random":
                split = rsplits.random_holdout(
                    log, test_fraction=opts["test_fraction"], seed=opts["seed"], exclude_train_items_from_test=new_only
                )
            else:
                split = rsplits.leave_last_k_out(log, k=opts["leave_k"], exclude_train_items_from_test=new_only)
        except ValueError as exc:
            raise CommandError(f"cannot split {source} with protocol {protocol!r}: {exc}") from exc
        return split, source

    def _jobs(self, opts: dict[str, Any], has_text: bool) -> list[tuple[str, str, Any, Any]]:
        if opts["algorithms"]:
            names = [n.strip() for n in opts["algorithms"].split(",") if n.strip()]
            unknown = [n for n in names if n not in registry.ALGORITHMS]
            if unknown:
                raise CommandError(f"unknown algorithm(s) {unknown}; known: {', '.join(sorted(registry.ALGORITHMS))}")
        else:
            names = [n for n in registry.ALGORITHMS if has_text or n not in NEEDS_TEXT]
        jobs: list[tuple[str, str, Any, Any]] = [
            ("engine", n, _registry_factory(n), registry.DEFAULT_GRIDS.get(n, {})) for n in names
        ]
        if opts["peers"]:
            jobs += [("peer", n, cls, peers.PEER_GRIDS.get(n, {})) for n, cls in peers.PEERS.items()]
        return jobs

    @staticmethod
    def _fit_kwargs(split: rsplits.Split) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"timestamps": rsplits.pair_timestamps(split.train_log, split.train)}
        if split.train_log.item_text is not None:
            kwargs["item_features"] = [str(t) for t in split.train_log.item_text.tolist()]
        return kwargs

    @staticmethod
    def _dump(directory: Path, name: str, split: rsplits.Split, users: np.ndarray, recs: np.ndarray) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / f"{name}.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["user", "item", "rank"])
            for u, row in zip(users.tolist(), recs, strict=True):
                uid = split.user_ids[u]
                for rank, item in enumerate(row.tolist(), start=1):
                    if item < 0:
                        break
                    writer.writerow([uid, split.item_ids[item], rank])

    @staticmethod
    def _table(results: list[dict[str, Any]], k: int) -> str:
        cols = [
            ("P", f"precision@{k}"),
            ("R", f"recall@{k}"),
            ("NDCG", f"ndcg@{k}"),
            ("MAP", f"map@{k}"),
            ("HR", f"hit_rate@{k}"),
            ("MRR", f"mrr@{k}"),
            ("Cov", f"coverage@{k}"),
            ("Nov", f"novelty@{k}"),
        ]
        head = f"{'algorithm':<16} " + " ".join(f"{c + '@' + str(k):>9}" for c, _ in cols)
        head += f" {'fit s':>7} {'rec s':>7}  params"
        lines = [head, "-" * len(head)]
        for row in results:
            if "error" in row:
                lines.append(f"{row['algorithm']:<16} ERROR {row['error']}")
                continue
            m = row["metrics"]
            cells = " ".join(f"{m[key]:>9.4f}" for _, key in cols)
            params = json.dumps(row["params"], sort_keys=True, default=str)
            lines.append(
                f"{row['algorithm']:<16} {cells} {row['fit_seconds']:>7.2f} {row['recommend_seconds']:>7.2f}  {params}"
            )
        return "\n".join(lines) + "\n"


_OPTION_KEYS = (
    "protocol",
    "test_days",
    "test_fraction",
    "leave_k",
    "seed",
    "new_items_only",
    "algorithms",
    "k",
    "peers",
    "no_tune",
    "n_iter",
    "tune_budget",
    "cold_threshold",
)


def argparse_bool() -> Any:
    return argparse.BooleanOptionalAction


def _registry_factory(name: str) -> Any:
    def factory(**params: Any) -> Any:
        return registry.make(name, **params)

    factory.name = name  # type: ignore[attr-defined]
    return factory


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
