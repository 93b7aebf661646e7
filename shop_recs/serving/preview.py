"""Reads behind the Recommendations pages (preview and rules). Call inside a store scope.

The preview serves through the same code as the API (``serving.recommend_for_customer`` and friends)
with ``log=False``: nothing is written, so previewing never pollutes attribution. Rule toggles are
passed as ``RuleContext.overrides`` (via the ``filters["overrides"]`` of the serving functions) and
only affect the page being rendered.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db.models import Max, Q
from django.utils.translation import gettext as _

from shop_recs.activity.models import Customer, Event
from shop_recs.catalog.models import Category, Product
from shop_recs.platform.cache import register_process_cache
from shop_recs.serving import services as serving
from shop_recs.serving.experiments import algorithm_model
from shop_recs.serving.fbt import fbt_table
from shop_recs.serving.models import StoreRules
from shop_recs.serving.rules import Rules, load_rules, placement_rules
from shop_recs.serving.runtime import serving_state
from shop_recs.training.artifacts import LoadedModel, load_version
from shop_recs.training.errors import TrainingError
from shop_recs.training.models import ModelVersion

if TYPE_CHECKING:
    from shop_recs.stores.models import Store

logger = logging.getLogger(__name__)

#: Items per column, history rows shown, lookup suggestions returned.
PREVIEW_N = 10
HISTORY_N = 20
LOOKUP_N = 20

# ``load_version`` keeps one model per store in its cache (the serving one). The preview needs every
# model of the active run at once, so it keeps its own small copy per store, keyed by version and
# checksum; it is replaced whenever the store's active run changes.
_run_models: dict[int, dict[tuple[int, str], LoadedModel]] = {}
_run_models_lock = threading.Lock()


def clear_preview_cache(store_id: int | None = None) -> None:
    with _run_models_lock:
        if store_id is None:
            _run_models.clear()
        else:
            _run_models.pop(int(store_id), None)


register_process_cache("serving.preview", clear_preview_cache)


# --- lookups ----------------------------------------------------------------------------------


def customer_suggestions(query: str = "", limit: int = LOOKUP_N) -> list[str]:
    """External ids for the search box: matches of ``query``, else the most recently active customers."""
    query = query.strip()
    if query:
        qs = Customer.objects.filter(external_id__icontains=query).order_by("external_id")
        return list(qs.values_list("external_id", flat=True)[:limit])
    recent = (
        Event.objects.filter(customer__isnull=False)
        .values("customer_id")
        .annotate(last=Max("timestamp"))
        .order_by("-last")
        .values_list("customer_id", flat=True)[:limit]
    )
    ids = list(recent)
    by_pk = dict(Customer.objects.filter(pk__in=ids).values_list("pk", "external_id"))
    return [by_pk[pk] for pk in ids if pk in by_pk]


def product_suggestions(query: str = "", limit: int = LOOKUP_N) -> list[tuple[str, str]]:
    """(sku, title) pairs matching ``query`` in the sku or title."""
    qs = Product.objects.order_by("sku")
    if query.strip():
        q = query.strip()
        qs = qs.filter(Q(sku__icontains=q) | Q(title__icontains=q))
    return list(qs.values_list("sku", "title")[:limit])


def find_customer(external_id: str) -> Customer | None:
    return Customer.objects.filter(external_id=external_id.strip()).first() if external_id.strip() else None


def find_product(sku: str) -> Product | None:
    return Product.objects.select_related("category").filter(sku=sku.strip()).first() if sku.strip() else None


def customer_history(customer: Customer, limit: int = HISTORY_N) -> list[Event]:
    return list(Event.objects.filter(customer=customer).select_related("product").order_by("-timestamp", "-pk")[:limit])


# --- the active run ---------------------------------------------------------------------------


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).select_related("run").first()


def run_versions(active: ModelVersion) -> list[ModelVersion]:
    """Every usable version the active version's run produced (the active one first)."""
    if active.run_id is None:
        return [active]
    others = ModelVersion.objects.filter(run_id=active.run_id, corrupt_at__isnull=True).exclude(pk=active.pk)
    return [active, *sorted(others, key=lambda v: v.algorithm)]


def _load(version: ModelVersion) -> LoadedModel:
    key = (version.pk, version.checksum)
    with _run_models_lock:
        per_store = _run_models.get(version.store_id, {})
        hit = per_store.get(key)
    if hit is not None:
        return hit
    loaded = load_version(version)
    with _run_models_lock:
        per_store = _run_models.setdefault(version.store_id, {})
        run_ids = {v.version.run_id for v in per_store.values()}
        if run_ids and run_ids != {version.run_id}:
            per_store.clear()  # the active run changed: drop the old run's models
        per_store[key] = loaded
    return loaded


