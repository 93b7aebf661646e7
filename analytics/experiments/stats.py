"""Statistics for online experiments: pure functions (numpy/scipy only, no Django).

Every test here is two-sided. Rates use the two-proportion z-test (the pooled standard error for the
statistic, the unpooled one for the interval of the difference); revenue per customer uses Welch's
t-test (unequal variances) and a percentile bootstrap interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class TestResult:
    """A two-sample comparison of B against A: the difference, its 95% interval and the p-value."""

    statistic: float
    p_value: float
    diff: float
    ci_low: float
    ci_high: float


def proportion_ci(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of one proportion (well-behaved near 0, unlike the Wald interval)."""
    if n <= 0:
        return (0.0, 0.0)
    z = float(sps.norm.ppf(1 - alpha / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_ztest(x_a: int, n_a: int, x_b: int, n_b: int, alpha: float = 0.05) -> TestResult:
    """H0: p_a == p_b. Pooled SE for the statistic, unpooled SE for the interval of p_b - p_a."""
    if n_a <= 0 or n_b <= 0:
        return TestResult(0.0, 1.0, 0.0, 0.0, 0.0)
    p_a, p_b = x_a / n_a, x_b / n_b
    pooled = (x_a + x_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    diff = p_b - p_a
    z = diff / se if se > 0 else 0.0
    p_value = float(2 * sps.norm.sf(abs(z))) if se > 0 else 1.0
    se_u = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    q = float(sps.norm.ppf(1 - alpha / 2))
    return TestResult(float(z), p_value, diff, diff - q * se_u, diff + q * se_u)


def welch_ttest(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> TestResult:
    """Welch's t-test of mean(b) - mean(a), with the Welch-Satterthwaite degrees of freedom."""
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(xa) < 2 or len(xb) < 2:
        return TestResult(0.0, 1.0, float(xb.mean() - xa.mean()) if len(xa) and len(xb) else 0.0, 0.0, 0.0)
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    diff = float(xb.mean() - xa.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return TestResult(0.0, 1.0, diff, diff, diff)
    df = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
    t = diff / se
    p_value = float(2 * sps.t.sf(abs(t), df))
    q = float(sps.t.ppf(1 - alpha / 2, df))
    return TestResult(float(t), p_value, diff, diff - q * se, diff + q * se)


def bootstrap_ci(
    values: Sequence[float], *, n_resamples: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (fixed seed: the page shows the same numbers twice)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    # Resample in chunks so memory stays bounded for large variants.
    chunk = max(1, 2_000_000 // max(len(x), 1))
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, len(x), size=(stop - start, len(x)))
        means[start:stop] = x[idx].mean(axis=1)
    return (float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2)))


def required_sample_size(baseline: float, mde: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Per-variant sample size to detect an absolute lift ``mde`` over a ``baseline`` rate.

    The textbook formula for two proportions:
    n = (z_{1-a/2} * sqrt(2 p̄ (1-p̄)) + z_{power} * sqrt(p1(1-p1) + p2(1-p2)))² / mde².
    """
    if mde <= 0:
        raise ValueError("the minimum detectable effect must be positive")
    p1 = min(max(baseline, 0.0), 1.0)
    p2 = min(p1 + mde, 1.0)
    pbar = (p1 + p2) / 2
    za = float(sps.norm.ppf(1 - alpha / 2))
    zb = float(sps.norm.ppf(power))
    num = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2
    return int(math.ceil(num / (p2 - p1) ** 2)) if p2 > p1 else 0


def srm_chisquare(observed: Sequence[int], split: Sequence[float]) -> tuple[float, float]:
    """Sample-ratio mismatch: chi-square goodness of fit of the observed counts vs the configured split."""
    obs = np.asarray(observed, dtype=float)
    weights = np.asarray(split, dtype=float)
    total = obs.sum()
    if total <= 0 or len(obs) < 2:
        return (0.0, 1.0)
    expected = total * weights / weights.sum()
    stat = float(((obs - expected) ** 2 / expected).sum())
    return stat, float(sps.chi2.sf(stat, len(obs) - 1))
