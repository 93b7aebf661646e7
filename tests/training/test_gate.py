"""The activation gate (training/gate.py) and who may change the live model (issue 11)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from shop_recs.platform.jobs import JobStatus
from shop_recs.stores.scoping import store_scope
from shop_recs.training import activation, services
from shop_recs.training.errors import ActivationNotAllowed
from shop_recs.training.gate import Candidate, GateConfig, Paired, decide
from shop_recs.training.models import ActivationRecord, ModelVersion, TrainingRun

HYBRID = Candidate(version_id=1, algorithm="hybrid", params={"alpha": 0.5}, metric=0.2826, coverage=0.79)
EASE = Candidate(version_id=2, algorithm="ease", params={"l2": 250.0}, metric=0.2828, coverage=0.60)


def _paired(diff_low, diff_high, *, cand=0.2828, live=0.2826, cand_cov=0.79, live_cov=0.79, n=5000):
    return Paired("ndcg@10", n, cand, live, cand - live, diff_low, diff_high, cand_cov, live_cov)


def test_the_noise_level_switch_is_refused():
    """The reproduction: EASE replaced the live hybrid on a 0.0002 NDCG@10 edge with 60% vs 79% coverage."""
    verdict = decide(EASE, HYBRID, GateConfig(), _paired(-0.004, 0.0044, cand_cov=0.60), "ndcg@10")
    assert verdict["kind"] == "switch" and verdict["passed"] is False
    assert verdict["reason"].startswith("no evidence of improvement")
    assert verdict["paired"]["diff_low"] == -0.004


def test_a_clear_improvement_that_loses_coverage_is_refused():
    paired = _paired(0.01, 0.03, cand=0.30, live=0.28, cand_cov=0.60, live_cov=0.79)
    verdict = decide(EASE, HYBRID, GateConfig(max_coverage_loss=0.1), paired, "ndcg@10")
    assert verdict["passed"] is False and "coverage" in verdict["reason"]
    # 24% of the live coverage lost; allowed when the store accepts a 25% loss.
    assert decide(EASE, HYBRID, GateConfig(max_coverage_loss=0.25), paired, "ndcg@10")["passed"] is True


def test_a_switch_needs_the_minimum_lift():
    paired = _paired(0.001, 0.009, cand=0.285, live=0.280)  # +1.8%, significant
    assert decide(EASE, HYBRID, GateConfig(min_lift=0.0), paired, "ndcg@10")["passed"] is True
    verdict = decide(EASE, HYBRID, GateConfig(min_lift=0.02), paired, "ndcg@10")
    assert verdict["passed"] is False and verdict["lift"] == pytest.approx(0.005 / 0.280)


def test_a_switch_without_a_holdout_is_refused_and_a_refresh_uses_the_floor():
    assert decide(EASE, HYBRID, GateConfig(), None, "ndcg@10")["passed"] is False
    fresh = Candidate(3, "hybrid", {"alpha": 0.5}, metric=0.25, coverage=0.78)
    refresh = decide(fresh, HYBRID, GateConfig(max_drop=0.2), None, "ndcg@10")
    assert refresh["kind"] == "refresh" and refresh["passed"] is True  # 0.25 >= 0.2826 * 0.8
    worse = Candidate(3, "hybrid", {"alpha": 0.5}, metric=0.2, coverage=0.78)
    assert decide(worse, HYBRID, GateConfig(max_drop=0.2), None, "ndcg@10")["passed"] is False
    shrunk = Candidate(3, "hybrid", {"alpha": 0.5}, metric=0.28, coverage=0.5)
    assert "coverage" in decide(shrunk, HYBRID, GateConfig(), None, "ndcg@10")["reason"]


def test_gate_settings_are_range_checked():
    with pytest.raises(ValueError, match="min_lift"):
        GateConfig.from_dict({"min_lift": 2})
    with pytest.raises(ValueError, match="max_drop"):
        GateConfig.from_dict({"max_drop": float("nan")})
    assert GateConfig.from_dict({"max_drop": 0.3, "min_lift": None}) == GateConfig(max_drop=0.3)


def _active(store):
    with store_scope(store):
        return ModelVersion.objects.filter(is_active=True).first()


def test_a_tied_switch_in_training_is_kept_as_a_candidate(store, shop_data, merchant):
    services.train_store(store, ["item_knn"])
    live = _active(store)
    run = services.train_store(store, ["popularity"], params={"_gate": {"max_drop": 1.0}}, user=merchant)
    assert run.status == JobStatus.SUCCEEDED
    gate = run.gate
    assert gate["kind"] == "switch" and gate["passed"] is False and gate["activated"] is None
    assert gate["paired"]["n_users"] > 0 and gate["paired"]["diff_high"] < 0  # popularity is worse here
    assert _active(store).pk == live.pk
    with store_scope(store):
        candidate = ModelVersion.objects.get(algorithm="popularity")
    # The refused candidate can still be made live by a merchant, and that is recorded.
    activation.activate_version(candidate, user=merchant, reason="trying it")
    with store_scope(store):
        record = ActivationRecord.objects.latest("pk")
    assert (record.version_id, record.previous_version_id, record.source) == (candidate.pk, live.pk, "manual")


def test_a_clearly_better_switch_goes_live_with_its_evidence(store, shop_data, merchant):
    services.train_store(store, ["popularity"])
    run = services.train_store(store, ["item_knn"], params={"_gate": {}}, user=merchant)
    assert run.gate["kind"] == "switch" and run.gate["passed"] is True, run.gate
    assert run.gate["paired"]["diff_low"] > 0
    assert _active(store).algorithm == "item_knn"
    with store_scope(store):
        record = ActivationRecord.objects.latest("pk")
    assert record.source == "gate" and record.user == merchant
    assert record.details["gate"]["paired"]["diff_low"] > 0 and record.details["run"] == run.pk


def test_an_analysts_run_finishes_but_never_goes_live(
    client, store, shop_data, analyst, merchant, django_capture_on_commit_callbacks
):
    """The reproduction: an analyst's popularity-only run with the gate floor at 1 went live."""
    services.train_store(store, ["item_knn"])
    live = _active(store)
    client.force_login(analyst)
    url = reverse("recommend:start", kwargs={"store_slug": store.slug})
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url, {"algorithms": ["popularity"], "max_drop": "1"}).status_code == 302
    run = TrainingRun.all_stores.filter(store=store).latest("pk")
    assert run.status == JobStatus.SUCCEEDED and run.created_by == analyst
    assert run.gate["activated"] is None
    assert _active(store).pk == live.pk
    with store_scope(store):
        candidate = ModelVersion.objects.get(run=run)
    with pytest.raises(ActivationNotAllowed):
        activation.activate_version(candidate, user=analyst)
    activate = reverse("recommend:activate", kwargs={"store_slug": store.slug, "version_id": candidate.pk})
    assert client.post(activate, {"confirm": "yes"}).status_code == 403
    assert _active(store).pk == live.pk
    # A run the analyst starts with a gate the candidate passes is held for a merchant, and says so.
    services.train_store(store, ["item_knn"], params={"_gate": {"max_drop": 1.0}}, user=analyst)
    held = TrainingRun.all_stores.filter(store=store).latest("pk")
    assert held.gate["passed"] is True and held.gate["activated"] is None and "analyst" in held.gate["held"]
    assert (
        "waiting for a merchant"
        in client.get(reverse("recommend:jobs", kwargs={"store_slug": store.slug})).content.decode()
    )


