"""The builder's power estimate (analytics/experiments/power.py) against references computed here a
different way: the exact two-sided power function solved with a root finder, the arccos form of
Cohen's h, Cohen's published table, and the pooled-variance formula the results page uses."""

from __future__ import annotations

import math

import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from analytics.experiments import power, stats


def _exact_power(n1: float, h: float, alpha: float, ratio: float) -> float:
    """Power of the two-sided z-test with n1 and ratio·n1 units, both rejection tails counted."""
    z = norm.ppf(1 - alpha / 2)
    shift = abs(h) * math.sqrt(n1 / (1 + 1 / ratio))
    return float(norm.sf(z - shift) + norm.cdf(-z - shift))


def _reference_n1(baseline: float, lift: float, alpha: float, target: float, ratio: float) -> float:
    p2 = baseline * (1 + lift)
    h = math.acos(1 - 2 * p2) - math.acos(1 - 2 * baseline)  # = 2·asin(√p2) − 2·asin(√p1)
    return brentq(lambda n: _exact_power(n, h, alpha, ratio) - target, 1e-6, 1e9)


CASES = [
    # baseline, relative lift, alpha, power, ratio (variant share / control share)
    (0.05, 0.10, 0.05, 0.80, 1.0),
    (0.02, 0.20, 0.05, 0.90, 1.0),
    (0.30, 0.05, 0.01, 0.80, 1.0),
    (0.10, 0.15, 0.10, 0.95, 0.5),
    (0.01, 0.50, 0.05, 0.80, 3.0),
]


@pytest.mark.parametrize("baseline,lift,alpha,target,ratio", CASES)
def test_sample_sizes_match_the_exact_power_function(baseline, lift, alpha, target, ratio):
    n1, n2 = power.sample_sizes(baseline, lift, alpha=alpha, power=target, ratio=ratio)
    exact = _reference_n1(baseline, lift, alpha, target, ratio)
    # The closed form leaves out the far tail (it can only ask for more), and rounds up.
    assert math.ceil(exact) <= n1 <= math.ceil(exact) + 1
    assert ratio * (n1 - 1) <= n2 <= ratio * n1 + 1  # the variant has ratio times the control's units
    h = power.effect_size(baseline, baseline * (1 + lift))
    assert _exact_power(n1, h, alpha, ratio) >= target
    assert _exact_power(n1 - 1.5, h, alpha, ratio) < target


def test_effect_size_is_cohens_h():
    # Cohen's h by the arccos identity, and the value statsmodels' proportion_effectsize(0.6, 0.5) gives.
    assert power.effect_size(0.5, 0.6) == pytest.approx(math.acos(1 - 1.2) - math.acos(0.0), rel=1e-12)
    assert power.effect_size(0.5, 0.6) == pytest.approx(0.2013579207903309, rel=1e-12)


def test_cohens_table_for_a_small_effect():
    """Cohen (1988), table 6.4.1: h = 0.2, two-sided alpha 0.05, power 0.8 needs 392 per group (393 rounded up
    from 392.4, which is also statsmodels' NormalIndPower().solve_power(0.2, alpha=0.05, power=0.8))."""
    # A baseline whose 20 % lift gives h = 0.2 exactly is found numerically; the sample must then be 393.
    p1 = brentq(lambda p: power.effect_size(p, 1.2 * p) - 0.2, 0.05, 0.8)
    n1, _ = power.sample_sizes(p1, 0.2)
    assert n1 == 393


@pytest.mark.parametrize("baseline,lift", [(0.05, 0.10), (0.02, 0.20), (0.30, 0.05)])
def test_close_to_the_pooled_variance_formula_of_the_results_page(baseline, lift):
    n1, _ = power.sample_sizes(baseline, lift)
    pooled = stats.required_sample_size(baseline, baseline * lift)
    assert abs(n1 - pooled) / pooled < 0.01


def test_days_at_current_traffic_and_the_slowest_comparison():
    n1, _ = power.sample_sizes(0.05, 0.10)
    even = power.estimate(0.05, 1000.0, [50, 50], 0.10)
    assert even.per_variant == even.control == n1
    assert even.total == 2 * n1
    assert even.days == math.ceil(2 * n1 / 1000)
    # Two small variants against a half-share control: each comparison has ratio 0.5.
    three = power.estimate(0.05, 1000.0, [50, 25, 25], 0.10)
    c, v = power.sample_sizes(0.05, 0.10, ratio=0.5)
    assert (three.control, three.per_variant) == (c, v)
    assert three.total == math.ceil(max(c / 0.5, v / 0.25))
    assert three.days > even.days
    # A 90/10 split waits for the small variant.
    skewed = power.estimate(0.05, 1000.0, [90, 10], 0.10)
    assert skewed.days > even.days


def test_no_traffic_means_no_days():
    est = power.estimate(0.05, 0.0, [50, 50], 0.10)
    assert est.days is None and est.per_variant > 0


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"baseline": 0.0}, "baseline"),
        ({"baseline": 1.0}, "baseline"),
        ({"relative_mde": 0.0}, "mde"),
        ({"relative_mde": 6.0}, "mde"),
        ({"baseline": 0.6, "relative_mde": 1.0}, "mde"),  # the target rate would pass 100 %
        ({"alpha": 0.5}, "alpha"),
        ({"power": 0.999}, "power"),
        ({"power": float("nan")}, "power"),
        ({"shares": [100]}, "traffic"),
        ({"shares": [50, 0]}, "traffic"),
    ],
)
def test_out_of_range_inputs_name_the_field(kwargs, field):
    args = {"baseline": 0.05, "daily_units": 100.0, "shares": [50, 50], "relative_mde": 0.1, **kwargs}
    extra = {k: args.pop(k) for k in ("alpha", "power") if k in args}
    with pytest.raises(power.PowerInputError) as info:
        power.estimate(args["baseline"], args["daily_units"], args["shares"], args["relative_mde"], **extra)
    assert info.value.field == field
