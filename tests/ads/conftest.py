"""Ads fixtures: the serving test shop (mug people and shirt people, a trained item kNN) plus campaigns."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from shop_recs.ads.models import Campaign, CampaignStatus
from shop_recs.stores.scoping import unscoped
from tests.serving.conftest import _fresh_serving, add_events, shop  # noqa: F401 - re-exported fixtures


@pytest.fixture
def make_campaign(db):
    def _make(store, name: str = "Camp", *, products=(), categories=(), segments=(), **kwargs) -> Campaign:
        now = timezone.now()
        kwargs.setdefault("title", f"{name} headline")
        kwargs.setdefault("landing_url", "https://shop.example/landing")
        kwargs.setdefault("starts_at", now - timedelta(days=1))
        kwargs.setdefault("ends_at", now + timedelta(days=10))
        kwargs.setdefault("budget", 1000)
        kwargs.setdefault("frequency_cap", 100)
        kwargs.setdefault("status", CampaignStatus.ACTIVE)
        with unscoped():
            c = Campaign.objects.create(store=store, name=name, **kwargs)
            c.products.set(products)
            c.categories.set(categories)
            c.segments.set(segments)
        return c

    return _make


@pytest.fixture
def make_segment(db):
    def _make(store, name: str, members=(), kind: str = "rule"):
        from analytics.models import CustomerProfile, Segment

        with unscoped():
            seg = Segment.objects.create(store=store, name=name, kind=kind, rules={})
            for cust in members:
                profile, _ = CustomerProfile.objects.get_or_create(store=store, customer=cust)
                profile.segment_ids = sorted({*profile.segment_ids, seg.pk})
                profile.save()
        return seg

    return _make


@pytest.fixture
def login(client):
    def _login(user):
        client.force_login(user)
        return client

    return _login
