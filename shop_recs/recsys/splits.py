"""Train/test protocols: random per-user holdout, global temporal cutoff, leave-last-k-out, a given pair.

Every protocol returns a :class:`Split` whose ``train`` and ``test`` CSR matrices share one index
space: the users and items seen in TRAIN (a model can only rank items it was trained on). Test
interactions of users or items unseen in train cannot be scored, so they are dropped and counted
in ``Split.info`` (``cold_test_users``, ``unseen_test_items``, ``dropped_test_rows``) instead of
silently vanishing.

``exclude_train_items_from_test=True`` ("new items only") removes from each user's test set the
items that user already has in train: evaluation always filters train items out of the ranking, so
such pairs could never be hit, and repeat purchases are not what a discovery recommender is for.

Validation for tuning is carved from TRAIN ONLY with :func:`validation_split`; it never sees test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .data import Interactions

DAY = 86_400


@dataclass
class Split:
    """A train/test pair in the train index space.

    ``train`` holds summed interaction values, ``test`` is binary (1 = relevant). ``train_log`` keeps
    the raw train rows (with timestamps when known) so a validation split can be carved from it with
    the same protocol.
    """

    train: sp.csr_matrix
    test: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    train_log: Interactions
    protocol: str
    info: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    @property
    def test_users(self) -> np.ndarray:
        """Indices of users with at least one test positive (the users evaluation scores)."""
        return np.flatnonzero(np.diff(self.test.indptr) > 0)


def _finish(
    inter: Interactions,
    train_mask: np.ndarray,
    test_mask: np.ndarray,
    protocol: str,
    exclude_train_items_from_test: bool,
    reindex: bool = True,
    params: dict[str, Any] | None = None,
) -> Split:
    """Build the matrices: map to the train index space, drop unseen users/items and report them."""
    train_log = inter.subset(train_mask)
    test_log = inter.subset(test_mask)
    info: dict[str, Any] = {"train_rows": int(train_mask.sum()), "test_rows_raw": int(test_mask.sum())}
    if reindex:
        seen_u = np.unique(train_log.users)
        seen_i = np.unique(train_log.items)
        train_log, _ = train_log.reindex(inter.user_ids[seen_u], inter.item_ids[seen_i])
        test_users_raw = np.unique(test_log.users)
        test_items_raw = np.unique(test_log.items)
        info["cold_test_users"] = int(len(np.setdiff1d(test_users_raw, seen_u)))
        info["unseen_test_items"] = int(len(np.setdiff1d(test_items_raw, seen_i)))
        test_log, keep = test_log.reindex(train_log.user_ids, train_log.item_ids)
        info["dropped_test_rows"] = int((~keep).sum())
    else:
        # Same index space (validation): users/items with no train rows still cannot be scored.
        has_u = np.zeros(inter.n_users, dtype=bool)
        has_u[train_log.users] = True
        has_i = np.zeros(inter.n_items, dtype=bool)
        has_i[train_log.items] = True
        keep = has_u[test_log.users] & has_i[test_log.items]
        info["cold_test_users"] = int(len(np.unique(test_log.users[~has_u[test_log.users]])))
        info["unseen_test_items"] = int(len(np.unique(test_log.items[~has_i[test_log.items]])))
        info["dropped_test_rows"] = int((~keep).sum())
        test_log = test_log.subset(keep)
    train = train_log.to_csr()
    test = test_log.to_csr(binary=True)
    if exclude_train_items_from_test:
        before = test.nnz
        test = test - test.multiply(train > 0)
        test.eliminate_zeros()
        info["test_pairs_already_in_train"] = int(before - test.nnz)
    else:
        info["test_pairs_already_in_train"] = int(test.multiply(train > 0).nnz)
    test = sp.csr_matrix(test, dtype=np.float32)
    test.sort_indices()
    info.update(
        n_users=int(train.shape[0]),
        n_items=int(train.shape[1]),
        train_pairs=int(train.nnz),
        test_pairs=int(test.nnz),
        test_users=int((np.diff(test.indptr) > 0).sum()),
        exclude_train_items_from_test=bool(exclude_train_items_from_test),
    )
    return Split(
        train=train,
        test=test,
        user_ids=train_log.user_ids,
        item_ids=train_log.item_ids,
        train_log=train_log,
        protocol=protocol,
        info=info,
        params=dict(params or {}, exclude_train_items_from_test=exclude_train_items_from_test),
    )


def random_holdout(
    inter: Interactions,
    test_fraction: float = 0.2,
    seed: int = 0,
    min_train: int = 1,
    exclude_train_items_from_test: bool = True,
    _reindex: bool = True,
) -> Split:
    """Per user, hold out ``round(test_fraction * n)`` of the user's ``n`` distinct items at random.

    Works on distinct (user, item) pairs, so an item is wholly in train or wholly in test for a
    user. Every user keeps at least ``min_train`` items in train; users with ``n <= min_train`` items
    are train-only. Deterministic for a given ``seed``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be in (0, 1)")
    rng = np.random.default_rng(seed)
    # Collapse to distinct pairs; every raw row of a held-out pair goes to test.
    pair_key = inter.users.astype(np.int64) * max(inter.n_items, 1) + inter.items
    pairs, inverse = np.unique(pair_key, return_inverse=True)
    pair_user = pairs // max(inter.n_items, 1)
    # Random order within each user: sort by (user, random key).
    order = np.lexsort((rng.random(len(pairs)), pair_user))
    counts = np.bincount(pair_user, minlength=inter.n_users)
    n_test = np.minimum(np.rint(counts * test_fraction).astype(np.int64), np.maximum(counts - min_train, 0))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(pairs), dtype=np.int64)
    rank[order] = np.arange(len(pairs)) - starts[pair_user[order]]
    pair_is_test = rank < n_test[pair_user]
    test_mask = pair_is_test[inverse.ravel()]
    return _finish(
        inter,
        ~test_mask,
        test_mask,
        "random",
        exclude_train_items_from_test,
        reindex=_reindex,
        params={"test_fraction": test_fraction, "seed": seed, "min_train": min_train},
    )


