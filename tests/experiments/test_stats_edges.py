"""Degenerate inputs and exact boundaries of analytics/experiments/stats.py.

Expected values are worked by hand (the arithmetic is in the comments) or come from scipy; none is
taken from the code under test. These were the surviving mutants of `benchmarks/mutation.py --only
stats` (docs/benchmarks.md, "Mutation testing").
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from analytics.experiments import stats

Result = stats.TestResult  # not named Test*: pytest would try to collect it
Z975 = 1.959963984540054  # the 97.5% normal quantile, written out so no test derives it from the code
Z80 = 0.8416212335729143  # the 80% normal quantile


# --- proportion_ci --------------------------------------------------------------------------------
def test_proportion_ci_no_trials_is_zero_width():
    assert stats.proportion_ci(0, 0) == (0.0, 0.0)
    assert stats.proportion_ci(0, -3) == (0.0, 0.0)


def test_proportion_ci_one_trial_default_alpha():
    # Wilson, p = 1, n = 1: centre = (1 + z²/2) / (1 + z²), half = z·(z/2) / (1 + z²),
    # so the interval is (1 / (1 + z²), 1).
    lo, hi = stats.proportion_ci(1, 1)
    assert lo == pytest.approx(1 / (1 + Z975**2))
    assert hi == pytest.approx(1.0)
    # p = 0, n = 1: the mirror image, (0, z² / (1 + z²)).
    lo, hi = stats.proportion_ci(0, 1)
    assert lo == pytest.approx(0.0)
    assert hi == pytest.approx(Z975**2 / (1 + Z975**2))


def test_proportion_ci_default_alpha_is_95_percent():
    # 30 of 100 at 95%: z = 1.95996; written from the Wilson formula.
    p, n, z = 0.3, 100, Z975
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = stats.proportion_ci(30, 100)
    assert (lo, hi) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert lo == pytest.approx(0.2189, abs=1e-4) and hi == pytest.approx(0.3958, abs=1e-4)


# --- two_proportion_ztest -------------------------------------------------------------------------
@pytest.mark.parametrize("args", [(0, 0, 3, 10), (3, 10, 0, 0), (0, 0, 0, 0), (0, -1, 3, 10), (3, 10, 0, -1)])
def test_ztest_empty_variant_is_no_evidence(args):
    assert stats.two_proportion_ztest(*args) == Result(0.0, 1.0, 0.0, 0.0, 0.0)


def test_ztest_one_visitor_per_variant():
    # p_a = 1/1, p_b = 0/1: pooled 1/2, se = sqrt(1/4 · 2) = 1/sqrt(2), z = -1 / se = -sqrt(2);
    # the unpooled se is 0, so the interval collapses on the difference -1.
    res = stats.two_proportion_ztest(1, 1, 0, 1)
    assert res.statistic == pytest.approx(-math.sqrt(2))
    assert res.p_value == pytest.approx(2 * sps.norm.sf(math.sqrt(2)))
    assert res.p_value == pytest.approx(0.157299, abs=1e-6)
    assert res.diff == pytest.approx(-1.0)
    assert (res.ci_low, res.ci_high) == (pytest.approx(-1.0), pytest.approx(-1.0))


def test_ztest_one_visitor_in_a_only():
    # n_a = 1 (x_a = 0), n_b = 4 (x_b = 2): pooled 2/5, se = sqrt(0.24 · 1.25) = sqrt(0.3)
    res = stats.two_proportion_ztest(0, 1, 2, 4)
    assert res.statistic == pytest.approx(0.5 / math.sqrt(0.3))
    assert res.diff == pytest.approx(0.5)
    se_u = math.sqrt(0.25 / 4)
    assert res.ci_low == pytest.approx(0.5 - Z975 * se_u)
    assert res.ci_high == pytest.approx(0.5 + Z975 * se_u)


@pytest.mark.parametrize("x", [0, 10])
def test_ztest_zero_standard_error(x):
    # both rates 0 (or both 1): pooled se 0 -> z 0, p 1, and the unpooled interval is (0, 0)
    assert stats.two_proportion_ztest(x, 10, x, 10) == Result(0.0, 1.0, 0.0, 0.0, 0.0)


def test_ztest_small_standard_error_is_used():
    # se well below 1 (every real experiment): the statistic is diff / se, not 0
    res = stats.two_proportion_ztest(1, 10, 9, 10)
    se = math.sqrt(0.5 * 0.5 * 0.2)  # pooled 10/20
    assert res.statistic == pytest.approx(0.8 / se)
    assert res.p_value == pytest.approx(2 * sps.norm.sf(0.8 / se))


# --- welch_ttest ----------------------------------------------------------------------------------
def test_welch_one_value_in_a():
    assert stats.welch_ttest([1.0], [2.0, 3.0]) == Result(0.0, 1.0, 1.5, 0.0, 0.0)


def test_welch_one_value_in_b():
    assert stats.welch_ttest([2.0, 4.0], [7.0]) == Result(0.0, 1.0, 4.0, 0.0, 0.0)


def test_welch_one_value_each():
    assert stats.welch_ttest([1.0], [4.0]) == Result(0.0, 1.0, 3.0, 0.0, 0.0)


@pytest.mark.parametrize(("a", "b"), [([], []), ([], [1.0, 2.0]), ([1.0, 2.0], []), ([], [5.0]), ([5.0], [])])
def test_welch_empty_variant(a, b):
    assert stats.welch_ttest(a, b) == Result(0.0, 1.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("a", "b"), [([1.0, 2.0], [3.0, 5.0]), ([1.0, 2.0], [3.0, 5.0, 4.0]), ([0.0, 4.0, 1.0], [2.0, 9.0])]
)
def test_welch_two_values_matches_scipy(a, b):
    res = stats.welch_ttest(a, b)
    ref = sps.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.diff == pytest.approx(np.mean(b) - np.mean(a))
    assert (res.ci_low, res.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_welch_two_values_by_hand():
    # a = [1, 2], b = [3, 5]: va = 0.5/2, vb = 2/2, se = sqrt(1.25), t = 2.5 / se = sqrt(5);
    # df = 1.25² / (0.25² + 1²) = 1.5625 / 1.0625
    res = stats.welch_ttest([1.0, 2.0], [3.0, 5.0])
    df = 1.5625 / 1.0625
    assert res.statistic == pytest.approx(math.sqrt(5))
    assert res.p_value == pytest.approx(2 * sps.t.sf(math.sqrt(5), df))
    q = sps.t.ppf(0.975, df)
    assert res.ci_low == pytest.approx(2.5 - q * math.sqrt(1.25))
    assert res.ci_high == pytest.approx(2.5 + q * math.sqrt(1.25))


def test_welch_zero_variance_same_mean():
    assert stats.welch_ttest([2, 2, 2], [2, 2, 2]) == Result(0.0, 1.0, 0.0, 0.0, 0.0)


def test_welch_zero_variance_different_means():
    assert stats.welch_ttest([1.0, 1.0, 1.0], [3.0, 3.0]) == Result(0.0, 1.0, 2.0, 2.0, 2.0)


def test_welch_zero_variance_in_one_variant_only():
    # a constant, b = [1, 3]: va = 0, vb = 2/2 = 1, se = 1, df = 1² / (1²/1) = 1
    res = stats.welch_ttest([0.0, 0.0, 0.0], [1.0, 3.0])
    assert res.statistic == pytest.approx(2.0)
    assert res.p_value == pytest.approx(2 * sps.t.sf(2.0, 1))
    q = sps.t.ppf(0.975, 1)  # 12.706
    assert (res.ci_low, res.ci_high) == (pytest.approx(2.0 - q), pytest.approx(2.0 + q))


def test_welch_default_alpha_is_95_percent():
    rng = np.random.default_rng(3)
    a, b = rng.normal(5, 1, 30), rng.normal(5.5, 2, 25)
    res = stats.welch_ttest(a, b)
    ci = sps.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (res.ci_low, res.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))


# --- bootstrap_ci ---------------------------------------------------------------------------------
def test_bootstrap_empty_is_zero():
    assert stats.bootstrap_ci([]) == (0.0, 0.0)


def test_bootstrap_constant_values():
    assert stats.bootstrap_ci([3.0] * 10) == (3.0, 3.0)
    assert stats.bootstrap_ci([7.5]) == (7.5, 7.5)


def test_bootstrap_two_values_reaches_both_ends():
    # mean of a resample of [1, 0] is 1 with probability 1/4 and 0 with 1/4: with 2000 resamples the
    # 2.5% and 97.5% quantiles are exactly 0 and 1 (P(fewer than 50 all-ones draws) is ~1e-200).
    assert stats.bootstrap_ci([1.0, 0.0]) == (0.0, 1.0)
    assert stats.bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)


def test_bootstrap_is_the_percentile_interval_of_seeded_resamples():
    # The documented procedure: default_rng(seed), n_resamples resamples of len(x) indices with
    # replacement, the alpha/2 and 1 - alpha/2 quantiles of their means. Defaults 2000, 0.05, 0.
    x = np.array([3.0, 9.0, 1.0, 4.0, 4.0, 12.0, 0.0, 2.5, 7.0, 5.0])
    means = x[np.random.default_rng(0).integers(0, len(x), size=(2000, len(x)))].mean(axis=1)
    assert stats.bootstrap_ci(x) == (
        pytest.approx(np.quantile(means, 0.025)),
        pytest.approx(np.quantile(means, 0.975)),
    )
    means = x[np.random.default_rng(7).integers(0, len(x), size=(500, len(x)))].mean(axis=1)
    assert stats.bootstrap_ci(x, n_resamples=500, alpha=0.2, seed=7) == (
        pytest.approx(np.quantile(means, 0.1)),
        pytest.approx(np.quantile(means, 0.9)),
    )


def test_bootstrap_levels_agree_with_scipy():
    rng = np.random.default_rng(11)
    x = rng.exponential(10.0, 200)
    for alpha in (0.05, 0.2):
        lo, hi = stats.bootstrap_ci(x, n_resamples=20000, alpha=alpha)
        ref = sps.bootstrap(
            (x,), np.mean, n_resamples=20000, confidence_level=1 - alpha, method="percentile", random_state=1
        ).confidence_interval
        half = (ref.high - ref.low) / 2
        assert lo == pytest.approx(ref.low, abs=0.03 * half)
        assert hi == pytest.approx(ref.high, abs=0.03 * half)


def test_bootstrap_more_values_than_one_chunk():
    # 2001 values: chunks of 2_000_000 // 2001 = 999 resamples, so three chunks fill the 2000 means.
    x = np.arange(2001, dtype=float)
    lo, hi = stats.bootstrap_ci(x)
    se = x.std() / math.sqrt(len(x))  # ~12.9: the interval is about 1000 ± 1.96 se
    assert lo == pytest.approx(1000 - Z975 * se, abs=0.15 * se)
    assert hi == pytest.approx(1000 + Z975 * se, abs=0.15 * se)


# --- required_sample_size -------------------------------------------------------------------------
@pytest.mark.parametrize("mde", [0.0, -0.01])
def test_sample_size_needs_a_positive_effect(mde):
    with pytest.raises(ValueError, match="^the minimum detectable effect must be positive$"):
        stats.required_sample_size(0.1, mde)


def _textbook(p1: float, p2: float) -> int:
    pbar = (p1 + p2) / 2
    num = (Z975 * math.sqrt(2 * pbar * (1 - pbar)) + Z80 * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2
    return math.ceil(num / (p2 - p1) ** 2)


def test_sample_size_caps_the_lifted_rate_at_one():
    # 0.95 + 0.1 -> p2 = 1.0 (an effect of 0.05, not 0.1): p̄ = 0.975,
    # (1.96·sqrt(2·0.975·0.025) + 0.8416·sqrt(0.95·0.05))² / 0.05² = (0.43275 + 0.18342)² / 0.0025 = 151.9
    assert stats.required_sample_size(0.95, 0.1) == _textbook(0.95, 1.0)
    assert stats.required_sample_size(0.95, 0.1) == 152


def test_sample_size_clamps_the_baseline():
    assert stats.required_sample_size(-0.5, 0.1) == _textbook(0.0, 0.1)
    assert stats.required_sample_size(1.5, 0.1) == 0


def test_sample_size_baseline_one_cannot_lift():
    assert stats.required_sample_size(1.0, 0.1) == 0
    assert stats.required_sample_size(1.0, 0.5, power=0.9) == 0


def test_sample_size_reference_value():
    # 10% -> 12%: the usual textbook example, 3841 per variant
    assert stats.required_sample_size(0.10, 0.02) == _textbook(0.10, 0.12) == 3841


# --- srm_chisquare --------------------------------------------------------------------------------
def test_srm_no_traffic():
    assert stats.srm_chisquare([0, 0], [0.5, 0.5]) == (0.0, 1.0)


def test_srm_one_variant_only():
    assert stats.srm_chisquare([50], [1.0]) == (0.0, 1.0)


def test_srm_single_visitor():
    # expected (0.5, 0.5): stat = 2 · 0.5² / 0.5 = 1, p = chi2.sf(1, 1) = 0.3173
    stat, p = stats.srm_chisquare([1, 0], [0.5, 0.5])
    assert stat == pytest.approx(1.0)
    assert p == pytest.approx(0.31731050786291415)


def test_srm_three_variants_match_scipy():
    obs, split = [480, 260, 260], [0.5, 0.25, 0.25]
    ref = sps.chisquare(obs, [1000 * w for w in split])
    stat, p = stats.srm_chisquare(obs, split)
    assert stat == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue)


def test_srm_unnormalised_split():
    ref = sps.chisquare([30, 70], [25, 75])
    assert stats.srm_chisquare([30, 70], [1, 3]) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))


def test_bootstrap_fills_every_resample():
    # With one resample the interval is that resample's mean: every slot of the means is written.
    x = np.array([1.0, 4.0, 10.0])
    idx = np.random.default_rng(0).integers(0, 3, size=(1, 3))
    only = x[idx].mean()
    assert stats.bootstrap_ci(x, n_resamples=1) == (pytest.approx(only), pytest.approx(only))
    assert stats.bootstrap_ci([3.0] * 5, n_resamples=1) == (3.0, 3.0)
    # three resamples: the 25% and 75% quantiles interpolate between all three sorted means
    means = np.sort(x[np.random.default_rng(4).integers(0, 3, size=(3, 3))].mean(axis=1))
    got = stats.bootstrap_ci(x, n_resamples=3, alpha=0.5, seed=4)
    assert got == (pytest.approx((means[0] + means[1]) / 2), pytest.approx((means[1] + means[2]) / 2))
