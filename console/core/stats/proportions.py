"""Shares that hold at small counts and zero events, from the per-arm aggregates.

Two sequences work together for every proportion (errors, fallbacks, corrections, SLO attainment…):

1. **Valid at any n** — the beta-binomial mixture martingale (Robbins' method of mixtures; the
   conjugate-mixture boundaries of Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform,
   nonparametric, nonasymptotic confidence sequences", Ann. Statist.). For observations in [0, 1]
   with mean p, convexity gives E[e^{λX}] ≤ 1 − p + p·e^λ for every λ, so the binomial likelihood
   ratio (θ/p)^S ((1−θ)/(1−p))^{n−S} is a non-negative supermartingale whatever the values in
   between are, and so is its mixture over θ ~ Beta(a, b):

       M_n(p) = B(S + a, n − S + b) / B(a, b) / (p^S (1 − p)^{n−S}).

   It depends on (S, n) only. Two arms are independent, so M_c(p_c)·M_b(p_b) is an e-process for
   the pair; "no harm beyond the margin" is the set {p_c ≤ k·p_b + δ}, and its e-value is the
   smallest product over that set — reached on its boundary, one convex minimisation in p_b. By
   Ville's inequality an identical candidate reaches 1/α with probability ≤ α at any n, zero
   events included.
2. **Tight once there are events** — the asymptotic confidence sequence (Waudby-Smith et al. 2023)
   on p_c − k·p_b − δ with the delta-method variance of each arm (units as observations),
   floored at the variance the restricted estimate implies (the Farrington & Manning 1990 score
   approach for non-inferiority of two proportions), so an arm that has seen few events by chance
   is not read as precise. It is used only after a **burn-in** in *expected* events on both arms.

Units make many requests, and requests of one unit are not independent. Counts enter the exact
sequence as effective counts (S/D, n/D) with D the design effect (Kish 1965; the Clopper–Pearson
form of Korn & Graubard 1998 for shares from clustered samples): D = 1 + (m_w − 1)·ICC, with m_w
the request-weighted mean unit size of the arm and the intra-unit correlation estimated from both
arms' delta-method variance. With too few events to estimate it, ICC = 1 (each unit counts once:
the worst case). Request-level sources have D = 1 and say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .summary import ArmSummary

#: Beta(a, b) mixing distribution of the exact sequence (Jeffreys: mass near 0 and 1 suits rare events)
PRIOR_A = PRIOR_B = 0.5
#: events needed (pooled over both arms) before the intra-unit correlation is estimated from the data
MIN_EVENTS_FOR_ICC = 10
#: default burn-in: expected events on each arm before the asymptotic sequence may judge non-inferiority
DEFAULT_BURN_IN_EVENTS = 3.0


def _lbeta(x: float, y: float) -> float:
    return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)


_LBETA_PRIOR = _lbeta(PRIOR_A, PRIOR_B)


def log_mixture(s: float, n: float, p: float, a: float = PRIOR_A, b: float = PRIOR_B) -> float:
    """log M_n(p) of the beta-binomial mixture for S = ``s`` events in ``n`` trials (real-valued)."""
    prior = _LBETA_PRIOR if (a, b) == (PRIOR_A, PRIOR_B) else _lbeta(a, b)
    if not 0.0 < p < 1.0:
        if (p <= 0.0 and s > 0) or (p >= 1.0 and s < n):
            return math.inf
        return _lbeta(s + a, n - s + b) - prior
    return _lbeta(s + a, n - s + b) - prior - s * math.log(p) - (n - s) * math.log1p(-p)


def beyond(s: float, n: float, p: float, alpha: float) -> bool:
    """True when the share is on the far side of ``p`` from its estimate beyond doubt: M_n(p) ≥ 1/α."""
    return n > 0 and log_mixture(min(max(s, 0.0), n), n, p) >= math.log(1.0 / alpha)


def one_sample_bounds(s: float, n: float, alpha: float) -> tuple[float, float]:
    """The time-uniform interval {p : M_n(p) < 1/α} for a share, valid at any n (zero events included)."""
    if n <= 0:
        return (0.0, 1.0)
    s = min(max(s, 0.0), n)
    level = math.log(1.0 / alpha)
    centre = min(max(s / n, 1e-12), 1 - 1e-12)

    def f(p: float) -> float:
        return log_mixture(s, n, p) - level

    lo = 0.0 if f(1e-15) < 0 else _root(f, 1e-15, centre)
    hi = 1.0 if f(1 - 1e-15) < 0 else _root(f, centre, 1 - 1e-15)
    return (lo, hi)


def _root(f, lo: float, hi: float) -> float:
    """Bisection for the sign change of ``f`` on [lo, hi] (40 halvings: far below any shown digit)."""
    f_lo = f(lo)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        f_mid = f(mid)
        if (f_mid < 0) == (f_lo < 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Restricted:
    """The point on the margin's boundary p_c = k·p_b + δ closest to the data, and the e-value there."""

    p_c: float
    p_b: float
    log_e: float  # log of the pair's mixture e-value at that point (the smallest over the boundary)