# --- rule toggles -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Toggles:
    """The preview's rule switches. Defaults come from the store's rules."""

    exclude_purchased: bool
    exclude_out_of_stock: bool
    diversity: float
    apply_boosts: bool

    @classmethod
    def from_rules(cls, rules: Rules) -> Toggles:
        return cls(rules.exclude_purchased, rules.exclude_out_of_stock, rules.diversity, True)

    def overrides(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exclude_purchased": self.exclude_purchased,
            "exclude_out_of_stock": self.exclude_out_of_stock,
            "diversity": min(1.0, max(0.0, float(self.diversity))),
        }
        if not self.apply_boosts:
            out.update(pinned=(), boosted_products=frozenset(), boosted_categories=frozenset())
        return out

    def changes(self, rules: Rules) -> list[str]:
        """Human-readable differences from the store's rules ("rules removed / applied")."""
        on, off = _("on"), _("off")
        out = []
        if self.exclude_purchased != rules.exclude_purchased:
            out.append(
                _("Exclude purchased: %(a)s → %(b)s")
                % {"a": on if rules.exclude_purchased else off, "b": on if self.exclude_purchased else off}
            )
        if self.exclude_out_of_stock != rules.exclude_out_of_stock:
            out.append(
                _("Exclude out-of-stock: %(a)s → %(b)s")
                % {"a": on if rules.exclude_out_of_stock else off, "b": on if self.exclude_out_of_stock else off}
            )
        if abs(self.diversity - rules.diversity) > 1e-9:
            out.append(_("Diversity: %(a).2f → %(b).2f") % {"a": rules.diversity, "b": self.diversity})
        has_boosts = bool(rules.pinned or rules.boosted_products or rules.boosted_categories)
        if not self.apply_boosts and has_boosts:
            out.append(_("Boosts and pins: on → off"))
        return out


# --- customer preview -------------------------------------------------------------------------


@dataclass
class Column:
    """One list in the side-by-side view."""

    key: str
    label: str
    items: list[dict[str, Any]] = field(default_factory=list)
    version: ModelVersion | None = None
    is_blend: bool = False
    is_active: bool = False
    error: str = ""


@dataclass
class CustomerPreview:
    columns: list[Column]
    changes: list[str]
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]

    @property
    def blend(self) -> Column:
        return self.columns[0]


