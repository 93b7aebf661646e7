"""From a store's event log to the engine's input: a weighted user x item CSR matrix plus id maps.

The engine only ever sees integer indices; this module is where database ids become rows and
columns (``user_ids[row]`` is a ``Customer.pk``, ``item_ids[col]`` a ``Product.pk``) and where the
business knowledge about events lives: which event types count and how much, how fast old
behaviour fades, what is a duplicate, who is a bot.

Events are read as plain tuples (``values_list``), never as model instances; on PostgreSQL the
read goes through ``COPY ... TO STDOUT`` which is several times faster for millions of rows.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from django.db import connection

from shop_recs.activity.models import Event
from shop_recs.catalog.models import Product
from shop_recs.recsys.data import Interactions
from shop_recs.stores.scoping import store_scope
from shop_recs.training import sql as training_sql

if TYPE_CHECKING:
    from shop_recs.stores.models import Store

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0

#: Default strength of each event type. Purchases say the most, cart adds more than views; search
#: has no product and remove-from-cart is a weak negative we simply ignore rather than subtract.
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 1.0,
    "add_to_cart": 3.0,
    "purchase": 5.0,
    "rating": 2.0,
    "remove_from_cart": 0.0,
    "search": 0.0,
}


@dataclass
class MatrixConfig:
    """How events become matrix cells. Every field is JSON-serialisable so a run can record it."""

    event_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    #: exponential time decay: an event ``half_life_days`` older than the newest one weighs half
    #: (``None`` or 0 disables decay).
    half_life_days: float | None = 90.0
    #: ratings scale their weight by ``value / rating_scale`` (a 5-star rating keeps the full weight).
    rating_scale: float = 5.0
    #: cap of one (customer, product) cell after summing, so 40 views cannot outweigh a purchase.
    max_cell_value: float | None = 20.0
    #: minimum support, applied iteratively (k-core) until stable.
    min_user_interactions: int = 1
    min_item_interactions: int = 1
    #: bot filter: a customer with more than ``bot_events_per_minute`` events in at least
    #: ``bot_sustained_minutes`` distinct minutes is not a human.
    bot_events_per_minute: int = 30
    bot_sustained_minutes: int = 3
    #: outlier filter: customers above this quantile of event counts AND above ``outlier_min_events``
    #: (the floor keeps a small store from losing its best customer).
    outlier_quantile: float = 0.999
    outlier_min_events: int = 5_000

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> MatrixConfig:
        data = dict(data or {})
        weights = dict(DEFAULT_EVENT_WEIGHTS)
        weights.update(data.pop("event_weights", None) or {})
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown matrix settings: {', '.join(sorted(unknown))}")
        return cls(event_weights=weights, **data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InteractionData:
    """The training input of one store.

    ``matrix`` is ``(len(user_ids), len(item_ids))`` float32 CSR. ``log`` holds the same cells as an
    :class:`~shop_recs.recsys.data.Interactions` (one row per cell, with the cell's latest event time)
    so the evaluation splits can cut a holdout from it. Item side information is aligned with the
    columns: ``item_texts`` (title, description, category path, brand, tags) for the content model
    and ``item_categories`` (index into ``category_paths``, -1 for none).
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    log: Interactions
    item_texts: list[str]
    item_categories: np.ndarray
    category_paths: list[str]
    stats: dict[str, Any]
    filter_report: dict[str, Any]

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


_COLUMNS = ["customer_id", "product_id", "event_type", "ts", "value"]


def _read_events(store: Store, since: datetime | None) -> pd.DataFrame:
    """All of the store's customer-product events as a frame (ts in epoch seconds)."""
    if connection.vendor == "postgresql":
        return _read_events_copy(store, since)
    with store_scope(store):
        qs = Event.objects.filter(customer__isnull=False, product__isnull=False)
        if since is not None:
            qs = qs.filter(timestamp__gte=since)
        rows = list(qs.order_by().values_list("customer_id", "product_id", "event_type", "timestamp", "value"))
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    if frame.empty:
        frame["ts"] = frame["ts"].astype(np.int64)
    else:
        frame["ts"] = (pd.to_datetime(frame["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame


def _read_events_copy(store: Store, since: datetime | None) -> pd.DataFrame:
    """PostgreSQL fast path: ``COPY (SELECT ...) TO STDOUT`` parsed by pandas' C reader.

    The SQL is ``training.sql.copy_events_out`` (the store is its explicit filter).
    """
    buf = training_sql.copy_events_out(store.pk, since)
    if buf.getbuffer().nbytes == 0:
        return pd.DataFrame(
            {
                "customer_id": np.zeros(0, np.int64),
                "product_id": np.zeros(0, np.int64),
                "event_type": np.zeros(0, object),
                "ts": np.zeros(0, np.int64),
                "value": np.zeros(0, np.float64),
            }
        )
    return pd.read_csv(
        buf,
        sep="\t",
        header=None,
        names=_COLUMNS,
        na_values=["\\N"],
        keep_default_na=False,
        dtype={"customer_id": np.int64, "product_id": np.int64, "event_type": str, "ts": np.int64, "value": float},
    )


def _bot_filter(frame: pd.DataFrame, config: MatrixConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop customers whose activity no human produces; say who and why."""
    report: dict[str, Any] = {"bot_customers": [], "outlier_customers": [], "events_removed": 0}
    if frame.empty:
        return frame, report
    minute = frame["ts"].to_numpy() // 60
    per_minute = pd.DataFrame({"c": frame["customer_id"].to_numpy(), "m": minute}).value_counts()
    hot = per_minute[per_minute > config.bot_events_per_minute]
    hot_minutes = hot.groupby(level="c").size()
    bots = set(hot_minutes[hot_minutes >= config.bot_sustained_minutes].index.tolist())

    counts = frame["customer_id"].value_counts()
    threshold = max(float(np.quantile(counts.to_numpy(), config.outlier_quantile)), float(config.outlier_min_events))
    outliers = set(counts[counts > threshold].index.tolist()) - bots

    drop = bots | outliers
    if drop:
        mask = frame["customer_id"].isin(drop).to_numpy()
        report["events_removed"] = int(mask.sum())
        frame = frame.loc[~mask]
    # Lists are capped so a botnet does not blow up the run row.
    report["bot_customers"] = sorted(int(c) for c in bots)[:100]
    report["outlier_customers"] = sorted(int(c) for c in outliers)[:100]
    report["n_bot_customers"] = len(bots)
    report["n_outlier_customers"] = len(outliers)
    report["outlier_threshold_events"] = threshold
    return frame, report


def _k_core(users: np.ndarray, items: np.ndarray, min_user: int, min_item: int) -> np.ndarray:
    """Mask of cells kept after repeatedly dropping sparse users and items (distinct cells count)."""
    keep = np.ones(len(users), dtype=bool)
    if min_user <= 1 and min_item <= 1:
        return keep
    while True:
        u_counts = np.bincount(users[keep], minlength=users.max(initial=-1) + 1)
        i_counts = np.bincount(items[keep], minlength=items.max(initial=-1) + 1)
        new_keep = keep & (u_counts[users] >= min_user) & (i_counts[items] >= min_item)
        if new_keep.sum() == keep.sum():
            return new_keep
        keep = new_keep


def build_interactions(
    store: Store, since: datetime | None = None, config: MatrixConfig | dict[str, Any] | None = None
) -> InteractionData:
    """Read the store's events (optionally only those at or after ``since``) into training data."""
    if not isinstance(config, MatrixConfig):
        config = MatrixConfig.from_dict(config)
    frame = _read_events(store, since)
    stats: dict[str, Any] = {"events_read": int(len(frame))}
    report: dict[str, Any] = {}
    frame, weights, ts = _weighted_events(frame, config, report)
    cells, user_ids, u_idx, item_ids, i_idx = _cells(frame, weights, ts, config, report)

    values = cells["w"].to_numpy(dtype=np.float32)
    log = Interactions(
        users=u_idx.astype(np.int64).ravel(),
        items=i_idx.astype(np.int64).ravel(),
        values=values,
        user_ids=user_ids,
        item_ids=item_ids,
        timestamps=cells["t"].to_numpy(dtype=np.int64),
    )
    matrix = log.to_csr()
    texts, categories, paths = item_side_information(store, item_ids)
    n_cells = matrix.nnz
    stats.update(
        n_users=int(len(user_ids)),
        n_items=int(len(item_ids)),
        nnz=int(n_cells),
        density=float(n_cells / max(1, len(user_ids) * len(item_ids))),
        events_used=int(len(frame)),
        first_event=int(ts.min()) if len(ts) else None,
        last_event=int(ts.max()) if len(ts) else None,
    )
    return InteractionData(
        matrix=matrix,
        user_ids=user_ids,
        item_ids=item_ids,
        log=log,
        item_texts=texts,
        item_categories=categories,
        category_paths=paths,
        stats=stats,
        filter_report=report,
    )


def _weighted_events(
    frame: pd.DataFrame, config: MatrixConfig, report: dict[str, Any]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The events that count, with their weights and times: duplicates, zero-weight types and bots
    removed (each counted in ``report``), ratings scaled, older events decayed."""
    # Exact duplicates (same customer, product, type and second) are client retries, not intent.
    before = len(frame)
    frame = frame.drop_duplicates(subset=["customer_id", "product_id", "event_type", "ts"])
    report["duplicates_removed"] = int(before - len(frame))

    weights = frame["event_type"].map(config.event_weights).fillna(0.0).to_numpy(dtype=np.float64)
    unweighted = weights <= 0
    report["zero_weight_events"] = int(unweighted.sum())
    frame = frame.loc[~unweighted]
    weights = weights[~unweighted]

    frame, bot_report = _bot_filter(frame, config)
    if bot_report["events_removed"]:
        weights = frame["event_type"].map(config.event_weights).to_numpy(dtype=np.float64)
    report.update(bot_report)

    ts = frame["ts"].to_numpy(dtype=np.int64)
    if len(frame):
        is_rating = (frame["event_type"] == "rating").to_numpy()
        if is_rating.any():
            rating = frame["value"].to_numpy(dtype=np.float64)
            scale = np.where(np.isfinite(rating), np.clip(rating, 0, None) / config.rating_scale, 1.0)
            weights = np.where(is_rating, weights * scale, weights)
        if config.half_life_days:
            age_days = (ts.max() - ts) / SECONDS_PER_DAY
            weights = weights * np.power(0.5, age_days / float(config.half_life_days))
    return frame, weights, ts


def _cells(
    frame: pd.DataFrame, weights: np.ndarray, ts: np.ndarray, config: MatrixConfig, report: dict[str, Any]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One cell per (customer, product): summed weight (capped), latest time; then the k-core.

    Returns the kept cells and ``(user_ids, user index per cell, item_ids, item index per cell)``.
    """
    cells = (
        pd.DataFrame({"u": frame["customer_id"].to_numpy(), "i": frame["product_id"].to_numpy(), "w": weights, "t": ts})
        .groupby(["u", "i"], sort=True)
        .agg(w=("w", "sum"), t=("t", "max"))
        .reset_index()
    )
    if config.max_cell_value:
        cells["w"] = cells["w"].clip(upper=config.max_cell_value)
    cells = cells[cells["w"] > 0]

    user_ids, u_idx = np.unique(cells["u"].to_numpy(dtype=np.int64), return_inverse=True)
    item_ids, i_idx = np.unique(cells["i"].to_numpy(dtype=np.int64), return_inverse=True)
    keep = _k_core(u_idx.ravel(), i_idx.ravel(), config.min_user_interactions, config.min_item_interactions)
    report["cells_below_min_support"] = int((~keep).sum())
    n_users_before, n_items_before = len(user_ids), len(item_ids)
    cells = cells.loc[keep]
    user_ids, u_idx = np.unique(cells["u"].to_numpy(dtype=np.int64), return_inverse=True)
    item_ids, i_idx = np.unique(cells["i"].to_numpy(dtype=np.int64), return_inverse=True)
    report["users_below_min_support"] = int(n_users_before - len(user_ids))
    report["items_below_min_support"] = int(n_items_before - len(item_ids))
    return cells, user_ids, u_idx, item_ids, i_idx


def item_side_information(store: Store, item_ids: np.ndarray) -> tuple[list[str], np.ndarray, list[str]]:
    """Text and category index per column of the matrix, in ``item_ids`` order."""
    with store_scope(store):
        rows = Product.objects.filter(pk__in=item_ids.tolist()).values_list(
            "pk", "title", "description", "category__path", "brand", "tags"
        )
        by_pk = {row[0]: row[1:] for row in rows.iterator(chunk_size=2000)}
    paths: list[str] = []
    path_index: dict[str, int] = {}
    texts: list[str] = []
    categories = np.full(len(item_ids), -1, dtype=np.int64)
    for col, pk in enumerate(item_ids.tolist()):
        title, description, path, brand, tags = by_pk.get(pk, ("", "", None, "", []))
        tag_text = " ".join(str(t) for t in tags) if isinstance(tags, list) else ""
        texts.append(" ".join(part for part in (title, description, path or "", brand, tag_text) if part))
        if path:
            if path not in path_index:
                path_index[path] = len(paths)
                paths.append(path)
            categories[col] = path_index[path]
    return texts, categories, paths
