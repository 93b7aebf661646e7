"""The search insights figure: a pure function from plain data to a plotly ``Figure`` (no queries)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import plotly.graph_objects as go

from shop_recs.platform.charts import base_layout  # one look for every dashboard chart

SEARCH_COLOR = "#8b5cf6"  # the "search" colour of analytics.charts.EVENT_COLORS
ZERO_COLOR = "#ef4444"


def queries_per_day_figure(
    days: Sequence[date],
    searches: Sequence[int],
    zero_results: Sequence[int],
    labels: tuple[str, str] = ("Searches", "No results"),
) -> go.Figure:
    """Searches per day as bars, with the zero-result ones overlaid, so a spike of misses stands out."""
    x = [d.isoformat() for d in days]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=list(searches), name=str(labels[0]), marker_color=SEARCH_COLOR, meta="searches"))
    fig.add_trace(go.Bar(x=x, y=list(zero_results), name=str(labels[1]), marker_color=ZERO_COLOR, meta="zero"))
    base_layout(fig, height=300)
    fig.update_layout(barmode="overlay")
    fig.update_yaxes(rangemode="tozero", gridcolor="#eef0f4")
    fig.update_xaxes(showgrid=False)
    return fig