def _mark(items: list[dict[str, Any]], baseline: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if baseline is None:
        return items
    before = {i["sku"]: rank for rank, i in enumerate(baseline, 1)}
    for rank, item in enumerate(items, 1):
        old = before.get(item["sku"])
        item["is_new"] = old is None
        item["moved"] = 0 if old is None else old - rank
    return items


def preview_placement(asked: str, choices: list[tuple[str, str]]) -> str:
    """The placement to preview: the one asked for when the store has it, else the default (first)."""
    keys = [key for key, _name in choices]
    return asked if asked in keys else keys[0]


def customer_preview(
    store: Store, customer: Customer, active: ModelVersion, toggles: Toggles, placement: str = ""
) -> CustomerPreview:
    """The blend the placement serves plus one column per algorithm of the active run, under the
    placement's rules and the preview's toggles."""
    rules = load_rules(store, placement)
    changes = toggles.changes(rules)
    changed = bool(changes) or toggles != Toggles.from_rules(rules)
    filters = {"overrides": toggles.overrides()} if changed else None
    # A placement that chose an algorithm of the active run is served that model (as the API does).
    model, version = algorithm_model(store, placement_rules(store).algorithm_for(placement))
    served = {"placement": placement, "model": model, "algorithm": version.algorithm if version else None}

    baseline = None
    if changed:
        baseline = serving.recommend_for_customer(store, customer, n=PREVIEW_N, log=False, **served).items
    blend_items = serving.recommend_for_customer(
        store, customer, n=PREVIEW_N, filters=filters, log=False, **served
    ).items
    blend = Column("blend", _("Active blend"), _mark(blend_items, baseline), version=active, is_blend=True)
    columns = [blend]

    active_loaded = None
    for version in run_versions(active):
        column = Column(f"v{version.pk}", version.algorithm, version=version, is_active=version.is_active)
        try:
            loaded = _load(version)
            if version.is_active:
                active_loaded = loaded
            elif active_loaded is not None and not np.array_equal(loaded.item_ids, active_loaded.item_ids):
                raise ValueError(_("trained on a different product set than the active model"))
            result = serving.recommend_for_customer(
                store,
                customer,
                n=PREVIEW_N,
                placement=placement,
                filters=filters,
                model=loaded.model,
                algorithm=version.algorithm,
                log=False,
            )
            column.items = result.items
        except (TrainingError, OSError, ValueError, KeyError) as exc:
            logger.warning("preview: version %s could not be used: %s", version.pk, exc)
            column.error = str(exc)
        columns.append(column)

    added, removed = [], []
    if baseline is not None:
        now = {i["sku"] for i in blend_items}
        was = {i["sku"] for i in baseline}
        added = [i for i in blend_items if i["sku"] not in was]
        removed = [i for i in baseline if i["sku"] not in now]
    return CustomerPreview(columns, changes, added, removed)


# --- product preview --------------------------------------------------------------------------


@dataclass
class ProductPreview:
    similar: list[dict[str, Any]]
    fbt: list[dict[str, Any]]
    known_to_model: bool


def product_preview(store: Store, product: Product, n: int = PREVIEW_N, placement: str = "") -> ProductPreview | None:
    """Similar items (collaborative + content) and frequently-bought-together items with lift and
    support, under the placement's rules."""
    state = serving_state(store)
    if product.pk not in state.snap.index:
        return None  # created after the catalog snapshot; it appears within SERVING_CATALOG_TTL
    similar = serving.similar_products(store, product.pk, n=n, placement=placement, log=False).items
    fbt = serving.frequently_bought_together(store, product.pk, n=n, placement=placement, log=False).items
    support = {state.snap.sku_of(pk): (lift, sup) for pk, lift, sup in fbt_table(store.pk).get(product.pk, [])}
    for item in fbt:
        lift, sup = support.get(item["sku"], (item["score"], None))
        item["lift"], item["support"] = lift, sup
    known = bool(state.loaded and state.loaded.column_of(product.pk) is not None)
    return ProductPreview(similar, fbt, known)


# --- rules page -------------------------------------------------------------------------------


def rules_summary(row: StoreRules) -> list[tuple[str, str]]:
    """(rule, what it does right now) lines for the rules page."""
    skus = dict(Product.objects.values_list("pk", "sku"))
    cats = dict(Category.objects.values_list("pk", "path"))

    def names(pks: list, table: dict) -> str:
        shown = [str(table[int(pk)]) for pk in (pks or []) if int(pk) in table]
        return ", ".join(shown[:6]) + (" …" if len(shown) > 6 else "")

    out = [
        (
            _("Inactive products"),
            _("Hidden from every list.") if row.exclude_inactive else _("Shown like any other product."),
        ),
        (
            _("Out-of-stock products"),
            _("Hidden from every list.") if row.exclude_out_of_stock else _("Shown like any other product."),
        ),
    ]
    if row.exclude_purchased:
        text = _("A customer is not shown what they already bought")
        if row.repurchasable_category_ids:
            text += " " + _("(except in %(cats)s)") % {"cats": names(row.repurchasable_category_ids, cats)}
        out.append((_("Already purchased"), text + "."))
    else:
        out.append((_("Already purchased"), _("Purchased products can be recommended again.")))
    if row.blocked_product_ids:
        out.append((_("Blocked"), _("Never shown: %(skus)s.") % {"skus": names(row.blocked_product_ids, skus)}))
    if row.pinned_product_ids:
        out.append(
            (
                _("Pinned"),
                _(
                    "Always at the top, in this order: %(skus)s (recommendations, similar items, popular and "
                    "trending; in frequently bought together and search only when they are among the results)."
                )
                % {"skus": names(row.pinned_product_ids, skus)},
            )
        )
    boosted = [names(row.boosted_product_ids, skus), names(row.boosted_category_ids, cats)]
    boosted = [b for b in boosted if b]
    if boosted:
        out.append(
            (
                _("Boosted"),
                _("Scores multiplied by %(w)s: %(what)s.") % {"w": f"{row.boost_weight:g}", "what": "; ".join(boosted)},
            )
        )
    out.append(
        (
            _("Diversity"),
            _("Off: lists are ordered by score only.")
            if not row.default_diversity
            else _("%(d).2f: similar products are spread out (0 = none, 1 = most).") % {"d": row.default_diversity},
        )
    )
    return out
