"""Customer profile math (用户画像): vectorised pandas over flat event arrays, no per-customer queries.

``read_events``/``read_products`` turn ``values_list`` reads into compact frames (call them inside
``store_scope``); ``compute_profiles`` is pure and works on those frames, so the formulas below are
tested on hand-checked data without HTTP.

Formulas (``as_of`` is the time of the run):

* **RFM.** recency = days from the last purchase to ``as_of``; frequency = orders (distinct
  ``order_id``; a purchase line without an order id is an order of its own); monetary = revenue
  (sum of unit price ``value`` × ``quantity``, a missing quantity counts as 1). AOV = monetary /
  frequency.
* **Quintile scores 1–5** among customers with at least one purchase:
  ``score = ceil(5 · rank / n)``, where ``rank`` is the *average* rank (ties share the mean of their
  ranks, so equal values always get equal scores) in the "better" direction (recent, frequent, high
  spend → 5). Customers without purchases get R = F = M = 1.
* **Lifetime value** = revenue to date + expected revenue of the next 365 days
  ``AOV · 365 / gap · (1 − churn_risk)`` (a simple heuristic; 0 for customers who never bought).
* **Affinity.** Each product event weighs ``w_type · 0.5^(age_days / half_life)`` (view 1, click 1,
  add-to-cart 3, rating 2, purchase 5; searches and cart removals 0); a customer's weights per
  category (and per brand) are divided by their total, so the full vector sums to 1. Only the top
  ``top_n`` entries are stored.
* **Price band.** For each purchase line, unit price / median catalog price of the product's
  category; the customer's ratio is the mean over their lines (over viewed products' catalog prices
  if they never bought). ratio < 0.8 → budget, > 1.25 → premium, otherwise mid.
* **Habits.** Events by day of week (Mon..Sun) and hour in the store's time zone; sessions split at
  30 minutes of inactivity; events per session; views per purchase event.
* **Churn risk** = ``1 − exp(−days_since / (gap · k))`` with ``k = 2``: ``days_since`` is the
  recency (days since the last event for customers who never bought) and ``gap`` is the customer's
  median days between orders, or — with fewer than 2 orders — the population prior (median of those
  medians, 30 days if nobody has 2 orders), floored at 1 day. A customer at exactly their usual gap
  has risk 1 − e^(−1/2) ≈ 0.39; at four gaps ≈ 0.86. Customers with no events at all get 1.0.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

EVENT_TYPES: tuple[str, ...] = ("view", "search", "click", "add_to_cart", "remove_from_cart", "purchase", "rating")
_CODE = {t: i for i, t in enumerate(EVENT_TYPES)}
VIEW, PURCHASE = _CODE["view"], _CODE["purchase"]
DAY = 86_400.0
_EPOCH = pd.Timestamp(0, tz="UTC")
logger = logging.getLogger(__name__)


@dataclass
class ProfileConfig:
    """Knobs of the profile formulas (defaults documented in the module docstring)."""

    half_life_days: float = 30.0
    top_n: int = 10
    session_gap_minutes: float = 30.0
    churn_k: float = 2.0
    prior_gap_days: float = 30.0
    min_gap_days: float = 1.0
    budget_below: float = 0.8
    premium_above: float = 1.25
    event_weights: dict[str, float] = field(
        default_factory=lambda: {"view": 1.0, "click": 1.0, "add_to_cart": 3.0, "rating": 2.0, "purchase": 5.0}
    )


# --- reading (inside store_scope) -------------------------------------------------------------

_EVENT_COLUMNS = ("id", "customer_id", "event_type", "product_id", "value", "quantity", "order_id", "timestamp")


def _frame_from_rows(rows: list[tuple]) -> pd.DataFrame:
    if not rows:
        return empty_events()
    ids, cust, etype, prod, value, qty, order, ts = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "id": np.fromiter(ids, dtype=np.int64, count=len(ids)),
            "customer": np.fromiter(cust, dtype=np.int64, count=len(cust)),
            "etype": np.fromiter((_CODE.get(t, -1) for t in etype), dtype=np.int8, count=len(etype)),
            "product": np.fromiter((-1 if p is None else p for p in prod), dtype=np.int64, count=len(prod)),
            "value": np.array(value, dtype=np.float64),  # None -> nan
            "qty": np.array([np.nan if q is None else q for q in qty], dtype=np.float64),
            "order": np.array(order, dtype=object),
            "ts": ((pd.to_datetime(pd.Series(ts), utc=True) - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(np.float64),
        }
    )


def empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.empty(0, np.int64),
            "customer": np.empty(0, np.int64),
            "etype": np.empty(0, np.int8),
            "product": np.empty(0, np.int64),
            "value": np.empty(0, np.float64),
            "qty": np.empty(0, np.float64),
            "order": np.empty(0, object),
            "ts": np.empty(0, np.float64),
        }
    )


def read_events(
    customer_ids: np.ndarray | None = None, chunk: int = 250_000, *, store_id: int | None = None
) -> pd.DataFrame:
    """The store's customer events as a compact frame, read in keyset-paginated chunks.

    Chunks keep peak memory at one chunk of Python tuples plus the numpy arrays, instead of millions
    of tuples at once. ``customer_ids`` restricts the read (incremental runs). Rows outside
    ``shop_recs.catalog.validation.readable_events_q`` are skipped; how many is
    ``frame.attrs["skipped_rows"]`` (and logged).
    """
    from django.db import connection  # why: as above

    from shop_recs.activity.models import Event  # why: the module stays importable without Django (pure math)
    from shop_recs.catalog.validation import readable_events_q  # why: as above

    readable = readable_events_q()
    unreadable = Event.objects.filter(customer__isnull=False).exclude(readable)
    if customer_ids is not None:
        ids = np.unique(np.asarray(customer_ids, dtype=np.int64)).tolist()
        skipped = sum(unreadable.filter(customer_id__in=ids[i : i + 5_000]).count() for i in range(0, len(ids), 5_000))
    else:
        skipped = unreadable.count()
    if customer_ids is None and store_id is not None and connection.vendor == "postgresql":
        # A full read on PostgreSQL: one COPY instead of 250k-row values_list chunks (85 s -> about
        # 10 s for 5M events, docs/benchmarks_profiles.md). Incremental reads stay small.
        from analytics import sql as analytics_sql  # why: keeps this module importable without Django

        frame = _frame_from_copy(analytics_sql.copy_profile_events(store_id, readable))
    else:
        frame = _read_event_chunks(
            Event.objects.filter(readable, customer__isnull=False).order_by("pk"), customer_ids, chunk
        )
    frame.attrs["skipped_rows"] = skipped
    if skipped:
        logger.warning("profiles: skipped %d event(s) with a timestamp or value outside the valid range", skipped)
    return frame


def _frame_from_copy(raw: pd.DataFrame) -> pd.DataFrame:
    """The frame of ``_frame_from_rows`` from the columns of ``analytics.sql.copy_profile_events``."""
    if raw.empty:
        return empty_events()
    # Through a categorical: a handful of distinct types, so mapping its categories is 5x faster
    # than mapping 5M strings one by one.
    types = pd.Categorical(raw["event_type"])
    type_codes = np.array([_CODE.get(t, -1) for t in types.categories], dtype=np.int8)
    frame = pd.DataFrame(
        {
            "id": raw["id"].to_numpy(np.int64),
            "customer": raw["customer_id"].to_numpy(np.int64),
            "etype": type_codes[types.codes] if len(type_codes) else np.full(len(raw), -1, np.int8),
            "product": raw["product_id"].fillna(-1).to_numpy(np.int64),
            "value": raw["value"].to_numpy(np.float64),
            "qty": raw["quantity"].to_numpy(np.float64),
            "order": raw["order_id"].fillna("").to_numpy(object),
            "ts": raw["epoch"].to_numpy(np.float64),
        }
    )
    # The ORM path reads in primary-key order; keep the same order so both paths give equal frames.
    # A sequential scan of an append-only table usually is in that order already.
    ids = frame["id"].to_numpy()
    if len(ids) > 1 and not bool((ids[1:] > ids[:-1]).all()):
        frame = frame.iloc[np.argsort(ids, kind="stable")].reset_index(drop=True)
    return frame


def _read_event_chunks(base: Any, customer_ids: np.ndarray | None, chunk: int) -> pd.DataFrame:
    frames: list[pd.DataFrame] = []
    if customer_ids is not None:
        ids = np.unique(np.asarray(customer_ids, dtype=np.int64)).tolist()
        for i in range(0, len(ids), 5_000):
            rows = list(base.filter(customer_id__in=ids[i : i + 5_000]).values_list(*_EVENT_COLUMNS))
            frames.append(_frame_from_rows(rows))
    else:
        last = 0
        while True:
            rows = list(base.filter(pk__gt=last).values_list(*_EVENT_COLUMNS)[:chunk])
            if not rows:
                break
            frames.append(_frame_from_rows(rows))
            last = rows[-1][0]
            if len(rows) < chunk:
                break
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty_events()


def read_products() -> pd.DataFrame:
    """product id → category path, brand and price (one query over the catalog)."""
    from shop_recs.catalog.models import Product  # why: the module stays importable without Django (pure math)

    rows = list(Product.objects.values_list("id", "category__path", "brand", "price"))
    if not rows:
        return pd.DataFrame({"category": [], "brand": [], "price": []}, index=pd.Index([], dtype=np.int64))
    ids, cats, brands, prices = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "category": [c or "" for c in cats],
            "brand": [b or "" for b in brands],
            "price": np.array([np.nan if p is None else float(p) for p in prices], dtype=np.float64),
        },
        index=pd.Index(np.array(ids, dtype=np.int64), name="product"),
    )


# --- pure math ---------------------------------------------------------------------------------


def quintile_scores(values: pd.Series, *, higher_is_better: bool = True) -> pd.Series:
    """Scores 1–5: ``ceil(5 · average_rank / n)`` in the "better" direction; ties share a score."""
    n = len(values)
    if n == 0:
        return pd.Series(dtype=np.int64, index=values.index)
    ranks = values.rank(method="average", ascending=higher_is_better)
    return np.ceil(5.0 * ranks / n).clip(1, 5).astype(np.int64)


def churn_risk(days_since: np.ndarray, gap_days: np.ndarray, k: float = 2.0) -> np.ndarray:
    """``1 − exp(−days_since / (gap · k))``; NaN days (never active) give 1.0."""
    days = np.asarray(days_since, dtype=np.float64)
    gap = np.asarray(gap_days, dtype=np.float64)
    risk = 1.0 - np.exp(-np.maximum(days, 0.0) / (gap * k))
    return np.where(np.isnan(days), 1.0, risk)


def price_band(ratio: float | None, cfg: ProfileConfig) -> str:
    if ratio is None or not math.isfinite(ratio):
        return ""
    if ratio < cfg.budget_below:
        return "budget"
    if ratio > cfg.premium_above:
        return "premium"
    return "mid"


def _top_dicts(df: pd.DataFrame, key: str, top_n: int) -> dict[int, dict[str, float]]:
    """``{customer: {key: share}}`` with shares of the full vector (sum 1), top ``top_n`` kept."""
    if df.empty:
        return {}
    g = df.groupby(["customer", key], sort=False)["w"].sum().reset_index()
    g = g[g[key] != ""]
    if g.empty:
        return {}
    total = g.groupby("customer")["w"].transform("sum")
    g["share"] = g["w"] / total
    g = g.sort_values(["customer", "share", key], ascending=[True, False, True])
    g = g[g.groupby("customer").cumcount() < top_n]
    out: dict[int, dict[str, float]] = {}
    for c, k, s in zip(g["customer"].to_numpy(), g[key].to_numpy(), g["share"].to_numpy(), strict=True):
        out.setdefault(int(c), {})[str(k)] = round(float(s), 6)
    return out


def compute_profiles(
    events: pd.DataFrame,
    customer_ids: np.ndarray,
    products: pd.DataFrame,
    as_of: datetime,
    cfg: ProfileConfig | None = None,
    tz: str = "UTC",
    population: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per customer in ``customer_ids`` (index ``customer``) with every profile field.

    ``population`` (columns recency_days, frequency, monetary, indexed by customer) supplies the
    other customers' values for quintile scoring in incremental runs; without it the scores are
    relative to the customers computed here.
    """
    cfg = cfg or ProfileConfig()
    now = as_of.timestamp()
    idx = pd.Index(np.unique(np.asarray(customer_ids, dtype=np.int64)), name="customer")
    out = pd.DataFrame(index=idx)
    ev = events[events["customer"].isin(idx)]

    _activity(out, ev, idx, cfg, tz)
    pur, median_gap = _rfm(out, ev, idx, now)
    buyers = out["frequency"] > 0
    _rfm_scores(out, idx, buyers, population)
    _churn(out, median_gap, idx, buyers, now, cfg, population)
    _affinities(out, ev, products, idx, now, cfg)
    _price_band(out, ev, pur, products, idx, cfg)
    return out


