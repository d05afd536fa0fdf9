"""The simulator's aggregate path: one stage of one flag, per-unit totals at every look, in numpy.

The request-level simulator evaluates the flag file for every unit and keeps a request log; that is
what the console shows, but thousands of seeded runs of a stage (the guardrail benchmark) need
something faster. This path draws the same kinds of requests from the same route behaviours and
scenarios for the eligible, non-internal units of the support flag only, assigns arms with flagd's
own bucketing (murmur3 of the CBOR of [flag key, unit id], as ``openfeature-flagd-core`` does),
and accumulates per-unit columns at each look. ``tests/core/test_fastpath.py`` checks that its
rates agree with the request-level simulator and that its arms agree with the official evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass

import cbor2
import mmh3
import numpy as np

from ..errors import BadInput
from .portfolio import BEHAVIOURS, PROFILES, RouteBehaviour
from .scenarios import Scenario, apply_to_candidate

FLAG = "support-answer-route"
BASELINE, CANDIDATE = "fast_default_v1", "balanced_core_v2"
TOTAL_WEIGHT = 10_000
FIELDS = ("requests", "successes", "exposures", "outcomes", "resolved", "escalated", "corrected", "complaints",
          "errors", "rate_limited", "timeouts", "fallbacks", "slo_met", "cost_usd", "mature_exposures",
          "mature_outcomes")


def candidate_behaviour(scenario: Scenario) -> RouteBehaviour:
    """How the candidate behaves under ``scenario`` (the A/A scenario copies the baseline)."""
    if scenario.region is not None:
        # this path's units carry no region: applying it to everyone would be a different scenario
        raise BadInput(f"scenario {scenario.name}: bound to region {scenario.region}, which the aggregate path does "
                       "not model — run it on the request-level simulator")
    if scenario.candidate_as_baseline:
        return BEHAVIOURS[BASELINE]
    return apply_to_candidate(BEHAVIOURS[CANDIDATE], scenario)


def flagd_bucket(flag: str, unit_id: str) -> int:
    """The bucket in [0, 10000) that flagd's ``fractional`` gives a unit (same hash as the official evaluator)."""
    digest = mmh3.hash(cbor2.dumps([flag, unit_id], canonical=True), signed=False)
    return (digest * TOTAL_WEIGHT) >> 32


@dataclass
class UnitPool:
    """The eligible units of the flag: ids, traits and their flagd bucket (fixed across runs)."""

    ids: list[str]
    bucket: np.ndarray
    activity: np.ndarray  # cumulative, normalised
    difficulty: np.ndarray
    verbosity: np.ndarray
    slowness: np.ndarray

    @classmethod
    def make(cls, n: int = 15_000, seed: int = 0) -> "UnitPool":
        rng = np.random.default_rng([seed, 0xFA57])
        ids = [f"e{seed}-{i:05d}" for i in range(n)]
        activity = np.cumsum(rng.lognormal(0.0, 1.0, n))
        return cls(ids, np.array([flagd_bucket(FLAG, u) for u in ids]), activity / activity[-1],
                   rng.standard_normal(n), rng.lognormal(0.0, 0.25, n), rng.lognormal(0.0, 0.15, n))


