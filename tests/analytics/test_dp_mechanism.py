"""Statistical checks of the release mechanism against a reference (scipy's discrete Laplace).

Every draw goes through the production path (``noisy_counts``: one seeded draw per cell key), and
the tolerances are computed from the sample size (5 standard errors), so the checks are tight where
the sample is large and never flaky by construction: the key is fixed, so the draws are too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analytics import privacy

KEY = bytes(range(32))
N = 20_000


def _noise(epsilon: float, n: int = N, true: int = 1_000, version: str = "v") -> np.ndarray:
    counts = {f"cell:{i}": true for i in range(n)}
    out = privacy.noisy_counts(counts, privacy.scale_for(epsilon), key=KEY, version=version)
    return np.array(list(out.values()), dtype=np.int64) - true


@pytest.mark.parametrize("epsilon", [0.25, 1.0, 2.0])
def test_the_empirical_noise_scale_matches_epsilon(epsilon):
    ref = stats.dlaplace(epsilon)  # pmf ∝ exp(-ε|z|): the discrete Laplace of scale 1/ε
    var, kurt = float(ref.var()), float(ref.stats(moments="k"))
    z = _noise(epsilon)
    # Standard error of a sample variance: sqrt((μ4 - σ⁴) / n), with μ4 = (excess kurtosis + 3) σ⁴.
    se_var = math.sqrt((kurt + 2) * var**2 / N)
    assert abs(z.var() - var) < 5 * se_var
    assert abs(z.mean()) < 5 * math.sqrt(var / N)
    # And the shape, not only the spread: P(Z = 0) and P(|Z| <= m) agree with the reference.
    m = max(1, math.floor(1 / epsilon))
    for event, p in ((z == 0, ref.pmf(0)), (np.abs(z) <= m, ref.cdf(m) - ref.cdf(-m - 1))):
        assert abs(event.mean() - p) < 5 * math.sqrt(p * (1 - p) / N)
    # The ε the page states for one count is OpenDP's map of the scale that drew this noise.
    assert privacy.epsilon_spent(privacy.scale_for(epsilon), 1) == pytest.approx(epsilon)


def test_smaller_epsilon_means_proportionally_more_noise():
    loose, tight = _noise(2.0).std(), _noise(0.2).std()
    ratio = tight / loose
    expected = math.sqrt(stats.dlaplace(0.2).var() / stats.dlaplace(2.0).var())
    assert ratio == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("epsilon", [0.5, 1.0])
def test_suppression_never_depends_on_the_true_count_beyond_epsilon(epsilon):
    """Counts k-1 and k (neighbours: one customer apart) are suppressed with probabilities that differ
    by at most the factor e^ε, as any ε-DP release must; the old code suppressed k-1 always and k never."""
    k = 5
    scale = privacy.scale_for(epsilon)
    rates = {}
    for true in (k - 1, k):
        counts = {f"cell:{i}": true for i in range(N)}
        # A different version per data set: each is its own release, as it would be in the product.
        noisy = privacy.noisy_counts(counts, scale, key=KEY, version=f"true={true}")
        rates[true] = np.mean([privacy.threshold(v, k) is None for v in noisy.values()])
    ref = stats.dlaplace(epsilon)
    for true, rate in rates.items():
        p = ref.cdf(k - true - 1)  # P(true + Z < k)
        assert 0 < rate < 1
        assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / N)
    bound = math.exp(epsilon)
    tol = 1 + 5 * math.sqrt(2 / (N * min(rates[k], 1 - rates[k - 1])))  # sampling error of the ratios
    assert rates[k - 1] / rates[k] <= bound * tol
    assert (1 - rates[k]) / (1 - rates[k - 1]) <= bound * tol
