"""Plotly figures of the evaluation page: pure functions from stored results (plain dicts) to figures.

Every number drawn comes straight from ``EvaluationRun.results`` / ``TuningJob.leaderboard`` /
``ModelVersion.metrics`` without recomputation, and a test checks each figure against the JSON.
``None`` (a metric that could not be computed) becomes a gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from shop_recs.platform.charts import base_layout

PALETTE = ["#4f6bed", "#10b981", "#f59e0b", "#ec4899", "#06b6d4", "#8b5cf6", "#ef4444", "#84cc16", "#64748b"]
REFERENCE_COLORS = {"catalog": "#cbd5e1", "test": "#334155"}


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def algorithm_order(results: Mapping[str, Any]) -> list[str]:
    """The run's algorithms in the order the analyst chose them (jsonb does not keep key order)."""
    present = results.get("algorithms") or {}
    order = [a for a in results.get("order") or [] if a in present]
    return order + sorted(a for a in present if a not in order)


_algorithms = algorithm_order


def _label(labels: Mapping[str, str] | None, key: str) -> str:
    return str((labels or {}).get(key, key))


def metric_bars_figure(results: Mapping[str, Any], metric: str = "ndcg@10") -> go.Figure:
    """One bar per algorithm: the metric's mean over test customers, error bars = bootstrap 95% CI."""
    algos = _algorithms(results)
    ys, plus, minus = [], [], []
    for name in algos:
        entry = results["algorithms"][name]
        y = entry["metrics"].get(metric)
        lo, hi = (entry.get("ci", {}).get(metric) or [None, None])[:2]
        ys.append(y)
        plus.append(None if y is None or hi is None else hi - y)
        minus.append(None if y is None or lo is None else y - lo)
    fig = go.Figure(
        go.Bar(
            x=algos,
            y=ys,
            error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus, color="#334155"),
            marker_color=[_color(i) for i in range(len(algos))],
            name=metric,
            meta=metric,
        )
    )
    base_layout(fig, height=320)
    fig.update_layout(hovermode="closest", showlegend=False, yaxis_title=metric)
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4")
    return fig


def k_curves_figure(results: Mapping[str, Any], metric: str = "recall") -> go.Figure:
    """Metric@k for k = 1..50, one line per algorithm."""
    fig = go.Figure()
    ks = list(results.get("curve_ks") or [])
    for i, name in enumerate(_algorithms(results)):
        fig.add_trace(
            go.Scatter(
                x=ks,
                y=list(results["algorithms"][name]["curves"][metric]),
                name=name,
                mode="lines",
                line=dict(color=_color(i), width=2),
                meta=name,
            )
        )
    base_layout(fig, height=320)
    fig.update_layout(xaxis_title="k", yaxis_title=f"{metric}@k")
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4")
    return fig


def tradeoff_figure(results: Mapping[str, Any], metric: str = "ndcg@10", beyond: str = "coverage") -> go.Figure:
    """Accuracy (y) against a beyond-accuracy measure at the run's main k (x), one marker per algorithm."""
    fig = go.Figure()
    main_k = results.get("main_k")
    for i, name in enumerate(_algorithms(results)):
        entry = results["algorithms"][name]
        fig.add_trace(
            go.Scatter(
                x=[entry["beyond"].get(beyond)],
                y=[entry["metrics"].get(metric)],
                name=name,
                mode="markers+text",
                text=[name],
                textposition="top center",
                marker=dict(size=14, color=_color(i)),
                meta=name,
            )
        )
    base_layout(fig, height=320)
    fig.update_layout(hovermode="closest", showlegend=False, xaxis_title=f"{beyond}@{main_k}", yaxis_title=metric)
    fig.update_yaxes(gridcolor="#eef0f4")
    return fig


