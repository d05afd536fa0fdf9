"""Segment readouts: e-values per (segment, guardrail), e-BH across the family, "no data" never a pass."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from console.core.rules import parse_rule
from console.core.simulator import get_scenario
from console.core.simulator.engine import TrafficSimulator
from console.core.simulator.evaluator import FlagdFileEvaluator
from console.core.simulator.fastpath import UnitPool, run_stage
from console.core.stats.segments import (
    MISSING,
    e_bh,
    harm_e_value,
    readout_from_columns,
    segment_readout,
)
from console.core.stats.sequences import cs_half_width, difference, ratio_estimate, rho_for
from console.core.stats.spec import MarginKind, MetricVerdict
from console.core.telemetry import Arm, UnitRecord

from .test_sim_traffic import FLAG, START, write_flags

RULE = """
llm_route_decision:
  flag_key: support-answer-route
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  first_audience: internal_support_team
  eligible_scope: english_support_chat
  primary_metric: resolved_without_escalation
  guardrails:
    - p95_latency
    - {metric: cost_per_resolved_case, margin: 35%, severity: normal}
    - correction_rate
    - fallback_rate
  segments: [region, plan]
"""

REGIONS = np.array(["us", "eu", "apac"], dtype=object)
PLANS = np.array(["free", "pro", "enterprise"], dtype=object)


def rule():
    return parse_rule(RULE)


def test_e_bh_rejects_the_k_largest_that_clear_k_over_alpha_k():
    # K=3, α=0.05: the largest needs 60, the two largest need 30 each, all three need 20 each
    assert e_bh([1000.0, 5.0, 0.0], 0.05) == {0}
    assert e_bh([31.0, 30.0, 1.0], 0.05) == {0, 1}
    assert e_bh([59.0, 1.0, 1.0], 0.05) == set()
    assert e_bh([20.0, 20.0, 20.0], 0.05) == {0, 1, 2}
    assert e_bh([], 0.05) == set()


def test_e_value_is_the_mixture_behind_the_engines_confidence_sequence():
    """At the two-sided sequence's boundary the one-sided e-value is 2Φ(S/√a)/α: the same mixture, one side."""
    alpha, planned, n, var, margin = 0.05, 2000, 1500, 4e-5, 0.02
    rho = rho_for(planned, alpha)
    delta = margin + cs_half_width(var, n, alpha, planned)
    s = math.sqrt(n) * (delta - margin) / math.sqrt(var)
    a = n + 1 / rho**2
    expected = 2 * 0.5 * math.erfc(-s / math.sqrt(2 * a)) / alpha
    assert harm_e_value(delta, var, n, margin, True, rho) == pytest.approx(expected, rel=1e-9)
    # lower is worse: the mirror image gives the same evidence
    assert harm_e_value(-delta, var, n, margin, False, rho) == pytest.approx(expected, rel=1e-9)
    # at the margin itself there is no evidence of harm, and inside it less still
    assert harm_e_value(margin, var, n, margin, True, rho) < 1
    assert harm_e_value(0.0, var, n, margin, True, rho) < harm_e_value(margin, var, n, margin, True, rho)


