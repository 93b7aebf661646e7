"""Simulated shoppers: request recommendations through the real API and click/buy by hidden taste.

The demo generator saved each customer's hidden tastes (``imports.demo.load_tastes``) and produced the
demo's carts and purchases from one utility per customer and product (``affinity``, the same formula):

    affinity = 1.5 * favourite_brand + 0.7 * favourite_category
               - (log(price / category_typical_price) - log(price_multiplier))^2 / (2 * price_sigma^2)

A simulated customer shown a list examines rank ``r`` (0-based) with probability
``1 / log2(r + 2)`` (position bias) and, having looked, clicks with ``CLICK_BASE * exp(affinity)``
(capped), so clicks are proportional to taste fit exactly as the demo's carts were. A click goes to the
cart with ``CART_AFTER_CLICK * exp(affinity)`` (capped); the list's "session" checks out with the
demo's ``p_checkout`` and buys each carted item with its ``p_buy_in_checkout``. Global popularity plays
no part: a popular product is clicked only as much as the customer's taste implies, so a model that
learned the tastes from the demo data earns more clicks than one that ranks by popularity.

Every event goes back through ``POST /api/v1/events/batch`` with ``context.list_id`` (one batch per
``commit_every`` requests). In-process (no ``base_url``) each chunk of ``commit_every`` requests runs
in one database transaction, so the run is not bound by one commit (fsync) per served list; with
``base_url`` every request is a real HTTP round trip to a running server.

:func:`simulate_traffic` is the body of ``manage.py simulate_traffic`` and of the demo set-up
(``manage.py setup_demo``), which runs it against the demo's experiment.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.test import Client

from analytics.experiments.selectors import experiment_results
from shop_recs.catalog.models import Product
from shop_recs.imports.demo import load_tastes
from shop_recs.serving.models import Experiment
from shop_recs.stores.models import ApiKey, Store
from shop_recs.stores.scoping import store_scope

#: The demo generator's utility weights (``imports.demo``; also saved in the tastes file's ``model``).
W_BRAND, W_CATEGORY, PRICE_SIGMA = 1.5, 0.7, 0.35
#: P(click | examined) = CLICK_BASE * exp(affinity), capped at P_CLICK_MAX.
CLICK_BASE, P_CLICK_MAX = 0.1, 0.6
#: P(cart | click) = CART_AFTER_CLICK * exp(affinity), capped at P_CART_MAX.
CART_AFTER_CLICK, P_CART_MAX = 0.1, 0.8
#: Defaults of the demo's checkout (overridden by the tastes file's ``model``).
P_CHECKOUT, P_BUY_IN_CHECKOUT = 0.55, 0.85
COMMIT_EVERY = 200


class SimulationError(Exception):
    """The simulation cannot run (no tastes saved, a refused API call); the message says why."""


def examine_probability(rank: int | np.ndarray) -> np.ndarray:
    """Position bias: the chance that the item at 0-based ``rank`` is looked at (1, 0.63, 0.5, ...)."""
    return 1.0 / np.log2(np.asarray(rank, dtype=float) + 2.0)


class TasteModel:
    """The hidden truth of the simulator: each customer's affinity to every product of the catalog."""

    def __init__(self, tastes: dict[str, Any], products: list[tuple[str, str, str, float]]) -> None:
        model = tastes.get("model") or {}
        self.sigma = float(model.get("price_sigma", PRICE_SIGMA))
        self.p_checkout = float(model.get("p_checkout", P_CHECKOUT))
        self.p_buy = float(model.get("p_buy_in_checkout", P_BUY_IN_CHECKOUT))
        self.customers = tastes["customers"]
        self.index = {sku: i for i, (sku, _, _, _) in enumerate(products)}
        self.category = np.array([c for _, c, _, _ in products], dtype=object)
        self.brand = np.array([b for _, _, b, _ in products], dtype=object)
        self.price = np.array([p for _, _, _, p in products], dtype=float)
        typical = tastes.get("categories") or {}
        base = np.array([float(typical.get(c) or 0.0) for c in self.category], dtype=float)
        priced = (self.price > 0) & (base > 0)
        self.log_rel_price = np.zeros(len(products))
        self.log_rel_price[priced] = np.log(self.price[priced] / base[priced])
        self.priced = priced
        self._cache: dict[str, np.ndarray] = {}

    def affinity(self, customer: str) -> np.ndarray:
        """The demo generator's utility of every product for this customer (cached)."""
        hit = self._cache.get(customer)
        if hit is not None:
            return hit
        taste = self.customers[customer]
        fav_cat = np.isin(self.category, list(taste.get("favourite_categories", ())))
        brands = [b for b in taste.get("favourite_brands", ()) if b]
        fav_brand = np.isin(self.brand, brands) if brands else np.zeros(len(self.brand), dtype=bool)
        rel = self.log_rel_price - np.log(float(taste.get("price_multiplier", 1.0)))
        price_term = np.where(self.priced, -(rel**2) / (2 * self.sigma**2), 0.0)
        out = W_BRAND * fav_brand + W_CATEGORY * fav_cat + price_term
        self._cache[customer] = out
        return out

    def click_probabilities(self, customer: str, skus: list[str]) -> np.ndarray:
        """P(click) of each item of a served list, in order: position bias x taste (unknown skus: 0)."""
        aff = self.affinity(customer)
        idx = np.array([self.index.get(s, -1) for s in skus], dtype=np.int64)
        p = examine_probability(np.arange(len(skus))) * np.minimum(CLICK_BASE * np.exp(aff[idx]), P_CLICK_MAX)
        return np.where(idx >= 0, p, 0.0)

    def cart_probability(self, customer: str, sku: str) -> float:
        return float(min(CART_AFTER_CLICK * np.exp(self.affinity(customer)[self.index[sku]]), P_CART_MAX))


