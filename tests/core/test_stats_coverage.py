"""Coverage of the share sequences at small counts (zero events included), the kind dispatch, and the delta
method for costs — properties over generated cases, each checked by simulation (numpy only, no simulator)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import gammaln
from scipy.stats import binom

from console.core.registry import METRICS, MetricKind, lookup
from console.core.stats.engine import judge
from console.core.stats.proportions import PRIOR_A, PRIOR_B, log_mixture, one_sample_bounds, restricted
from console.core.stats.sequences import cs_half_width
from console.core.stats.spec import DecisionSpec, GuardrailSpec, MarginKind, MetricVerdict, StageContext, StageSpec
from console.core.stats.summary import summarise_columns

STREAMS = 400
CTX = StageContext(StageSpec("20%", 2000, min_units=0, min_dwell_s=0), 0.0, has_control=True)
SPEC = DecisionSpec()
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def ceiling(alpha: float, n: int) -> float:
    """Largest miss share still consistent with a true rate α at the 1% level (one-sided)."""
    return binom.ppf(0.99, n, alpha) / n


def log_m(s: np.ndarray, n: np.ndarray, p: float) -> np.ndarray:
    """The beta-binomial mixture's log e-value at p, vectorised (the same formula as ``log_mixture``)."""
    lb = gammaln(s + PRIOR_A) + gammaln(n - s + PRIOR_B) - gammaln(n + PRIOR_A + PRIOR_B)
    prior = gammaln(PRIOR_A) + gammaln(PRIOR_B) - gammaln(PRIOR_A + PRIOR_B)
    return lb - prior - s * math.log(p) - (n - s) * math.log1p(-p)


def test_the_vectorised_formula_is_the_engine_s():
    assert log_m(np.array([3.0]), np.array([40.0]), 0.02)[0] == pytest.approx(log_mixture(3, 40, 0.02))


@SETTINGS
@given(p=st.floats(1e-4, 0.05), n_max=st.integers(20, 1500), alpha=st.sampled_from([0.05, 0.1]))
def test_share_sequence_covers_at_any_n_even_with_zero_events(p, n_max, alpha):
    """Bernoulli(p) streams looked at after every request: the interval misses p at some look in ≤ α of them."""
    rng = np.random.default_rng(int(p * 1e6) + n_max)
    events = np.cumsum(rng.random((STREAMS, n_max)) < p, axis=1).astype(float)
    trials = np.arange(1, n_max + 1, dtype=float)
    missed = (log_m(events, trials, p) >= math.log(1 / alpha)).any(axis=1)
    assert missed.mean() <= ceiling(alpha, STREAMS)
    # zero events: the interval always keeps p's neighbourhood of zero — never "0 of n is certain"
    lo, hi = one_sample_bounds(0.0, float(n_max), alpha)
    assert lo == 0.0 and hi > 0.0


