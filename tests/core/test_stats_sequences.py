"""Confidence sequences, the delta method and the sequential SRM test, on numpy-generated unit data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from console.core.stats.gates import srm_p_value
from console.core.stats.sequences import (
    binomial_estimate,
    cs_half_width,
    difference,
    fixed_half_width,
    ratio_estimate,
)

ALPHA = 0.05
STREAMS = 500
LOOKS = np.arange(100, 2001, 100)  # units per arm at each look


def clustered_units(rng: np.random.Generator, n: int, p: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(events, requests) per unit: units differ in activity and in their own event rate (clustering)."""
    requests = rng.geometric(1 / 6, n).astype(float)
    own_rate = rng.beta(p * 2, (1 - p) * 2, n)
    events = rng.binomial(requests.astype(int), own_rate).astype(float)
    return events, requests


def miscoverage(sequential: bool, seed: int = 7) -> float:
    """Share of A/A streams whose interval for candidate − baseline excluded 0 at any look."""
    rng = np.random.default_rng(seed)
    misses = 0
    n_max = int(LOOKS[-1])
    for _ in range(STREAMS):
        ev_c, rq_c = clustered_units(rng, n_max)
        ev_b, rq_b = clustered_units(rng, n_max)
        for n in LOOKS:
            d = difference(ratio_estimate(ev_c[:n], rq_c[:n]), ratio_estimate(ev_b[:n], rq_b[:n]),
                           ALPHA, planned_n=2000, sequential=sequential)
            if d.low > 0 or d.high < 0:
                misses += 1
                break
    return misses / STREAMS


def binomial_ceiling(p: float, n: int) -> float:
    """Largest miscoverage share still consistent with a true rate p at the 1% level (one-sided)."""
    return binom.ppf(0.99, n, p) / n


def test_confidence_sequence_keeps_miscoverage_within_alpha_over_many_looks() -> None:
    assert miscoverage(sequential=True) <= binomial_ceiling(ALPHA, STREAMS)


def test_fixed_horizon_interval_fails_the_same_peeking_test() -> None:
    # the same harness must be able to tell a sequential method from a naive one
    assert miscoverage(sequential=False) > 2 * ALPHA


def test_sequence_is_wider_than_fixed_interval_and_shrinks_with_n() -> None:
    var_per_obs = 0.25
    widths = [cs_half_width(var_per_obs / n, n, ALPHA, 2000) for n in (100, 1000, 10000)]
    assert widths[0] > widths[1] > widths[2]
    assert cs_half_width(var_per_obs / 2000, 2000, ALPHA, 2000) > fixed_half_width(var_per_obs / 2000, ALPHA)
    assert math.isinf(cs_half_width(0.1, 1, ALPHA, 2000))


def test_delta_method_variance_matches_replications_with_clustered_units() -> None:
    rng = np.random.default_rng(11)
    ratios, variances = [], []
    for _ in range(600):
        ev, rq = clustered_units(rng, 400)
        est = ratio_estimate(ev, rq)
        ratios.append(est.value)
        variances.append(est.variance)
    empirical = float(np.var(ratios, ddof=1))
    assert np.mean(variances) == pytest.approx(empirical, rel=0.15)


def test_ratio_of_cost_to_resolved_uses_delta_method() -> None:
    rng = np.random.default_rng(3)
    resolved = rng.poisson(3, 2000).astype(float)
    cost = 0.01 * resolved + rng.gamma(2, 0.005, 2000)  # cost correlates with work done
    est = ratio_estimate(cost, resolved)
    assert est.value == pytest.approx(cost.sum() / resolved.sum())
    # ignoring the covariance (as if cost and resolved were independent) overstates the variance
    n, mu_d = len(cost), resolved.mean()
    no_cov = (cost.var(ddof=1) + est.value**2 * resolved.var(ddof=1)) / (n * mu_d**2)
    assert est.variance < no_cov


def test_request_level_intervals_are_narrower_than_unit_level_with_clustered_units() -> None:
    rng = np.random.default_rng(5)
    ev, rq = clustered_units(rng, 2000)
    unit = ratio_estimate(ev, rq)
    request = binomial_estimate(ev.sum(), rq.sum())
    assert request.value == pytest.approx(unit.value)
    # clustering inflates the true variance; the binomial one ignores it (design effect well above 1)
    assert unit.variance > 2 * request.variance


def test_empty_or_single_unit_arm_has_no_interval() -> None:
    empty = ratio_estimate(np.zeros(0), np.zeros(0))
    one = ratio_estimate(np.array([1.0]), np.array([2.0]))
    assert empty.value is None and one.variance is None
    assert difference(one, one, ALPHA, 2000).interval is None


def test_srm_flags_a_real_imbalance() -> None:
    rng = np.random.default_rng(2)
    arms = rng.random(20000) < 0.04  # intended 5%, delivered 4%
    assert srm_p_value([int(arms.sum()), int((~arms).sum())], [0.05, 0.95]) < 0.001


def test_srm_stays_quiet_on_a_fair_split_over_many_looks() -> None:
    rng = np.random.default_rng(4)
    streams, alarms = 300, 0
    for _ in range(streams):
        cand = np.cumsum(rng.random(5000) < 0.2)
        for n in range(100, 5001, 100):
            c = int(cand[n - 1])
            if srm_p_value([c, n - c], [0.2, 0.8]) < ALPHA:
                alarms += 1
                break
    assert alarms / streams <= binomial_ceiling(ALPHA, streams)


def test_one_sided_bound_is_tighter_than_two_sided() -> None:
    two = cs_half_width(0.25 / 1000, 1000, ALPHA, 2000)
    one = cs_half_width(0.25 / 1000, 1000, ALPHA, 2000, two_sided=False)
    assert one < two
    assert one == pytest.approx(cs_half_width(0.25 / 1000, 1000, 2 * ALPHA, 2000))


def test_request_counts_with_more_events_than_trials_give_an_interval_not_a_crash():
    from console.core.stats.sequences import binomial_estimate, cs_half_width

    est = binomial_estimate(105.0, 100.0)  # outcomes counted just after their requests were read
    assert est.value == 1.05 and est.variance is not None and est.variance >= 0.0
    assert math.isfinite(cs_half_width(est.variance, est.n_units, 0.05, 1000))
