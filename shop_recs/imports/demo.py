"""A synthetic but believable shop: catalog, customers with hidden tastes, and ~6 months of events.

Everything is drawn from one ``numpy.random.Generator(PCG64(seed))`` in a fixed order, so the same
seed and the same end date always give the same data. Event generation is vectorised over sessions
and views (no per-event Python loop except building the final row tuples).

The generative story, per session:

1. A customer is drawn in proportion to a lognormal activity level (7 % of sessions are anonymous).
2. The day follows weekly and yearly seasonality plus a gentle growth trend; the hour a diurnal curve.
3. The session's intent category is one of the customer's 2-3 favourite categories with probability
   ``P_FAVOURITE`` (else a category by seasonal popularity: garden in summer, toys before Christmas).
4. ~30 % of sessions begin with a search whose query is made of words from the first product viewed.
5. Views: 1 + Poisson(3.2) products, each from the intent category (85 %) or anywhere; among a few
   popularity-drawn candidates the customer picks by hidden taste: favourite brands, and a price close
   to their price band relative to the category's typical price.
6. Funnel: a view goes to the cart with a probability that grows with taste affinity (~15 % overall);
   a session checks out with 55 %, buying most of its cart under one order id; an abandoned cart item
   is removed 35 % of the time; 18 % of purchases are rated 3-20 days later (better fit, better rating).

The hidden tastes are saved to ``VAR_DIR/demo/<slug>_tastes.json`` so a later traffic simulator can
replay the same people (see ``load_tastes``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from shop_recs.activity.ingest import product_ids_by_sku
from shop_recs.activity.models import Customer, Event
from shop_recs.catalog import validation as rules
from shop_recs.catalog.models import Category, Product
from shop_recs.catalog.services import upsert_products
from shop_recs.imports.demo_catalog import CATALOG, _Catalog, _make_catalog
from shop_recs.imports.demo_events import (
    AGE_BANDS,
    CART_BASE,
    COUNTRIES,
    GENDERS,
    P_ANONYMOUS,
    P_BUY_IN_CHECKOUT,
    P_CHECKOUT,
    P_FAVOURITE,
    P_RATE,
    P_REMOVE_ABANDONED,
    P_SEARCH,
    P_STAY_IN_CATEGORY,
    PRICE_BANDS,
    PRICE_SIGMA,
    TYPE_NAMES,
    _generate_events,
    _make_tastes,
    _Tastes,
)
from shop_recs.imports.jobs import write_event_batches
from shop_recs.stores.models import Store

__all__ = ["DemoConfig", "SeedResult", "seed_demo_store", "tastes_path", "load_tastes", "store_has_data"]


@dataclass(frozen=True)
class DemoConfig:
    """Size and randomness of the generated store."""

    seed: int = 42
    customers: int = 5_000
    products: int = 2_000
    events: int = 300_000
    days: int = 182
    end_date: date | None = None  # default: today (UTC); the last day with events is the day before


@dataclass
class SeedResult:
    """What ``seed_demo_store`` wrote, and how long each stage took."""

    categories: int = 0
    products: int = 0
    customers: int = 0
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    orders: int = 0
    tastes_file: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


# --- Storage of the hidden tastes --------------------------------------------------------------


def tastes_path(slug: str) -> Path:
    return Path(settings.VAR_DIR) / "demo" / f"{slug}_tastes.json"


def load_tastes(slug: str) -> dict[str, Any]:
    """The hidden tastes saved by ``seed_demo_store`` (see the module docstring for the format)."""
    return json.loads(tastes_path(slug).read_text())


def store_has_data(store: Store) -> bool:
    return any(model.all_stores.filter(store=store).exists() for model in (Product, Customer, Event))


def clear_store_data(store: Store) -> None:
    """Delete the store's events, customers, products and categories (for ``seed_demo --reset``)."""
    for model in (Event, Customer, Product, Category):
        model.all_stores.filter(store=store).delete()


# --- Writing the store -------------------------------------------------------------------------


