"""How often the guardrail engine rolls back an identical candidate, how soon it advances one, and how fast it
catches real regressions — each row beside GrowthBook's stats engine (``gbstats`` 0.8.0, sequential test) on
the same counts and margins at routedeck's per-test α.

The traffic comes from a generator of its own (not the console's simulator), re-randomised in every run:
a fresh population of units (activity, slowness, verbosity, difficulty, error-proneness) and a fresh
assignment of units to arms. Requests arrive as a Poisson process at the simulator's default rate for the
eligible scope (14.4 requests/s); a unit's requests accumulate across looks; outcomes join 5–90 s after
their request (0.5% never join); the engine looks every 10 s, reading only per-arm summaries
(``console.core.stats.summary``) built incrementally as a metrics source would.

Rows:
- A/A under the seed rule (``examples/decision-rule-seed.yaml``) and under its non-inferiority variant
  (``benchmarks/guardrails-ni.yaml``), at every stage at the rule's minimums — internal, 5%, 20%, full with a
  5% and with a 2% holdback — each stage run for twice its minimum dwell: false ROLLBACK share with its 95%
  Clopper–Pearson upper bound, ADVANCE within the horizon, and the estimated time to ADVANCE at its end;
- margin-0 coverage: A/A with every margin at 0 (the hardest null), per test, the share of runs whose
  harm-side bound ever crossed 0 — routedeck's sequences, fixed-horizon intervals looked at every 10 s
  (peeking), and gbstats — against the per-test α;
- regressions at 5% and 20%: error outage 30%, latency +20%, cost ×1.5 and ×3, quality −5 points, and a join
  break (40% of candidate outcomes lost) on a request-level source: share detected, looks to the first harm
  readout median [IQR] for routedeck and gbstats on the same metric.

    .venv/bin/python benchmarks/guardrails.py [--runs 1000] [--regression-runs 200] [--stages 5%,20%]
                                              [--scenarios quality,cost] [--workers 2] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from console.core.registry import MetricKind, lookup  # noqa: E402
from console.core.rules import load_rule  # noqa: E402
from console.core.stats.engine import alpha_budget, decide, judge, readout  # noqa: E402
from console.core.stats.spec import (  # noqa: E402
    GuardrailSpec,
    MarginKind,
    MetricVerdict,
    PrimaryTest,
    StageContext,
    Verdict,
)
from console.core.stats.summary import COLUMNS, PAIRS, ArmSummary  # noqa: E402
from console.core.telemetry import LATENCY_BOUNDS_MS, TTFT_BOUNDS_MS  # noqa: E402

SEED_RULE = ROOT / "examples" / "decision-rule-seed.yaml"
NI_RULE = Path(__file__).with_name("guardrails-ni.yaml")
LOOK_S = 10.0
RATE_RPS = 14.4  # the simulator's 30 requests/s × the support flag's eligible scope (60% × 80%)
POOL = 20_000
MATURATION_S = 120.0
STAGES = ("internal", "5%", "20%", "full 5%", "full 2%")
REGRESSIONS = {
    # scenario: (the metric whose harm detects it, changes to the candidate)
    "error outage 30%": ("error_rate", {"error": 0.30}),
    "latency +20%": ("slo_attainment", {"latency": 1.2}),
    "cost ×1.5": ("cost_per_resolved_case", {"tokens": 1.5}),
    "cost ×3": ("cost_per_resolved_case", {"tokens": 3.0}),
    "quality −5 points": ("resolved_without_escalation", {"resolve": -0.05}),
    "join break 40% (request level)": ("join", {"join": 0.6}),
}
COL = {c: i for i, c in enumerate(COLUMNS)}
_PAIR_X = np.array([COL[a] for a, _ in PAIRS])
_PAIR_Y = np.array([COL[b] for _, b in PAIRS])
NL, NT = len(LATENCY_BOUNDS_MS) + 1, len(TTFT_BOUNDS_MS) + 1


# ---- traffic ---------------------------------------------------------------------------------------------


@dataclass
class Behaviour:
    latency_ms: float = 1350.0
    sigma: float = 0.5
    error: float = 0.006
    rate_limit: float = 0.003
    timeout_ms: float = 8000.0
    tokens_in: float = 1500.0
    tokens_out: float = 350.0
    resolve: float = 0.70
    correction: float = 0.08
    complaint: float = 0.006
    join: float = 0.995

    def changed(self, change: dict) -> "Behaviour":
        b = replace(self)
        if "error" in change:
            b.error = change["error"]
        b.latency_ms *= change.get("latency", 1.0)
        b.tokens_in *= change.get("tokens", 1.0)
        b.tokens_out *= change.get("tokens", 1.0)
        b.resolve += change.get("resolve", 0.0)
        b.join *= change.get("join", 1.0)
        return b


def stage_share(stage: str) -> float:
    return {"internal": 0.0, "5%": 0.05, "20%": 0.20, "full 5%": 0.95, "full 2%": 0.98}[stage]


def traffic(seed: int, stage: str, change: dict, horizon_s: float, request_level: bool):
    """Every event of one run, as (look index, unit, is-candidate unit, column values, latency/ttft bucket)."""
    rng = np.random.default_rng([seed, 0x6E7])
    internal = rng.random(POOL) < 0.01
    activity = rng.lognormal(0.0, 1.0, POOL)
    slowness = rng.lognormal(0.0, 0.2, POOL)
    verbosity = rng.lognormal(0.0, 0.25, POOL)
    difficulty = rng.standard_normal(POOL)
    prone = rng.lognormal(-0.125, 0.5, POOL)  # mean 1: some units' requests fail more often than others'
    if stage == "internal":
        cand_unit = internal.copy()
        keep = np.ones(POOL, dtype=bool)
    else:
        cand_unit = rng.random(POOL) < stage_share(stage)
        keep = ~internal  # the first audience is not comparable: it never enters the comparison
    cum = np.cumsum(activity * keep)
    n = int(rng.poisson(RATE_RPS * horizon_s * (cum[-1] / activity.sum())))
    t = np.sort(rng.random(n) * horizon_s)
    unit = np.minimum(np.searchsorted(cum / cum[-1], rng.random(n)), POOL - 1)
    cand = cand_unit[unit]
    base_b, cand_b = Behaviour(), Behaviour().changed(change)

    def pick(attr: str) -> np.ndarray:
        return np.where(cand, getattr(cand_b, attr), getattr(base_b, attr))

    u = rng.random((n, 6))
    z = rng.standard_normal((n, 3))
    latency = pick("latency_ms") * slowness[unit] * np.exp(pick("sigma") * z[:, 0])
    p_err = np.minimum(pick("error") * prone[unit], 0.95)
    err = np.select([u[:, 0] < p_err, u[:, 0] < p_err + pick("rate_limit"), latency > pick("timeout_ms")], [1, 2, 3], 0)
    fallback = err != 0
    fb_ok = fallback & (u[:, 1] < 0.97)
    success = (err == 0) | fb_ok
    total_latency = np.where(fallback, np.where(err == 3, pick("timeout_ms"), 0.3 * latency)
                             + 900 * slowness[unit] * np.exp(0.4 * z[:, 1]), latency)
    slo = success & (total_latency <= 2500.0)
    tin = pick("tokens_in") * verbosity[unit]
    tout = pick("tokens_out") * verbosity[unit] * np.exp(0.35 * z[:, 2])
    cost = np.where(err == 2, 0.0, tin * 2e-6 + np.where(err == 0, tout, 0.5 * tout) * 8e-6)
    cost = cost + np.where(fallback, tin * 1e-6 + np.where(fb_ok, 300 * verbosity[unit] * 4e-6, 0.0), 0.0)
    resolved = success & (u[:, 2] < pick("resolve") - 0.08 * difficulty[unit])
    corrected = resolved & (u[:, 3] < pick("correction"))
    complaint = u[:, 4] < pick("complaint") + np.where(success, 0.0, 0.05)
    joined = u[:, 5] < pick("join")
    arrival = t + 5 + 85 * rng.random(n)
    lat_b = np.searchsorted(np.asarray(LATENCY_BOUNDS_MS), total_latency, side="left")
    ttft_b = np.searchsorted(np.asarray(TTFT_BOUNDS_MS), total_latency * 0.2, side="left")

    if request_level:
        # a request-level source: every request is its own unit
        unit = np.arange(n)
        cand_of = cand
    else:
        cand_of = cand_unit
    k = len(COLUMNS)
    req = np.zeros((n, k))
    for name, value in (("requests", 1.0), ("exposures", 1.0), ("successes", success), ("errors", err != 0),
                        ("rate_limited", err == 2), ("timeouts", err == 3), ("fallbacks", fallback),
                        ("slo_met", slo), ("cost_usd", cost)):
        req[:, COL[name]] = value
    out = np.zeros((n, k))
    out[:, COL["outcomes"]] = 1.0
    out[:, COL["resolved"]] = resolved
    out[:, COL["escalated"]] = ~resolved
    out[:, COL["corrected"]] = corrected
    out[:, COL["complaints"]] = complaint
    mat = np.zeros((n, k))
    mat[:, COL["mature_exposures"]] = 1.0
    mout = np.zeros((n, k))
    mout[:, COL["mature_outcomes"]] = 1.0
    j = joined
    times = np.concatenate([t, arrival[j], t + MATURATION_S, np.maximum(t + MATURATION_S, arrival)[j]])
    units = np.concatenate([unit, unit[j], unit, unit[j]])
    values = np.concatenate([req, out[j], mat, mout[j]])
    buckets = np.concatenate([np.stack([lat_b, ttft_b], 1), np.full((j.sum() + n + j.sum(), 2), -1)])
    look = np.ceil(times / LOOK_S).astype(np.int64)  # the first look at or after the event
    order = np.lexsort((units, look))  # by look, and by unit within a look (what Accumulator.add groups by)
    return look[order], units[order], values[order], buckets[order], cand_of, request_level


class Accumulator:
    """Per-arm summaries kept up to date as events arrive (what a metrics source aggregates)."""

    def __init__(self, n_units: int, cand_of: np.ndarray, request_level: bool) -> None:
        self.table = np.zeros((n_units, len(COLUMNS)))
        # each unit's cumulative histograms: C_u(i) = the unit's requests in buckets 0..i
        self.lat = np.zeros((n_units, NL))
        self.ttft = np.zeros((n_units, NT))
        self.cand_of = cand_of
        self.request_level = request_level
        # per arm (row 0: candidate, row 1: baseline)
        k = len(COLUMNS)
        self.units = np.zeros(2)
        self.sums, self.squares, self.nonzero = np.zeros((2, k)), np.zeros((2, k)), np.zeros((2, k))
        self.products = np.zeros((2, len(PAIRS)))
        self.hist = [np.zeros((2, NL)), np.zeros((2, NT))]
        self.hsq = [np.zeros((2, NL)), np.zeros((2, NT))]
        self.hprod = [np.zeros((2, NL)), np.zeros((2, NT))]

    def add(self, units: np.ndarray, values: np.ndarray, buckets: np.ndarray) -> None:
        """Add one look's events (``traffic`` gives them sorted by unit within a look)."""
        if not len(units):
            return
        if len(units) > 1 and np.any(units[1:] < units[:-1]):
            order = np.argsort(units, kind="stable")
            units, values, buckets = units[order], values[order], buckets[order]
        change = np.empty(len(units), dtype=bool)
        change[0] = True
        np.not_equal(units[1:], units[:-1], out=change[1:])
        starts = np.flatnonzero(change)
        touched = units[starts]
        inv = np.cumsum(change) - 1
        delta = np.add.reduceat(values, starts, axis=0)
        old = self.table[touched]
        new = old + delta
        self.table[touched] = new
        hists = []
        for col, table, width in ((0, self.lat, NL), (1, self.ttft, NT)):
            has = buckets[:, col] >= 0
            if not has.any():
                hists.append(None)
                continue
            dh = np.bincount(inv[has] * width + buckets[has, col], minlength=len(touched) * width)
            dh = dh.reshape(len(touched), width).astype(float)
            c_old = table[touched]
            c_new = c_old + np.cumsum(dh, 1)
            table[touched] = c_new
            hists.append((dh, c_old, c_new))
        # both arms at once: a 2 × touched indicator times each touched unit's change
        cand = self.cand_of[touched]
        side = np.stack([cand, ~cand]).astype(float)
        r = COL["requests"]
        xs, ys = _PAIR_X, _PAIR_Y
        o, w = old, new
        self.units += side @ ((w[:, r] > 0) & (o[:, r] <= 0)).astype(float)
        self.sums += side @ delta
        self.squares += side @ (w * w - o * o)
        self.nonzero += side @ ((w > 0).astype(float) - (o > 0))
        self.products += side @ (w[:, xs] * w[:, ys] - o[:, xs] * o[:, ys])
        for h, parts in enumerate(hists):
            if parts is None:
                continue
            dh, c_old, c_new = parts
            self.hist[h] += side @ dh
            self.hsq[h] += side @ (c_new * c_new - c_old * c_old)
            self.hprod[h] += side @ (c_new * c_new[:, -1:] - c_old * c_old[:, -1:])

    def summary(self, side: bool) -> ArmSummary:
        i = 0 if side else 1
        s = ArmSummary(units=int(round(self.units[i])), crossed=0, request_level=self.request_level)
        s.sums = dict(zip(COLUMNS, self.sums[i].tolist()))
        s.squares = dict(zip(COLUMNS, self.squares[i].tolist()))
        s.nonzero = dict(zip(COLUMNS, np.rint(self.nonzero[i]).astype(np.int64).tolist()))
        s.products = dict(zip(PAIRS, self.products[i].tolist()))
        s.hist = {"latency_hist": np.rint(self.hist[0][i]).astype(np.int64).tolist(),
                  "ttft_hist": np.rint(self.hist[1][i]).astype(np.int64).tolist()}
        if self.request_level:
            # a request-level source cannot tell which outcomes belong to matured exposures, nor cluster anything
            for key in ("mature_outcomes",):
                s.sums.pop(key, None)
                s.squares.pop(key, None)
            s.crossed = None
        else:
            s.hist_squares = {"latency_hist": self.hsq[0][i].tolist(), "ttft_hist": self.hsq[1][i].tolist()}
            s.hist_products = {"latency_hist": self.hprod[0][i].tolist(), "ttft_hist": self.hprod[1][i].tolist()}
        return s


