"""How long an experiment must run: the sample each variant needs, and the days that takes at the
placement's current traffic. Pure computation (no Django), so the builder, the detail page and the
tests share one formula.

The test is the two-sided comparison of two proportions on the arcsine scale, which is what
statsmodels' ``NormalIndPower().solve_power(proportion_effectsize(p2, p1), alpha=, power=, ratio=)``
solves (statsmodels is not a dependency; scipy gives the normal quantiles):

    h  = 2·asin(√p2) − 2·asin(√p1)                (Cohen's effect size for proportions)
    n1 = ((z_{1−α/2} + z_{power}) / h)² · (1 + 1/r),   n2 = r·n1,   r = share2 / share1

The closed form drops the far tail's contribution to power (below 1e-6 here), as every textbook
table does. ``p1`` is the baseline rate, ``p2 = p1·(1 + relative lift)``. Each variant is compared
with the control; the slowest comparison (the smallest share) sets the duration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import norm

#: Ranges the inputs must fall in (the builder's form checks the same ones and names the field).
MDE_RANGE = (0.005, 5.0)  # relative lift: 0.5 % to 500 %
ALPHA_RANGE = (0.001, 0.2)
POWER_RANGE = (0.5, 0.99)


class PowerInputError(ValueError):
    """An input out of range; ``field`` names which one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PowerEstimate:
    baseline: float  # control's rate
    target: float  # the rate a variant must reach to be detected
    effect_size: float  # Cohen's h
    per_variant: int  # units (impressions) the smallest variant needs
    control: int  # units the control needs in that comparison
    total: int  # units over all variants at the configured split
    daily_units: float  # units per day on the placement, all variants together
    days: int | None  # None: no traffic to estimate from


def effect_size(baseline: float, target: float) -> float:
    """Cohen's h between two proportions (statsmodels' ``proportion_effectsize(target, baseline)``)."""
    return 2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline))


def _check(baseline: float, relative_mde: float, alpha: float, power: float) -> float:
    if not (math.isfinite(baseline) and 0.0 < baseline < 1.0):
        raise PowerInputError("baseline", f"the baseline rate must be between 0 and 1 (exclusive), got {baseline!r}")
    low, high = MDE_RANGE
    if not (math.isfinite(relative_mde) and low <= relative_mde <= high):
        raise PowerInputError("mde", f"the minimum detectable effect must be from {low:.1%} to {high:.0%}")
    low, high = ALPHA_RANGE
    if not (math.isfinite(alpha) and low <= alpha <= high):
        raise PowerInputError("alpha", f"alpha must be from {low:g} to {high:g}, got {alpha!r}")
    low, high = POWER_RANGE
    if not (math.isfinite(power) and low <= power <= high):
        raise PowerInputError("power", f"power must be from {low:g} to {high:g}, got {power!r}")
    target = baseline * (1 + relative_mde)
    if target >= 1.0:
        raise PowerInputError(
            "mde",
            f"a {relative_mde:.0%} lift on a baseline of {baseline:.2%} would pass 100 %; choose a smaller effect",
        )
    return target


def sample_sizes(
    baseline: float, relative_mde: float, *, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> tuple[int, int]:
    """``(n1, n2)``: units the control (n1) and a variant with ``ratio`` times its share (n2) need."""
    target = _check(baseline, relative_mde, alpha, power)
    if not (math.isfinite(ratio) and ratio > 0):
        raise PowerInputError("traffic", f"the variant/control traffic ratio must be positive, got {ratio!r}")
    h = abs(effect_size(baseline, target))
    z = float(norm.ppf(1 - alpha / 2)) + float(norm.ppf(power))
    n1 = (z / h) ** 2 * (1 + 1 / ratio)
    return math.ceil(n1), math.ceil(ratio * n1)


def estimate(
    baseline: float,
    daily_units: float,
    shares: Sequence[float],
    relative_mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> PowerEstimate:
    """The sample and duration for an experiment whose first share is the control's.

    ``shares`` are the traffic percentages (any positive scale); ``daily_units`` the placement's
    impressions per day. ``days`` is ``None`` when there is no traffic to divide by.
    """
    target = _check(baseline, relative_mde, alpha, power)
    if len(shares) < 2 or any(not (math.isfinite(s) and s > 0) for s in shares):
        raise PowerInputError("traffic", "every variant needs a positive traffic share, and there must be two or more")
    total_share = float(sum(shares))
    control_share = shares[0] / total_share
    worst_total, worst = 0.0, (0, 0)
    for share in shares[1:]:
        n1, n2 = sample_sizes(baseline, relative_mde, alpha=alpha, power=power, ratio=share / shares[0])
        # Placement units until both arms of this comparison have their sample.
        need = max(n1 / control_share, n2 / (share / total_share))
        if need >= worst_total:
            worst_total, worst = need, (n1, n2)
    per_day = float(daily_units) if math.isfinite(daily_units) and daily_units > 0 else 0.0
    return PowerEstimate(
        baseline=baseline,
        target=target,
        effect_size=effect_size(baseline, target),
        per_variant=worst[1],
        control=worst[0],
        total=math.ceil(worst_total),
        daily_units=per_day,
        days=math.ceil(worst_total / per_day) if per_day else None,
    )
