"""The differential-privacy mechanism of segment reports: discrete Laplace noise, then a threshold.

Pure functions, no Django (the ledger and the budget are in ``analytics.services``).

**Mechanism.** Every released count is ``true + Z`` with ``Z`` drawn from the discrete Laplace
distribution of scale ``b`` (``P(Z = z) ∝ exp(-|z| / b)``). OpenDP defines the measurement
(``make_laplace`` on an integer domain) and its privacy map: a release whose answer moves by at most
``d_in`` (its L1 sensitivity) when one customer is added or removed costs ``ε = d_in / b``. We ask
OpenDP for that map (:func:`epsilon_spent`) and for the error bound (:func:`accuracy`) instead of
writing the formulas again.

**Threshold after the noise.** A cell is suppressed ("<k") when its *noisy* value is below ``k``.
The decision is a function of the noisy value only, so it is post-processing and costs nothing; the
old code suppressed on the true count, which told anyone whether a group had fewer than k members.

**Why we draw the noise ourselves.** OpenDP 0.16 samples from OpenSSL's CSPRNG and offers no way
to seed it (``opendp._lib.get_np_csprng`` wraps the same unseedable source). Noise that is fresh on
every page load can be averaged away by reloading, so the noise must be a fixed function of the
data version. We therefore draw the *same distribution* — discrete Laplace as the difference of two
i.i.d. geometric variables with success probability ``1 - exp(-1/b)`` — from a numpy generator
seeded per cell by HMAC-SHA256 of (the store's secret noise key, data version, cell key). The key
keeps the noise unpredictable to someone who knows this code; the version makes it change exactly
when the data does. numpy's geometric sampler uses floating point, so the distribution is exact up
to double rounding; the support is the integers, so there are no float "holes" revealing the input
(Mironov's attack on the continuous Laplace needs those).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping

import numpy as np
import opendp.prelude as dp

# make_laplace on integers and the accuracy helpers are "contrib" in OpenDP (proofs under review).
dp.enable_features("contrib")


def check_epsilon(epsilon: float) -> float:
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a positive finite number, got {epsilon!r}")
    return float(epsilon)


def scale_for(epsilon: float, sensitivity: float = 1.0) -> float:
    """The discrete Laplace scale that makes one query of this L1 sensitivity cost ``epsilon``."""
    if not (math.isfinite(sensitivity) and sensitivity > 0):
        raise ValueError(f"sensitivity must be a positive finite number, got {sensitivity!r}")
    return float(sensitivity) / check_epsilon(epsilon)


def measurement(scale: float) -> dp.Measurement:
    """OpenDP's discrete Laplace measurement on a vector of integer counts (L1 input metric)."""
    return dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=float(scale))


def epsilon_spent(scale: float, sensitivity: int) -> float:
    """ε of releasing counts whose L1 sensitivity is ``sensitivity`` with noise of ``scale`` (OpenDP's map)."""
    if sensitivity <= 0:
        return 0.0
    return float(measurement(scale).map(int(sensitivity)))


def accuracy(scale: float, alpha: float = 0.05) -> float:
    """The error bound that holds with probability ``1 - alpha`` for one noisy count (OpenDP)."""
    return float(dp.discrete_laplacian_scale_to_accuracy(float(scale), alpha))


def discrete_laplace_variance(scale: float) -> float:
    """Variance of the discrete Laplace of this scale: ``2q / (1 - q)²`` with ``q = exp(-1/scale)``."""
    q = math.exp(-1.0 / scale)
    return 2.0 * q / (1.0 - q) ** 2


def cell_seed(key: bytes, version: str, cell: str) -> int:
    """A 256-bit seed from the store's secret key, the data version and the cell key."""
    msg = f"{version}\x1f{cell}".encode()
    return int.from_bytes(hmac.new(key, msg, hashlib.sha256).digest(), "big")


def seeded_discrete_laplace(scale: float, seed: int, size: int | None = None) -> int | np.ndarray:
    """Discrete Laplace(scale) noise, a fixed function of ``seed``: the difference of two geometrics."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    rng = np.random.Generator(np.random.PCG64(seed))
    p = -math.expm1(-1.0 / scale)  # 1 - exp(-1/b), computed without cancellation for large b
    noise = np.asarray(rng.geometric(p, size=size), dtype=np.int64) - np.asarray(
        rng.geometric(p, size=size), dtype=np.int64
    )
    return noise if size is not None else int(noise)


def noisy_counts(counts: Mapping[str, int], scale: float, *, key: bytes, version: str) -> dict[str, int]:
    """Each cell's count plus its own seeded noise; the same inputs always give the same output."""
    measurement(scale)  # OpenDP validates the scale (positive, finite) before anything is released
    return {cell: int(c) + seeded_discrete_laplace(scale, cell_seed(key, version, cell)) for cell, c in counts.items()}


def threshold(value: int | float | None, k: int) -> int | float | None:
    """``value`` if it is at least ``k``, else ``None`` (rendered "<k"). Apply it to noisy values only,
    unless differential privacy is off (then it is plain small-cell suppression on the true count)."""
    if value is None or value < k:
        return None
    return value


def display(value, k: int, fmt: str = "{:,}") -> str:
    """Render a possibly-suppressed cell."""
    if value is None:
        return f"<{k}"
    return fmt.format(value)