# ---- the comparator ------------------------------------------------------------------------------------


def gbstats_harm(metric_name: str, margin: float, kind: MarginKind, cand: ArmSummary, base: ArmSummary,
                 alpha: float) -> bool | None:
    """gbstats' sequential two-sided test on the same per-unit sums: True when its interval is all beyond the
    margin on the harm side (False or None: not, None when it gives no result).

    gbstats itself answers every look whose answer could be harm: its interval is first computed here from
    its published formula (``gbstats_screen``), and only a look that is not clearly short of the margin — by
    more than a millionth of the interval's width, far above rounding — is passed to gbstats. The answers are
    gbstats' (tests/core/test_guardrail_benchmark.py checks the screen against gbstats); the screen only
    spares the runs the cost of gbstats' objects at the looks it would certainly call no harm.
    """
    screened = gbstats_screen(metric_name, margin, kind, cand, base, alpha)
    if screened is False:
        return False
    return gbstats_call(metric_name, margin, kind, cand, base, alpha)


#: how far short of the margin (as a share of the interval's half-width) a look must be to skip gbstats
SCREEN_TOLERANCE = 1e-6


def gbstats_screen(metric_name: str, margin: float, kind: MarginKind, cand: ArmSummary, base: ArmSummary,
                   alpha: float) -> bool | None:
    """False when gbstats' sequential interval (its formula: ratio statistic's delta-method variance, the
    Waudby-Smith et al. boundary at its default tuning N* = 5000) is clearly short of the margin on the harm
    side; None when gbstats must be asked (possible harm, near the margin, or a case gbstats treats apart)."""
    metric = lookup(metric_name)
    num, den = metric.numerator, metric.denominator

    def stat(s: ArmSummary):
        n = s.units
        prod = s.product(num, den)
        sq_m, sq_d = s.squares.get(num), s.squares.get(den)
        if n < 2 or prod is None or sq_m is None or sq_d is None:
            return None
        sm, sd = s.sums[num], s.sums[den]
        var_m = (sq_m - sm * sm / n) / (n - 1)
        var_d = (sq_d - sd * sd / n) / (n - 1)
        mean_m, mean_d = sm / n, sd / n
        if mean_d == 0:
            return None
        cov = (prod - sm * sd / n) / (n - 1)
        var = var_m / mean_d**2 - 2 * cov * mean_m / mean_d**3 + mean_m**2 * var_d / mean_d**4
        return (sm / sd if sd else 0.0), var, n

    a, b = stat(base), stat(cand)
    if a is None or b is None or base.sums.get(den, 0) <= 0 or cand.sums.get(den, 0) <= 0:
        return None
    (mean_a, var_a, n_a), (mean_b, var_b, n_b) = a, b
    if mean_a == 0 or var_a <= 0 or var_b <= 0:
        return None
    if kind is MarginKind.RELATIVE:
        point = (mean_b - mean_a) / mean_a
        variance = var_b / (mean_a**2 * n_b) + var_a * mean_b**2 / (mean_a**4 * n_a)
    else:
        point = mean_b - mean_a
        variance = var_b / n_b + var_a / n_a
    big_n = n_a + n_b
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / 5000
    width = math.sqrt(variance * big_n) * math.sqrt(
        2 * (big_n * rho2 + 1) * math.log(math.sqrt(big_n * rho2 + 1) / alpha) / (big_n * big_n * rho2))
    if not math.isfinite(width) or not math.isfinite(point):
        return None
    short = (margin - (point - width)) if metric.worse_is_higher else ((point + width) - (-margin))
    return False if short > SCREEN_TOLERANCE * max(width, 1e-300) else None