def _two_arm_false_harm(p: float, n_c: int, n_b: int, k: float, delta: float, alpha: float, looks: int,
                        seed: int) -> float:
    """Share of A/A-at-the-margin stream pairs whose exact e-value ever reaches 1/α (candidate at k·p + δ)."""
    rng = np.random.default_rng(seed)
    p_c = k * p + delta
    misses = 0
    for _ in range(STREAMS // 2):
        cand = np.cumsum(rng.random(n_c) < p_c)
        base = np.cumsum(rng.random(n_b) < p)
        for j in range(1, looks + 1):
            nc, nb = n_c * j // looks, n_b * j // looks
            sc, sb = float(cand[nc - 1]), float(base[nb - 1])
            if sc / nc - k * sb / nb - delta <= 0:
                continue
            point = restricted(sc, nc, sb, nb, k, delta)
            if point is not None and point.log_e >= math.log(1 / alpha):
                misses += 1
                break
    return misses / (STREAMS // 2)


@SETTINGS
@given(p=st.floats(0.002, 0.05), n_b=st.integers(200, 4000), ratio=st.sampled_from([0.05, 0.25, 1.0, 19.0]),
       margin=st.sampled_from([("relative", 0.0), ("relative", 1.0), ("absolute", 0.01)]))
def test_two_arm_harm_evidence_keeps_its_level_at_small_counts(p, n_b, ratio, margin):
    """Candidate exactly at the margin (the hardest no-harm case), few or no events on either arm, 20 looks."""
    kind, m = margin
    k, delta = (1.0 + m, 0.0) if kind == "relative" else (1.0, m)
    n_c = max(20, int(n_b * ratio))
    alpha = 0.1
    assert _two_arm_false_harm(p, n_c, n_b, k, delta, alpha, 20, seed=n_b) <= ceiling(alpha, STREAMS // 2)


def clustered(rng, n: int, p: float, cost: float = 0.006):
    """Per-unit columns: units differ in activity and in their own event rate (clustering)."""
    requests = rng.geometric(1 / 5, n).astype(float)
    own = rng.beta(p * 4 / (1 - p) + 1e-3, 4, n) if p < 0.5 else rng.beta(4, (1 - p) * 4 / p, n)
    errors = rng.binomial(requests.astype(int), np.clip(own, 0, 1)).astype(float)
    spend = requests * cost * rng.gamma(2.0, 0.5, n)
    return {"requests": requests, "errors": errors, "cost_usd": spend, "outcomes": requests, "resolved": requests - errors}


@pytest.mark.parametrize("p", [0.003, 0.01, 0.05])
def test_unit_level_false_harm_stays_within_alpha_with_clustered_rare_events(p):
    """A/A at margin 0 with clustered units, 12 looks: the engine's share test (any-n sequence on effective counts,
    then the asymptotic one after the burn-in) flags harm in ≤ α of the streams."""
    rng = np.random.default_rng(int(p * 1e4))
    g = GuardrailSpec("error_rate", 0.0, MarginKind.ABSOLUTE)
    metric = lookup("error_rate")
    alpha, streams, flagged = 0.1, 200, 0
    for _ in range(streams):
        c, b = clustered(rng, 1200, p), clustered(rng, 1200, p)
        for n in np.linspace(100, 1200, 12).astype(int):
            cs = summarise_columns({k: v[:n] for k, v in c.items()})
            bs = summarise_columns({k: v[:n] for k, v in b.items()})
            if judge(g, metric, cs, bs, CTX, SPEC, alpha).verdict is MetricVerdict.HARM:
                flagged += 1
                break
    assert flagged / streams <= ceiling(alpha, streams)


@SETTINGS
@given(scale=st.floats(0.0001, 0.5), n=st.integers(200, 3000), name=st.sampled_from([m.name for m in METRICS]))
def test_kind_comes_from_the_registry_never_from_the_values(scale, n, name):
    """Values that look like shares (every unit's numerator ≤ its denominator, all ≤ 1) are still tested by the
    metric's registry kind: a cost gets the delta method, a share the any-n sequence."""
    metric = lookup(name)
    if metric.kind is MetricKind.QUANTILE:
        return
    rng = np.random.default_rng(n)
    den = rng.geometric(1 / 4, n).astype(float)
    num = np.minimum(den, rng.binomial(den.astype(int), min(scale, 0.9)).astype(float))
    cols = {metric.numerator: num, metric.denominator: den}
    base = {metric.numerator: np.minimum(den, num * 0.0 + rng.binomial(den.astype(int), min(scale, 0.9))), metric.denominator: den}
    cols.setdefault("requests", den)
    base.setdefault("requests", den)
    g = GuardrailSpec(name, 0.0, MarginKind.ABSOLUTE)
    j = judge(g, metric, summarise_columns(cols), summarise_columns(base), CTX, SPEC, 0.05)
    if metric.kind is MetricKind.PROPORTION:
        assert j.h_var is not None or j.burn_in
        if j.h_hat is not None and j.h_hat > 0:
            assert j.log_e_exact is not None  # the any-n sequence was consulted
    else:
        assert j.log_e_exact is None and not j.burn_in
        # the interval is exactly the delta-method sequence: no share floor widened it
        assert j.h_var is not None


def test_cost_interval_width_matches_the_delta_method_and_the_spread_over_runs():
    """Cost per request, values far below 1 (the case once mistaken for a share): the claimed standard error is
    the delta method's and agrees with the spread of the estimate over repeated runs."""
    rng = np.random.default_rng(7)
    metric = lookup("cost_per_request")
    g = GuardrailSpec("cost_per_request", 0.0, MarginKind.ABSOLUTE)
    estimates, claimed = [], []
    for _ in range(300):
        c = clustered(rng, 1500, 0.01)
        b = clustered(rng, 1500, 0.01)
        cs, bs = summarise_columns(c), summarise_columns(b)
        j = judge(g, metric, cs, bs, CTX, SPEC, 0.05)
        estimates.append(j.candidate - j.baseline)
        claimed.append(j.h_var)
        if len(claimed) == 1:
            # the delta method by hand, unit as the observation
            x, y = c["cost_usd"], c["requests"]
            r = x.sum() / y.sum()
            v_c = ((x - r * y) ** 2).sum() / y.sum() ** 2 * len(x) / (len(x) - 1)
            x, y = b["cost_usd"], b["requests"]
            r = x.sum() / y.sum()
            v_b = ((x - r * y) ** 2).sum() / y.sum() ** 2 * len(x) / (len(x) - 1)
            assert j.h_var == pytest.approx(v_c + v_b, rel=1e-9)
            half = cs_half_width(v_c + v_b, 3000, 0.05, 2 * SPEC.tuning_units, two_sided=False)
            assert j.interval[1] - j.candidate + j.baseline == pytest.approx(half, rel=1e-6)
    observed = float(np.var(estimates, ddof=1))
    assert np.mean(claimed) == pytest.approx(observed, rel=0.2)
    # a binomial floor would have claimed p(1 − p)/n on a "share" of ≈ 0.006: far wider than the truth
    floor = 2 * 0.006 * (1 - 0.006) / (1500 * 5)
    assert np.mean(claimed) < floor / 5


def test_the_same_harness_fails_the_old_wald_interval_at_small_counts():
    """The old per-arm interval (Wald with half a pseudo-event each way) under the same peeking misses far more
    than α: the harness can tell a valid sequence from an invalid one."""
    p, n_max, alpha = 0.004, 800, 0.05
    rng = np.random.default_rng(3)
    events = np.cumsum(rng.random((STREAMS, n_max)) < p, axis=1).astype(float)
    trials = np.arange(1, n_max + 1, dtype=float)
    p_tilde = (events + 0.5) / (trials + 1)
    half = 1.96 * np.sqrt(p_tilde * (1 - p_tilde) / trials)
    wald_missed = (np.abs(events / trials - p) > half)[:, 30:].any(axis=1)
    mixture_missed = (log_m(events, trials, p) >= math.log(1 / alpha)).any(axis=1)
    assert wald_missed.mean() > 3 * alpha
    assert mixture_missed.mean() <= ceiling(alpha, STREAMS)


@settings(max_examples=300, deadline=None)
@given(n_c=st.floats(0.5, 1e5), n_b=st.floats(0.5, 1e6), q_c=st.floats(0.0, 1.0), q_b=st.floats(0.0, 1.0),
       k=st.sampled_from([1.0, 0.95, 0.97, 2.0, 2.5, 4.0]), delta=st.sampled_from([0.0, 0.03, 0.05, -0.05]))
def test_the_restricted_point_is_the_boundarys_most_likely(n_c, n_b, q_c, q_b, k, delta):
    # the e-value against "no harm beyond the margin" is the mixture at the boundary's most likely point:
    # no point of the boundary p_c = k·p_b + δ is more likely (a minimiser found too early would overstate it)
    s_c, s_b = q_c * n_c, q_b * n_b
    r = restricted(s_c, n_c, s_b, n_b, k, delta)
    if r is None:
        return

    def nll(pb: float) -> float:
        pc = k * pb + delta
        if not (0 < pc < 1 and 0 < pb < 1):
            return math.inf
        return -(s_c * math.log(pc) + (n_c - s_c) * math.log1p(-pc) + s_b * math.log(pb) + (n_b - s_b) * math.log1p(-pb))

    best = nll(r.p_b)
    lo, hi = max(0.0, -delta / k), min(1.0, (1.0 - delta) / k)
    for t in np.linspace(lo, hi, 401)[1:-1]:
        assert best <= nll(float(t)) + 1e-9 * (1 + abs(best))
    for f in (1 - 1e-6, 1 + 1e-6):
        assert best <= nll(r.p_b * f) + 1e-9 * (1 + abs(best))
