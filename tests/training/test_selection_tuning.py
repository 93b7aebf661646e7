"""A store's tuning job picks its configuration with the bench's one-standard-error rule."""

from __future__ import annotations

import numpy as np

from analytics.evaluation.models import TuningTrial
from analytics.evaluation.tuning import leaderboard
from shop_recs.platform.jobs import JobStatus


def _trial(pk: int, position: int, params: dict, values: np.ndarray) -> TuningTrial:
    return TuningTrial(
        pk=pk, algorithm="ease", params=params, position=position, status=JobStatus.SUCCEEDED, score=values.mean()
    )


def test_leaderboard_applies_the_one_se_rule_with_per_user_values():
    base = np.clip(np.random.default_rng(0).normal(0.3, 0.3, 400), 0, None)
    values = {1: base + 0.003, 2: base + 0.001, 3: base - 0.2}
    trials = [
        _trial(1, 0, {"l2": 50}, values[1]),  # the raw best, by less than one SE
        _trial(2, 1, {"l2": 1000}, values[2]),
        _trial(3, 2, {"l2": 3000}, values[3]),  # clearly worse
    ]
    # Before: the raw maximum (l2=50) won.
    assert leaderboard(trials, ["ease"])["ease"]["params"] == {"l2": 50}
    board = leaderboard(trials, ["ease"], per_user=values)["ease"]
    assert board["params"] == {"l2": 1000}
    assert board["selection"]["rule"] == "one_standard_error"
    assert board["interval"]["lo"] <= board["score"] <= board["interval"]["hi"]
