"""Simulated shoppers: request recommendations through the real API and click/buy by hidden taste.

The demo generator saved each customer's hidden tastes (``imports.demo.load_tastes``). A simulated
customer clicks a recommended product with a probability that grows with how well it fits those
tastes (favourite categories and brands, price band), adds some clicks to the cart and buys some of
those. Every event goes back through ``POST /api/v1/events/batch`` with ``context.list_id``, so a
model that recommends what customers like earns more clicks, which is what an A/B test should see.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from shop_recs.stores.models import ApiKey, Store
from shop_recs.stores.scoping import store_scope

#: Click probability of a shown item: base + per matching taste (capped).
P_CLICK_BASE, P_CLICK_CATEGORY, P_CLICK_BRAND, P_CLICK_PRICE = 0.01, 0.22, 0.18, 0.04
P_CART_AFTER_CLICK, P_BUY_AFTER_CART = 0.35, 0.55
BATCH = 500


def click_probability(taste: dict[str, Any], product: dict[str, Any], category_price: float | None) -> float:
    """How likely this customer clicks this product when shown it (the hidden truth of the simulator)."""
    p = P_CLICK_BASE
    if product["category"] in taste.get("favourite_categories", ()):
        weights = dict(zip(taste["favourite_categories"], taste.get("category_weights", []), strict=False))
        p += P_CLICK_CATEGORY * (0.5 + weights.get(product["category"], 0.3))
    if product["brand"] and product["brand"] in taste.get("favourite_brands", ()):
        p += P_CLICK_BRAND
    if category_price and product["price"]:
        ratio = product["price"] / (category_price * float(taste.get("price_multiplier", 1.0)))
        p += P_CLICK_PRICE * float(np.exp(-abs(np.log(max(ratio, 1e-6)))))
    return min(p, 0.9)


class Command(BaseCommand):
    help = "Simulate shoppers against the serving API (and an experiment) from the demo's hidden tastes."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--store", default="demo")
        parser.add_argument("--customers", type=int, default=300)
        parser.add_argument("--requests", type=int, default=3000)
        parser.add_argument("--experiment", type=int, default=None, help="print this experiment's results")
        parser.add_argument("--placement", default=None, help="default: the experiment's placement, else 'home'")
        parser.add_argument("--n", type=int, default=10, help="items per list")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--base-url", default="", help="a running server (default: in-process test client)")
        parser.add_argument("--api-key", default="", help="needed with --base-url; default: a new key")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        from shop_recs.imports.demo import load_tastes

        store = Store.objects.filter(slug=opts["store"]).first()
        if store is None:
            raise CommandError(f"no store {opts['store']!r}")
        try:
            tastes = load_tastes(store.slug)
        except FileNotFoundError as exc:
            raise CommandError(f"no saved tastes for {store.slug!r}: seed it with the demo generator") from exc
        placement = opts["placement"]
        exp = None
        if opts["experiment"]:
            from analytics.experiments.models import Experiment

            with store_scope(store):
                exp = Experiment.objects.filter(pk=opts["experiment"]).first()
            if exp is None:
                raise CommandError(f"no experiment {opts['experiment']} in store {store.slug!r}")
            placement = placement or exp.placement
        placement = placement or "home"
        raw_key = opts["api_key"]
        if not raw_key:
            if opts["base_url"]:
                raise CommandError("--base-url needs --api-key")
            _, raw_key = ApiKey.generate(store, "traffic simulator")
        api = _Api(raw_key, opts["base_url"])
        products, cat_price = self._catalog(store, tastes)
        rng = np.random.default_rng(opts["seed"])
        ids = sorted(tastes["customers"])
        people = [ids[i] for i in rng.choice(len(ids), size=min(opts["customers"], len(ids)), replace=False)]
        pending: list[dict[str, Any]] = []
        shown = clicks = carts = buys = 0
        order = 0
        for _ in tqdm(range(opts["requests"]), desc="requests", disable=opts["no_progress"]):
            cid = people[int(rng.integers(len(people)))]
            taste = tastes["customers"][cid]
            data = api.get(f"/recommendations/customer/{cid}?placement={placement}&n={opts['n']}")
            list_id = data["list_id"]
            basket = []
            for item in data["items"]:
                shown += 1
                prod = products.get(item["sku"])
                if prod is None:
                    continue
                if rng.random() >= click_probability(taste, prod, cat_price.get(prod["category"])):
                    continue
                clicks += 1
                pending.append(_event(cid, "click", item["sku"], list_id))
                if rng.random() < P_CART_AFTER_CLICK:
                    carts += 1
                    pending.append(_event(cid, "add_to_cart", item["sku"], list_id, quantity=1))
                    basket.append(item["sku"])
            bought = [s for s in basket if rng.random() < P_BUY_AFTER_CART]
            if bought:
                order += 1
                for sku in bought:
                    buys += 1
                    pending.append(
                        _event(cid, "purchase", sku, list_id, quantity=1, value=products[sku]["price"] or 0.0,
                               order_id=f"sim-{opts['seed']}-{order}")
                    )  # fmt: skip
            if len(pending) >= BATCH:
                api.post("/events/batch", pending)
                pending = []
        if pending:
            api.post("/events/batch", pending)
        self.stdout.write(f"shown {shown} items; {clicks} clicks, {carts} cart adds, {buys} purchases")
        from analytics.experiments.services import attribute_events

        self.stdout.write(f"attributed {attribute_events(store)} events")
        if exp is not None:
            self._report(store, exp)

    def _catalog(self, store: Store, tastes: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
        from shop_recs.catalog.models import Product

        with store_scope(store):
            rows = Product.objects.values_list("sku", "category__path", "brand", "price")
            products = {
                sku: {"category": path or "", "brand": brand or "", "price": float(price) if price else 0.0}
                for sku, path, brand, price in rows
            }
        return products, {k: float(v) for k, v in (tastes.get("categories") or {}).items()}

    def _report(self, store: Store, exp: Any) -> None:
        from analytics.experiments.selectors import experiment_results

        with store_scope(store):
            res = experiment_results(exp)
        for row in res["variants"]:
            line = (
                f"{row['name']:>16}: customers {row['customers']}, impressions {row['impressions']}, "
                f"CTR {row['ctr']:.4f}, conversion {row['conversion']:.4f}, revenue/customer "
                f"{row['revenue_per_customer']:.2f}"
            )
            if "ctr_test" in row:
                line += f", CTR diff {row['ctr_test'].diff:+.4f} (p={row['ctr_test'].p_value:.3g})"
            self.stdout.write(line)
        verdict = res["verdict"]
        if verdict:
            self.stdout.write(f"verdict: {verdict['winner']} wins on CTR (p={verdict['p_value']:.3g})")
        else:
            self.stdout.write("verdict: no significant difference yet")
        if res["srm"]["warning"]:
            self.stdout.write(f"WARNING: sample ratio mismatch (p={res['srm']['p_value']:.3g})")


def _event(customer: str, kind: str, sku: str, list_id: str, **extra: Any) -> dict[str, Any]:
    ts = datetime.now(UTC).isoformat()
    return {"customer": customer, "type": kind, "sku": sku, "timestamp": ts, "context": {"list_id": list_id}, **extra}


class _Api:
    """The API through the Django test client (in-process) or HTTP (``--base-url``)."""

    def __init__(self, raw_key: str, base_url: str) -> None:
        self.headers = {"Authorization": f"Bearer {raw_key}"}
        self.base = base_url.rstrip("/")
        if not self.base:
            from django.conf import settings
            from django.test import Client

            host = next(
                (h for h in settings.ALLOWED_HOSTS if h and "*" not in h and not h.startswith(".")), "localhost"
            )
            self.client = Client(headers=self.headers, HTTP_HOST=host)

    def get(self, path: str) -> dict[str, Any]:
        if self.base:
            req = urllib.request.Request(self.base + "/api/v1" + path, headers=self.headers)  # noqa: S310
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
                return json.loads(resp.read())
        resp = self.client.get("/api/v1" + path)
        if resp.status_code != 200:
            raise CommandError(f"GET {path}: {resp.status_code} {resp.content[:300]!r}")
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
            raise CommandError(f"POST {path}: {resp.status_code} {resp.content[:300]!r}")
        return resp.json()