def seed_demo_store(store: Store, cfg: DemoConfig, *, progress=None) -> SeedResult:
    """Generate and write the demo data for ``store`` (which must have no catalog, customers or events)."""
    result = SeedResult()
    t0 = time.perf_counter()
    end = cfg.end_date or datetime.now(UTC).date()
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    cat = _make_catalog(rng, cfg.products, store.currency or "USD")
    tastes = _make_tastes(rng, cfg.customers, cat)
    ev = _generate_events(rng, cfg, cat, tastes, end)
    result.seconds["generate"] = round(time.perf_counter() - t0, 2)

    t1 = time.perf_counter()
    with transaction.atomic():
        prod_pk = _write_catalog(store, cat)
        cust_pk = _write_customers(store, cfg, end, tastes, ev)
        result.seconds["catalog_and_customers"] = round(time.perf_counter() - t1, 2)

        t2 = time.perf_counter()
        rows = _event_rows(cfg, ev, prod_pk, cust_pk)
        written = write_event_batches(store.id, rows, progress)
        result.seconds["write_events"] = round(time.perf_counter() - t2, 2)

    sess = ev["sess"]
    result.categories = len({r["category"] for r in cat.rows}) + len(CATALOG)
    result.products = len(cat.rows)
    result.customers = cfg.customers
    result.events = written
    result.events_by_type = {TYPE_NAMES[k]: int((ev["type"] == k).sum()) for k in range(len(TYPE_NAMES))}
    result.sessions = int(len(np.unique(sess)))
    result.orders = int(len(np.unique(sess[ev["type"] == 4])))
    result.tastes_file = str(_save_tastes(store, cfg, end, cat, tastes))
    result.seconds["total"] = round(time.perf_counter() - t0, 2)
    return result


def _write_catalog(store: Store, cat: _Catalog) -> np.ndarray:
    """Upsert the generated products; their database ids, in catalog order."""
    for i in range(0, len(cat.rows), 1_000):
        upsert_products(store, cat.rows[i : i + 1_000])
    skus = [r["sku"] for r in cat.rows]
    sku_pk = product_ids_by_sku(store.id, skus)
    return np.array([sku_pk[s] for s in skus], dtype=np.int64)


def _write_customers(store: Store, cfg: DemoConfig, end: date, tastes: _Tastes, ev: dict[str, Any]) -> np.ndarray:
    """Create the customers; their database ids, in generation order."""
    # Signup is never after the customer's first session.
    first_day = np.full(cfg.customers, cfg.days, dtype=float)
    sess_day_of_event = np.floor((ev["ts"] - ev["day0"]) / 86400.0)
    known = ~ev["anon"][ev["sess"]]
    np.minimum.at(first_day, ev["cust"][ev["sess"][known]], sess_day_of_event[known])
    signup_days_before_end = np.maximum(tastes.signup_offset_days, cfg.days - first_day)
    customers = [
        Customer(
            store=store,
            external_id=f"C{i + 1:05d}",
            country=COUNTRIES[0][tastes.country[i]],
            age_band=AGE_BANDS[0][tastes.age[i]],
            gender=GENDERS[0][tastes.gender[i]],
            signup_date=end - timedelta(days=int(signup_days_before_end[i])),
        )
        for i in range(cfg.customers)
    ]
    Customer.all_stores.bulk_create(customers, batch_size=2_000)
    cust_pk_map = dict(Customer.all_stores.filter(store=store).values_list("external_id", "id"))
    return np.array([cust_pk_map[f"C{i + 1:05d}"] for i in range(cfg.customers)], dtype=np.int64)


