"""The experiments' bootstrap interval against references, not just ``lo < mean < hi``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from analytics.experiments import stats


def test_bootstrap_ci_matches_scipy_and_the_normal_interval():
    x = np.random.default_rng(1).exponential(5, 300)
    lo, hi = stats.bootstrap_ci(x, n_resamples=4000)
    ref = sps.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=2).confidence_interval
    half = (ref.high - ref.low) / 2
    assert lo == pytest.approx(ref.low, abs=0.1 * half) and hi == pytest.approx(ref.high, abs=0.1 * half)
    # n = 300: the 95% interval of the mean is close to mean ± 1.96 s / sqrt(n).
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_bootstrap_ci_known_answers():
    assert stats.bootstrap_ci([]) == (0.0, 0.0)
    assert stats.bootstrap_ci([3.0] * 50) == (3.0, 3.0)  # no spread: the interval is the value
    # A 0/1 sample with p = 0.2, n = 400: the interval of the mean is about 0.2 ± 0.039.
    x = np.array([1.0] * 80 + [0.0] * 320)
    lo, hi = stats.bootstrap_ci(x, n_resamples=4000)
    assert lo == pytest.approx(0.2 - 1.96 * np.sqrt(0.2 * 0.8 / 400), abs=0.006)
    assert hi == pytest.approx(0.2 + 1.96 * np.sqrt(0.2 * 0.8 / 400), abs=0.006)
    # alpha widens/narrows the interval as documented.
    lo90, hi90 = stats.bootstrap_ci(x, n_resamples=4000, alpha=0.10)
    assert lo < lo90 < 0.2 < hi90 < hi
