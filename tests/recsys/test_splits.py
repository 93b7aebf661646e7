"""Splitting protocols: fractions, reproducibility, time order, leave-last-k, validation from train only."""

from __future__ import annotations

import numpy as np
import pytest

from shop_recs.recsys import data, splits


def make_log(n_users: int = 30, n_items: int = 25, per_user: int = 10, seed: int = 0) -> data.Interactions:
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=per_user, replace=False)
        for j, i in enumerate(chosen):
            users.append(f"u{u:02d}")
            items.append(f"i{i:02d}")
            ts.append(1_600_000_000 + u * 7 + j * 86_400 + int(rng.integers(0, 1000)))
    return data.from_arrays(users, items, timestamps=np.array(ts))


def pairs(mat, user_ids, item_ids) -> set[tuple]:
    r, c = mat.nonzero()
    return {(user_ids[a], item_ids[b]) for a, b in zip(r, c, strict=True)}


def test_random_holdout_fraction_disjoint_and_reproducible():
    log = make_log()
    a = splits.random_holdout(log, test_fraction=0.3, seed=1)
    b = splits.random_holdout(log, test_fraction=0.3, seed=1)
    c = splits.random_holdout(log, test_fraction=0.3, seed=2)
    assert (a.test != b.test).nnz == 0 and (a.train != b.train).nnz == 0
    assert (a.test != c.test).nnz > 0
    per_user_test = np.diff(a.test.indptr)
    assert set(per_user_test.tolist()) == {3}  # round(0.3 * 10)
    assert a.train.multiply(a.test).nnz == 0
    assert a.train.nnz + a.test.nnz == len(log)


def test_random_holdout_keeps_min_train():
    log = data.from_arrays(["a", "a", "b"], ["x", "y", "x"])
    s = splits.random_holdout(log, test_fraction=0.9, seed=0)
    assert np.diff(s.train.indptr).min() >= 1  # user b (one item) stays in train


def test_temporal_cutoff_orders_train_before_test():
    log = make_log()
    s = splits.temporal_split(log, test_days=3, exclude_train_items_from_test=False)
    cutoff = s.info["cutoff"]
    assert s.train_log.timestamps.max() < cutoff
    test_rows = log.timestamps >= cutoff
    assert log.timestamps[~test_rows].max() < log.timestamps[test_rows].min()
    assert cutoff == log.timestamps.max() - 3 * 86_400
    # explicit cutoff gives the same split
    s2 = splits.temporal_split(log, cutoff=cutoff, exclude_train_items_from_test=False)
    assert (s.test != s2.test).nnz == 0


def test_temporal_reports_unseen_users_and_items():
    log = data.from_arrays(
        ["a", "a", "b", "c", "a"],
        ["x", "y", "x", "x", "z"],
        timestamps=[1, 2, 3, 10, 11],
    )
    s = splits.temporal_split(log, cutoff=10)
    assert s.info["cold_test_users"] == 1  # c
    assert s.info["unseen_test_items"] == 1  # z
    assert s.info["dropped_test_rows"] == 2
    assert s.test.nnz == 0
    assert list(s.user_ids) == ["a", "b"] and list(s.item_ids) == ["x", "y"]


def test_leave_last_k_takes_latest_k_per_user():
    log = make_log(per_user=6)
    s = splits.leave_last_k_out(log, k=2, exclude_train_items_from_test=False)
    got = pairs(s.test, s.user_ids, s.item_ids)
    expected = set()
    for u in range(log.n_users):
        rows = np.flatnonzero(log.users == u)
        latest = rows[np.argsort(log.timestamps[rows])[-2:]]
        expected |= {(log.user_ids[u], log.item_ids[log.items[r]]) for r in latest}
    # items that only ever occur in test cannot be ranked: they are dropped and reported
    seen = set(s.item_ids.tolist())
    assert got == {p for p in expected if p[1] in seen}
    assert s.info["dropped_test_rows"] == len(expected) - len(got)


