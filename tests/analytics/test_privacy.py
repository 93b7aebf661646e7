"""The mechanism's building blocks: OpenDP's calibration, the seeded sampler, the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import privacy
from analytics.privacy import display, noisy_counts, threshold


def test_opendp_maps_scale_and_sensitivity_to_epsilon():
    # make_laplace's privacy map: a query of L1 sensitivity d costs d / scale.
    assert privacy.epsilon_spent(4.0, 1) == pytest.approx(0.25)
    assert privacy.epsilon_spent(2.0, 3) == pytest.approx(1.5)
    assert privacy.epsilon_spent(4.0, 0) == 0.0
    assert privacy.scale_for(0.5) == 2.0 and privacy.scale_for(0.5, 1000) == 2000.0
    # The 95% error bound OpenDP states for one noisy count grows with the scale.
    assert 0 < privacy.accuracy(1.0) < privacy.accuracy(4.0)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), "1"])
def test_bad_epsilon_is_refused(bad):
    with pytest.raises(ValueError, match="epsilon must be a positive finite number"):
        privacy.scale_for(bad)


def test_seeded_noise_is_a_fixed_function_of_key_version_and_cell():
    counts = {f"cell:{i}": 100 for i in range(50)}
    a = noisy_counts(counts, 4.0, key=b"k" * 32, version="v1")
    assert a == noisy_counts(counts, 4.0, key=b"k" * 32, version="v1")  # a reload: identical
    assert a != noisy_counts(counts, 4.0, key=b"k" * 32, version="v2")  # new data: new noise
    assert a != noisy_counts(counts, 4.0, key=b"x" * 32, version="v1")  # another store's key
    assert len(set(a.values())) > 5  # and the cells do not share one draw
    assert all(isinstance(v, int) for v in a.values())


def test_discrete_laplace_variance_formula_matches_scipy():
    from scipy import stats

    for scale in (0.5, 1.0, 4.0, 50.0):
        assert privacy.discrete_laplace_variance(scale) == pytest.approx(stats.dlaplace(1 / scale).var(), rel=1e-9)


def test_threshold_and_display():
    assert threshold(4, 5) is None and threshold(5, 5) == 5 and threshold(None, 5) is None
    assert threshold(-3, 5) is None  # noise can push a count below zero: hidden like any small one
    assert display(None, 5) == "<5" and display(1234, 5) == "1,234"
    draws = privacy.seeded_discrete_laplace(1.0, 7, size=100)
    assert np.array_equal(draws, privacy.seeded_discrete_laplace(1.0, 7, size=100))
    with pytest.raises(ValueError, match="scale"):
        privacy.seeded_discrete_laplace(0.0, 7)
