"""Automatic segments (MiniBatchKMeans on standardised RFM + affinity features) and segment membership.

* ``profile_features`` reads profiles once (``values_list``) into a feature frame: log recency,
  log frequency, log revenue, churn risk, price ratio and the affinity to the store's top categories.
* ``cluster`` standardises, picks k by silhouette on a sample (or uses the analyst's k), and fits
  ``MiniBatchKMeans(random_state=seed)``. Clusters are relabelled by descending revenue centroid so
  cluster 0 is always the most valuable one: names and order are stable across runs with one seed.
* ``name_cluster`` describes what sets a cluster apart from the population (recency, frequency,
  spend, top category), e.g. "Lapsed high spenders · Home & Garden".
* ``build_auto_segments`` replaces the store's auto segments; ``refresh_segment_memberships``
  stores every profile's segment ids (one UPDATE per distinct membership combination).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.db.models import QuerySet
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from analytics import labels as seg_labels  # not `labels`: cluster() names its k-means labels so
from analytics import sql as analytics_sql
from analytics.models import CustomerProfile, Segment, StoreAnalyticsSettings
from analytics.rules_builder import compile_rules
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope

SEED = 42
K_RANGE = (3, 8)
SILHOUETTE_SAMPLE = 3_000
#: Profiles the candidate k are fitted on when k is chosen by silhouette (all of them when fewer).
K_SELECT_SAMPLE = 20_000
TOP_CATEGORIES = 8


@dataclass
class Clustering:
    labels: np.ndarray
    k: int
    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    centroids: np.ndarray  # standardised
    silhouettes: dict[int, float]


def profile_frame(extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """Profiles as a frame indexed by profile id (inside store_scope)."""
    cols = (
        "id",
        "customer_id",
        "recency_days",
        "frequency",
        "monetary",
        "churn_risk",
        "price_ratio",
        "category_affinity",
        "auto_segment_id",
        "r_score",
        "f_score",
        "m_score",
        *extra,
    )
    rows = list(CustomerProfile.objects.order_by("pk").values_list(*cols))
    df = pd.DataFrame(rows, columns=list(cols)).set_index("id")
    # Profiles an older run computed from unvalidated events may hold inf (1e308 purchases); as NaN
    # they are "unknown" to clustering and summaries, whose JSON could not store Infinity.
    numeric = df.select_dtypes(include="number").columns
    df[numeric] = df[numeric].replace([np.inf, -np.inf], np.nan)
    return df


def feature_matrix(df: pd.DataFrame, top_categories: int = TOP_CATEGORIES) -> pd.DataFrame:
    """Numeric features for clustering. Non-buyers get recency = max observed + 30 (older than anyone)."""
    rec = df["recency_days"].astype(float)
    fill = (rec.max() if rec.notna().any() else 365.0) + 30.0
    feats = pd.DataFrame(index=df.index)
    feats["recency"] = np.log1p(rec.fillna(fill).clip(lower=0))
    feats["frequency"] = np.log1p(df["frequency"].astype(float))
    feats["monetary"] = np.log1p(df["monetary"].astype(float).clip(lower=0))
    feats["churn_risk"] = df["churn_risk"].astype(float)
    feats["price_ratio"] = df["price_ratio"].astype(float).fillna(1.0).clip(0, 5)
    aff = pd.DataFrame.from_records(list(df["category_affinity"]), index=df.index).fillna(0.0)
    if not aff.empty:
        top = aff.mean().sort_values(ascending=False).index[:top_categories]
        for c in sorted(top):
            feats[f"cat:{c}"] = aff[c].astype(float)
    return feats


def cluster(
    feats: pd.DataFrame, k: int | None = None, seed: int = SEED, k_range: tuple[int, int] = K_RANGE
) -> Clustering:
    x = feats.to_numpy(dtype=np.float64)
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    n = len(z)
    silhouettes: dict[int, float] = {}
    if k is None:
        lo, hi = k_range
        hi = min(hi, max(lo, n - 1))
        rng = np.random.default_rng(seed)
        sample = rng.choice(n, size=min(n, SILHOUETTE_SAMPLE), replace=False) if n > SILHOUETTE_SAMPLE else np.arange(n)
        best, best_score = min(lo, max(1, n - 1)), -np.inf
        # The candidate k are fitted on a sample: at 200k profiles the six full fits took 85% of the
        # segmentation time, while the silhouette that picks k is measured on 3k points anyway.
        fit_rows = rng.choice(n, size=K_SELECT_SAMPLE, replace=False) if n > K_SELECT_SAMPLE else np.arange(n)
        for kk in range(lo, hi + 1):
            if kk >= len(sample):
                break
            labels = _fit(z[fit_rows], kk, seed).predict(z[sample])
            if len(set(labels.tolist())) < 2:
                continue
            s = float(silhouette_score(z[sample], labels, random_state=seed))
            silhouettes[kk] = round(s, 4)
            if s > best_score + 1e-9:
                best, best_score = kk, s
        k = best
    k = max(1, min(int(k), n))
    model = _fit(z, k, seed)
    labels = model.predict(z)
    centroids = model.cluster_centers_
    # Stable order: most valuable (highest monetary centroid) first, ties by frequency then recency.
    cols = list(feats.columns)
    m, f, r = cols.index("monetary"), cols.index("frequency"), cols.index("recency")
    order = sorted(
        range(k), key=lambda i: (-round(centroids[i, m], 6), -round(centroids[i, f], 6), round(centroids[i, r], 6))
    )
    remap = np.empty(k, dtype=np.int64)
    for new, old in enumerate(order):
        remap[old] = new
    return Clustering(
        labels=remap[labels],
        k=k,
        features=cols,
        mean=scaler.mean_,
        scale=scaler.scale_,
        centroids=centroids[order],
        silhouettes=silhouettes,
    )


def _fit(z: np.ndarray, k: int, seed: int) -> MiniBatchKMeans:
    return MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096, max_iter=100).fit(z)


def name_cluster(
    centroid_raw: dict[str, float], population: dict[str, float], top_category: str | None
) -> tuple[str, str]:
    """A readable name and description (in English, the row's plain text) from how the cluster differs
    from the population medians; pages render the codes of :func:`analytics.labels.cluster_label` in the
    reader's language instead.

    ``centroid_raw``/``population`` hold recency (days; ∞ for non-buyers), frequency and monetary.
    """
    return seg_labels.english(seg_labels.cluster_label(centroid_raw, population, top_category))


def summarize(df: pd.DataFrame, mask: np.ndarray, total_revenue: float) -> dict[str, Any]:
    """Size, revenue, revenue share, AOV, mean churn and top categories of the rows in ``mask``."""
    part = df[mask]
    size = int(len(part))
    revenue = float(part["monetary"].sum())
    orders = float(part["frequency"].sum())
    aff = pd.DataFrame.from_records(list(part["category_affinity"])).fillna(0.0) if size else pd.DataFrame()
    top = aff.mean().sort_values(ascending=False).head(3) if not aff.empty else pd.Series(dtype=float)
    return {
        "size": size,
        "buyers": int((part["frequency"] > 0).sum()),
        "revenue": round(revenue, 2),
        "revenue_clipped_sum": None,
        "revenue_share": round(revenue / total_revenue, 4) if total_revenue else None,
        "orders": int(orders),
        "aov": round(revenue / orders, 2) if orders else None,
        "mean_churn_risk": round(float(part["churn_risk"].mean()), 4) if size else None,
        "top_categories": [[str(c), round(float(v), 4)] for c, v in top.items() if v > 0],
    }


def build_auto_segments(store: Store, k: int | None = None, seed: int = SEED) -> list[Segment]:
    """Cluster the store's profiles and replace its auto segments; then refresh memberships."""
    with store_scope(store):
        settings_row, _created = StoreAnalyticsSettings.objects.get_or_create(store=store)
        k = k or settings_row.segment_k
        df = profile_frame()
        if len(df) < 3:
            Segment.objects.filter(kind=Segment.Kind.AUTO).delete()
            return []
        feats = feature_matrix(df)
        result = cluster(feats, k=k, seed=seed)
        buyers = df[df["frequency"] > 0]
        population = {
            "recency": float(buyers["recency_days"].median()) if len(buyers) else 0.0,
            "frequency": float(buyers["frequency"].median()) if len(buyers) else 0.0,
            "monetary": float(buyers["monetary"].median()) if len(buyers) else 0.0,
        }
        cat_cols = [c for c in feats.columns if c.startswith("cat:")]
        pop_cat = feats[cat_cols].mean() if cat_cols else pd.Series(dtype=float)
        total_revenue = float(df["monetary"].sum())
        segments: list[Segment] = []
        ids = df.index.to_numpy()
        new_members = [set(ids[result.labels == i].tolist()) for i in range(result.k)]
        with transaction.atomic():
            previous = _previous_auto_members()
            kept = match_previous_segments(previous, new_members)
            # Deleting a segment that no longer exists pauses the campaigns aimed at it (ads.segment_guard).
            Segment.objects.filter(kind=Segment.Kind.AUTO).exclude(pk__in=list(kept.values())).delete()
            used: dict[str, int] = {}
            for i in range(result.k):
                mask = result.labels == i
                part = df[mask]
                part_buyers = part[part["frequency"] > 0]
                raw = {
                    "recency": float(part_buyers["recency_days"].median()) if len(part_buyers) else math.inf,
                    "frequency": float(part["frequency"].median()),
                    "monetary": float(part["monetary"].median()),
                }
                top_cat = None
                if cat_cols:
                    lift = feats.loc[mask, cat_cols].mean() - pop_cat
                    if len(lift) and lift.max() > 0.02:
                        top_cat = lift.idxmax()[4:]
                # Codes, not words: the pages name the segment in the reader's language (analytics.labels).
                label = seg_labels.cluster_label(raw, population, top_cat)
                base, _desc = seg_labels.english(label)
                used[base] = used.get(base, 0) + 1
                label["n"] = used[base]
                name, desc = seg_labels.english(label)
                summary = summarize(df, mask, total_revenue)
                summary[seg_labels.LABEL_KEY] = label
                values = {
                    "name": name,
                    "description": desc,
                    "cluster_index": i,
                    "centroid": [round(float(v), 4) for v in result.centroids[i]],
                    "size": summary["size"],
                    "summary": summary,
                }
                if i in kept:  # the same group of customers as before: same row, same campaigns
                    Segment.objects.filter(pk=kept[i]).update(**values)
                    segments.append(Segment.objects.get(pk=kept[i]))
                else:
                    segments.append(Segment.objects.create(store=store, kind=Segment.Kind.AUTO, **values))
            _assign_auto_segments(store, ids, result.labels, segments)
            settings_row.segmentation = {
                "k": result.k,
                "seed": seed,
                "features": result.features,
                "mean": [float(v) for v in result.mean],
                "scale": [float(v) for v in result.scale],
                "silhouettes": {str(kk): v for kk, v in result.silhouettes.items()},
                "chosen_by": "analyst" if k else "silhouette",
            }
            settings_row.save(update_fields=["segmentation"])
        refresh_segment_memberships(store)
        return segments


def _assign_auto_segments(store: Store, ids: np.ndarray, labels_: np.ndarray, segments: list[Segment]) -> None:
    """Point every clustered profile at its automatic segment (inside the caller's transaction)."""
    if connection.vendor == "postgresql":
        segment_pks = np.array([seg.pk for seg in segments], dtype=np.int64)[labels_]
        analytics_sql.copy_update_profiles(
            store.pk,
            CustomerProfile._meta.db_table,
            "id",
            ["auto_segment_id"],
            zip(ids.tolist(), segment_pks.tolist(), strict=True),
        )
        return
    for i, seg in enumerate(segments):
        members = ids[labels_ == i].tolist()
        for start in range(0, len(members), 5_000):
            CustomerProfile.objects.filter(pk__in=members[start : start + 5_000]).update(auto_segment=seg)


def _write_segment_ids(store: Store, combos: dict[tuple[int, ...], list[int]]) -> None:
    """Store each profile's segment ids: ``combos`` maps a combination to its profiles; every
    other profile of the store gets none."""
    if connection.vendor == "postgresql":
        ids = list(CustomerProfile.objects.values_list("pk", flat=True))
        by_profile = {pid: list(sids) for sids, pids in combos.items() for pid in pids}
        analytics_sql.copy_update_profiles(
            store.pk,
            CustomerProfile._meta.db_table,
            "id",
            ["segment_ids"],
            ((pid, json.dumps(by_profile.get(pid, []))) for pid in ids),
        )
        return
    with transaction.atomic():
        CustomerProfile.objects.update(segment_ids=[])
        for sids, pids in combos.items():
            for start in range(0, len(pids), 5_000):
                CustomerProfile.objects.filter(pk__in=pids[start : start + 5_000]).update(segment_ids=list(sids))


#: A rebuilt cluster keeps an old automatic segment's identity (its id, and so its campaigns and
#: exports) when the two share at least this Jaccard overlap of customers.
MIN_IDENTITY_OVERLAP = 0.3


def _previous_auto_members() -> dict[int, set[int]]:
    members: dict[int, set[int]] = {
        pk: set() for pk in Segment.objects.filter(kind=Segment.Kind.AUTO).values_list("pk", flat=True)
    }
    for profile_id, segment_id in CustomerProfile.objects.filter(auto_segment__isnull=False).values_list(
        "pk", "auto_segment_id"
    ):
        members.setdefault(segment_id, set()).add(profile_id)
    return members


def match_previous_segments(previous: dict[int, set[int]], clusters: list[set[int]]) -> dict[int, int]:
    """``{new cluster index: old segment id}``: the one-to-one matching of greatest total Jaccard
    overlap (scipy's Hungarian ``linear_sum_assignment``), keeping pairs at ``MIN_IDENTITY_OVERLAP`` or more.

    k-means numbers its clusters arbitrarily on every run, so a rebuild must not tie identity to the
    cluster index; the customers in a group are what a merchant targeted.
    """
    old_ids = list(previous)
    if not old_ids or not clusters:
        return {}
    overlap = np.zeros((len(clusters), len(old_ids)))
    for i, new in enumerate(clusters):
        for j, old_id in enumerate(old_ids):
            old = previous[old_id]
            union = len(new | old)
            overlap[i, j] = len(new & old) / union if union else 0.0
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return {int(i): old_ids[j] for i, j in zip(rows, cols, strict=True) if overlap[i, j] >= MIN_IDENTITY_OVERLAP}


def segment_queryset(segment: Segment) -> QuerySet:
    """The segment's profiles (inside store_scope): auto members, or the rule evaluated live."""
    if segment.kind == Segment.Kind.AUTO:
        return CustomerProfile.objects.filter(auto_segment=segment)
    return CustomerProfile.objects.filter(compile_rules(segment.rules))


def refresh_segment_memberships(store: Store) -> dict[int, set[int]]:
    """Recompute ``segment_ids`` on every profile and the cached summaries of rule segments.

    Returns ``{segment_id: {profile ids}}``. One UPDATE per distinct combination of segments, so the
    cost grows with the number of combinations, not with the number of customers.
    """
    with store_scope(store):
        segments = list(Segment.objects.all())
        members: dict[int, set[int]] = {}
        for seg in segments:
            try:
                members[seg.pk] = set(segment_queryset(seg).values_list("pk", flat=True))
            except ValueError:  # a stored rule that no longer compiles: no members, visible on its page
                members[seg.pk] = set()
        by_profile: dict[int, list[int]] = {}
        for sid in sorted(members):
            for pid in members[sid]:
                by_profile.setdefault(pid, []).append(sid)
        combos: dict[tuple[int, ...], list[int]] = {}
        for pid, sids in by_profile.items():
            combos.setdefault(tuple(sids), []).append(pid)
        _write_segment_ids(store, combos)
        rule_segments = [s for s in segments if s.kind == Segment.Kind.RULE]
        if rule_segments:
            df = profile_frame()
            total = float(df["monetary"].sum()) if len(df) else 0.0
            for seg in rule_segments:
                mask = df.index.isin(list(members[seg.pk])) if len(df) else np.zeros(0, bool)
                seg.summary = summarize(df, mask, total) if len(df) else {"size": 0}
                seg.size = seg.summary["size"]
                seg.save(update_fields=["summary", "size", "updated_at"])
        return members


def overlap_matrix(members: dict[int, set[int]], order: list[int]) -> np.ndarray:
    """Pairwise counts of customers in both segments (diagonal: segment sizes)."""
    n = len(order)
    out = np.zeros((n, n), dtype=np.int64)
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            if j < i:
                out[i, j] = out[j, i]
            else:
                out[i, j] = len(members.get(a, set()) & members.get(b, set()))
    return out
