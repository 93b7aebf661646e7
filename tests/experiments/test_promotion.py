"""Promoting a variant needs a started experiment, enough traffic and a significant result, or an
explicit, recorded "promote anyway"; starting one is a confirmed merchant action (issue 11)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from analytics.experiments import services
from shop_recs.serving.models import Experiment, ExperimentStatus, StoreRules
from shop_recs.stores.scoping import store_scope
from tests.experiments.test_experiments import _hand_experiment


def _url(store, exp, name="promote"):
    return reverse(f"experiments:{name}", kwargs={"store_slug": store.slug, "experiment_id": exp.pk})


def _variant(store, exp, name):
    with store_scope(store):
        return exp.variants.get(name=name)


def _boost(store):
    with store_scope(store):
        rules = StoreRules.objects.filter(store=store).first()
    return rules.boost_weight if rules else None


@pytest.fixture
def small_sample(settings):
    settings.EXPERIMENT_PROMOTE_MIN_IMPRESSIONS = 100


def test_promote_on_a_draft_is_refused_even_when_forced(client, merchant, store, make_product, make_customer):
    """The reproduction: "Promote" on a draft with no traffic made the variant live for everyone."""
    exp = _hand_experiment(store, make_product, make_customer, {"A": (0, 0, 0), "B": (0, 0, 0)})
    before = _boost(store)
    variant = _variant(store, exp, "B")
    client.force_login(merchant)
    page = client.get(_url(store, exp), {"variant": variant.pk})
    assert page.status_code == 200 and 'id="promotion-blockers"' in page.content.decode()
    forced = {"variant": variant.pk, "confirm": "yes", "promote_anyway": "on"}
    assert client.post(_url(store, exp), forced).status_code == 400
    with store_scope(store):
        with pytest.raises(services.ExperimentError, match="has not started"):
            services.promote_variant(Experiment.objects.get(pk=exp.pk), variant, user=merchant, override=True)
        assert Experiment.objects.get(pk=exp.pk).promoted_variant_id is None
    assert _boost(store) == before


def test_a_significant_winner_is_promoted_without_override(
    client, merchant, store, make_product, make_customer, small_sample
):
    exp = _hand_experiment(store, make_product, make_customer, {"A": (20, 1, 3), "B": (20, 3, 6)})
    with store_scope(store):
        services.start_experiment(exp)
    variant = _variant(store, exp, "B")
    client.force_login(merchant)
    page = client.get(_url(store, exp), {"variant": variant.pk}).content.decode()
    assert 'id="promotion-figures"' in page and 'id="promotion-warnings"' not in page
    assert _boost(store) != 2.0  # the confirmation page alone changes nothing
    response = client.post(_url(store, exp), {"variant": variant.pk, "confirm": "yes"})
    assert response.status_code == 302
    assert _boost(store) == 2.0
    with store_scope(store):
        exp = Experiment.objects.get(pk=exp.pk)
    assert exp.status == ExperimentStatus.STOPPED and exp.promoted_variant_id == variant.pk
    evidence = exp.promotion_evidence
    assert evidence["override"] is False and evidence["warnings"] == []
    assert evidence["verdict"]["winner"] == "B" and evidence["verdict"]["p_value"] < 0.05
    assert [v["impressions"] for v in evidence["variants"]] == [100, 100]


def test_promoting_the_loser_or_too_small_a_sample_needs_a_recorded_override(
    client, merchant, store, make_product, make_customer, settings
):
    settings.EXPERIMENT_PROMOTE_MIN_IMPRESSIONS = 150  # more than the 100 each variant has
    exp = _hand_experiment(store, make_product, make_customer, {"A": (20, 1, 3), "B": (20, 3, 6)})
    with store_scope(store):
        services.start_experiment(exp)
    loser = _variant(store, exp, "A")
    client.force_login(merchant)
    plain = {"variant": loser.pk, "confirm": "yes"}
    refused = client.post(_url(store, exp), plain)
    text = refused.content.decode()
    assert refused.status_code == 400
    assert "favours B, not A" in text and "at least 150 per variant" in text
    with store_scope(store):
        assert Experiment.objects.get(pk=exp.pk).status == ExperimentStatus.RUNNING
    assert client.post(_url(store, exp), {**plain, "promote_anyway": "on"}).status_code == 302
    with store_scope(store):
        exp = Experiment.objects.get(pk=exp.pk)
    assert exp.promoted_variant_id == loser.pk and exp.promotion_evidence["override"] is True
    assert any("favours B" in w for w in exp.promotion_evidence["warnings"])


def test_starting_is_for_merchants_and_needs_the_confirmation(
    client, analyst, merchant, store, make_product, make_customer
):
    exp = _hand_experiment(store, make_product, make_customer, {"A": (1, 0, 0), "B": (1, 0, 0)})

    def status():
        with store_scope(store):
            return Experiment.objects.get(pk=exp.pk).status

    client.force_login(analyst)
    assert client.post(_url(store, exp, "start"), {"confirm": "yes"}).status_code == 403
    assert status() == ExperimentStatus.DRAFT
    client.force_login(merchant)
    assert client.post(_url(store, exp, "start")).status_code == 302  # no confirmation ticked
    assert status() == ExperimentStatus.DRAFT
    assert client.post(_url(store, exp, "start"), {"confirm": "yes"}).status_code == 302
    assert status() == ExperimentStatus.RUNNING
