"""Read-side queries behind the Segments pages (the activity reads are in ``shop_recs.dashboard.selectors``).

With differential privacy on, every figure a page shows goes through ``services.release_counts``:
the one mechanism (seeded discrete Laplace, threshold after the noise, the ledger and the budget).
Releasing records a ledger row, the only write these reads make.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from django.db.models import Q
from sklearn.decomposition import PCA

from analytics import privacy, services
from analytics.models import CustomerProfile, DPRelease, Segment
from analytics.segments import feature_matrix, profile_frame, segment_queryset
from shop_recs.stores.models import Store

NOT_RELEASED = "—"


def _members(segs: list[Segment]) -> dict[int, set[int]]:
    members: dict[int, set[int]] = {}
    for s in segs:
        try:
            members[s.pk] = set(segment_queryset(s).values_list("pk", flat=True))
        except ValueError:  # a stored rule that no longer compiles: no members, visible on its page
            members[s.pk] = set()
    return members


def _segment_groups(segs: list[Segment]) -> tuple[dict[str, services.Group], list[tuple[Segment, Segment]]]:
    """Noise groups of the Segments page and the overlap pairs that carry data.

    Auto segments partition the customers, so one customer is in at most one of them plus every rule
    segment: ``m`` sizes. Pairs of two auto segments are empty by construction (shown as 0, not
    released); every other pair is released, and one customer is in at most ``m(m-1)/2`` of them.
    The RFM grid partitions the buyers and the total counts each customer once: L1 sensitivity 1.
    """
    autos = [s for s in segs if s.kind == Segment.Kind.AUTO]
    m = (1 if autos else 0) + len(segs) - len(autos)
    pairs = [
        (a, b)
        for i, a in enumerate(segs)
        for b in segs[i + 1 :]
        if not (a.kind == Segment.Kind.AUTO and b.kind == Segment.Kind.AUTO)
    ]
    groups = {"total": services.Group(1, 1), "rfm": services.Group(1, 1)}
    if m:
        groups["size"] = services.Group(1, m)
    if pairs:
        groups["pair"] = services.Group(1, m * (m - 1) // 2)
    return groups, pairs


def _true_counts(df: pd.DataFrame, segs: list[Segment], pairs: list[tuple[Segment, Segment]]) -> dict[str, int]:
    members = _members(segs)
    counts = {"total": len(df)}
    for s in segs:
        counts[f"size:{s.pk}"] = len(members[s.pk])
    for a, b in pairs:
        counts[f"pair:{a.pk}:{b.pk}"] = len(members[a.pk] & members[b.pk])
    rfm = np.zeros((5, 5), dtype=np.int64)
    if len(df):
        buyers = df[df["frequency"] > 0]
        for (r, f), n in buyers.groupby(["r_score", "f_score"]).size().items():
            rfm[int(r) - 1, int(f) - 1] = n
    for r in range(5):
        for f in range(5):
            counts[f"rfm:{r + 1}:{f + 1}"] = int(rfm[r, f])
    return counts


def segments_dashboard(store: Store, user: Any = None, sample: int = 5_000, seed: int = 0) -> dict:
    """Everything the Segments page charts, through the release mechanism (call inside ``store_scope``).

    Cells below k are ``None`` ("<k"); cells missing from an older release (a segment created after
    the budget ran out) are ``NOT_RELEASED``. The customer map (PCA of individual customers) and the
    centroids are exact, so they are left out while differential privacy is on.
    """
    cfg = services.get_settings(store)
    k = cfg.min_cell_size
    segs = list(Segment.objects.all())
    groups, pairs = _segment_groups(segs)
    frame: dict[str, pd.DataFrame] = {}  # read the profiles at most once, and not at all for a cached release

    def profiles() -> pd.DataFrame:
        if "df" not in frame:
            frame["df"] = profile_frame()
        return frame["df"]

    rel = services.release_counts(
        store, DPRelease.Kind.SEGMENTS, "", lambda: _true_counts(profiles(), segs, pairs), groups, user=user
    )
    values = rel.values or {}

    def cell(key: str) -> int | str | None:
        if key not in values:
            return NOT_RELEASED
        return privacy.threshold(values[key], k)

    order = {s.pk: i for i, s in enumerate(segs)}
    sizes = [cell(f"size:{s.pk}") for s in segs]
    overlap: list[list[Any]] = [[0] * len(segs) for _ in segs]
    for i, size in enumerate(sizes):
        overlap[i][i] = size
    for a, b in pairs:
        v = cell(f"pair:{a.pk}:{b.pk}")
        overlap[order[a.pk]][order[b.pk]] = overlap[order[b.pk]][order[a.pk]] = v
    rfm = [[cell(f"rfm:{r}:{f}") for f in range(1, 6)] for r in range(1, 6)]
    total = values.get("total")
    out: dict = {
        "k": k,
        "epsilon": cfg.dp_epsilon,
        "release": rel,
        "segments": segs,
        "n_profiles": total if rel.values is not None else None,
        "n_profiles_display": privacy.display(privacy.threshold(total, k), k) if total is not None else NOT_RELEASED,
        "sizes": sizes,
        "overlap": overlap,
        "rfm": rfm,
        "centroid_names": [],
        "centroid_features": [],
        "centroids": [],
        "pca": None,
    }
    if rel.dp:
        return out
    auto = [s for s in segs if s.kind == Segment.Kind.AUTO]
    out["centroid_names"] = [s.display_name for s in auto]
    out["centroid_features"] = list((cfg.segmentation or {}).get("features", []))
    out["centroids"] = [s.centroid for s in auto]
    df = profiles()
    if len(df) >= 3 and auto:
        take = df.sample(n=min(sample, len(df)), random_state=seed) if len(df) > sample else df
        feats = feature_matrix(take)
        z = (feats - feats.mean()) / feats.std(ddof=0).replace(0, 1)
        xy = PCA(n_components=2, random_state=seed).fit_transform(z.fillna(0).to_numpy())
        names = {s.pk: s.display_name for s in auto}
        labels = [names.get(a, "—") if a == a and a is not None else "—" for a in take["auto_segment_id"]]
        out["pca"] = {"x": xy[:, 0].round(3).tolist(), "y": xy[:, 1].round(3).tolist(), "labels": labels}
    return out


def segment_figures(store: Store, segment: Segment, user: Any = None) -> dict:
    """The detail page's size and revenue, through the release mechanism.

    With DP on, two figures are released: the size (sensitivity 1) and the revenue summed after
    clipping each customer at ``revenue_clip`` (sensitivity: the clip, rounded up to a whole unit).
    The other summary figures (share, AOV, churn, categories) are exact, so they are not shown then.
    """
    cfg = services.get_settings(store)
    k = cfg.min_cell_size
    clip = max(1, math.ceil(cfg.revenue_clip))
    groups = {"size": services.Group(1, 1), "revenue": services.Group(clip, clip)}

    def compute() -> dict[str, int]:
        try:
            qs = segment_queryset(segment)
        except ValueError:
            qs = CustomerProfile.objects.none()
        monetary = np.array(list(qs.values_list("monetary", flat=True)), dtype=np.float64)
        revenue = int(np.rint(np.clip(monetary, 0, clip)).sum()) if len(monetary) else 0
        return {"size": len(monetary), "revenue": revenue}

    rel = services.release_counts(store, DPRelease.Kind.SEGMENT, str(segment.pk), compute, groups, user=user)
    values = rel.values or {}
    size = privacy.threshold(values.get("size"), k)
    return {
        "release": rel,
        "k": k,
        "clip": clip,
        "size": size,
        "size_display": privacy.display(size, k) if "size" in values else NOT_RELEASED,
        # Revenue is shown only where the (noisy) size clears k: post-processing of released values.
        "revenue": max(0, values["revenue"]) if size is not None and "revenue" in values else None,
    }


def audience_size(store: Store, q: Q, tree: Any, user: Any = None) -> dict:
    """The rule builder's live audience: one noisy count per distinct condition tree and data version."""
    cfg = services.get_settings(store)
    k = cfg.min_cell_size
    subject = services.query_subject(tree)
    rel = services.release_counts(
        store,
        DPRelease.Kind.AUDIENCE,
        subject,
        lambda: {"count": CustomerProfile.objects.filter(q).count()},
        {"count": services.Group(1, 1)},
        user=user,
    )
    values = rel.values or {}
    shown = privacy.threshold(values.get("count"), k)
    return {
        "release": rel,
        "count": shown,
        "display": privacy.display(shown, k) if "count" in values else NOT_RELEASED,
    }


def privacy_ledger(store: Store, cfg: Any, limit: int = 20) -> dict:
    """The budget and the latest releases, for the Privacy page (call inside ``store_scope``)."""
    return {
        "spent": services.budget_spent(store, cfg),
        "budget": cfg.dp_budget,
        "window_days": cfg.dp_budget_window_days,
        "releases": list(DPRelease.objects.select_related("user")[:limit]),
    }