def restricted(s_c: float, n_c: float, s_b: float, n_b: float, k: float, delta: float) -> Restricted | None:
    """Minimise −log-likelihood of both arms on the boundary p_c = k·p_b + δ (convex in p_b)."""
    if n_c <= 0 or n_b <= 0 or k <= 0:
        return None
    f_c, f_b = n_c - s_c, n_b - s_b
    lo = max(0.0, -delta / k) + 1e-12
    hi = min(1.0, (1.0 - delta) / k) - 1e-12
    if hi <= lo:
        return None

    def slope(pb: float) -> float:
        pc = k * pb + delta
        return k * (-s_c / pc + f_c / (1 - pc)) - s_b / pb + f_b / (1 - pb)

    def curvature(pb: float) -> float:
        pc = k * pb + delta
        return k * k * (s_c / (pc * pc) + f_c / ((1 - pc) * (1 - pc))) + s_b / (pb * pb) + f_b / ((1 - pb) * (1 - pb))

    if slope(lo) >= 0:
        pb = lo
    elif slope(hi) <= 0:
        pb = hi
    else:
        # Newton's steps kept inside a bracket that shrinks with each sign (bisection when a step leaves it):
        # the slope is increasing (the objective is convex), so this ends at the root to the last digits
        a, b = lo, hi
        # start where the two arms' shares meet the boundary in the least-squares sense
        pb = (s_b + k * (s_c - delta * n_c)) / (n_b + k * k * n_c)
        if not a < pb < b:
            pb = 0.5 * (a + b)
        for _ in range(100):
            g = slope(pb)
            if g < 0:
                a = pb
            else:
                b = pb
            h = curvature(pb)
            step = g / h if h > 0 else math.inf
            nxt = pb - step
            if not a < nxt < b:
                nxt = 0.5 * (a + b)
            # a Newton step this small leaves an error far below the last digit (it shrinks quadratically)
            if abs(nxt - pb) <= 1e-10 * pb or b - a <= 1e-15 * b:
                pb = nxt
                break
            pb = nxt
    pc = k * pb + delta
    log_e = log_mixture(s_c, n_c, pc) + log_mixture(s_b, n_b, pb)
    return Restricted(pc, pb, log_e)


@dataclass(frozen=True)
class ShareCounts:
    """One arm's events and trials of a share, oriented so that higher is worse, with its design effect."""

    events: float
    trials: float
    design_effect: float  # ≥ 1 (1 at request level)
    variance: float | None  # delta-method variance of the share (clustering included), None if unknown

    @property
    def rate(self) -> float | None:
        return self.events / self.trials if self.trials > 0 else None

    @property
    def effective(self) -> tuple[float, float]:
        d = self.design_effect
        return (self.events / d, self.trials / d)


