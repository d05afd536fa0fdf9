"""Anytime-valid confidence sequences for differences of ratio metrics, with the unit as observation.

Method: the asymptotic confidence sequence of Waudby-Smith, Arnold, Wu, Howard & Ramdas (2023),
"Time-uniform central limit theory and asymptotic confidence sequences" — a normal-mixture
boundary around the estimate,

    estimate ± σ̂ · sqrt( 2(Nρ² + 1) / (N²ρ²) · log( sqrt(Nρ² + 1) / α ) )

where σ̂² is the per-observation variance (so σ̂²/N is the estimator's variance) and ρ tunes the
sequence to be tightest near a planned sample size N*. It stays valid however often one looks.

Per-request rates and cost per resolved task are ratios of sums over units; their variance is
the delta method with the randomisation unit as the observation (Deng, Knoblich & Lu, KDD 2018,
"Applying the Delta Method in Metric Analytics"), which keeps the clustering of requests within
a unit in the interval instead of pretending requests are independent.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RatioEstimate:
    """Σnumerator / Σdenominator over units, with its delta-method variance."""

    value: float | None
    variance: float | None  # of the estimator (not per observation)
    n_units: int
    numerator: float
    denominator: float


#: the asymptotic sequences need a burn-in: below this many units with a non-zero denominator
#: (or this total denominator) an arm's estimate carries no interval, so no verdict can rest on it
MIN_CONTRIBUTING_UNITS = 30
MIN_DENOMINATOR = 30.0


def ratio_estimate(num: np.ndarray, den: np.ndarray) -> RatioEstimate:
    """Ratio of sums with the delta-method variance; units with a zero denominator still count as units."""
    n = int(len(num))
    s_num, s_den = float(np.sum(num)), float(np.sum(den))
    if n < 2 or s_den <= 0:
        return RatioEstimate(None if s_den <= 0 else s_num / s_den, None, n, s_num, s_den)
    if s_den < MIN_DENOMINATOR or int(np.count_nonzero(den)) < MIN_CONTRIBUTING_UNITS:
        return RatioEstimate(s_num / s_den, None, n, s_num, s_den)
    mu_n, mu_d = s_num / n, s_den / n
    r = mu_n / mu_d
    # sample (co)variances from raw sums: three dot products instead of np.var/np.cov (a hot path)
    var_n = (float(np.dot(num, num)) - n * mu_n * mu_n) / (n - 1)
    var_d = (float(np.dot(den, den)) - n * mu_d * mu_d) / (n - 1)
    cov = (float(np.dot(num, den)) - n * mu_n * mu_d) / (n - 1)
    variance = (var_n - 2 * r * cov + r * r * var_d) / (n * mu_d * mu_d)
    # no floor guessed from the values: shares that need one at small counts are the proportion tests' job
    return RatioEstimate(r, max(variance, 0.0), n, s_num, s_den)


def summary_estimate(s, num: str, den: str) -> RatioEstimate:
    """Σnum / Σden of one arm's summary (``ArmSummary``) with the delta-method variance from its aggregates.

    A missing Σnum·den (the source does not know it) takes the covariance that maximises the variance
    (Cauchy–Schwarz): a wider interval, never a narrower one. A missing Σnum² or Σden² gives no interval.
    Shares at small counts are not tested with it (see ``proportions``): this is the delta method as it is.
    """
    n = int(s.units)
    s_num, s_den = float(s.sums.get(num, 0.0)), float(s.sums.get(den, 0.0))
    value = s_num / s_den if s_den > 0 else None
    if n < 2 or s_den <= 0:
        return RatioEstimate(value, None, n, s_num, s_den)
    contributing = s.nonzero.get(den, n)
    if s_den < MIN_DENOMINATOR or contributing < MIN_CONTRIBUTING_UNITS:
        return RatioEstimate(value, None, n, s_num, s_den)
    sq_n, sq_d = s.squares.get(num), s.squares.get(den)
    if sq_n is None or sq_d is None:
        return RatioEstimate(value, None, n, s_num, s_den)
    mu_n, mu_d = s_num / n, s_den / n
    r = mu_n / mu_d
    var_n = max((sq_n - n * mu_n * mu_n) / (n - 1), 0.0)
    var_d = max((sq_d - n * mu_d * mu_d) / (n - 1), 0.0)
    prod = s.product(num, den)
    if prod is None:
        cov = -math.copysign(math.sqrt(var_n * var_d), r)
    else:
        cov = (prod - n * mu_n * mu_d) / (n - 1)
    variance = (var_n - 2 * r * cov + r * r * var_d) / (n * mu_d * mu_d)
    return RatioEstimate(r, max(variance, 0.0), n, s_num, s_den)


def binomial_estimate(events: float, trials: float) -> RatioEstimate:
    """Request-level fallback: events / trials with a binomial variance (ignores clustering)."""
    if trials <= 0:
        return RatioEstimate(None, None, 0, events, trials)
    p = events / trials
    # counters read a moment apart can hold a few more events than trials (outcomes arrive after their
    # requests): the estimate stays as read, the variance uses the nearest share that can exist
    q = min(max(p, 0.0), 1.0)
    return RatioEstimate(p, q * (1 - q) / trials, int(trials), events, trials)


def rho_for(planned_n: int, alpha: float) -> float:
    """ρ that makes the normal-mixture boundary tightest at ``planned_n`` observations."""
    a = -2 * math.log(alpha)
    return math.sqrt((a + math.log(a + 1)) / max(planned_n, 1))


def cs_half_width(variance: float, n: int, alpha: float, planned_n: int, two_sided: bool = True) -> float:
    """Half-width of the asymptotic confidence sequence for an estimator with ``variance`` after ``n`` observations.

    ``two_sided=False`` gives the one-sided bound at level α (the same boundary at 2α).
    """
    if n < 2 or variance is None:
        return math.inf
    alpha = alpha if two_sided else 2 * alpha
    sigma = math.sqrt(variance * n)  # per-observation standard deviation
    rho2 = rho_for(planned_n, alpha) ** 2
    term = 2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    return sigma * math.sqrt(term)


def fixed_half_width(variance: float, alpha: float, two_sided: bool = True) -> float:
    """Half-width of a fixed-horizon z-interval (valid for one look only: the naive comparator)."""
    return _z(alpha / 2 if two_sided else alpha) * math.sqrt(variance)


@functools.lru_cache(maxsize=128)
def _z(tail: float) -> float:
    """The standard normal quantile leaving ``tail`` above it (cached: called at every look)."""
    from .special import norm_ppf

    return float(norm_ppf(1 - tail))


@dataclass(frozen=True)
class Difference:
    """candidate − baseline with its interval."""

    candidate: RatioEstimate
    baseline: RatioEstimate
    delta: float | None
    low: float
    high: float

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.delta is None or math.isinf(self.low) or math.isinf(self.high):
            return None
        return (self.low, self.high)


def difference(cand: RatioEstimate, base: RatioEstimate, alpha: float, planned_n: int, sequential: bool = True,
               two_sided: bool = True) -> Difference:
    """Anytime-valid (or, with ``sequential=False``, fixed-horizon) interval for candidate − baseline.

    Both arms' delta-method variances add; the boundary's time index is the total number of units,
    which matches the estimator's variance scaling as long as the split stays fixed within a stage.
    With ``two_sided=False`` each returned bound is a one-sided bound at level α (use the harm side only).
    """
    if cand.value is None or base.value is None or cand.variance is None or base.variance is None:
        return Difference(cand, base, None, -math.inf, math.inf)
    delta = cand.value - base.value
    variance = cand.variance + base.variance
    n = cand.n_units + base.n_units
    half = (cs_half_width(variance, n, alpha, planned_n, two_sided) if sequential
            else fixed_half_width(variance, alpha, two_sided))
    return Difference(cand, base, delta, delta - half, delta + half)


def one_sample(est: RatioEstimate, alpha: float, planned_n: int, sequential: bool = True) -> tuple[float, float]:
    """Anytime-valid (or fixed-horizon) interval for a single arm's value (used where there is no control)."""
    if est.value is None or est.variance is None:
        return (-math.inf, math.inf)
    if sequential:
        half = cs_half_width(est.variance, est.n_units, alpha, planned_n)
    else:
        half = fixed_half_width(est.variance, alpha)
    return (est.value - half, est.value + half)