def gbstats_call(metric_name: str, margin: float, kind: MarginKind, cand: ArmSummary, base: ArmSummary,
                 alpha: float) -> bool | None:
    """gbstats' answer itself (see ``gbstats_harm``)."""
    from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
    from gbstats.models.statistics import RatioStatistic, SampleMeanStatistic

    metric = lookup(metric_name)
    num, den = metric.numerator, metric.denominator

    def stat(s: ArmSummary):
        n = s.units
        prod = s.product(num, den)
        if n < 2 or prod is None or s.squares.get(num) is None:
            return None
        return RatioStatistic(n=n, m_statistic=SampleMeanStatistic(n=n, sum=s.sums[num], sum_squares=s.squares[num]),
                              d_statistic=SampleMeanStatistic(n=n, sum=s.sums[den], sum_squares=s.squares[den]),
                              m_d_sum_of_products=prod)

    a, b = stat(base), stat(cand)
    if a is None or b is None or base.sums.get(den, 0) <= 0 or cand.sums.get(den, 0) <= 0:
        return None
    relative = kind is MarginKind.RELATIVE
    config = SequentialConfig(difference_type="relative" if relative else "absolute", alpha=alpha)
    result = SequentialTwoSidedTTest(a, b, config).compute_result()
    if result.error_message or result.ci is None or any(v is None or math.isnan(v) for v in result.ci):
        return None
    lo, hi = result.ci
    return lo > margin if metric.worse_is_higher else hi < -margin


