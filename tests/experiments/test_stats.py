"""Statistics against scipy and textbook formulas; assignment stickiness and split accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from analytics.experiments import stats
from shop_recs.serving.experiments import assign_bucket


def test_ztest_matches_hand_computation():
    res = stats.two_proportion_ztest(120, 1000, 150, 1000)
    p = 270 / 2000
    z = (0.15 - 0.12) / math.sqrt(p * (1 - p) * (2 / 1000))
    assert res.statistic == pytest.approx(z)
    assert res.p_value == pytest.approx(2 * sps.norm.sf(abs(z)))
    assert res.diff == pytest.approx(0.03)
    assert res.ci_low < 0.03 < res.ci_high


def test_welch_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(10, 2, 80), rng.normal(11, 5, 50)
    res = stats.welch_ttest(a, b)
    ref = sps.ttest_ind(b, a, equal_var=False)
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)


def test_chisquare_matches_scipy():
    stat, p = stats.srm_chisquare([530, 470], [50, 50])
    ref = sps.chisquare([530, 470], [500, 500])
    assert stat == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    stat, p = stats.srm_chisquare([700, 250, 50], [70, 20, 10])
    ref = sps.chisquare([700, 250, 50], [700, 200, 100])
    assert stat == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)


def test_sample_size_textbook():
    # p1 = 0.10, p2 = 0.12, alpha 0.05, power 0.8: the textbook answer is 3841 per group.
    assert stats.required_sample_size(0.10, 0.02) == 3841
    n = stats.required_sample_size(0.05, 0.01)
    za, zb = sps.norm.ppf(0.975), sps.norm.ppf(0.8)
    pbar = 0.055
    expect = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(0.05 * 0.95 + 0.06 * 0.94)) ** 2 / 0.01**2
    assert n == math.ceil(expect)


def test_bootstrap_ci_contains_mean_and_is_deterministic():
    x = np.random.default_rng(1).exponential(5, 300)
    lo, hi = stats.bootstrap_ci(x)
    assert lo < x.mean() < hi
    assert stats.bootstrap_ci(x) == (lo, hi)


def test_assignment_sticky_and_independent_per_experiment():
    assert all(assign_bucket(3, f"c{i}", [50, 50]) == assign_bucket(3, f"c{i}", [50, 50]) for i in range(50))
    same = sum(assign_bucket(3, f"c{i}", [50, 50]) == assign_bucket(4, f"c{i}", [50, 50]) for i in range(2000))
    assert 800 < same < 1200  # another experiment reshuffles


@pytest.mark.parametrize("split", [[50, 50], [70, 30]])
def test_split_accuracy(split):
    counts = np.bincount([assign_bucket(11, f"cust-{i}", split) for i in range(10_000)], minlength=2)
    shares = counts / counts.sum()
    assert abs(shares[0] - split[0] / 100) < 0.02
    assert abs(shares[1] - split[1] / 100) < 0.02