@dataclass
class StageRun:
    """Per-unit cumulative columns at each look, split by arm.

    Each arm's units are ordered by the look that first saw them, so the units seen by look k are a
    prefix: a look is a slice (a view), not a copy.
    """

    look_times: np.ndarray  # seconds since the stage began
    cand: dict[str, np.ndarray]  # field → (looks × candidate units)
    base: dict[str, np.ndarray]
    seen_cand: np.ndarray  # per look: how many candidate units have made a request
    seen_base: np.ndarray

    @classmethod
    def build(cls, looks: np.ndarray, is_cand: np.ndarray, cum: dict[str, np.ndarray]) -> "StageRun":
        requests = cum["requests"]
        first = np.where(requests[-1] > 0, np.argmax(requests > 0, axis=0), len(looks))
        parts = []
        for mask in (is_cand, ~is_cand):
            idx = np.nonzero(mask)[0]
            idx = idx[np.argsort(first[idx], kind="stable")]
            seen = np.searchsorted(first[idx], np.arange(len(looks)), side="right")
            parts.append(({f: v[:, idx] for f, v in cum.items()}, seen))
        (cand, seen_c), (base, seen_b) = parts
        return cls(looks, cand, base, seen_c, seen_b)

    def at(self, k: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(candidate columns, baseline columns) of the units seen by look ``k``."""
        nc, nb = self.seen_cand[k], self.seen_base[k]
        return ({f: v[k, :nc] for f, v in self.cand.items()}, {f: v[k, :nb] for f, v in self.base.items()})


def run_stage(pool: UnitPool, scenario: Scenario, seed: int, *, candidate_bp: int, seconds: float, rate_rps: float,
              look_every: float = 10.0, maturation_s: float = 120.0, slo_ms: float = 2500.0) -> StageRun:
    """One seeded run of a stage: requests of the eligible units at ``rate_rps`` for ``seconds``."""
    rng = np.random.default_rng([seed, 0x57A6E])
    n = int(rng.poisson(rate_rps * seconds))
    t = np.sort(rng.random(n) * seconds)
    units = np.minimum(np.searchsorted(pool.activity, rng.random(n)), len(pool.ids) - 1)
    is_cand_unit = pool.bucket < candidate_bp
    cand = is_cand_unit[units]
    u = rng.random((n, 7))
    z = rng.standard_normal((n, 4))

    cb, bb = candidate_behaviour(scenario), BEHAVIOURS[BASELINE]
    cprof = PROFILES[BASELINE] if scenario.candidate_as_baseline else PROFILES[CANDIDATE]
    bprof = PROFILES[BASELINE]

    def pick(attr: str) -> np.ndarray:
        return np.where(cand, getattr(cb, attr), getattr(bb, attr))

    def pick_prof(attr: str, default: float) -> np.ndarray:
        return np.where(cand, getattr(cprof, attr) or default, getattr(bprof, attr) or default)

    from ..pricing import PricingTable

    prices = PricingTable.defaults()
    cp, bp = prices.price_for(cprof), prices.price_for(bprof)
    in_price = np.where(cand, cp.input_per_mtok, bp.input_per_mtok) / 1e6
    out_price = np.where(cand, cp.output_per_mtok, bp.output_per_mtok) / 1e6
    fb_c = BEHAVIOURS[cprof.fallback] if cprof.fallback else None
    fb_b = BEHAVIOURS[bprof.fallback] if bprof.fallback else None

    slow, verb = pool.slowness[units], pool.verbosity[units]
    latency = pick("latency_median_ms") * slow * np.exp(pick("latency_sigma") * z[:, 0])
    tin = pick("tokens_in") * verb * np.exp(0.3 * z[:, 1])
    tout = np.minimum(pick("tokens_out") * verb * np.exp(0.35 * z[:, 2]), pick_prof("max_output_tokens", 4096))
    timeout = pick_prof("timeout_ms", 30_000)
    p_err, p_429 = pick("error_rate"), pick("rate_limit_rate")
    err = np.select([u[:, 0] < p_err, u[:, 0] < p_err + p_429, latency > timeout], [1, 2, 3], 0)
    spent = np.select([err == 1, err == 2, err == 3], [latency * 0.3, np.full(n, 60.0), timeout], latency)
    tin_c = np.where(err == 2, 0.0, tin)
    tout_c = np.select([err == 0, err == 3], [tout, tout * 0.5], 0.0)
    cost = tin_c * in_price + tout_c * out_price
    fallback = err != 0
    fb_med = np.where(cand, fb_c.latency_median_ms, fb_b.latency_median_ms)
    fb_sig = np.where(cand, fb_c.latency_sigma, fb_b.latency_sigma)
    fb_err = np.where(cand, fb_c.error_rate, fb_b.error_rate)
    fb_failed = fallback & (u[:, 1] < fb_err)
    fb_model_c = prices.price_for(PROFILES.get(cprof.fallback) or cprof)
    fb_model_b = prices.price_for(PROFILES.get(bprof.fallback) or bprof)
    fb_in = np.where(cand, fb_model_c.input_per_mtok, fb_model_b.input_per_mtok) / 1e6
    fb_out = np.where(cand, fb_model_c.output_per_mtok, fb_model_b.output_per_mtok) / 1e6
    fb_tin = np.where(fallback, np.where(cand, fb_c.tokens_in, fb_b.tokens_in) * verb, 0.0)
    fb_tout = np.where(fallback & ~fb_failed, np.where(cand, fb_c.tokens_out, fb_b.tokens_out) * verb, 0.0)
    cost = cost + fb_tin * fb_in + fb_tout * fb_out
    success = (err == 0) | (fallback & ~fb_failed)
    total_latency = np.where(fallback, spent + fb_med * slow * np.exp(fb_sig * z[:, 3]), spent)
    resolved = u[:, 2] < np.where(success, pick("resolve") - 0.08 * pool.difficulty[units], 0.0)
    corrected = resolved & (u[:, 3] < pick("correction"))
    complaint = u[:, 4] < pick("complaint") + np.where(success, 0.0, 0.05)
    joined = u[:, 5] < pick("join_probability")
    arrival = t + 5 + 85 * u[:, 6]

    looks = np.arange(look_every, seconds + 1e-9, look_every)
    # only units that made a request take a column: far fewer than the pool
    active, units = np.unique(units, return_inverse=True)
    nl, nu = len(looks), len(active)

    def cumulate(when: np.ndarray, weight: np.ndarray | None) -> np.ndarray:
        k = np.searchsorted(looks, when, side="left")  # first look at or after the event
        keep = k < nl
        grid = np.bincount(k[keep] * nu + units[keep], weights=None if weight is None else weight[keep],
                           minlength=nl * nu).reshape(nl, nu)
        return np.cumsum(grid, axis=0)

    ones = np.ones(n)
    out = joined.astype(float)
    cum = {
        "requests": cumulate(t, None),
        "successes": cumulate(t, success.astype(float)),
        "errors": cumulate(t, (err != 0).astype(float)),
        "rate_limited": cumulate(t, (err == 2).astype(float)),
        "timeouts": cumulate(t, (err == 3).astype(float)),
        "fallbacks": cumulate(t, fallback.astype(float)),
        "slo_met": cumulate(t, (success & (total_latency <= slo_ms)).astype(float)),
        "cost_usd": cumulate(t, cost),
        "outcomes": cumulate(arrival, out),
        "resolved": cumulate(arrival, out * resolved),
        "escalated": cumulate(arrival, out * ~resolved),
        "corrected": cumulate(arrival, out * corrected),
        "complaints": cumulate(arrival, out * complaint),
        # an exposure is mature once it is older than the maturation window; its outcome counts once arrived
        "mature_exposures": cumulate(t + maturation_s, ones),
        "mature_outcomes": cumulate(np.maximum(t + maturation_s, arrival), out),
    }
    cum["exposures"] = cum["requests"]
    return StageRun.build(looks, is_cand_unit[active], cum)
