"""The one look every dashboard chart shares (layout, font, transparent background).

Charts themselves are pure functions in each feature's ``charts.py``; they all finish with
:func:`base_layout`, so the overview, search, ads, evaluation and experiment pages look alike.
"""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go

FONT = dict(family="-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, 'Noto Sans SC', sans-serif", size=12)


def base_layout(fig: go.Figure, *, height: int) -> go.Figure:
    """Apply the shared layout to ``fig`` (in place) and return it."""
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin=dict(l=48, r=16, t=16, b=40),
        font=FONT,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
    )
    return fig


def figure_json(fig: go.Figure) -> dict[str, Any]:
    """A figure as plain JSON data for a page (embedded with ``json_script``, which escapes ``</script>``)."""
    return json.loads(fig.to_json())