def temporal_split(
    inter: Interactions,
    cutoff: int | None = None,
    test_days: float | None = None,
    exclude_train_items_from_test: bool = True,
    _reindex: bool = True,
) -> Split:
    """Global temporal cutoff: train = rows with ``timestamp < cutoff``, test = ``timestamp >= cutoff``.

    Give ``cutoff`` (epoch seconds) or ``test_days`` (cutoff = latest timestamp - test_days days).
    Every test interaction is therefore later than every train interaction.
    """
    if inter.timestamps is None:
        raise ValueError("a temporal split needs timestamps")
    if (cutoff is None) == (test_days is None):
        raise ValueError("give exactly one of cutoff or test_days")
    if cutoff is None:
        cutoff = int(inter.timestamps.max() - float(test_days) * DAY)  # type: ignore[arg-type]
    test_mask = inter.timestamps >= cutoff
    if test_mask.all() or not test_mask.any():
        raise ValueError(f"cutoff {cutoff} leaves train or test empty")
    split = _finish(
        inter,
        ~test_mask,
        test_mask,
        "temporal",
        exclude_train_items_from_test,
        reindex=_reindex,
        params={"cutoff": int(cutoff), "test_days": test_days},
    )
    split.info["cutoff"] = int(cutoff)
    return split


def leave_last_k_out(
    inter: Interactions,
    k: int = 1,
    min_train: int = 1,
    exclude_train_items_from_test: bool = True,
    _reindex: bool = True,
) -> Split:
    """Per user, the latest ``k`` interaction rows go to test (ties broken by row order, later wins).

    Users with fewer than ``k + min_train`` rows stay wholly in train. Without timestamps, row order
    is taken as time order.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    n = len(inter)
    ts = inter.timestamps if inter.timestamps is not None else np.arange(n)
    order = np.lexsort((np.arange(n), ts, inter.users))
    counts = np.bincount(inter.users, minlength=inter.n_users)
    ends = np.cumsum(counts)
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    from_end = ends[inter.users] - pos  # 1 = the user's latest row
    eligible = counts[inter.users] >= k + min_train
    test_mask = eligible & (from_end <= k)
    return _finish(
        inter,
        ~test_mask,
        test_mask,
        "leave_last",
        exclude_train_items_from_test,
        reindex=_reindex,
        params={"k": k, "min_train": min_train},
    )


def given_split(train: Interactions, test: Interactions, exclude_train_items_from_test: bool = True) -> Split:
    """A train/test pair given as two logs: test ids are mapped into train's index space.

    Train users/items define the space; test rows with a user or item unseen in train are dropped and
    counted (``cold_test_users``, ``unseen_test_items``, ``dropped_test_rows``).
    """
    seen_u = np.unique(train.users)
    seen_i = np.unique(train.items)
    train_log, _ = train.reindex(train.user_ids[seen_u], train.item_ids[seen_i])
    known_u = set(train_log.user_ids.tolist())
    known_i = set(train_log.item_ids.tolist())
    test_u = set(test.user_ids[np.unique(test.users)].tolist())
    test_i = set(test.item_ids[np.unique(test.items)].tolist())
    test_log, keep = test.reindex(train_log.user_ids, train_log.item_ids)
    # Reuse _finish on a concatenated log in train space so both protocols report identically.
    both = Interactions(
        users=np.concatenate([train_log.users, test_log.users]),
        items=np.concatenate([train_log.items, test_log.items]),
        values=np.concatenate([train_log.values, test_log.values]),
        user_ids=train_log.user_ids,
        item_ids=train_log.item_ids,
        timestamps=(
            np.concatenate([train_log.timestamps, test_log.timestamps])
            if train_log.timestamps is not None and test_log.timestamps is not None
            else None
        ),
    )
    is_test = np.zeros(len(both), dtype=bool)
    is_test[len(train_log) :] = True
    split = _finish(both, ~is_test, is_test, "given", exclude_train_items_from_test, reindex=False)
    split.info.update(
        test_rows_raw=int(len(test)),
        cold_test_users=len(test_u - known_u),
        unseen_test_items=len(test_i - known_i),
        dropped_test_rows=int((~keep).sum()),
    )
    after = test_after_train(train, test)
    split.info["test_after_train"] = after
    window = float(np.ptp(test.timestamps)) / DAY if after else 0.0  # type: ignore[arg-type]
    if window > 0:
        # The test window's length: validation carves the same length off the end of train.
        split.params["test_days"] = window
    return split


def test_after_train(train: Interactions, test: Interactions, tolerance: float = 0.99) -> bool:
    """Whether the timestamps say the test lies in train's future: at least ``tolerance`` of the test
    rows are no earlier than the latest train row (a few stragglers, e.g. late-posted orders, are
    tolerated). False when either side has no timestamps."""
    if train.timestamps is None or test.timestamps is None or len(train) == 0 or len(test) == 0:
        return False
    if float(np.ptp(test.timestamps)) == 0.0 and float(np.ptp(train.timestamps)) == 0.0:
        return False  # one constant stamp everywhere: no time information at all
    return bool(np.mean(test.timestamps >= train.timestamps.max()) >= tolerance)


def validation_split(
    split: Split,
    protocol: str | None = None,
    *,
    test_fraction: float = 0.2,
    test_days: float | None = None,
    k: int = 1,
    seed: int = 0,
    exclude_train_items_from_test: bool | None = None,
) -> Split:
    """Carve a validation split from ``split``'s TRAIN part only (the test part is never read).

    Defaults mirror the outer protocol: temporal -> the last ``test_days`` of train (same length as
    the outer test window, or 1/10 of the train span when unknown); leave_last -> the same ``k``;
    given -> temporal when its timestamps say the test lies after train (:func:`test_after_train`),
    else random; random -> a random per-user holdout of ``test_fraction``. ``info["validation"]``
    and ``info["validation_reason"]`` record which was used and why. The result stays in the
    outer train index space, so a model tuned on it can be fit on the full train directly.
    """
    log = split.train_log
    reason = "requested" if protocol else f"mirrors the outer {split.protocol!r} split"
    if protocol is None:
        protocol = split.protocol
        if protocol == "given" and split.info.get("test_after_train") and log.timestamps is not None:
            # The model trained today serves tomorrow: when the given test lies after train, a random
            # holdout would reward weak regularisation (it did on the UCI retail split), so validate
            # on train's own future instead.
            protocol = "temporal"
            reason = "the given test lies after train (timestamps)"
    if exclude_train_items_from_test is None:
        exclude_train_items_from_test = bool(split.params.get("exclude_train_items_from_test", True))
    if protocol == "temporal" and log.timestamps is not None:
        if test_days is None:
            test_days = split.params.get("test_days")
        if test_days is None:
            span = (log.timestamps.max() - log.timestamps.min()) / DAY
            test_days = max(span / 10.0, 1.0 / 24)
        val = temporal_split(
            log, test_days=test_days, exclude_train_items_from_test=exclude_train_items_from_test, _reindex=False
        )
    elif protocol == "leave_last":
        val = leave_last_k_out(
            log,
            k=int(split.params.get("k", k)),
            exclude_train_items_from_test=exclude_train_items_from_test,
            _reindex=False,
        )
    else:
        val = random_holdout(
            log,
            test_fraction=test_fraction,
            seed=seed,
            exclude_train_items_from_test=exclude_train_items_from_test,
            _reindex=False,
        )
    val.info["carved_from"] = "train"
    val.info["validation"] = val.protocol
    val.info["validation_reason"] = reason
    return val


def pair_timestamps(log: Interactions, matrix: sp.csr_matrix) -> np.ndarray | None:
    """Latest timestamp of each stored (user, item) cell of ``matrix`` (built from ``log``), aligned with
    ``matrix.data`` -- the ``timestamps`` argument time-aware models such as ``trending`` take."""
    if log.timestamps is None:
        return None
    mat = sp.csr_matrix(matrix)
    mat.sort_indices()
    n_items = mat.shape[1]
    keys = log.users.astype(np.int64) * n_items + log.items
    order = np.argsort(keys, kind="stable")
    uniq, start = np.unique(keys[order], return_index=True)
    latest = np.maximum.reduceat(log.timestamps[order], start) if len(order) else np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(mat.shape[0], dtype=np.int64), np.diff(mat.indptr))
    cell = rows * n_items + mat.indices
    pos = np.searchsorted(uniq, cell)
    if len(uniq) == 0 or not np.array_equal(uniq[np.minimum(pos, len(uniq) - 1)], cell):
        raise ValueError("matrix does not match the log")
    return latest[pos].astype(np.int64)


def make_split(inter: Interactions, protocol: str, **kwargs: Any) -> Split:
    """Dispatch by protocol name: ``random``, ``temporal`` or ``leave_last``."""
    if protocol == "random":
        return random_holdout(inter, **kwargs)
    if protocol == "temporal":
        return temporal_split(inter, **kwargs)
    if protocol == "leave_last":
        return leave_last_k_out(inter, **kwargs)
    raise ValueError(f"unknown protocol {protocol!r} (random, temporal, leave_last)")


def deployment_holdout(log: Interactions, test_share: float = 0.1) -> tuple[str, dict[str, Any]]:
    """The holdout that looks like deployment for a log: ``("temporal", {"test_days": d})`` with the
    latest ``test_share`` of rows as test when the log has varying timestamps (a model trained today
    serves tomorrow), else ``("leave_last", {"k": 1})``. Training's holdout and gate use this."""
    ts = log.timestamps
    if ts is None or len(ts) < 2 or float(np.ptp(ts)) <= 0:
        return "leave_last", {"k": 1}
    cutoff = float(np.quantile(ts, 1.0 - test_share))
    days = (float(ts.max()) - cutoff) / DAY
    if days <= 0:
        return "leave_last", {"k": 1}
    return "temporal", {"test_days": days}


#: A global temporal holdout needs at least this many test users to compare models; below it the
#: per-user leave-last-out (still each user's latest item) is the fairer holdout.
MIN_TEMPORAL_TEST_USERS = 20


def deployment_split(log: Interactions, min_test_users: int = MIN_TEMPORAL_TEST_USERS) -> Split:
    """The holdout a store's training uses by default, recorded in ``info["validation"]`` and
    ``info["validation_reason"]``: a global temporal cut (:func:`deployment_holdout`) when the log
    has timestamps and enough users are left to score, else leave-last-one-out per user."""
    protocol, params = deployment_holdout(log)
    reason = "the log has no varying timestamps"
    if protocol == "temporal":
        try:
            split = temporal_split(log, **params)
        except ValueError as exc:
            reason = f"a temporal cut failed: {exc}"
        else:
            if len(split.test_users) >= min_test_users:
                split.info.update(validation="temporal", validation_reason="timestamps: serve the future")
                return split
            reason = f"a temporal cut leaves {len(split.test_users)} test users (< {min_test_users})"
    split = leave_last_k_out(log, k=1)
    split.info.update(validation="leave_last", validation_reason=reason)
    return split