def check_comparator() -> str | None:
    """gbstats installed without its numpy<2 pin: compare one sequential interval with the published formula
    (GrowthBook's asymptotic confidence sequence, half-width σ·√N·√(2(Nρ²+1)/(N²ρ²)·log(√(Nρ²+1)/α)), ρ tuned
    to N* = 5000). Returns a problem in words, or None."""
    from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
    from gbstats.models.statistics import ProportionStatistic

    a, b, alpha = ProportionStatistic(n=4000, sum=400), ProportionStatistic(n=4000, sum=460), 0.01
    result = SequentialTwoSidedTTest(a, b, SequentialConfig(difference_type="absolute", alpha=alpha)).compute_result()
    pa, pb = 0.10, 0.115
    var = pa * (1 - pa) / 4000 + pb * (1 - pb) / 4000
    n = 8000
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / 5000)
    half = math.sqrt(var * n) * math.sqrt(2 * (n * rho**2 + 1) / (n * n * rho**2) * math.log(math.sqrt(n * rho**2 + 1) / alpha))
    want = (pb - pa - half, pb - pa + half)
    if result.ci is None or any(abs(x - y) > 1e-6 for x, y in zip(result.ci, want)):
        return f"gbstats gives {result.ci}, the formula {want}"
    return None


# ---- one run -------------------------------------------------------------------------------------------