def _activity(out: pd.DataFrame, ev: pd.DataFrame, idx: pd.Index, cfg: ProfileConfig, tz: str) -> None:
    """Activity span, weekly and daily habits, sessions."""
    grp = ev.groupby("customer")["ts"]
    out["events"] = ev.groupby("customer").size().reindex(idx, fill_value=0).astype(np.int64)
    out["first_seen"] = grp.min().reindex(idx)
    out["last_seen"] = grp.max().reindex(idx)

    local = pd.to_datetime(ev["ts"].to_numpy(), unit="s", utc=True).tz_convert(tz)
    dow = pd.crosstab(ev["customer"].to_numpy(), np.asarray(local.day_of_week)).reindex(
        index=idx, columns=range(7), fill_value=0
    )
    hour = pd.crosstab(ev["customer"].to_numpy(), np.asarray(local.hour)).reindex(
        index=idx, columns=range(24), fill_value=0
    )
    out["dow_histogram"] = dow.fillna(0).astype(np.int64).to_numpy().tolist()
    out["hour_histogram"] = hour.fillna(0).astype(np.int64).to_numpy().tolist()

    order = np.lexsort((ev["ts"].to_numpy(), ev["customer"].to_numpy()))
    c_sorted = ev["customer"].to_numpy()[order]
    t_sorted = ev["ts"].to_numpy()[order]
    new_session = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        new_session[1:] = (c_sorted[1:] != c_sorted[:-1]) | (np.diff(t_sorted) > cfg.session_gap_minutes * 60)
    sessions = pd.Series(new_session, index=c_sorted).groupby(level=0).sum()
    out["sessions"] = sessions.reindex(idx, fill_value=0).astype(np.int64)
    out["mean_session_events"] = (out["events"] / out["sessions"].replace(0, np.nan)).round(4)
    views = (ev["etype"] == VIEW).groupby(ev["customer"]).sum().reindex(idx, fill_value=0)
    n_purchase_events = (ev["etype"] == PURCHASE).groupby(ev["customer"]).sum().reindex(idx, fill_value=0)
    out["views_per_purchase"] = (views / n_purchase_events.replace(0, np.nan)).round(4)


