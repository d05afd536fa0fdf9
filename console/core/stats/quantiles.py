"""Time-uniform bounds on a quantile (p95 latency, p95 time to first token) from histogram bucket counts.

The q-quantile lies above a bucket edge b exactly when the share of requests at or below b is under q,
and at or below b when that share is at least q. So a time-uniform bound on the share at one point
bounds the quantile (the order-statistic argument of Howard & Ramdas 2022, "Sequential estimation of
quantiles with applications to A/B-testing and best-arm identification", Bernoulli): the lower bound
is the highest edge whose share is below q beyond doubt, the upper bound the lowest edge whose share
is at least q beyond doubt. The share's sequence is the beta-binomial mixture of ``proportions``,
valid at any n, so no burn-in is needed; the bounds move in whole buckets, which is all a histogram
can say. The miscoverage argument needs the sequence only at the true quantile: a share counted at
a higher edge is larger, and the mixture's rejection is monotone in the count.

Requests of one unit are correlated; with per-unit histograms (``hist_squares``/``hist_products``)
the counts at each edge enter as effective counts (divided by that edge's design effect); without them the bounds treat requests as independent (request-level sources).

Two arms are compared through their bounds: the candidate's p95 is worse than (1 + m)× the
baseline's when its lower bound exceeds (1 + m)× the baseline's upper bound, each at half the test's α.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from .special import betaln

from ..telemetry import histogram_quantile
from .proportions import PRIOR_A, PRIOR_B
from .summary import HISTOGRAMS, ArmSummary


@dataclass(frozen=True)
class QuantileBounds:
    point: float | None  # Prometheus-style interpolated estimate (shown, never tested)
    low: float  # the quantile is above this (0 when nothing is known)
    high: float  # the quantile is at or below this (inf when nothing is known)
    requests: int
    design_effect: float


def design_effects(s: ArmSummary, name: str) -> np.ndarray | None:
    """The design effect of the share at or below each finite edge (≥ 1), or None without per-unit histograms.

    An edge with every request on one side has no spread to measure: it takes the largest of the others.
    """
    hist = s.hist.get(name)
    sq, prod = s.hist_squares.get(name), s.hist_products.get(name)
    if hist is None or sq is None or prod is None or s.units < 2 or s.request_level:
        return None
    cum = np.cumsum(np.asarray(hist, dtype=float))[:-1]
    total = float(np.sum(hist))
    if total <= 0:
        return None
    f = cum / total
    n = s.units
    resid = np.asarray(sq[:-1]) - 2 * f * np.asarray(prod[:-1]) + f * f * sq[-1]
    inside = (f > 0) & (f < 1)
    binomial = np.where(inside, f * (1 - f) / total, 1.0)
    d = np.where(inside, np.maximum(resid, 0.0) / (total * total) * n / (n - 1) / binomial, np.nan)
    worst = float(np.nanmax(d)) if inside.any() else 1.0
    return np.maximum(np.where(inside, d, worst), 1.0)


def design_effect(s: ArmSummary, name: str) -> float:
    """The largest design effect among the histogram's edges (1 without per-unit histograms)."""
    d = design_effects(s, name)
    return 1.0 if d is None else float(d.max())


def bounds(s: ArmSummary, name: str, q: float, alpha: float) -> QuantileBounds | None:
    """Time-uniform bounds on one arm's q-quantile of histogram ``name`` at level ``alpha`` each side."""
    return bounds_at(s, name, q, (alpha,))[0]


def bounds_at(s: ArmSummary, name: str, q: float, alphas: tuple[float, ...]) -> list[QuantileBounds | None]:
    """``bounds`` at several levels: the evidence at each edge is computed once, then read at each α."""
    hist = s.hist.get(name)
    edges = HISTOGRAMS[name]
    if hist is None or len(hist) != len(edges) + 1:
        return [None for _ in alphas]
    counts = np.asarray(hist, dtype=float)
    total = float(counts.sum())
    if total <= 0:
        return [QuantileBounds(None, 0.0, math.inf, 0, 1.0) for _ in alphas]
    d_edges = design_effects(s, name)
    d = np.ones(len(edges)) if d_edges is None else d_edges
    cum = np.cumsum(counts)[:-1] / d  # effective requests at or below each finite edge
    n = total / d
    log_e = betaln(cum + PRIOR_A, n - cum + PRIOR_B) - betaln(PRIOR_A, PRIOR_B) - cum * math.log(q) \
        - (n - cum) * math.log1p(-q)
    share = cum / n
    point = histogram_quantile(list(hist), edges, q)
    out = []
    for alpha in alphas:
        sure = log_e >= math.log(1.0 / alpha)
        below = np.nonzero(sure & (share < q))[0]  # the quantile is above these edges
        above = np.nonzero(sure & (share > q))[0]  # … and at or below these
        low = float(edges[below.max()]) if len(below) else 0.0
        high = float(edges[above.min()]) if len(above) else math.inf
        out.append(QuantileBounds(point, low, high, int(total), float(d.max())))
    return out


__all__ = ["QuantileBounds", "bounds", "bounds_at", "design_effect"]
