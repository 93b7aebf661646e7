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


# --- Every interval the results page shows, against an independent reference, at two levels. ---
# A quantile slip (1 - alpha instead of 1 - alpha/2) turns a 90% interval into one labelled 95%:
# the bounds are ~16% too narrow, far outside these tolerances, so each check below would fail.

ALPHAS = [0.05, 0.10]


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize(
    ("x_a", "n_a", "x_b", "n_b"),
    [(120, 1000, 150, 1000), (30, 400, 18, 350), (0, 50, 5, 60), (7, 20, 19, 20)],
)
def test_ztest_interval_matches_unpooled_hand_computation(alpha, x_a, n_a, x_b, n_b):
    res = stats.two_proportion_ztest(x_a, n_a, x_b, n_b, alpha=alpha)
    p_a, p_b = x_a / n_a, x_b / n_b
    se_unpooled = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    q = sps.norm.ppf(1 - alpha / 2)
    assert res.diff == pytest.approx(p_b - p_a)
    assert res.ci_low == pytest.approx(p_b - p_a - q * se_unpooled, rel=1e-9, abs=1e-12)
    assert res.ci_high == pytest.approx(p_b - p_a + q * se_unpooled, rel=1e-9, abs=1e-12)
    # The statistic and p-value use the pooled SE and do not depend on alpha.
    pooled = (x_a + x_b) / (n_a + n_b)
    z = (p_b - p_a) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    assert res.statistic == pytest.approx(z)
    assert res.p_value == pytest.approx(2 * sps.norm.sf(abs(z)))


def test_ztest_interval_width_follows_the_confidence_level():
    wide = stats.two_proportion_ztest(120, 1000, 150, 1000, alpha=0.05)
    narrow = stats.two_proportion_ztest(120, 1000, 150, 1000, alpha=0.10)
    ratio = (wide.ci_high - wide.ci_low) / (narrow.ci_high - narrow.ci_low)
    assert ratio == pytest.approx(sps.norm.ppf(0.975) / sps.norm.ppf(0.95))


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize(
    ("seed", "n_a", "n_b", "sd_a", "sd_b"),
    [(0, 80, 50, 2.0, 5.0), (1, 5, 7, 1.0, 3.0), (2, 300, 40, 10.0, 1.0)],
)
def test_welch_interval_matches_scipy(alpha, seed, n_a, n_b, sd_a, sd_b):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(10, sd_a, n_a), rng.normal(11, sd_b, n_b)
    res = stats.welch_ttest(a, b, alpha=alpha)
    # welch_ttest reports mean(b) - mean(a): scipy's first sample is b.
    ref = sps.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(confidence_level=1 - alpha)
    assert res.diff == pytest.approx(b.mean() - a.mean())
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.ci_low == pytest.approx(ci.low, rel=1e-9)
    assert res.ci_high == pytest.approx(ci.high, rel=1e-9)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (5, 10), (10, 10), (37, 1000), (480, 1000), (3, 7)])
def test_wilson_interval_matches_scipy(alpha, k, n):
    lo, hi = stats.proportion_ci(k, n, alpha=alpha)
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="wilson")
    assert lo == pytest.approx(ref.low, rel=1e-9, abs=1e-12)
    assert hi == pytest.approx(ref.high, rel=1e-9, abs=1e-12)
    # Contains the observed share (up to rounding: at k == n the upper bound is 1 in exact arithmetic).
    assert 0.0 <= lo <= k / n + 1e-12 and k / n - 1e-12 <= hi <= 1.0


def test_wilson_interval_empty_sample():
    assert stats.proportion_ci(0, 0) == (0.0, 0.0)