def _labels(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {"region": rng.choice(REGIONS, n, p=[0.5, 0.3, 0.2]), "plan": rng.choice(PLANS, n, p=[0.5, 0.35, 0.15])}


def _naive_flags(spec, cand, base, lc, lb) -> bool:
    """Fixed-horizon one-sided z-tests per (segment, metric) and plain BH at α: valid for one look only."""
    from console.core.registry import lookup

    p_values = []
    tests = [replace(g, margin=0.0) for g in spec.guardrails if lookup(g.metric).numerator is not None]
    for attr in lc:
        for value in set(lc[attr]) | set(lb[attr]):
            c = {f: v[lc[attr] == value] for f, v in cand.items()}
            b = {f: v[lb[attr] == value] for f, v in base.items()}
            for g in tests:
                m = lookup(g.metric)
                d = difference(ratio_estimate(c[m.numerator], c[m.denominator]),
                               ratio_estimate(b[m.numerator], b[m.denominator]), spec.alpha, 500)
                spread = (d.candidate.variance or 0.0) + (d.baseline.variance or 0.0) if d.delta is not None else 0.0
                if spread <= 0:
                    continue  # no events on either arm: a z-test has nothing to say
                z = d.delta / math.sqrt(spread)
                p_values.append(0.5 * math.erfc((z if m.worse_is_higher else -z) / math.sqrt(2)))
    p = np.sort(np.array(p_values))
    k = len(p)
    return bool(k and np.any(p <= spec.alpha * np.arange(1, k + 1) / k))


@pytest.mark.slow
def test_aa_flags_no_segment_in_at_most_alpha_of_rollouts_looked_at_repeatedly():
    """200 seeded A/A stages, 6 looks each, margins set to zero (the hardest null): the share of stages in which
    any segment is ever flagged stays within α, while fixed-horizon BH on the same data exceeds it."""
    spec = rule().spec
    spec = replace(spec, guardrails=tuple(replace(g, margin=0.0, min_events=0) for g in spec.guardrails),
                   primary=replace(spec.primary, margin=0.0))
    pool = UnitPool.make(n=6000, seed=1)
    aa = get_scenario("aa")
    seeds = 200
    flagged = naive = 0
    for seed in range(seeds):
        run = run_stage(pool, aa, seed, candidate_bp=5000, seconds=1200, rate_rps=6, look_every=200)
        rng = np.random.default_rng([seed, 0x5E6])
        # pre-exposure labels, drawn independently of everything the route does
        lab_c = _labels(rng, run.cand["requests"].shape[1])
        lab_b = _labels(rng, run.base["requests"].shape[1])
        ever = ever_naive = False
        for k in range(len(run.look_times)):
            cand, base = run.at(k)
            lc = {a: v[: run.seen_cand[k]] for a, v in lab_c.items()}
            lb = {a: v[: run.seen_base[k]] for a, v in lab_b.items()}
            readout = readout_from_columns(spec, cand, base, lc, lb, ("region", "plan"))
            ever = ever or bool(readout.harmed)
            ever_naive = ever_naive or _naive_flags(spec, cand, base, lc, lb)
        flagged += ever
        naive += ever_naive
    assert readout.hypotheses == 6 * 5  # 6 segment values × (primary + 4 guardrails)
    assert flagged / seeds <= spec.alpha
    assert naive / seeds > spec.alpha, "the harness must tell a sequential method from a naive one"


def _units(tmp_path: Path, scenario: str, minutes: int = 30, seed: int = 3) -> list[UnitRecord]:
    path = tmp_path / "flags.json"
    write_flags(path, 5000)
    sim = TrafficSimulator(FlagdFileEvaluator(path), get_scenario(scenario), seed=seed, rate_rps=30, start_time=START)
    sim.advance_to(START + minutes * 60)
    return sim.units(FLAG, START, 120)


def test_harm_in_one_region_flags_that_region_only(tmp_path):
    r = rule()
    readout = segment_readout(r.spec, r.segments, _units(tmp_path, "region-regression"), r.comparable())
    regions = {v for a, v in readout.harmed if a == "region"}
    assert regions == {"eu"}
    eu = [row for row in readout.rows if row.segment == ("region", "eu") and row.harm]
    row = eu[0]
    assert row.metric == "resolved_without_escalation"
    assert row.candidate < row.baseline and row.interval[1] < -row.margin
    assert row.n_candidate >= 100 and row.n_baseline >= 100 and row.p_value < 1e-3
    assert "harm" in row.line() and "region=eu" in row.line()
    # the other regions have their own, clean rows
    for value in ("us", "apac"):
        rows = [x for x in readout.rows if x.segment == ("region", value)]
        assert len(rows) == 5 and not any(x.harm for x in rows)


def test_the_same_traffic_without_the_regression_flags_nothing(tmp_path):
    r = rule()
    readout = segment_readout(r.spec, r.segments, _units(tmp_path, "aa"), r.comparable())
    assert readout.harmed == []
    assert readout.hypotheses == 6 * 5


def _record(i: int, arm: Arm, region: str | None, resolved: int, outcomes: int = 10) -> UnitRecord:
    seg = {"plan": "pro"}
    if region is not None:
        seg["region"] = region
    rec = UnitRecord(unit_id=f"u{i}", flag=FLAG, arm=arm, route="r", segment=seg, first_seen=0.0, cost_usd=0.01 * outcomes)
    rec.requests = rec.exposures = rec.successes = rec.slo_met = outcomes
    rec.outcomes, rec.resolved, rec.escalated = outcomes, resolved, outcomes - resolved
    return rec


def test_a_segment_with_too_few_units_reads_no_data_never_a_pass():
    r = rule()
    units = [_record(i, Arm.CANDIDATE if i % 2 else Arm.BASELINE, "us", 0) for i in range(400)]
    # ten units in eu: a candidate resolving nothing there still cannot be judged
    units += [_record(1000 + i, Arm.CANDIDATE if i % 2 else Arm.BASELINE, "eu", 0 if i % 2 else 10) for i in range(10)]
    readout = segment_readout(r.spec, ("region",), units)
    eu = [row for row in readout.rows if row.segment == ("region", "eu")]
    assert eu and all(row.verdict is MetricVerdict.NO_DATA and row.e_value == 0 for row in eu)
    assert all("too few units" in row.note for row in eu)
    assert readout.harmed == []


def test_an_attribute_the_source_lacks_is_no_data_and_said_so():
    r = rule()
    units = [_record(i, Arm.CANDIDATE if i % 2 else Arm.BASELINE, None, 5) for i in range(200)]
    readout = segment_readout(r.spec, ("region",), units)
    assert readout.rows and all(row.value == MISSING and row.verdict is MetricVerdict.NO_DATA for row in readout.rows)
    assert any("no unit carries the segment attribute 'region'" in n for n in readout.notes)


def test_request_level_sources_and_stages_without_control_give_no_rows():
    r = rule()
    assert segment_readout(r.spec, r.segments, None).rows == []
    assert "unit-level" in segment_readout(r.spec, r.segments, None).notes[0]
    units = [_record(i, Arm.CANDIDATE, "us", 5) for i in range(100)]
    assert "no concurrent baseline" in segment_readout(r.spec, r.segments, units, has_control=False).notes[0]


def test_an_excluded_segment_keeps_its_rows_marked_and_never_flagged():
    r = rule()
    units = [_record(i, Arm.CANDIDATE if i % 2 else Arm.BASELINE, "us", 5) for i in range(200)]
    readout = segment_readout(r.spec, ("region",), units, excluded=(("region", "eu"),))
    eu = [row for row in readout.rows if row.segment == ("region", "eu")]
    assert eu and all(row.note == "excluded from the candidate" and not row.harm for row in eu)


def test_a_share_burn_in_holds_judgement_but_not_evidence_of_harm():
    r = rule()
    spec = replace(r.spec, guardrails=tuple(replace(g, min_events=10_000) for g in r.spec.guardrails))
    cand = {f: np.ones(500) for f in ("requests", "outcomes", "resolved", "corrected", "fallbacks", "slo_met",
                                       "cost_usd", "successes", "errors")}
    base = dict(cand)
    cand = cand | {"corrected": np.ones(500), "resolved": np.ones(500)}
    base = base | {"corrected": np.zeros(500)}
    lc, lb = {"region": np.full(500, "us", dtype=object)}, {"region": np.full(500, "us", dtype=object)}
    # a burn-in of 10,000 expected events is far away, but the any-n sequence still sees the harm
    readout = readout_from_columns(spec, cand, base, lc, lb, ("region",))
    corr = next(row for row in readout.rows if row.metric == "correction_rate")
    assert corr.harm and corr.e_value > 1e6
    # the same arms with no difference: no evidence, and the burn-in keeps it from being judged non-inferior
    same = readout_from_columns(spec, base, base, lb, lb, ("region",))
    row = next(row for row in same.rows if row.metric == "correction_rate")
    assert not row.harm and row.e_value < 1 and row.verdict is MetricVerdict.INCONCLUSIVE and "burn-in" in row.note


def test_the_aggregate_path_refuses_a_region_bound_scenario():
    from console.core.errors import BadInput

    with pytest.raises(BadInput, match="bound to region eu, which the aggregate path does not model"):
        run_stage(UnitPool.make(n=100, seed=1), get_scenario("region-regression"), 0, candidate_bp=5000, seconds=10,
                  rate_rps=1)