_RULES: dict = {}


def rules():
    if not _RULES:
        _RULES["seed"] = load_rule(SEED_RULE)
        _RULES["ni"] = load_rule(NI_RULE)
    return _RULES


def stage_spec(rule, stage: str):
    name = "full" if stage.startswith("full") else stage
    return rule.stage(name)


def compared_guardrails(spec) -> list[GuardrailSpec]:
    """The tests gbstats is compared on: every guardrail it can test (no quantiles) and the primary metric, each
    with the margins routedeck uses at every stage (the primary's per-stage margins included)."""
    tested = [g for g in spec.guardrails if lookup(g.metric).kind is not MetricKind.QUANTILE]
    if spec.primary is not None:
        p = spec.primary
        tested.append(GuardrailSpec(p.metric, p.margin, p.margin_kind, stage_margins=p.stage_margins))
    return tested


def seed_advances(seed_spec, ctx, cand: ArmSummary, base: ArmSummary, budget) -> bool:
    """Whether the seed rule ADVANCEs at a look where its non-inferiority variant does.

    The two specs differ only in the primary metric's test (``check_rules`` makes sure), so where the variant
    ADVANCEs — every gate, guardrail and minimum passing — the seed rule ADVANCEs exactly when its primary
    readout passes ``decide``'s primary check: the same verdict as ``decide(seed_spec, …)`` from one readout
    instead of every test again (tests/core/test_guardrail_benchmark.py compares the two)."""
    p = seed_spec.primary
    r = readout(GuardrailSpec(p.metric, p.margin, p.margin_kind, stage_margins=p.stage_margins), cand, base, ctx,
                seed_spec, budget.per_test, primary=p, alpha_ni=budget.stage)
    if ctx.has_control or r.n_baseline:
        wanted = MetricVerdict.SUPERIOR if p.test is PrimaryTest.SUPERIOR else MetricVerdict.NON_INFERIOR
        return r.verdict in (wanted, MetricVerdict.SUPERIOR)
    return r.judged


def check_rules() -> str | None:
    """The seed rule and its variant differ only in the primary metric's test (what ``seed_advances`` needs)."""
    seed, ni = rules()["seed"], rules()["ni"]
    if replace(seed.spec, primary=ni.spec.primary) != ni.spec or seed.segments != ni.segments:
        return "the seed rule and its non-inferiority variant differ in more than the primary metric's test"
    return None