def _event_rows(cfg: DemoConfig, ev: dict[str, Any], prod_pk: np.ndarray, cust_pk: np.ndarray) -> Iterator[tuple]:
    """The generated events as ``write_events`` rows (lazily, in time order)."""
    sess = ev["sess"]
    is_anon = ev["anon"][sess]
    e_cust = np.where(is_anon, -1, cust_pk[ev["cust"][sess]])
    session_names = np.array([f"demo-{cfg.seed}-{s:07d}" for s in range(len(ev["anon"]))], dtype=object)
    e_session = session_names[sess]
    types = np.array(TYPE_NAMES, dtype=object)[ev["type"]]
    e_prod = np.where(ev["prod"] >= 0, prod_pk[np.maximum(ev["prod"], 0)], -1)
    order_names = np.where(ev["type"] == 4, np.char.add("D", sess.astype(str)), "")
    queries = ev["queries"]
    stamps = [datetime.fromtimestamp(t, tz=UTC) for t in ev["ts"].tolist()]
    _check_generated(stamps, session_names, order_names, cfg)
    value = ev["value"]
    return (
        (
            None if c < 0 else c,
            s,
            t,
            None if p < 0 else p,
            None if v != v else v,
            q if q > 0 else None,
            o,
            queries[qi] if qi >= 0 else "",
            ts,
            None,
        )
        for c, s, t, p, v, q, o, qi, ts in zip(
            e_cust.tolist(),
            e_session.tolist(),
            types.tolist(),
            e_prod.tolist(),
            value.tolist(),
            ev["qty"].tolist(),
            order_names.tolist(),
            ev["query_idx"].tolist(),
            stamps,
            strict=True,
        )
    )


def _check_generated(stamps: list[datetime], sessions: np.ndarray, orders: np.ndarray, cfg: DemoConfig) -> None:
    """The seeder writes past the row-by-row validation (speed), so it checks its output against the
    same rules once: the time window (events are in time order) and the shape of every generated id."""
    if not stamps:
        return
    earliest, latest = rules.earliest_timestamp(), rules.latest_timestamp(datetime.now(UTC))
    for ts in (stamps[0], stamps[-1]):
        if problem := rules.timestamp_problem(ts, earliest, latest):
            raise ValueError(f"demo event timestamp {ts:%Y-%m-%d} {problem} (check the demo's end date and days)")
    samples = [f"C{cfg.customers:05d}", *(str(x) for x in sessions[-1:]), next((str(o) for o in orders if o), "")]
    bad = [s for s in samples if s and not rules.is_valid_id(s)]
    if bad:
        raise ValueError(f"demo ids {bad} do not follow the id rule ({rules.ID_RULE})")


def _save_tastes(store: Store, cfg: DemoConfig, end: date, cat: _Catalog, tastes: _Tastes) -> Path:
    path = tastes_path(store.slug)
    path.parent.mkdir(parents=True, exist_ok=True)
    customers = {}
    for i in range(len(tastes.activity)):
        k = 2 if tastes.fav_weights[i, 2] == 0 else 3
        customers[f"C{i + 1:05d}"] = {
            "favourite_categories": [cat.paths[c] for c in tastes.fav_cats[i, :k]],
            "category_weights": [float(w) for w in tastes.fav_weights[i, :k]],
            "favourite_brands": [cat.brands[b] for b in tastes.fav_brands[i]],
            "price_band": PRICE_BANDS[0][tastes.band[i]],
            "price_multiplier": float(tastes.price_mult[i]),
            "activity": round(float(tastes.activity[i]), 4),
        }
    payload = {
        "store": store.slug,
        "config": {**asdict(cfg), "end_date": end.isoformat()},
        "model": {
            "p_favourite_category": P_FAVOURITE,
            "p_stay_in_category": P_STAY_IN_CATEGORY,
            "p_anonymous_session": P_ANONYMOUS,
            "p_search": P_SEARCH,
            "cart_base": CART_BASE,
            "p_checkout": P_CHECKOUT,
            "p_buy_in_checkout": P_BUY_IN_CHECKOUT,
            "p_remove_abandoned": P_REMOVE_ABANDONED,
            "p_rate": P_RATE,
            "price_sigma": PRICE_SIGMA,
            "affinity": "1.5*favourite_brand + 0.7*favourite_category - (log(price/category_typical) "
            "- log(price_multiplier))^2 / (2*price_sigma^2)",
            "price_bands": dict(zip(PRICE_BANDS[0], PRICE_BANDS[2], strict=True)),
        },
        "categories": {p: float(b) for p, b in zip(cat.paths, cat.base_price, strict=True)},
        "customers": customers,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False))
    tmp.replace(path)
    return path
