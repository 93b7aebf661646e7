"""Read-side queries behind the Segments page (the activity reads are in ``shop_recs.dashboard.selectors``)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from analytics import privacy
from analytics.models import Segment, StoreAnalyticsSettings
from analytics.segments import feature_matrix, overlap_matrix, profile_frame, segment_queryset


def segments_dashboard(store, sample: int = 5_000, seed: int = 0) -> dict:
    """Everything the Segments page charts, with small-cell suppression and optional Laplace noise.

    Call inside ``store_scope(store)``. Counts use sensitivity 1; noise is fresh per request.
    """
    cfg, _ = StoreAnalyticsSettings.objects.get_or_create(store=store)
    k, eps = cfg.min_cell_size, cfg.dp_epsilon
    rng = np.random.default_rng()
    segs = list(Segment.objects.all())
    df = profile_frame()
    out: dict = {"k": k, "epsilon": eps, "segments": segs, "n_profiles": len(df)}
    members = {}
    for s in segs:
        try:
            members[s.pk] = set(segment_queryset(s).values_list("pk", flat=True))
        except ValueError:
            members[s.pk] = set()
    out["sizes"] = [privacy.noisy_count(len(members[s.pk]), eps, k, rng) for s in segs]
    order = [s.pk for s in segs]
    ov = overlap_matrix(members, order)
    out["overlap"] = [[privacy.noisy_count(int(v), eps, k, rng) for v in row] for row in ov]
    rfm = np.zeros((5, 5), dtype=np.int64)
    if len(df):
        buyers = df[df["frequency"] > 0]
        for (r, f), n in buyers.groupby(["r_score", "f_score"]).size().items():
            rfm[int(r) - 1, int(f) - 1] = n
    out["rfm"] = [[privacy.noisy_count(int(v), eps, k, rng) for v in row] for row in rfm]
    auto = [s for s in segs if s.kind == Segment.Kind.AUTO]
    features = list((cfg.segmentation or {}).get("features", []))
    out["centroid_names"] = [s.name for s in auto]
    out["centroid_features"] = features
    out["centroids"] = [s.centroid for s in auto]
    out["pca"] = None
    if len(df) >= 3 and auto:
        take = df.sample(n=min(sample, len(df)), random_state=seed) if len(df) > sample else df
        feats = feature_matrix(take)
        z = (feats - feats.mean()) / feats.std(ddof=0).replace(0, 1)
        xy = PCA(n_components=2, random_state=seed).fit_transform(z.fillna(0).to_numpy())
        names = {s.pk: s.name for s in auto}
        labels = [names.get(a, "—") if a == a and a is not None else "—" for a in take["auto_segment_id"]]
        out["pca"] = {"x": xy[:, 0].round(3).tolist(), "y": xy[:, 1].round(3).tolist(), "labels": labels}
    return out