def popularity_bias_figure(results: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> go.Figure:
    """Share of catalogue items, of test interactions and of each algorithm's recommendations per
    popularity bin (distinct train customers). Recommenders biased to the head pile up on the right."""
    bins = results.get("popularity_bins") or {}
    x = list(bins.get("labels") or [])
    fig = go.Figure()
    for key in ("catalog", "test"):
        fig.add_trace(
            go.Bar(
                x=x, y=list(bins.get(key) or []), name=_label(labels, key), marker_color=REFERENCE_COLORS[key], meta=key
            )
        )
    for i, name in enumerate(_algorithms(results)):
        fig.add_trace(
            go.Bar(
                x=x,
                y=list(results["algorithms"][name]["popularity_bias"]["recommended"]),
                name=name,
                marker_color=_color(i),
                meta=name,
            )
        )
    base_layout(fig, height=340)
    fig.update_layout(barmode="group", xaxis_title=_label(labels, "axis"), yaxis_tickformat=".0%")
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4")
    return fig


def slice_keys(results: Mapping[str, Any]) -> list[str]:
    """Slices in display order: cold, warm, then the segments."""
    keys: list[str] = []
    for name in _algorithms(results):
        for key in results["algorithms"][name].get("slices", {}):
            if key not in keys:
                keys.append(key)
    return sorted(keys, key=lambda k: (0 if k == "cold" else 1 if k == "warm" else 2, k))


def slices_figure(
    results: Mapping[str, Any], metric: str = "ndcg@10", labels: Mapping[str, str] | None = None
) -> go.Figure:
    """Accuracy per customer slice (cold/warm history, automatic segments), one bar group per slice."""
    keys = slice_keys(results)
    names = {**(results.get("segments") or {}), **(labels or {})}
    x = [_label(names, k) for k in keys]
    fig = go.Figure()
    for i, name in enumerate(_algorithms(results)):
        slices = results["algorithms"][name].get("slices", {})
        fig.add_trace(
            go.Bar(
                x=x,
                y=[slices.get(k, {}).get(metric) for k in keys],
                customdata=[slices.get(k, {}).get("n_users") for k in keys],
                hovertemplate="%{x}: %{y:.4f} (n=%{customdata})<extra>" + name + "</extra>",
                name=name,
                marker_color=_color(i),
                meta=name,
            )
        )
    base_layout(fig, height=320)
    fig.update_layout(barmode="group", hovermode="closest", yaxis_title=metric)
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4")
    return fig


def versions_figure(rows: Sequence[Mapping[str, Any]], metric: str = "ndcg@10") -> go.Figure:
    """Each trained model version's holdout metric over time, one line per algorithm.

    ``rows``: ``{"version", "algorithm", "created_at" (ISO string), "metrics"}``, oldest first.
    """
    fig = go.Figure()
    algos: list[str] = []
    for row in rows:
        if row["algorithm"] not in algos:
            algos.append(row["algorithm"])
    for i, algo in enumerate(algos):
        mine = [r for r in rows if r["algorithm"] == algo]
        fig.add_trace(
            go.Scatter(
                x=[r["created_at"] for r in mine],
                y=[(r.get("metrics") or {}).get(metric) for r in mine],
                text=[f"v{r['version']}" for r in mine],
                hovertemplate="%{text}: %{y:.4f}<extra>" + algo + "</extra>",
                name=algo,
                mode="lines+markers",
                line=dict(color=_color(i), width=2),
                meta=algo,
            )
        )
    base_layout(fig, height=300)
    fig.update_layout(hovermode="closest", yaxis_title=metric)
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4")
    return fig


def compare_figure(left: Mapping[str, Any], right: Mapping[str, Any], metric: str, names: tuple[str, str]) -> go.Figure:
    """Two runs side by side: one bar group per algorithm, one trace per run, with CI error bars."""
    algos = _algorithms(left) + [a for a in _algorithms(right) if a not in _algorithms(left)]
    fig = go.Figure()
    for i, (results, run_name) in enumerate(((left, names[0]), (right, names[1]))):
        ys, plus, minus = [], [], []
        for a in algos:
            entry = (results.get("algorithms") or {}).get(a)
            y = entry["metrics"].get(metric) if entry else None
            lo, hi = ((entry or {}).get("ci", {}).get(metric) or [None, None])[:2]
            ys.append(y)
            plus.append(None if y is None or hi is None else hi - y)
            minus.append(None if y is None or lo is None else y - lo)
        fig.add_trace(
            go.Bar(
                x=algos,
                y=ys,
                name=run_name,
                error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus, color="#334155"),
                marker_color=_color(i),
                meta=run_name,
            )
        )
    base_layout(fig, height=320)
    fig.update_layout(barmode="group", hovermode="closest", yaxis_title=metric)
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4")
    return fig


def tuning_figure(trials: Sequence[Mapping[str, Any]], metric: str) -> go.Figure:
    """Every finished trial's validation score, one strip per algorithm (the leaderboard at a glance).

    ``trials``: ``{"algorithm", "params", "score"}``.
    """
    fig = go.Figure()
    algos: list[str] = []
    for t in trials:
        if t["algorithm"] not in algos:
            algos.append(t["algorithm"])
    for i, algo in enumerate(algos):
        mine = [t for t in trials if t["algorithm"] == algo and t.get("score") is not None]
        fig.add_trace(
            go.Scatter(
                x=[algo] * len(mine),
                y=[t["score"] for t in mine],
                text=[", ".join(f"{k}={v}" for k, v in (t.get("params") or {}).items()) or "defaults" for t in mine],
                hovertemplate="%{text}: %{y:.4f}<extra>" + algo + "</extra>",
                mode="markers",
                marker=dict(size=11, color=_color(i), opacity=0.8),
                name=algo,
                meta=algo,
            )
        )
    base_layout(fig, height=300)
    fig.update_layout(hovermode="closest", showlegend=False, yaxis_title=metric)
    fig.update_yaxes(gridcolor="#eef0f4")
    return fig
