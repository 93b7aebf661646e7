"""Plotly figures of the activity overview and the detail pages: pure functions from plain data.

No Django queries here (``dashboard/selectors.py`` does that), so every figure is testable without
HTTP or a database. The dashboard serialises them with ``fig.to_json()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import plotly.graph_objects as go

from shop_recs.platform.charts import base_layout

# One colour per event type, shared by every chart so "purchase" always looks the same.
EVENT_COLORS: dict[str, str] = {
    "view": "#4f6bed",
    "search": "#8b5cf6",
    "click": "#06b6d4",
    "add_to_cart": "#f59e0b",
    "remove_from_cart": "#94a3b8",
    "purchase": "#10b981",
    "rating": "#ec4899",
}


def events_per_day_figure(
    days: Sequence[date], series: Mapping[str, Sequence[int]], labels: Mapping[str, str] | None = None
) -> go.Figure:
    """Stacked area chart of events per day, one trace per event type (dense series, same length as days)."""
    labels = labels or {}
    fig = go.Figure()
    for event_type in EVENT_COLORS:  # fixed order keeps colours and stacking stable
        if event_type not in series:
            continue
        color = EVENT_COLORS[event_type]
        fig.add_trace(
            go.Scatter(
                x=[d.isoformat() for d in days],
                y=list(series[event_type]),
                name=str(labels.get(event_type, event_type)),
                mode="lines",
                stackgroup="events",
                line=dict(width=1.5, color=color),
                meta=event_type,
            )
        )
    for event_type, values in series.items():  # any type not in the palette still shows
        if event_type not in EVENT_COLORS:
            fig.add_trace(
                go.Scatter(
                    x=[d.isoformat() for d in days],
                    y=list(values),
                    name=str(labels.get(event_type, event_type)),
                    mode="lines",
                    stackgroup="events",
                    meta=event_type,
                )
            )
    base_layout(fig, height=430)
    fig.update_layout(legend=dict(traceorder="normal"))  # stacked traces would list bottom-last
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4")
    fig.update_xaxes(showgrid=False)
    return fig


def funnel_figure(labels: Sequence[str], counts: Sequence[int]) -> go.Figure:
    """The view → cart → purchase funnel with counts and the share of the previous step."""
    fig = go.Figure(
        go.Funnel(
            y=[str(label) for label in labels],
            x=list(counts),
            textinfo="value+percent previous",
            marker=dict(color=["#4f6bed", "#f59e0b", "#10b981"][: len(counts)]),
            connector=dict(fillcolor="#eef1f7", line=dict(color="#dfe3ec", width=1)),
        )
    )
    base_layout(fig, height=270)
    fig.update_layout(hovermode="closest", margin=dict(l=110, r=16, t=16, b=24))
    return fig


def customer_activity_figure(
    days: Sequence[date], series: Mapping[str, Sequence[int]], labels: Mapping[str, str] | None = None
) -> go.Figure:
    """A small stacked bar chart of one customer's events per day."""
    labels = labels or {}
    fig = go.Figure()
    for event_type, values in series.items():
        fig.add_trace(
            go.Bar(
                x=[d.isoformat() for d in days],
                y=list(values),
                name=str(labels.get(event_type, event_type)),
                marker_color=EVENT_COLORS.get(event_type),
                meta=event_type,
            )
        )
    base_layout(fig, height=220)
    fig.update_layout(barmode="stack", margin=dict(l=36, r=8, t=8, b=32))
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4")
    return fig


# --- profiles and segments (analytics app) ------------------------------------------------------