@dataclass
class SimulationStats:
    """What one simulation did: requests served, items shown, and the shoppers' reactions."""

    requests: int = 0
    shown: int = 0
    clicks: int = 0
    carts: int = 0
    buys: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        rate = self.requests / max(self.seconds, 1e-9)
        return (
            f"{self.requests} requests in {self.seconds:.1f} s ({rate:.0f}/s); shown {self.shown} items; "
            f"{self.clicks} clicks, {self.carts} cart adds, {self.buys} purchases"
        )


def load_truth(store: Store) -> TasteModel:
    """The store's hidden tastes over its current catalog; :class:`SimulationError` if never seeded."""
    try:
        tastes = load_tastes(store.slug)
    except FileNotFoundError as exc:
        raise SimulationError(f"no saved tastes for {store.slug!r}: seed it with the demo generator") from exc
    with store_scope(store):
        rows = Product.objects.values_list("sku", "category__path", "brand", "price")
        catalog = [(sku, path or "", brand or "", float(price) if price else 0.0) for sku, path, brand, price in rows]
    return TasteModel(tastes, catalog)


def simulate_traffic(
    store: Store,
    *,
    customers: int = 300,
    requests: int = 3000,
    placement: str = "home",
    n: int = 10,
    seed: int = 7,
    base_url: str = "",
    api_key: str = "",
    commit_every: int = COMMIT_EVERY,
    progress: Callable[[int], Any] | None = None,
) -> SimulationStats:
    """Serve ``requests`` recommendation lists to ``customers`` simulated shoppers and post their events.

    Without ``api_key`` a key named "traffic simulator" is created (in-process only). ``progress`` is
    called with the number of requests done since its last call. Attribution is left to the caller.
    """
    if base_url and not api_key:
        raise SimulationError("a running server (base_url) needs an API key")
    truth = load_truth(store)
    if not api_key:
        _, api_key = ApiKey.generate(store, "traffic simulator")
    api = ApiClient(api_key, base_url)
    rng = np.random.default_rng(seed)
    ids = sorted(truth.customers)
    people = [ids[i] for i in rng.choice(len(ids), size=min(customers, len(ids)), replace=False)]
    who = rng.integers(len(people), size=requests)
    chunk = max(1, commit_every)
    stats = SimulationStats(requests=requests)
    order = 0
    t0 = time.perf_counter()
    for start in range(0, requests, chunk):
        pending: list[dict[str, Any]] = []
        # In-process, one transaction per chunk: the served lists and the chunk's events commit together.
        with transaction.atomic() if api.in_process else nullcontext():
            for i in range(start, min(start + chunk, requests)):
                cid = people[int(who[i])]
                data = api.get(f"/recommendations/customer/{cid}?placement={placement}&n={n}")
                skus = [item["sku"] for item in data["items"]]
                order += _shop(truth, rng, cid, skus, data["list_id"], pending, stats, order, seed)
            if pending:
                api.post("/events/batch", pending)
        if progress is not None:
            progress(min(chunk, requests - start))
    stats.seconds = time.perf_counter() - t0
    return stats


