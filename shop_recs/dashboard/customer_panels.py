"""Sections other apps add to the one customer page (Customers → a customer).

The page lives in the dashboard, but the customer profile (RFM, affinities, habits, segments) belongs to
``analytics``, which ``shop_recs`` never imports. So the analytics app registers a panel provider at
start-up (``AnalyticsConfig.ready``) and the page renders whatever panels are registered, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CustomerPanel", "register", "panels_for"]


@dataclass(frozen=True)
class CustomerPanel:
    """One section of the customer page: its template and the context it reads as ``panel``."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)
    needs_charts: bool = False  # the page loads plotly only when something draws


_providers: dict[str, Callable[[Any, Any], CustomerPanel | None]] = {}


def register(name: str, provider: Callable[[Any, Any], CustomerPanel | None]) -> None:
    """Add (or replace, by ``name``) a provider ``(store, customer) -> CustomerPanel | None``."""
    _providers[name] = provider


def panels_for(store, customer) -> list[CustomerPanel]:
    """The panels for this customer, in registration order (a provider may return None: nothing to show)."""
    return [panel for provider in _providers.values() if (panel := provider(store, customer)) is not None]