def test_leave_last_skips_short_histories():
    log = data.from_arrays(["a", "a", "a", "b"], ["x", "y", "z", "z"], timestamps=[1, 2, 3, 4])
    s = splits.leave_last_k_out(log, k=1)
    assert pairs(s.test, s.user_ids, s.item_ids) == {("a", "z")}  # b has one row: train only
    assert pairs(s.train, s.user_ids, s.item_ids) == {("a", "x"), ("a", "y"), ("b", "z")}


def test_new_items_only_removes_repeat_purchases():
    log = data.from_arrays(["a", "a", "a", "b", "b"], ["x", "y", "x", "x", "y"], timestamps=[1, 2, 5, 1, 6])
    keep = splits.temporal_split(log, cutoff=5, exclude_train_items_from_test=False)
    new = splits.temporal_split(log, cutoff=5, exclude_train_items_from_test=True)
    assert pairs(keep.test, keep.user_ids, keep.item_ids) == {("a", "x"), ("b", "y")}
    assert pairs(new.test, new.user_ids, new.item_ids) == {("b", "y")}
    assert new.info["test_pairs_already_in_train"] == 1


def test_given_split_maps_into_train_space():
    train = data.from_arrays(["a", "b", "b"], ["x", "x", "y"])
    test = data.from_arrays(["b", "a", "c", "a"], ["y", "y", "x", "w"])
    s = splits.given_split(train, test)
    assert list(s.item_ids) == ["x", "y"]
    assert pairs(s.test, s.user_ids, s.item_ids) == {("a", "y")}  # (b, y) was in train
    assert s.info["cold_test_users"] == 1 and s.info["unseen_test_items"] == 1
    assert s.info["dropped_test_rows"] == 2


@pytest.mark.parametrize("protocol", ["random", "temporal", "leave_last"])
def test_validation_is_carved_from_train_only(protocol):
    log = make_log(seed=3)
    kwargs = {"temporal": {"test_days": 3}, "random": {"test_fraction": 0.3, "seed": 0}, "leave_last": {"k": 2}}
    outer = splits.make_split(log, protocol, **kwargs[protocol])
    val = splits.validation_split(outer, seed=0)
    assert val.train.shape == outer.train.shape  # same index space as the outer train
    outer_test = pairs(outer.test, outer.user_ids, outer.item_ids)
    outer_train = pairs(outer.train, outer.user_ids, outer.item_ids)
    inner = pairs(val.train, val.user_ids, val.item_ids) | pairs(val.test, val.user_ids, val.item_ids)
    assert inner <= outer_train
    assert not (inner & (outer_test - outer_train))
    assert val.test.nnz > 0
    assert val.info["carved_from"] == "train"
    if protocol == "temporal":
        assert val.train_log.timestamps.max() < val.info["cutoff"] <= outer.train_log.timestamps.max()


def test_load_csv_types_and_errors(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item,value,timestamp\n1,A,2,2024-01-01T10:00:00Z\n2,B,1.5,2024-01-02\n")
    log = data.load_csv(f)
    assert log.user_ids.dtype.kind == "i" and list(log.item_ids) == ["A", "B"]
    assert log.timestamps[0] == 1704103200
    assert log.to_csr()[0, 0] == 2.0
    f.write_text("user,item,timestamp\na,b,1700000000\na,c,1700000001.5\n")
    assert list(data.load_csv(f).timestamps) == [1700000000, 1700000001]
    f.write_text("user,item,value\na,b,1\na,c,lots\n")
    with pytest.raises(data.DataError, match=r"line 3, column 'value'"):
        data.load_csv(f)
    f.write_text("user,item\na,b\n,c\n")
    with pytest.raises(data.DataError, match=r"line 3, column 'user'"):
        data.load_csv(f)
    f.write_text("user,item,timestamp\na,b,2024-01-01\na,c,yesterday\n")
    with pytest.raises(data.DataError, match=r"line 3, column 'timestamp'"):
        data.load_csv(f)
    f.write_text("customer,item\na,b\n")
    with pytest.raises(data.DataError, match="no 'user' column"):
        data.load_csv(f)