def _shop(
    truth: TasteModel,
    rng: np.random.Generator,
    cid: str,
    skus: list[str],
    list_id: str,
    pending: list[dict[str, Any]],
    stats: SimulationStats,
    order: int,
    seed: int,
) -> int:
    """One customer looks at one served list: clicks, cart adds and maybe an order. Returns orders placed."""
    stats.shown += len(skus)
    if not skus:
        return 0
    clicked = np.flatnonzero(rng.random(len(skus)) < truth.click_probabilities(cid, skus))
    basket = []
    for k in clicked.tolist():
        sku = skus[k]
        stats.clicks += 1
        pending.append(_event(cid, "click", sku, list_id))
        if rng.random() < truth.cart_probability(cid, sku):
            stats.carts += 1
            pending.append(_event(cid, "add_to_cart", sku, list_id, quantity=1))
            basket.append(sku)
    if not basket or rng.random() >= truth.p_checkout:
        return 0
    bought = [s for s in basket if rng.random() < truth.p_buy]
    for sku in bought:
        stats.buys += 1
        price = float(truth.price[truth.index[sku]])
        pending.append(
            _event(cid, "purchase", sku, list_id, quantity=1, value=price, order_id=f"sim-{seed}-{order + 1}")
        )
    return 1 if bought else 0


def report_lines(store: Store, exp: Experiment) -> list[str]:
    """The experiment's results as printable lines: per variant, then the verdict and any SRM warning."""
    with store_scope(store):
        res = experiment_results(exp)
    lines = []
    for row in res["variants"]:
        line = (
            f"{row['name']:>16}: customers {row['customers']}, impressions {row['impressions']}, "
            f"CTR {row['ctr']:.4f}, conversion {row['conversion']:.4f}, revenue/customer "
            f"{row['revenue_per_customer']:.2f}"
        )
        if "ctr_test" in row:
            line += (
                f", CTR diff {row['ctr_test'].diff:+.4f} (p={row['ctr_test'].p_value:.3g}), conversion "
                f"p={row['conversion_test'].p_value:.3g}, revenue/customer p={row['revenue_test'].p_value:.3g}"
            )
        lines.append(line)
    verdict = res["verdict"]
    if verdict:
        lines.append(f"verdict: {verdict['winner']} wins on CTR (p={verdict['p_value']:.3g})")
    else:
        lines.append("verdict: no significant difference yet")
    if res["srm"]["warning"]:
        lines.append(f"WARNING: sample ratio mismatch (p={res['srm']['p_value']:.3g})")
    return lines


def mistype(query: str, rng: np.random.Generator) -> str:
    """The query with two neighbouring letters of its longest word swapped (a typical slip)."""
    words = query.split()
    if not words:
        return query
    k = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[k]
    if len(word) < 4:
        return query
    i = int(rng.integers(1, len(word) - 2))
    words[k] = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return " ".join(words)


def _event(customer: str, kind: str, sku: str, list_id: str, **extra: Any) -> dict[str, Any]:
    ts = datetime.now(UTC).isoformat()
    return {"customer": customer, "type": kind, "sku": sku, "timestamp": ts, "context": {"list_id": list_id}, **extra}


class ApiClient:
    """The API through the Django test client (in-process) or HTTP (``base_url``)."""

    def __init__(self, raw_key: str, base_url: str) -> None:
        self.headers = {"Authorization": f"Bearer {raw_key}"}
        self.base = base_url.rstrip("/")
        if not self.base:
            host = next(
                (h for h in settings.ALLOWED_HOSTS if h and "*" not in h and not h.startswith(".")), "localhost"
            )
            self.client = Client(headers=self.headers, HTTP_HOST=host)

    @property
    def in_process(self) -> bool:
        return not self.base

    def get(self, path: str) -> dict[str, Any]:
        if self.base:
            req = urllib.request.Request(self.base + "/api/v1" + path, headers=self.headers)  # noqa: S310
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
                return json.loads(resp.read())
        resp = self.client.get("/api/v1" + path)
        if resp.status_code != 200:
            raise SimulationError(f"GET {path}: {resp.status_code} {resp.content[:300]!r}")
        return resp.json()

    def post(self, path: str, payload: Any) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        if self.base:
            req = urllib.request.Request(  # noqa: S310
                self.base + "/api/v1" + path,
                data=body,
                headers={**self.headers, "Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
                return json.loads(resp.read())
        resp = self.client.post("/api/v1" + path, data=body, content_type="application/json")
        if resp.status_code not in (200, 201):
            raise SimulationError(f"POST {path}: {resp.status_code} {resp.content[:300]!r}")
        return resp.json()