def _weighted_unit_size(s: ArmSummary, den: str) -> float:
    """Σ den² / Σ den: the request-weighted mean number of trials per unit (1 at request level)."""
    total = s.sums.get(den, 0.0)
    sq = s.squares.get(den)
    if total <= 0 or sq is None or s.request_level:
        return 1.0
    return max(1.0, sq / total)


def _delta_variance(s: ArmSummary, num: str, den: str) -> float | None:
    n = s.units
    total = s.sums.get(den, 0.0)
    if n < 2 or total <= 0:
        return None
    sq_n, sq_d, prod = s.squares.get(num), s.squares.get(den), s.product(num, den)
    if sq_n is None or sq_d is None:
        return None
    s_num = s.sums.get(num, 0.0)
    r = s_num / total
    if prod is None:
        mu_n, mu_d = s_num / n, total / n
        var_n = max((sq_n - n * mu_n * mu_n) / (n - 1), 0.0)
        var_d = max((sq_d - n * mu_d * mu_d) / (n - 1), 0.0)
        spread = math.sqrt(var_n) + r * math.sqrt(var_d)
        return spread * spread / (n * mu_d * mu_d)
    # Σ(x − r·y)² over units, from the sums: the ratio's linearised residuals
    resid = sq_n - 2 * r * prod + r * r * sq_d
    return max(resid, 0.0) / (total * total) * n / (n - 1)


def share_counts(arms: list[ArmSummary], num: str, den: str, flip: bool) -> list[ShareCounts]:
    """Events, trials and design effect of each arm's share num/den (``flip``: count den − num instead).

    The intra-unit correlation is estimated once from all the given arms together (they share it when the
    candidate is no different), then each arm's design effect follows from its own unit sizes.
    """
    pooled = ArmSummary()
    for a in arms:
        pooled.add(a.only((num, den)))  # only what the share reads: the other columns cost copies, not answers
    icc = _icc(pooled, num, den)
    out = []
    for a in arms:
        trials = float(a.sums.get(den, 0.0))
        events = min(max(float(a.sums.get(num, 0.0)), 0.0), trials) if trials > 0 else 0.0
        if flip:
            events = trials - events
        m_w = _weighted_unit_size(a, den)
        d = 1.0 if a.request_level else 1.0 + (m_w - 1.0) * icc
        out.append(ShareCounts(events, trials, max(1.0, d), _delta_variance(a, num, den)))
    return out


def _icc(pooled: ArmSummary, num: str, den: str) -> float:
    if pooled.request_level:
        return 0.0
    trials = pooled.sums.get(den, 0.0)
    if trials <= 0:
        return 1.0
    events = min(max(pooled.sums.get(num, 0.0), 0.0), trials)
    if min(events, trials - events) < MIN_EVENTS_FOR_ICC:
        return 1.0
    var = _delta_variance(pooled, num, den)
    m_w = _weighted_unit_size(pooled, den)
    if var is None or m_w <= 1.0:
        return 1.0 if var is None else 0.0
    p = events / trials
    deff = var / (p * (1 - p) / trials)
    return min(1.0, max(0.0, (deff - 1.0) / (m_w - 1.0)))


def expected_events(arms: list[ShareCounts]) -> list[float]:
    """Effective events each arm would have at the pooled rate (the rarer side of the share)."""
    trials = sum(a.trials for a in arms)
    if trials <= 0:
        return [0.0 for _ in arms]
    rate = sum(a.events for a in arms) / trials
    rare = min(rate, 1.0 - rate)
    return [rare * a.trials / a.design_effect for a in arms]


__all__ = ["log_mixture", "one_sample_bounds", "restricted", "Restricted", "ShareCounts", "share_counts",
           "expected_events", "DEFAULT_BURN_IN_EVENTS", "PRIOR_A", "PRIOR_B"]
