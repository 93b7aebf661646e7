from __future__ import annotations

import numpy as np
import pytest

from analytics.privacy import display, laplace_noise, noisy_count, suppress


def test_laplace_calibration():
    rng = np.random.default_rng(123)
    sens, eps = 2.0, 0.5
    draws = np.array([laplace_noise(0.0, sens, eps, rng) for _ in range(40_000)])
    assert abs(draws.mean()) < 0.1
    # mean absolute deviation of Laplace(0, b) is b; std is b·√2
    assert np.mean(np.abs(draws)) == pytest.approx(sens / eps, rel=0.03)
    assert draws.std() == pytest.approx(np.sqrt(2) * sens / eps, rel=0.03)


def test_no_noise_without_epsilon_and_bad_epsilon():
    rng = np.random.default_rng(0)
    assert laplace_noise(7, 1, None, rng) == 7.0
    with pytest.raises(ValueError, match="epsilon"):
        laplace_noise(7, 1, 0, rng)


def test_suppression():
    assert suppress(4, 5) is None and suppress(5, 5) == 5
    assert display(None, 5) == "<5" and display(1234, 5) == "1,234"
    assert noisy_count(3, 1.0, 5, np.random.default_rng(0)) is None
    assert noisy_count(50, None, 5, np.random.default_rng(0)) == 50
