"""Privacy helpers for aggregate segment reports: Laplace noise and small-cell suppression.

Pure functions, no Django. The Laplace mechanism adds noise with scale ``b = sensitivity / epsilon``
(variance ``2·b²``), which gives epsilon-differential privacy for one query whose answer changes by
at most ``sensitivity`` when one customer is added or removed: 1 for a count, the per-customer
clip for a revenue sum. Cells computed from fewer than ``k`` customers are suppressed before any
noise is added (k-anonymity style), and are shown as "<k".
"""

from __future__ import annotations

import math

import numpy as np


def laplace_noise(value: float, sensitivity: float, epsilon: float | None, rng: np.random.Generator) -> float:
    """``value`` plus Laplace(0, sensitivity/epsilon) noise; ``epsilon`` None means no noise."""
    if epsilon is None:
        return float(value)
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a positive finite number, got {epsilon!r}")
    if not (math.isfinite(sensitivity) and sensitivity >= 0):
        raise ValueError(f"sensitivity must be a non-negative finite number, got {sensitivity!r}")
    return float(value) + float(rng.laplace(0.0, sensitivity / epsilon))


def suppress(count: int | float | None, k: int) -> int | float | None:
    """``count`` if at least ``k`` customers contributed, else ``None`` (rendered as "<k")."""
    if count is None or count < k:
        return None
    return count


def noisy_count(count: int, epsilon: float | None, k: int, rng: np.random.Generator) -> int | None:
    """Suppress below k, then add Laplace noise (sensitivity 1), rounded and floored at k."""
    if suppress(count, k) is None:
        return None
    noisy = laplace_noise(count, 1.0, epsilon, rng)
    return max(int(k), int(round(noisy)))


def display(value, k: int, fmt: str = "{:,}") -> str:
    """Render a possibly-suppressed cell."""
    if value is None:
        return f"<{k}"
    return fmt.format(value)