def one_run(task: tuple) -> dict:
    kind, rule_name, stage, scenario, seed = task
    rule = rules()[rule_name]
    spec = rule.spec
    seed_spec = rules()["seed"].spec
    coverage = kind == "aa" and stage == "20%"
    st = stage_spec(rule, stage)
    horizon = 2 * st.min_dwell_s
    change = REGRESSIONS[scenario][1] if scenario in REGRESSIONS else {}
    request_level = scenario.endswith("(request level)")
    looks, units, values, buckets, cand_of, _ = traffic(seed, stage, change, horizon, request_level)
    acc = Accumulator(len(cand_of), cand_of, request_level)
    has_control = stage != "internal"
    share = stage_share(stage)
    budget = alpha_budget(spec, bool(rule.segments))
    per_test = budget.per_test
    n_looks = int(horizon // LOOK_S)
    bounds = np.searchsorted(looks, np.arange(n_looks + 2), side="left")
    out = {"kind": kind, "rule": rule_name, "stage": stage, "scenario": scenario, "seed": seed,
           "rollback": None, "advance": None, "seed_advance": None, "harm": None, "gb_harm": None, "gb_any": None, "eta_s": None,
           "cover": {}, "cover_fixed": {}, "cover_gb": {}, "cover_seen": set()}
    target = REGRESSIONS[scenario][0] if scenario in REGRESSIONS else None
    tested = compared_guardrails(spec)
    for k in range(1, n_looks + 1):
        acc.add(units[bounds[k]:bounds[k + 1]], values[bounds[k]:bounds[k + 1]], buckets[bounds[k]:bounds[k + 1]])
        at = k * LOOK_S
        cand, base = acc.summary(True), acc.summary(False)
        ctx = StageContext(st, at, has_control=has_control, intended_candidate_share=share if has_control else None,
                           segments=bool(rule.segments))
        last = k == n_looks
        if kind == "aa" and coverage:
            out["cover_seen"] = set()
            _coverage_look(out, tested, cand, base, ctx, spec, per_test)
        d = decide(spec, ctx, cand, base, with_eta=last and kind == "aa" and out["advance"] is None)
        if out["rollback"] is None and d.verdict is Verdict.ROLLBACK:
            out["rollback"] = k
            out["rollback_why"] = d.reasons[0][:160]
        if out["advance"] is None and d.verdict is Verdict.ADVANCE:
            out["advance"] = k
        if kind == "aa" and out["seed_advance"] is None and d.verdict is Verdict.ADVANCE:
            # the seed rule differs only in asking the primary metric for superiority: its ADVANCE implies this one
            if seed_advances(seed_spec, ctx, cand, base, budget):
                out["seed_advance"] = k
        if last and kind == "aa" and out["advance"] is None:
            out["eta_s"] = d.eta_s
        if target is not None and out["harm"] is None:
            if target == "join":
                if any(g.name.startswith("exposure") and g.status.value == "fail" for g in d.health):
                    out["harm"] = k
            elif any(m.name == target and m.verdict is MetricVerdict.HARM for m in d.metrics):
                out["harm"] = k
        if has_control and ((kind == "aa" and out["gb_any"] is None) or (target not in (None, "join"))):
            for g in tested:
                if kind == "regression" and g.metric != target:
                    continue
                if kind == "regression" and out["gb_harm"] is not None:
                    break
                g_at = g.at_stage(st.name)
                harmed = gbstats_harm(g.metric, g_at.margin, g_at.margin_kind, cand, base, per_test)
                if harmed:
                    if kind == "regression":
                        out["gb_harm"] = k
                    elif out["gb_any"] is None:
                        out["gb_any"] = k
        if kind == "regression" and out["harm"] is not None and (out["gb_harm"] is not None or target == "join"):
            break
        if kind == "aa" and out["rollback"] is not None:
            break  # the stage is over; an ADVANCE does not end it: the guard keeps looking for harm
    return out


#: the coverage table's tests: a rare share, a common share, the latency share and a cost ratio
COVERAGE_METRICS = ("error_rate", "resolved_without_escalation", "slo_attainment", "cost_per_resolved_case")


def _coverage_look(out: dict, tested, cand, base, ctx, spec, per_test: float) -> None:
    """Margin 0, A/A: has each test's harm-side bound crossed 0 yet (routedeck, fixed-horizon peeking, gbstats)?"""
    for g in tested:
        if g.metric not in COVERAGE_METRICS or (g.metric in out["cover_seen"]):
            continue
        out["cover_seen"].add(g.metric)
        zero = replace(g, margin=0.0, margin_kind=MarginKind.ABSOLUTE, stage_margins=())
        metric = lookup(g.metric)
        if g.metric not in out["cover"]:
            j = judge(zero, metric, cand, base, ctx, spec, per_test)
            if j.verdict is MetricVerdict.HARM:
                out["cover"][g.metric] = True
        if g.metric not in out["cover_fixed"]:
            j = judge(zero, metric, cand, base, ctx, spec, per_test, sequential=False)
            if j.verdict is MetricVerdict.HARM:
                out["cover_fixed"][g.metric] = True
        if g.metric not in out["cover_gb"]:
            if gbstats_harm(g.metric, 0.0, MarginKind.ABSOLUTE, cand, base, per_test):
                out["cover_gb"][g.metric] = True


# ---- the table -----------------------------------------------------------------------------------------


def clopper_pearson_upper(k: int, n: int, conf: float = 0.95) -> float:
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(conf, k + 1, n - k))


def median_iqr(values: list[float]) -> str:
    if not values:
        return "—"
    q = np.percentile(values, [25, 50, 75])
    return f"{q[1]:.0f} [{q[0]:.0f}–{q[2]:.0f}]"