def _rfm(out: pd.DataFrame, ev: pd.DataFrame, idx: pd.Index, now: float) -> tuple[pd.DataFrame, pd.Series]:
    """Recency, frequency, monetary, AOV and the gaps between orders; (purchase events, median gap)."""
    pur = ev[ev["etype"] == PURCHASE]
    revenue = pur["value"].fillna(0.0) * pur["qty"].fillna(1.0)
    has_order = pur["order"].to_numpy() != ""
    order_key = np.where(has_order, pur["order"].to_numpy(), np.char.add("#", pur["id"].to_numpy().astype(str)))
    lines = pd.DataFrame({"customer": pur["customer"].to_numpy(), "order": order_key, "ts": pur["ts"].to_numpy()})
    lines["revenue"] = revenue.to_numpy()
    orders = lines.groupby(["customer", "order"], sort=False).agg(ts=("ts", "min"), revenue=("revenue", "sum"))
    orders = orders.reset_index()
    out["frequency"] = orders.groupby("customer").size().reindex(idx, fill_value=0).astype(np.int64)
    out["monetary"] = orders.groupby("customer")["revenue"].sum().reindex(idx, fill_value=0.0).round(2)
    out["last_purchase_at"] = orders.groupby("customer")["ts"].max().reindex(idx)
    out["recency_days"] = ((now - out["last_purchase_at"]) / DAY).round(3)
    out["aov"] = (out["monetary"] / out["frequency"].replace(0, np.nan)).round(2)

    orders = orders.sort_values(["customer", "ts"])
    gaps = orders["ts"].diff() / DAY
    same = orders["customer"].eq(orders["customer"].shift())
    gap_series = pd.Series(gaps.to_numpy()[same.to_numpy()], index=orders["customer"].to_numpy()[same.to_numpy()])
    median_gap = gap_series.groupby(level=0).median().reindex(idx)
    out["median_gap_days"] = median_gap.round(3)

    return pur, median_gap


