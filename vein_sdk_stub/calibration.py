"""Score calibration: raw similarity (cosine of two feature vectors) → a score that *is* a
false-match rate, score = −log10 FMR. A threshold written as "max FMR requested" (BioAPI's
MaxFMRRequested) then means the same thing here as in a real SDK whose scores are calibrated.

Why the mapping is exact for this emulator: the latent vector of every palm is an isotropic
Gaussian, and so is per-capture noise, so the probe of one palm and the template of another
point in independent, uniformly distributed directions of R^d. For such a pair the cosine c
has a known law: (1 + c) / 2 ~ Beta((d − 1)/2, (d − 1)/2), i.e. for c ≥ 0

    FMR(c) = P(cos ≥ c) = ½ · I_{1 − c²}((d − 1)/2, ½)

with I the regularised incomplete beta function. bench/vein_accuracy.py checks the mapping
against tens of millions of impostor comparisons."""

from __future__ import annotations

import math
from functools import lru_cache

DIM = 64  # feature dimension of this emulator's samples and templates
MAX_SCORE = 99.0  # the score of a perfect match (FMR 1e-99); keeps the scale finite
_LN10 = math.log(10.0)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        c = 1.0 + aa / c
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        c = 1.0 + aa / c
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def log_betainc(a: float, b: float, x: float) -> float:
    """ln I_x(a, b), accurate far into the lower tail (no underflow)."""
    if x <= 0.0:
        return -math.inf
    if x >= 1.0:
        return 0.0
    ln_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return ln_front + math.log(_betacf(a, b, x) / a)
    upper = math.exp(ln_front) * _betacf(b, a, 1.0 - x) / b  # I_{1-x}(b, a)
    return math.log1p(-upper) if upper < 1.0 else -math.inf


def log10_fmr(cos: float, dim: int = DIM) -> float:
    """log10 of the probability that an impostor pair has a cosine of at least `cos`."""
    c = min(1.0, max(-1.0, float(cos)))
    a = (dim - 1) / 2.0
    if c >= 0.0:
        ln_tail = math.log(0.5) + log_betainc(a, 0.5, 1.0 - c * c)
    else:  # P(cos ≥ c) = 1 − P(cos ≥ |c|)
        ln_tail = math.log1p(-0.5 * math.exp(log_betainc(a, 0.5, 1.0 - c * c)))
    return ln_tail / _LN10


def score_from_cos(cos: float, dim: int = DIM) -> float:
    """The calibrated score −log10 FMR, in [0, MAX_SCORE]."""
    return min(MAX_SCORE, max(0.0, -log10_fmr(cos, dim)))


def fmr_from_score(score: float) -> float:
    return 10.0 ** (-score)


@lru_cache(maxsize=256)
def cos_for_score(score: float, dim: int = DIM) -> float:
    """The smallest cosine whose calibrated score reaches `score` (bisection; cached)."""
    if score <= 0.0:
        return -1.0
    lo, hi = -1.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if score_from_cos(mid, dim) >= score:
            hi = mid
        else:
            lo = mid
    return hi


def cos_for_fmr(max_fmr: float, dim: int = DIM) -> float:
    """The raw-cosine threshold of a requested false-match rate."""
    if not 0.0 < max_fmr <= 1.0:
        raise ValueError(f"max FMR must be in (0, 1], got {max_fmr!r}")
    return cos_for_score(-math.log10(max_fmr), dim)
