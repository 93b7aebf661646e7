"""Reads for the online metrics and experiment results pages (call inside a store scope)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.experiments import power, stats
from analytics.experiments.models import Attribution
from shop_recs.activity.models import Event
from shop_recs.catalog.models import Category, Product
from shop_recs.serving.models import Experiment, ExperimentStatus, RecommendationList
from shop_recs.training.models import ModelVersion


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


# --- the builder's power estimate ------------------------------------------------------------------

#: How far back the power estimate looks for the placement's traffic and baseline rate.
TRAFFIC_WINDOW_DAYS = 28
#: Baselines the estimate can start from: the control's click-through or purchase rate per impression.
BASELINE_METRICS = ("ctr", "purchase_rate")


def placement_traffic(placement: str, *, days: int = TRAFFIC_WINDOW_DAYS) -> dict[str, Any]:
    """The placement's impressions per day and its click and purchase rates per impression over the
    last ``days`` (fewer when the placement started serving later: a new placement is not diluted
    by days it did not exist). Call inside the store's scope."""
    now = timezone.now()
    since = now - timedelta(days=days)
    impressions = 0
    first = None
    for created, pids in RecommendationList.objects.filter(placement=placement, created_at__gte=since).values_list(
        "created_at", "product_ids"
    ):
        impressions += len(pids or [])
        first = created if first is None or created < first else first
    clicks: set[tuple] = set()
    purchases = 0
    for kind, list_id, product_id in Attribution.objects.filter(
        placement=placement, list_created_at__gte=since, event_type__in=("click", "purchase")
    ).values_list("event_type", "list_id", "product_id"):
        if kind == "click":
            clicks.add((list_id, product_id))
        else:
            purchases += 1
    # Whole days since the first list in the window (a partly covered day counts as one).
    covered = min(days, max(1, math.ceil((now - first).total_seconds() / 86400))) if first is not None else 0
    return {
        "placement": placement,
        "days": days,
        "covered_days": covered,
        "impressions": impressions,
        "per_day": impressions / covered if covered else 0.0,
        "clicks": len(clicks),
        "purchases": purchases,
        "ctr": len(clicks) / impressions if impressions else 0.0,
        "purchase_rate": purchases / impressions if impressions else 0.0,
    }


def power_estimate(
    placement: str,
    shares: list[int],
    *,
    metric: str = "ctr",
    mde: float = 0.1,
    alpha: float = 0.05,
    power_target: float = 0.8,
) -> dict[str, Any]:
    """What the builder shows before a start: the traffic, the baseline and, when there is enough of
    both, the sample per variant and the days it takes (``estimate``); otherwise ``reason`` says why
    there is no estimate. Input ranges are checked by the caller's form (``power.PowerInputError``
    is raised for anything else)."""
    traffic = placement_traffic(placement)
    baseline = traffic[metric]
    out: dict[str, Any] = {
        "traffic": traffic,
        "metric": metric,
        "baseline": baseline,
        "mde": mde,
        "alpha": alpha,
        "power": power_target,
        "estimate": None,
        "reason": "",
    }
    if traffic["impressions"] == 0:
        out["reason"] = _(
            "Not enough traffic yet to estimate: this placement served no recommendations in the last %(days)s days."
        ) % {"days": traffic["days"]}
    elif baseline <= 0 and metric == "ctr":
        out["reason"] = _(
            "Not enough traffic yet to estimate: no clicks on this placement in the last %(days)s days,"
            " so there is no baseline rate."
        ) % {"days": traffic["days"]}
    elif baseline <= 0:
        out["reason"] = _(
            "Not enough traffic yet to estimate: no purchases on this placement in the last %(days)s days,"
            " so there is no baseline rate."
        ) % {"days": traffic["days"]}
    elif len(shares) < 2 or any(s <= 0 for s in shares):
        out["reason"] = _("Give every variant a traffic share to estimate the duration.")
    else:
        try:
            out["estimate"] = power.estimate(baseline, traffic["per_day"], shares, mde, alpha=alpha, power=power_target)
        except power.PowerInputError as exc:
            # The form checks every input's range; what is left is a lift that would pass 100 %.
            out["reason"] = (
                _("This effect is too large for the baseline: the rate would pass 100 %. Choose a smaller effect.")
                if exc.field == "mde"
                else str(exc)
            )
    return out


def version_label(v: ModelVersion) -> str:
    """The builder's version select label, e.g. "v12 · hybrid · 2026-11-30 · NDCG@10 0.123 · live"."""
    ndcg = v.ndcg_at_10
    parts = [
        f"v{v.pk}",
        v.algorithm,
        v.created_at.date().isoformat(),
        f"NDCG@10 {ndcg:.3f}" if isinstance(ndcg, int | float) else _("no offline metric"),
    ]
    if v.is_active:
        parts.append(_("live"))
    return " · ".join(parts)


def builder_choices() -> dict[str, Any]:
    """The store's usable model versions (newest 50, labelled) and the algorithms of the active run
    (an algorithm variant serves that run's version of it: serving.experiments.resolve_version)."""
    versions = list(ModelVersion.objects.filter(corrupt_at__isnull=True).order_by("-created_at", "-pk")[:50])
    active = ModelVersion.objects.filter(is_active=True).first()
    if active is None:
        algorithms: list[str] = []
    elif active.run_id is None:
        algorithms = [active.algorithm]
    else:
        algorithms = sorted(
            set(
                ModelVersion.objects.filter(run_id=active.run_id, corrupt_at__isnull=True).values_list(
                    "algorithm", flat=True
                )
            )
        )
    return {
        "versions": [(v.pk, version_label(v)) for v in versions],
        "active_id": active.pk if active is not None and active.corrupt_at is None else None,
        "algorithms": algorithms,
        "categories": Category.objects.order_by("path"),
    }