def _rfm_scores(out: pd.DataFrame, idx: pd.Index, buyers: pd.Series, population: pd.DataFrame | None) -> None:
    # Scores: among buyers, against the population when given (incremental runs).
    rfm = out.loc[buyers, ["recency_days", "frequency", "monetary"]]
    if population is not None and len(population):
        others = population.drop(index=rfm.index, errors="ignore")
        others = others[others["frequency"] > 0]
        rfm_all = pd.concat([rfm, others[["recency_days", "frequency", "monetary"]]])
    else:
        rfm_all = rfm
    for col, score, better in (
        ("recency_days", "r_score", False),
        ("frequency", "f_score", True),
        ("monetary", "m_score", True),
    ):
        scores = quintile_scores(rfm_all[col], higher_is_better=better)
        out[score] = scores.reindex(idx).where(buyers, 1).fillna(1).astype(np.int64)


def _churn(
    out: pd.DataFrame,
    median_gap: pd.Series,
    idx: pd.Index,
    buyers: pd.Series,
    now: float,
    cfg: ProfileConfig,
    population: pd.DataFrame | None,
) -> None:
    """Churn risk from the customer's (or the population's) typical gap, and lifetime value."""
    if population is not None and "median_gap_days" in population and population["median_gap_days"].notna().any():
        prior_pool = pd.concat([median_gap.dropna(), population["median_gap_days"].drop(index=idx, errors="ignore")])
    else:
        prior_pool = median_gap.dropna()
    prior_pool = prior_pool.dropna()
    prior = float(prior_pool.median()) if len(prior_pool) else cfg.prior_gap_days
    gap_used = np.where(out["frequency"] >= 2, median_gap.fillna(prior), prior)
    gap_used = np.maximum(gap_used.astype(np.float64), cfg.min_gap_days)
    days_since = np.where(buyers, out["recency_days"], (now - out["last_seen"]) / DAY)
    out["churn_risk"] = np.round(churn_risk(days_since.astype(np.float64), gap_used, cfg.churn_k), 4)
    expected = out["aov"].fillna(0.0) * (365.0 / gap_used) * (1.0 - out["churn_risk"])
    out["lifetime_value"] = (out["monetary"] + np.where(buyers, expected, 0.0)).round(2)


