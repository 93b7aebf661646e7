"""Plotly figures for the dashboard: pure functions from plain data to ``go.Figure``.

No Django queries here (the selectors do that), so every figure is testable without HTTP or a
database. The dashboard serialises them with ``fig.to_json()`` and draws them with the locally
served plotly.min.js.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from shop_recs.dashboard.charts import EVENT_COLORS, customer_activity_figure  # noqa: F401 - shared with the profile page
from shop_recs.platform.charts import base_layout

_SEGMENT_PALETTE = ["#4f6bed", "#10b981", "#f59e0b", "#ec4899", "#8b5cf6", "#06b6d4", "#ef4444", "#84cc16", "#64748b"]


def affinity_figure(category: Mapping[str, float], brand: Mapping[str, float] | None = None) -> go.Figure:
    """Horizontal bars of a customer's category (and brand) affinity shares."""
    fig = go.Figure()
    cats = sorted(category.items(), key=lambda kv: kv[1])
    fig.add_trace(
        go.Bar(
            y=[k for k, _v in cats], x=[v for _k, v in cats], orientation="h", name="category", marker_color="#4f6bed"
        )
    )
    if brand:
        brands = sorted(brand.items(), key=lambda kv: kv[1])
        fig.add_trace(
            go.Bar(
                y=[k for k, _v in brands],
                x=[v for _k, v in brands],
                orientation="h",
                name="brand",
                marker_color="#10b981",
                visible="legendonly",
            )
        )
    base_layout(fig, height=260)
    fig.update_layout(hovermode="closest", margin=dict(l=160, r=16, t=16, b=32))
    fig.update_xaxes(tickformat=".0%", rangemode="tozero")
    return fig


def habits_figure(dow: Sequence[int], hours: Sequence[int], dow_labels: Sequence[str]) -> go.Figure:
    """Events by day of week and by hour, side by side as two bar traces on separate axes."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=list(dow_labels), y=list(dow), name="day", marker_color="#8b5cf6", xaxis="x", yaxis="y"))
    fig.add_trace(
        go.Bar(
            x=[f"{h:02d}" for h in range(len(hours))],
            y=list(hours),
            name="hour",
            marker_color="#06b6d4",
            xaxis="x2",
            yaxis="y2",
        )
    )
    base_layout(fig, height=220)
    fig.update_layout(
        xaxis=dict(domain=[0, 0.3]),
        xaxis2=dict(domain=[0.38, 1], anchor="y2"),
        yaxis2=dict(anchor="x2"),
        showlegend=False,
        hovermode="closest",
    )
    return fig


def segment_sizes_figure(names: Sequence[str], sizes: Sequence[float | None]) -> go.Figure:
    """Bar chart of segment sizes (suppressed cells drawn as 0 and labelled)."""
    fig = go.Figure(
        go.Bar(
            x=list(names),
            y=[s or 0 for s in sizes],
            text=[("–" if s is None else f"{s:,.0f}") for s in sizes],
            textposition="outside",
            marker_color=[_SEGMENT_PALETTE[i % len(_SEGMENT_PALETTE)] for i in range(len(names))],
        )
    )
    base_layout(fig, height=300)
    fig.update_layout(hovermode="closest")
    return fig


def centroid_heatmap_figure(names: Sequence[str], features: Sequence[str], z: Sequence[Sequence[float]]) -> go.Figure:
    """Standardised feature centroids per segment (0 = population mean)."""
    fig = go.Figure(
        go.Heatmap(
            z=[list(r) for r in z], x=list(features), y=list(names), colorscale="RdBu", reversescale=True, zmid=0
        )
    )
    base_layout(fig, height=max(240, 40 * len(names) + 80))
    fig.update_layout(hovermode="closest", margin=dict(l=200, r=16, t=16, b=80))
    _every_category_labelled(fig)
    return fig


def pca_scatter_figure(x: Sequence[float], y: Sequence[float], labels: Sequence[str]) -> go.Figure:
    """2-D PCA projection of a sample of customers, one trace per segment."""
    fig = go.Figure()
    order = list(dict.fromkeys(labels))
    xs, ys, ls = list(x), list(y), list(labels)
    for i, name in enumerate(order):
        pts = [j for j, lab in enumerate(ls) if lab == name]
        fig.add_trace(
            go.Scattergl(
                x=[xs[j] for j in pts],
                y=[ys[j] for j in pts],
                mode="markers",
                name=str(name),
                marker=dict(size=4, opacity=0.6, color=_SEGMENT_PALETTE[i % len(_SEGMENT_PALETTE)]),
            )
        )
    base_layout(fig, height=420)
    fig.update_layout(hovermode="closest")
    return fig


def rfm_heatmap_figure(counts: Sequence[Sequence[float | None]]) -> go.Figure:
    """Customers by R score (rows) and F score (columns), 1–5; suppressed cells are blank."""
    fig = go.Figure(
        go.Heatmap(
            z=[list(r) for r in counts],
            x=[f"F{i}" for i in range(1, 6)],
            y=[f"R{i}" for i in range(1, 6)],
            colorscale="Blues",
            text=[["–" if v is None else f"{v:,.0f}" for v in r] for r in counts],
            texttemplate="%{text}",
        )
    )
    base_layout(fig, height=320)
    fig.update_layout(hovermode="closest")
    return fig


def rule_overlap(
    names: Sequence[str], is_rule: Sequence[bool], matrix: Sequence[Sequence[float | None]]
) -> tuple[list[str], list[str], list[list[float | None]]] | None:
    """The overlap worth drawing: each rule segment (rows) against every segment (columns).

    Automatic segments partition the customers, so among themselves the matrix is a bare diagonal of
    their sizes; ``None`` when there is no rule segment, and the page says so in a sentence instead.
    """
    rows = [i for i, rule in enumerate(is_rule) if rule]
    if not rows:
        return None
    return [names[i] for i in rows], list(names), [list(matrix[i]) for i in rows]


def overlap_figure(
    row_names: Sequence[str], col_names: Sequence[str], matrix: Sequence[Sequence[float | None]]
) -> go.Figure:
    """Customers in both segments: rule segments (rows) against every segment (a rule segment's own
    cell is its size)."""
    fig = go.Figure(
        go.Heatmap(
            z=[list(r) for r in matrix],
            x=list(col_names),
            y=list(row_names),
            colorscale="Greens",
            text=[["–" if v is None else f"{v:,.0f}" for v in r] for r in matrix],
            texttemplate="%{text}",
        )
    )
    base_layout(fig, height=max(220, 36 * len(row_names) + 160))
    fig.update_layout(hovermode="closest", margin=dict(l=200, r=16, t=16, b=140))
    _every_category_labelled(fig)
    return fig


def _every_category_labelled(fig: go.Figure) -> None:
    # Plotly thins category ticks to fit its own spacing: a heatmap of 5 segments showed 3 names.
    fig.update_xaxes(type="category", dtick=1, automargin=True)
    fig.update_yaxes(type="category", dtick=1, automargin=True)
