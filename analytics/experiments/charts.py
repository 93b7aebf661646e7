"""Figures of the experiments pages: pure functions from plain data to plotly figures."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from django.utils.translation import gettext_lazy as _

# Lazy: the page's metric picker and the chart title read them in the viewer's language.
METRIC_LABELS = {
    "ctr": "CTR",
    "cart_rate": _("Add-to-cart rate"),
    "conversion_rate": _("Conversion rate"),
    "rpm": _("Revenue per 1000 impressions"),
    "impressions": _("Impressions"),
}

#: The variant charts' titles (the metric keys are the selectors' names for them).
VARIANT_METRIC_TITLES = {
    "ctr": "CTR",
    "conversion": _("Conversion rate"),
    "revenue_per_customer": _("Revenue per customer"),
}


def daily_metric_figure(daily: list[dict[str, Any]], metric: str = "ctr") -> go.Figure:
    """One line per (model version, algorithm, placement) of ``metric`` per day."""
    series: dict[str, tuple[list[str], list[float]]] = {}
    for row in daily:
        name = f"v{row['model_version'] or '-'} {row['algorithm']} @ {row['placement'] or '(none)'}"
        xs, ys = series.setdefault(name, ([], []))
        xs.append(row["day"])
        ys.append(row[metric])
    fig = go.Figure([go.Scatter(x=xs, y=ys, name=name, mode="lines+markers") for name, (xs, ys) in series.items()])
    title = str(METRIC_LABELS.get(metric, metric))
    fig.update_layout(title=title, height=320, margin={"t": 40, "b": 40, "l": 50, "r": 10})
    return fig


def variant_figure(variants: list[dict[str, Any]], metric: str = "ctr") -> go.Figure:
    """Per-variant bars of ``metric`` (ctr, conversion, revenue_per_customer) with their 95% intervals."""
    ci_key = {"ctr": "ctr_ci", "conversion": "conversion_ci", "revenue_per_customer": "revenue_ci"}[metric]
    ys = [v[metric] for v in variants]
    fig = go.Figure(
        go.Bar(
            x=[v["name"] for v in variants],
            y=ys,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [v[ci_key][1] - y for v, y in zip(variants, ys, strict=True)],
                "arrayminus": [y - v[ci_key][0] for v, y in zip(variants, ys, strict=True)],
            },
        )
    )
    title = str(VARIANT_METRIC_TITLES.get(metric, metric))
    fig.update_layout(title=title, height=300, margin={"t": 40, "b": 40, "l": 50, "r": 10})
    return fig