def tasks_for(args) -> list[tuple]:
    stages = [s.strip() for s in args.stages.split(",")] if args.stages else list(STAGES)
    out = []
    for stage in stages:
        out += [("aa", "ni", stage, "aa", seed) for seed in range(args.runs)]
    wanted = [s.strip() for s in args.scenarios.split(",")] if getattr(args, "scenarios", "") else None
    for scenario in REGRESSIONS:
        if wanted is not None and not any(scenario.startswith(w) for w in wanted):
            continue
        for stage in ("5%", "20%"):
            if stage in stages:
                out += [("regression", "ni", stage, scenario, 20_000 + seed) for seed in range(args.regression_runs)]
    return out


def report(results: list[dict], args, elapsed: float, load: tuple[float, float, float]) -> dict:
    rule = rules()["seed"]
    budget = alpha_budget(rule.spec, bool(rule.segments))
    table: dict = {"aa": [], "coverage": [], "regressions": []}
    for rname in ("seed", "ni"):
        key = "seed_advance" if rname == "seed" else "advance"
        for stage in STAGES:
            rows = [r for r in results if r["kind"] == "aa" and r["stage"] == stage]
            if not rows:
                continue
            n = len(rows)
            k = sum(r["rollback"] is not None for r in rows)
            adv = [r[key] for r in rows if r[key] is not None and (r["rollback"] is None or r["rollback"] > r[key])]
            gb = sum(r["gb_any"] is not None for r in rows)
            st = stage_spec(rules()[rname], stage)
            etas = [r["eta_s"] for r in rows if r["advance"] is None and r["eta_s"] is not None] if rname == "ni" else []
            none_eta = sum(1 for r in rows if r["advance"] is None and r["eta_s"] is None) if rname == "ni" else 0
            table["aa"].append({
                "rule": rname, "stage": stage, "runs": n, "false_rollback": k / n, "upper95": clopper_pearson_upper(k, n),
                "advance_within_2x_dwell": len(adv) / n, "advance_minutes_median": (
                    statistics.median(adv) * LOOK_S / 60 if adv else None),
                "dwell_min": st.min_dwell_s / 60,
                "eta_minutes_median_when_not_advanced": statistics.median(etas) / 60 + 2 * st.min_dwell_s / 60 if etas else None,
                "no_eta_share": none_eta / n, "gbstats_false_harm": gb / n if stage != "internal" else None,
                "reasons": sorted({r.get("rollback_why", "") for r in rows if r["rollback"] is not None})[:3],
            })
    cov = [r for r in results if r["kind"] == "aa" and r["stage"] == "20%"]
    if cov:
        names = list(COVERAGE_METRICS)
        for m in names:
            n = len(cov)
            table["coverage"].append({"metric": m, "runs": n,
                                      "routedeck": sum(m in r["cover"] for r in cov) / n,
                                      "fixed_horizon_peeking": sum(m in r["cover_fixed"] for r in cov) / n,
                                      "gbstats": sum(m in r["cover_gb"] for r in cov) / n})
    for scenario in REGRESSIONS:
        for stage in ("5%", "20%"):
            rows = [r for r in results if r["kind"] == "regression" and r["scenario"] == scenario and r["stage"] == stage]
            if not rows:
                continue
            n = len(rows)
            rd = [r["harm"] for r in rows if r["harm"] is not None]
            gb = [r["gb_harm"] for r in rows if r["gb_harm"] is not None]
            rb = sum(r["rollback"] is not None for r in rows)
            table["regressions"].append({
                "scenario": scenario, "stage": stage, "runs": n, "metric": REGRESSIONS[scenario][0],
                "routedeck_detected": len(rd) / n, "routedeck_looks": median_iqr(rd),
                "routedeck_median": statistics.median(rd) if rd else None, "rolled_back": rb / n,
                "gbstats_detected": len(gb) / n if REGRESSIONS[scenario][0] != "join" else None,
                "gbstats_looks": median_iqr(gb) if REGRESSIONS[scenario][0] != "join" else "—",
                "gbstats_median": statistics.median(gb) if gb else None,
                "horizon_looks": int(2 * stage_spec(rules()["ni"], stage).min_dwell_s // LOOK_S)})
    meta = {"elapsed_s": elapsed, "workers": args.workers, "load_before": load, "load_after": os.getloadavg(),
            "per_test_alpha": budget.per_test, "stage_alpha": budget.stage, "tests": budget.tests,
            "rollout_bound": budget.rollout, "look_s": LOOK_S, "rate_rps": RATE_RPS}
    return {"meta": meta, **table}


def _share(x: float) -> str:
    """100%, 24%, 0.5%, 0%: whole percents, except a share under 10% that is not zero (one run in 200 shows)."""
    return f"{x:.1%}" if 0 < x < 0.1 else f"{x:.0%}"


def print_markdown(t: dict) -> None:
    m = t["meta"]
    print(f"Guardrail benchmark — a look every {m['look_s']:.0f} s, {m['rate_rps']} eligible requests/s, per-test α "
          f"{m['per_test_alpha']:.4f} ({m['tests']} tests in the stage's α {m['stage_alpha']:g}; whole rollout ≤ "
          f"{m['rollout_bound']:g}); {m['elapsed_s'] / 60:.1f} min on {m['workers']} workers, load average "
          f"{m['load_before'][0]:.1f} before / {m['load_after'][0]:.1f} after\n")
    print("A/A (identical candidate), each stage for twice its minimum dwell\n")
    print("| rule | stage | runs | false ROLLBACK | 95% upper | gbstats false harm | ADVANCE ≤ 2× dwell | "
          "median min to ADVANCE | est. min to ADVANCE (rest) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in t["aa"]:
        gb = "—" if r["gbstats_false_harm"] is None else f"{r['gbstats_false_harm']:.1%}"
        adv_min = "—" if r["advance_minutes_median"] is None else f"{r['advance_minutes_median']:.1f}"
        eta = "—" if r["eta_minutes_median_when_not_advanced"] is None else f"{r['eta_minutes_median_when_not_advanced']:.0f}"
        print(f"| {r['rule']} | {r['stage']} | {r['runs']} | {r['false_rollback']:.2%} | {r['upper95']:.2%} | {gb} | "
              f"{r['advance_within_2x_dwell']:.1%} | {adv_min} | {eta} |")
    if t["coverage"]:
        print("\nMargin-0 A/A coverage at the 20% stage (share of runs whose harm-side bound ever crossed 0; "
              f"nominal ≤ {m['per_test_alpha']:.4f} per test)\n")
        print("| metric | runs | routedeck | fixed-horizon, peeking | gbstats |")
        print("|---|---|---|---|---|")
        for r in t["coverage"]:
            print(f"| {r['metric']} | {r['runs']} | {r['routedeck']:.2%} | {r['fixed_horizon_peeking']:.2%} | "
                  f"{r['gbstats']:.2%} |")
    print("\nRegressions (non-inferiority rule): detected within twice the minimum dwell, looks to the first harm "
          "readout median [IQR]\n")
    print("| regression | stage | runs | metric | routedeck detected | routedeck looks | rolled back | "
          "gbstats detected | gbstats looks |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in t["regressions"]:
        gbd = "—" if r["gbstats_detected"] is None else _share(r["gbstats_detected"])
        print(f"| {r['scenario']} | {r['stage']} | {r['runs']} | {r['metric']} | {_share(r['routedeck_detected'])} | "
              f"{r['routedeck_looks']} | {_share(r['rolled_back'])} | {gbd} | {r['gbstats_looks']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs per A/A row and for the coverage table")
    parser.add_argument("--regression-runs", type=int, default=200, help="runs per regression row")
    parser.add_argument("--stages", default="", help="comma-separated subset of " + ", ".join(STAGES).replace("%", "%%"))
    parser.add_argument("--scenarios", default="", help="comma-separated regression rows to run (by the start of "
                        "their name, e.g. 'quality,cost'; default: all)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--quick", action="store_true", help="a few runs per row, for development")
    parser.add_argument("--json", metavar="FILE", help="also write the table as JSON to FILE ('-': stdout only)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.regression_runs = min(args.runs, 40), min(args.regression_runs, 20)
    try:
        import gbstats  # noqa: F401
    except ImportError:
        print("benchmarks/guardrails.py: gbstats is not installed — run `make bench` (it installs the benchmark "
              "extra)", file=sys.stderr)
        return 2
    problem = check_rules()
    if problem:
        print(f"benchmarks/guardrails.py: {problem}", file=sys.stderr)
        return 2
    problem = check_comparator()
    if problem:
        print(f"benchmarks/guardrails.py: the gbstats comparator disagrees with its published formula ({problem})",
              file=sys.stderr)
        return 2
    load = os.getloadavg()
    started = time.perf_counter()
    tasks = tasks_for(args)
    # long tasks first, so the pool's last minutes are not one straggler
    tasks.sort(key=lambda t: (t[2] != "20%", t[2] not in ("full 5%", "full 2%")))
    results = []
    with Pool(args.workers) as pool:
        for i, r in enumerate(pool.imap_unordered(one_run, tasks, chunksize=8), start=1):
            results.append(r)
            if i % 500 == 0 or i == len(tasks):
                print(f"  {i}/{len(tasks)} runs, {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr,
                      flush=True)
    table = report(results, args, time.perf_counter() - started, load)
    if args.json == "-":
        print(json.dumps(table, indent=2))
    else:
        print_markdown(table)
        if args.json:
            Path(args.json).write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
