"""Reads for the online metrics and experiment results pages (call inside a store scope)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.experiments import stats
from analytics.experiments.models import Attribution
from shop_recs.activity.models import Event
from shop_recs.catalog.models import Product
from shop_recs.serving.models import Experiment, ExperimentStatus, RecommendationList


def online_metrics(days: int = 30) -> dict[str, Any]:
    """Daily and total impressions, CTR, add-to-cart rate, conversion rate and RPM per version and placement.

    Impressions are the items of served lists; attributed events are counted on the day their list
    was served, so a day's rates compare like with like. Clicks count distinct (list, product) pairs.
    """
    since = timezone.now() - timedelta(days=days)
    zero = {"impressions": 0, "lists": 0, "clicks": 0, "carts": 0, "purchases": 0, "revenue": 0.0}
    daily: dict[tuple, dict[str, float]] = defaultdict(lambda: dict(zero))
    for created, version, algo, placement, pids in RecommendationList.objects.filter(created_at__gte=since).values_list(
        "created_at", "model_version_id", "algorithm", "placement", "product_ids"
    ):
        row = daily[(created.date().isoformat(), version, algo, placement)]
        row["impressions"] += len(pids or [])
        row["lists"] += 1
    seen_clicks: set[tuple] = set()
    for a in Attribution.objects.filter(list_created_at__gte=since).values(
        "list_created_at",
        "model_version_id",
        "algorithm",
        "placement",
        "event_type",
        "list_id",
        "product_id",
        "revenue",
    ):
        row = daily[(a["list_created_at"].date().isoformat(), a["model_version_id"], a["algorithm"], a["placement"])]
        if a["event_type"] == "click":
            key = (a["list_id"], a["product_id"])
            if key not in seen_clicks:
                seen_clicks.add(key)
                row["clicks"] += 1
        elif a["event_type"] == "add_to_cart":
            row["carts"] += 1
        else:
            row["purchases"] += 1
            row["revenue"] += a["revenue"]
    totals: dict[tuple, dict[str, float]] = defaultdict(lambda: dict(zero))
    for (_day, version, algo, placement), row in daily.items():
        tot = totals[(version, algo, placement)]
        for k, v in row.items():
            tot[k] += v
    return {
        "daily": [
            {"day": k[0], "model_version": k[1], "algorithm": k[2], "placement": k[3], **_rates(v)}
            for k, v in sorted(daily.items(), key=lambda kv: tuple(str(x) for x in kv[0]))
        ],
        "totals": [
            {"model_version": k[0], "algorithm": k[1], "placement": k[2], **_rates(v)}
            for k, v in sorted(totals.items(), key=lambda kv: tuple(str(x) for x in kv[0]))
        ],
    }


def _rates(row: dict[str, float]) -> dict[str, float]:
    imp = row["impressions"]
    return {
        **row,
        "ctr": row["clicks"] / imp if imp else 0.0,
        "cart_rate": row["carts"] / imp if imp else 0.0,
        "conversion_rate": row["purchases"] / imp if imp else 0.0,
        "rpm": 1000 * row["revenue"] / imp if imp else 0.0,
    }


def catalog_exposure(days: int = 30, limit: int = 20) -> dict[str, Any]:
    """Active products never recommended in the period, and products viewed often but rarely bought."""
    since = timezone.now() - timedelta(days=days)
    shown: set[int] = set()
    for pids in RecommendationList.objects.filter(created_at__gte=since).values_list("product_ids", flat=True):
        shown.update(pids or [])
    active = list(Product.objects.filter(is_active=True).values_list("pk", "sku", "title").order_by("sku"))
    never = [{"sku": sku, "title": title} for pk, sku, title in active if pk not in shown]
    views: dict[int, int] = defaultdict(int)
    buys: dict[int, int] = defaultdict(int)
    for pid, kind in (
        Event.objects.filter(timestamp__gte=since, event_type__in=("view", "purchase"), product__isnull=False)
        .order_by()
        .values_list("product_id", "event_type")
    ):
        (views if kind == "view" else buys)[pid] += 1
    titles = {pk: (sku, title) for pk, sku, title in active}
    ranked = sorted(
        (pid for pid in views if pid in titles and views[pid] >= 5),
        key=lambda p: (buys[p] / views[p], -views[p]),
    )[:limit]
    browsed = [
        {
            "sku": titles[p][0],
            "title": titles[p][1],
            "views": views[p],
            "purchases": buys[p],
            "rate": buys[p] / views[p],
        }
        for p in ranked
    ]
    return {"n_active": len(active), "n_never": len(never), "never": never[:200], "browsed_not_bought": browsed}


def experiment_results(exp: Experiment, *, mde: float = 0.1, alpha: float = 0.05) -> dict[str, Any]:
    """Per-variant CTR, conversion and revenue per customer, tests against the first variant, SRM.

    Units: customers exposed to a variant (lists without a known customer add impressions only).
    ``mde`` is the relative minimum detectable effect for the sample-size estimate.
    """
    variants = list(exp.variants.all())
    tags = {v.tag: v for v in variants}
    impressions: dict[str, int] = defaultdict(int)
    customers: dict[str, set[int]] = defaultdict(set)
    for tag, cid, pids in RecommendationList.objects.filter(variant__in=list(tags)).values_list(
        "variant", "customer_id", "product_ids"
    ):
        impressions[tag] += len(pids or [])
        if cid is not None:
            customers[tag].add(cid)
    clicks: dict[str, set[tuple]] = defaultdict(set)
    converters: dict[str, set[int]] = defaultdict(set)
    revenue: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for a in Attribution.objects.filter(variant__in=list(tags)).values(
        "variant", "event_type", "list_id", "product_id", "customer_id", "revenue"
    ):
        tag = a["variant"]
        if a["event_type"] == "click":
            clicks[tag].add((a["list_id"], a["product_id"]))
        elif a["event_type"] == "purchase" and a["customer_id"] is not None:
            converters[tag].add(a["customer_id"])
            revenue[tag][a["customer_id"]] += a["revenue"]
    rows = []
    for v in variants:
        t = v.tag
        n_c = len(customers[t])
        rev = np.array([revenue[t].get(c, 0.0) for c in sorted(customers[t])], dtype=float)
        n_conv = len(converters[t] & customers[t])
        rows.append(
            {
                "variant": v,
                "name": v.name,
                "traffic": v.traffic,
                "impressions": impressions[t],
                "clicks": len(clicks[t]),
                "ctr": len(clicks[t]) / impressions[t] if impressions[t] else 0.0,
                "ctr_ci": stats.proportion_ci(len(clicks[t]), impressions[t], alpha),
                "customers": n_c,
                "converters": n_conv,
                "conversion": n_conv / n_c if n_c else 0.0,
                "conversion_ci": stats.proportion_ci(n_conv, n_c, alpha),
                "revenue_per_customer": float(rev.mean()) if n_c else 0.0,
                "revenue_ci": stats.bootstrap_ci(rev, alpha=alpha) if n_c else (0.0, 0.0),
                "_revenue": rev,
            }
        )
    control = rows[0] if rows else None
    for row in rows[1:]:
        row["ctr_test"] = stats.two_proportion_ztest(
            control["clicks"], control["impressions"], row["clicks"], row["impressions"], alpha
        )
        row["conversion_test"] = stats.two_proportion_ztest(
            control["converters"], control["customers"], row["converters"], row["customers"], alpha
        )
        row["revenue_test"] = stats.welch_ttest(control["_revenue"], row["_revenue"], alpha)
    for row in rows:
        base_ctr = control["ctr"] if control else 0.0
        base_conv = control["conversion"] if control else 0.0
        row["needed_impressions"] = _needed(base_ctr, mde, alpha, row["impressions"])
        row["needed_customers"] = _needed(base_conv, mde, alpha, row["customers"])
        del row["_revenue"]
    srm_stat, srm_p = stats.srm_chisquare([r["customers"] for r in rows], [r["traffic"] for r in rows])
    verdict = _verdict(rows, alpha)
    return {
        "variants": rows,
        "srm": {"statistic": srm_stat, "p_value": srm_p, "warning": srm_p < 0.001},
        "mde": mde,
        "alpha": alpha,
        "verdict": verdict,
    }


def _needed(baseline: float, mde: float, alpha: float, have: int) -> dict[str, int] | None:
    if baseline <= 0 or baseline >= 1 or mde <= 0:
        return None
    total = stats.required_sample_size(baseline, baseline * mde, alpha=alpha)
    return {"total": total, "remaining": max(0, total - have)}


def _verdict(rows: list[dict[str, Any]], alpha: float) -> dict[str, Any] | None:
    """The CTR comparison decides: the best significantly different variant, or none yet."""
    if len(rows) < 2:
        return None
    best = None
    for row in rows[1:]:
        test = row["ctr_test"]
        if test.p_value < alpha:
            winner = row if test.diff > 0 else rows[0]
            if best is None or test.p_value < best["p_value"]:
                best = {"winner": winner["name"], "metric": "ctr", "p_value": test.p_value, "diff": test.diff}
    return best


def promotion_check(exp: Experiment, variant: Any, *, alpha: float = 0.05) -> dict[str, Any]:
    """What promoting ``variant`` would rest on: the figures, hard blockers and the warnings that need
    an explicit "promote anyway".

    A draft experiment is a blocker (it has served nothing, so there is nothing to promote on). Too
    few impressions in any variant (``EXPERIMENT_PROMOTE_MIN_IMPRESSIONS``), no significant CTR
    result in the variant's favour, or a sample-ratio mismatch are warnings.
    """
    results = experiment_results(exp, alpha=alpha)
    rows = results["variants"]
    blockers: list[str] = []
    warnings: list[str] = []
    if exp.status == ExperimentStatus.DRAFT:
        blockers.append(_("The experiment has not started: it has served nothing to compare."))
    min_impressions = settings.EXPERIMENT_PROMOTE_MIN_IMPRESSIONS
    for row in rows:
        if row["impressions"] < min_impressions:
            warnings.append(
                _("%(name)s has %(n)s impressions; at least %(min)s per variant are needed.")
                % {"name": row["name"], "n": row["impressions"], "min": min_impressions}
            )
    verdict = results["verdict"]
    if verdict is None:
        warnings.append(_("No variant differs significantly from the control yet (CTR, alpha %(a)s).") % {"a": alpha})
    elif verdict["winner"] != variant.name:
        warnings.append(
            _("The significant result favours %(winner)s, not %(name)s.")
            % {"winner": verdict["winner"], "name": variant.name}
        )
    if results["srm"]["warning"]:
        warnings.append(_("Sample ratio mismatch: the traffic split is broken, so the figures cannot be trusted."))
    figures = {
        "experiment": exp.pk,
        "variant": variant.pk,
        "variant_name": variant.name,
        "verdict": verdict,
        "srm_p_value": results["srm"]["p_value"],
        "variants": [
            {
                "name": row["name"],
                "impressions": row["impressions"],
                "clicks": row["clicks"],
                "ctr": row["ctr"],
                "customers": row["customers"],
                "conversion": row["conversion"],
                "ctr_p_value": row["ctr_test"].p_value if "ctr_test" in row else None,
            }
            for row in rows
        ],
    }
    return {"results": results, "blockers": blockers, "warnings": warnings, "figures": figures}
