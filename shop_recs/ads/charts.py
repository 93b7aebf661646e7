"""Campaign report figures: pure functions from plain data to plotly figures (no queries)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from shop_recs.platform.charts import base_layout

COLORS = {
    "impressions": "#4f6bed",
    "clicks": "#06b6d4",
    "conversions": "#10b981",
    "pace": "#94a3b8",
    "spend": "#f59e0b",
    "revenue": "#10b981",
}


def daily_performance_figure(
    days: Sequence[date], series: Mapping[str, Sequence[float]], labels: Mapping[str, str]
) -> go.Figure:
    """Impressions (bars, left axis) with clicks and conversions (lines, right axis) per day."""
    x = [d.isoformat() for d in days]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(x=x, y=list(series["impressions"]), name=str(labels["impressions"]), marker_color=COLORS["impressions"]),
        secondary_y=False,
    )
    for key in ("clicks", "conversions"):
        fig.add_trace(
            go.Scatter(
                x=x, y=list(series[key]), name=str(labels[key]), mode="lines+markers", line=dict(color=COLORS[key])
            ),
            secondary_y=True,
        )
    base_layout(fig, height=360)
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4", secondary_y=False)
    fig.update_yaxes(rangemode="tozero", showgrid=False, secondary_y=True)
    return fig


def spend_figure(
    days: Sequence[date], spend: Sequence[float], revenue: Sequence[float], labels: Mapping[str, str]
) -> go.Figure:
    """Spend (bars) and attributed revenue (line) per day, in the store currency: return on ad spend over time."""
    x = [d.isoformat() for d in days]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=list(spend), name=str(labels["spend"]), marker_color=COLORS["spend"]))
    fig.add_trace(
        go.Scatter(
            x=x,
            y=list(revenue),
            name=str(labels["revenue"]),
            mode="lines+markers",
            line=dict(color=COLORS["revenue"]),
        )
    )
    base_layout(fig, height=300)
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4")
    return fig


def pacing_figure(
    days: Sequence[date], cumulative: Sequence[float], budget: float, labels: Mapping[str, str]
) -> go.Figure:
    """Cumulative spend against an even pace from 0 to the total budget over the shown days."""
    x = [d.isoformat() for d in days]
    n = len(x)
    even = [round(float(budget) * (i + 1) / n, 2) for i in range(n)] if n else []
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=list(cumulative),
            name=str(labels["served"]),
            mode="lines",
            line=dict(color=COLORS["impressions"], width=2),
        )
    )
    fig.add_trace(
        go.Scatter(x=x, y=even, name=str(labels["even"]), mode="lines", line=dict(color=COLORS["pace"], dash="dash"))
    )
    base_layout(fig, height=300)
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4")
    return fig
