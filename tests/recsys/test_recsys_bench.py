"""The recsys_bench command, end to end on tiny CSVs (no database: pytest-django would refuse access)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

ALGOS = "popularity,item_knn,ease"


def write_log(path, seed: int = 0, n_users: int = 40, n_items: int = 30, per_user: int = 8, t0: int = 0):
    """Two taste groups (even/odd items) with string ids and epoch timestamps."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        own = np.arange(u % 2, n_items, 2)
        for j, i in enumerate(rng.choice(own, size=per_user, replace=False)):
            rows.append((f"cust-{u:03d}", f"sku-{i:03d}", 1, t0 + j * 86_400 + u))
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user", "item", "value", "timestamp"])
        writer.writerows(rows)
    return rows


def read_recs(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["user", "item", "rank"]
        return list(reader)


def test_interactions_form_with_json_and_dump(tmp_path, capsys):
    log = tmp_path / "log.csv"
    rows = write_log(log)
    out_json = tmp_path / "bench.json"
    recs_dir = tmp_path / "recs"
    call_command(
        "recsys_bench",
        "--interactions",
        str(log),
        "--protocol",
        "leave_last",
        "--leave-k",
        "2",
        "--algorithms",
        ALGOS,
        "--k",
        "5",
        "--n-iter",
        "2",
        "--json",
        str(out_json),
        "--dump-recs",
        str(recs_dir),
    )
    printed = capsys.readouterr().out
    assert "NDCG@5" in printed and "ease" in printed
    payload = json.loads(out_json.read_text())
    assert payload["k"] == 5 and payload["protocol"] == "leave_last"
    assert payload["validation"]["carved_from"] == "train"
    names = [r["algorithm"] for r in payload["results"]]
    assert names == ALGOS.split(",")
    test_users = payload["split"]["test_users"]
    for row in payload["results"]:
        assert "error" not in row, row
        # NDCG@5 recomputed by hand from the dumped lists: the test items are each user's last 2.
        held_out = {
            user: {item for _u, item, _v, _t in sorted((r for r in rows if r[0] == user), key=lambda r: r[3])[-2:]}
            for user in {r[0] for r in rows}
        }
        ranked: dict[str, list[str]] = {}
        for r in sorted(read_recs(recs_dir / f"{row['algorithm']}.csv"), key=lambda r: int(r["rank"])):
            ranked.setdefault(r["user"], []).append(r["item"])
        ndcgs = [
            sum(1 / np.log2(rank + 2) for rank, item in enumerate(items) if item in held_out[user])
            / sum(1 / np.log2(rank + 2) for rank in range(min(len(held_out[user]), 5)))
            for user, items in ranked.items()
        ]
        assert row["metrics"]["ndcg@5"] == pytest.approx(np.mean(ndcgs), rel=1e-6)
        assert row["tuning"]["n_trials"] >= 1
        recs = read_recs(recs_dir / f"{row['algorithm']}.csv")
        users = {r["user"] for r in recs}
        assert len(users) == test_users
        assert all(u.startswith("cust-") for u in users)
        assert all(r["item"].startswith("sku-") for r in recs)
        per_user: dict[str, list[int]] = {}
        for r in recs:
            per_user.setdefault(r["user"], []).append(int(r["rank"]))
        assert all(ranks == [1, 2, 3, 4, 5] for ranks in per_user.values())


def test_train_test_form(tmp_path, capsys):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    write_log(train, seed=1)
    write_log(test, seed=2, per_user=3, t0=10**7)
    out_json = tmp_path / "b.json"
    recs_dir = tmp_path / "r"
    call_command(
        "recsys_bench",
        "--train",
        str(train),
        "--test",
        str(test),
        "--algorithms",
        "popularity,ease",
        "--no-tune",
        "--json",
        str(out_json),
        "--dump-recs",
        str(recs_dir),
    )
    payload = json.loads(out_json.read_text())
    assert payload["protocol"] == "given"
    assert payload["split"]["exclude_train_items_from_test"] is True
    recs = read_recs(recs_dir / "ease.csv")
    counts: dict[str, int] = {}
    for r in recs:
        counts[r["user"]] = counts.get(r["user"], 0) + 1
    assert set(counts.values()) == {10}
    assert len(counts) == payload["split"]["test_users"]


def test_temporal_and_random_protocols_run(tmp_path, capsys):
    log = tmp_path / "log.csv"
    write_log(log)
    call_command(
        "recsys_bench", "--interactions", str(log), "--protocol", "temporal", "--test-days", "2",
        "--algorithms", "popularity", "--no-tune",
    )  # fmt: skip
    call_command(
        "recsys_bench", "--interactions", str(log), "--protocol", "random", "--algorithms", "ease", "--n-iter", "1",
    )  # fmt: skip
    assert capsys.readouterr().out.count("NDCG@10") == 2


def test_malformed_csv_names_the_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,value\nu1,i1,1\nu2,i2,1\nu3,i3,not-a-number\n")
    with pytest.raises(CommandError, match=r"line 4, column 'value'"):
        call_command("recsys_bench", "--interactions", str(bad), "--protocol", "random")


def test_bad_arguments(tmp_path):
    log = tmp_path / "log.csv"
    write_log(log)
    with pytest.raises(CommandError, match="exactly one"):
        call_command("recsys_bench", "--interactions", str(log), "--uci")
    with pytest.raises(CommandError, match="unknown algorithm"):
        call_command("recsys_bench", "--interactions", str(log), "--algorithms", "nope")


def test_given_split_in_the_future_is_tuned_on_temporal_validation(tmp_path, capsys):
    """Issue 13: with --train/--test whose timestamps put test after train, the tuner used to validate
    on a random 20% of each user's items; it now validates on train's own last days, and says so."""
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    write_log(train, seed=1)
    write_log(test, seed=2, per_user=3, t0=10**7)
    out_json = tmp_path / "b.json"
    call_command(
        "recsys_bench",
        "--train",
        str(train),
        "--test",
        str(test),
        "--algorithms",
        "popularity,ease",
        "--n-iter",
        "2",
        "--json",
        str(out_json),
    )
    payload = json.loads(out_json.read_text())
    assert payload["split"]["test_after_train"] is True
    assert payload["validation"]["validation"] == "temporal"
    for row in payload["results"]:
        assert row["tuning"]["validation"]["protocol"] == "temporal"
        assert row["tuning"]["selection"]["rule"] in ("one_standard_error", "max")
        assert "lo" in row["tuning"]["best_interval"]