def _affinities(
    out: pd.DataFrame, ev: pd.DataFrame, products: pd.DataFrame, idx: pd.Index, now: float, cfg: ProfileConfig
) -> None:
    """Time-decayed, event-weighted top categories and brands."""
    weights = np.zeros(len(EVENT_TYPES))
    for t, w in cfg.event_weights.items():
        weights[_CODE[t]] = w
    pe = ev[(ev["product"] >= 0) & (ev["etype"] >= 0)]
    w = weights[pe["etype"].to_numpy()] * np.power(
        0.5, np.maximum(now - pe["ts"].to_numpy(), 0) / DAY / cfg.half_life_days
    )
    prod_cat = products["category"].reindex(pe["product"].to_numpy()).fillna("").to_numpy()
    prod_brand = products["brand"].reindex(pe["product"].to_numpy()).fillna("").to_numpy()
    aff = pd.DataFrame({"customer": pe["customer"].to_numpy(), "category": prod_cat, "brand": prod_brand, "w": w})
    aff = aff[aff["w"] > 0]
    cat_aff = _top_dicts(aff[["customer", "category", "w"]], "category", cfg.top_n)
    brand_aff = _top_dicts(aff[["customer", "brand", "w"]], "brand", cfg.top_n)
    out["category_affinity"] = [cat_aff.get(int(c), {}) for c in idx]
    out["brand_affinity"] = [brand_aff.get(int(c), {}) for c in idx]