def test_activation_history_page_lists_every_change(client, store, shop_data, merchant, analyst):
    services.train_store(store, ["popularity"])
    services.train_store(store, ["item_knn"], params={"_gate": {"force": True}})
    with store_scope(store):
        first = ModelVersion.objects.get(algorithm="popularity")
    activation.rollback_to(first, user=merchant, reason="bad week")
    client.force_login(analyst)  # analysts may read the history
    page = client.get(reverse("recs:history", kwargs={"store_slug": store.slug})).content.decode()
    assert page.count("data-record=") == 3
    assert "bad week" in page and "merchant" in page and "rollback" in page.lower()
    assert 'id="change-history"' not in page  # no rule/experiment/campaign change yet


def test_the_admin_cannot_flip_is_active_and_its_action_is_merchant_only(
    client, store, shop_data, merchant, analyst, django_user_model
):
    services.train_store(store, ["popularity"])
    services.train_store(store, ["item_knn"], params={"_gate": {"force": True}})
    with store_scope(store):
        old = ModelVersion.objects.get(algorithm="popularity")
    for user in (merchant, analyst):
        django_user_model.objects.filter(pk=user.pk).update(is_staff=True)
    change_url = reverse("admin:training_modelversion_change", args=[old.pk])
    changelist = reverse("admin:training_modelversion_changelist")
    client.force_login(merchant)
    client.post(change_url, {"is_active": "on"})
    old.refresh_from_db()
    assert not old.is_active  # read-only in the form
    action = {"action": "make_live", "_selected_action": [old.pk]}
    confirm = client.post(changelist, action)
    assert confirm.status_code == 200 and "Yes, make it live" in confirm.content.decode()
    old.refresh_from_db()
    assert not old.is_active
    client.force_login(analyst)
    client.post(changelist, {**action, "confirm": "yes"})
    old.refresh_from_db()
    assert not old.is_active
    client.force_login(merchant)
    client.post(changelist, {**action, "confirm": "yes"})
    old.refresh_from_db()
    assert old.is_active
    with store_scope(store):
        assert ActivationRecord.objects.latest("pk").source == "admin"