def _price_band(
    out: pd.DataFrame, ev: pd.DataFrame, pur: pd.DataFrame, products: pd.DataFrame, idx: pd.Index, cfg: ProfileConfig
) -> None:
    """Price paid (or else viewed) relative to the category median, and its band."""
    priced = products[products["price"].notna() & (products["category"] != "")]
    cat_median = priced.groupby("category")["price"].median()
    pur_cat = products["category"].reindex(pur["product"].to_numpy()).to_numpy()
    pur_ratio = pur["value"].to_numpy() / pd.Series(pur_cat).map(cat_median).to_numpy(dtype=np.float64)
    ratio = pd.Series(pur_ratio, index=pur["customer"].to_numpy()).replace([np.inf, -np.inf], np.nan).dropna()
    ratio = ratio.groupby(level=0).mean()
    vw = ev[(ev["etype"] == VIEW) & (ev["product"] >= 0)]
    vw_prod = products.reindex(vw["product"].to_numpy())
    vw_ratio = vw_prod["price"].to_numpy() / vw_prod["category"].map(cat_median).to_numpy(dtype=np.float64)
    vratio = pd.Series(vw_ratio, index=vw["customer"].to_numpy()).replace([np.inf, -np.inf], np.nan).dropna()
    vratio = vratio.groupby(level=0).mean()
    out["price_ratio"] = ratio.reindex(idx).fillna(vratio.reindex(idx)).round(4)
    out["price_band"] = [price_band(r, cfg) for r in out["price_ratio"].to_numpy()]


def predict_interests(
    loaded: Any,
    events: pd.DataFrame,
    customer_ids: np.ndarray,
    products: pd.DataFrame,
    top_items: int = 20,
    top_categories: int = 3,
    batch: int = 1_000,
) -> dict[int, list[list[Any]]]:
    """Top categories expected next: the active model's top-N items per customer, aggregated by category.

    Each recommended item adds ``1 / (rank + 1)`` to its category; the shares are normalised to 1.
    Customers the model does not know are left out. ``loaded`` is a ``recommend.services.LoadedModel``.
    """
    rows = [(int(c), loaded.row_of(int(c))) for c in np.unique(customer_ids)]
    rows = [(c, r) for c, r in rows if r is not None]
    if not rows:
        return {}
    n_items = len(loaded.item_ids)
    col_of = pd.Series(np.arange(n_items), index=np.asarray(loaded.item_ids, dtype=np.int64))
    pe = events[events["product"] >= 0]
    cols = col_of.reindex(pe["product"].to_numpy())
    cust_pos = {c: i for i, (c, _r) in enumerate(rows)}
    pos = pe["customer"].map(cust_pos)
    # A new array: pandas 3 hands out read-only views, so an in-place "&=" would raise.
    ok = cols.notna().to_numpy() & pos.notna().to_numpy()
    ui = sp.csr_matrix(
        (np.ones(int(ok.sum())), (pos.to_numpy()[ok].astype(np.int64), cols.to_numpy()[ok].astype(np.int64))),
        shape=(len(rows), n_items),
    )
    ui.data[:] = 1.0
    item_cat = products["category"].reindex(np.asarray(loaded.item_ids, dtype=np.int64)).fillna("").to_numpy()
    out: dict[int, list[list[Any]]] = {}
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        ids = np.array([r for _c, r in chunk], dtype=np.int64)
        items, _scores = loaded.model.recommend(ids, ui[start : start + len(chunk)], N=top_items)
        items = np.atleast_2d(items)
        for (c, _r), rec in zip(chunk, items, strict=True):
            acc: dict[str, float] = {}
            for rank, col in enumerate(rec.tolist()):
                if col < 0:
                    continue
                cat = item_cat[col]
                if cat:
                    acc[cat] = acc.get(cat, 0.0) + 1.0 / (rank + 1)
            total = sum(acc.values())
            best = sorted(acc.items(), key=lambda kv: (-kv[1], kv[0]))[:top_categories]
            out[c] = [[k, round(v / total, 4)] for k, v in best] if total else []
    return out
