"""The simulator produces what its parameters say, deterministically, clustered by unit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from console.core.errors import BadInput
from console.core.models import Allocation, RouteFlag
from console.core.simulator import SCENARIOS, get_scenario
from console.core.simulator.engine import TrafficSimulator
from console.core.simulator.evaluator import FlagdFileEvaluator
from console.core.simulator.portfolio import BEHAVIOURS, demo_flags
from console.core.telemetry import Arm, RouteKey

FLAG = "support-answer-route"
START = 1_700_000_000.0


def write_flags(path: Path, candidate_bp: int = 500, internal: bool = True) -> None:
    """A flag file in routedeck's shape, written without the adapter (the simulator must not need it)."""
    flags = {}
    for flag in demo_flags():
        body = {
            "state": "ENABLED",
            "defaultVariant": flag.baseline,
            "variants": {n: p.to_wire() for n, p in flag.variations.items()},
            "metadata": {"routedeck.baseline": flag.baseline},
        }
        if flag.candidate:
            body["metadata"]["routedeck.candidate"] = flag.candidate
            branches = []
            if internal:
                branches += [{"==": [{"var": "audience"}, "internal_support_team"]}, flag.candidate]
            branches += [
                {"==": [{"var": "scope"}, "english_support_chat"]},
                {"fractional": [[flag.candidate, candidate_bp], [flag.baseline, 10_000 - candidate_bp]]},
                flag.baseline,
            ]
            body["targeting"] = {"if": branches}
        flags[flag.key] = body
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"flags": flags}))
    tmp.replace(path)


def make_sim(tmp_path: Path, scenario: str = "steady", seed: int = 11, bp: int = 500, rate: float = 30.0) -> TrafficSimulator:
    path = tmp_path / "flags.json"
    write_flags(path, bp)
    return TrafficSimulator(FlagdFileEvaluator(path), get_scenario(scenario), seed=seed, rate_rps=rate, start_time=START)


def test_unknown_scenario_names_the_valid_ones():
    with pytest.raises(BadInput, match="steady"):
        get_scenario("meltdown")


def test_same_seed_same_stream_and_shorter_run_is_a_prefix(tmp_path):
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    a = make_sim(tmp_path / "a")
    b = make_sim(tmp_path / "b")
    a.advance_to(START + 300)
    b.advance_to(START + 120)
    la, lb = a.log(), b.log()
    n = len(lb["t"])
    assert n > 0 and len(la["t"]) > n
    for col in ("t", "unit", "key", "err", "cost", "latency", "resolved", "joined"):
        np.testing.assert_array_equal(la[col][:n], lb[col])
    c = make_sim(tmp_path / "c", seed=12)
    c.advance_to(START + 120)
    assert not np.array_equal(c.log()["unit"][:50], lb["unit"][:50])


def test_rates_and_shares_match_parameters(tmp_path):
    sim = make_sim(tmp_path, bp=2000, rate=60)
    sim.advance_to(START + 1800)
    snap = sim.snapshot(START, START + 1800, 1800)
    base = snap.totals[RouteKey(FLAG, "fast_default_v1", Arm.BASELINE)]
    cand = snap.totals[RouteKey(FLAG, "balanced_core_v2", Arm.CANDIDATE)]
    requests = sum(c.requests for c in snap.totals.values())
    assert requests == pytest.approx(60 * 1800, rel=0.02)
    # 20% of the eligible scope (English support) + the internal audience: about 17% of support traffic
    share = cand.requests / (cand.requests + base.requests)
    assert 0.12 < share < 0.26
    beh = BEHAVIOURS["fast_default_v1"]
    assert base.rate_limited / base.requests == pytest.approx(beh.rate_limit_rate, abs=0.003)
    # provider errors plus timeouts make up the errors
    assert base.errors >= base.rate_limited
    # outcomes are joined at the configured probability (the newest have not arrived yet)
    assert base.outcomes / base.exposures == pytest.approx(beh.join_probability, abs=0.06)
    # every failed call fell back (the baseline profile names a fallback)
    assert base.fallbacks == base.errors
    assert snap.fallback_served[(FLAG, "fallback_baseline_v1")] >= base.fallbacks


def test_fallback_cost_counts_against_the_assigned_route(tmp_path):
    sim = make_sim(tmp_path, scenario="provider-outage", bp=5000)
    sim.advance_to(START + 600)
    log = sim.log()
    fell = log["fallback"] & (log["err"] == 1)
    assert fell.any()
    # a failed call with a fallback still costs money (the fallback's answer), billed to the assigned key
    assert (log["cost"][fell] > 0).all()
    keys = {sim.key_of(int(k)).route for k in np.unique(log["key"][fell])}
    assert "fallback_baseline_v1" not in keys  # never billed to the route it fell to


def test_units_make_several_requests_and_are_clustered(tmp_path):
    sim = make_sim(tmp_path, bp=5000, rate=60)
    sim.advance_to(START + 1200)
    units = sim.units(FLAG, START)
    reqs = np.array([u.requests for u in units])
    assert reqs.mean() > 1.5 and reqs.max() >= 8
    # between-unit variance of the per-unit cost per request exceeds what independent requests would give
    heavy = [u for u in units if u.requests >= 4 and u.arm is Arm.BASELINE]
    per_unit = np.array([u.cost_usd / u.requests for u in heavy])
    log = sim.log()
    base_key = sim._key_index[RouteKey(FLAG, "fast_default_v1", Arm.BASELINE)]
    costs = log["cost"][log["key"] == base_key]
    n = np.mean([u.requests for u in heavy])
    assert per_unit.var() > 1.5 * costs.var() / n


def test_each_regression_moves_its_metric_on_the_candidate_only(tmp_path):
    def totals(scenario):
        d = tmp_path / scenario
        d.mkdir()
        sim = make_sim(d, scenario=scenario, bp=5000, rate=40)
        sim.advance_to(START + 900)
        snap = sim.snapshot(START, START + 900, 900)
        return (snap.totals[RouteKey(FLAG, "balanced_core_v2", Arm.CANDIDATE)],
                snap.totals[RouteKey(FLAG, "fast_default_v1", Arm.BASELINE)])

    steady_c, steady_b = totals("steady")
    lat_c, lat_b = totals("latency-regression")
    assert lat_c.slo_met / lat_c.requests < steady_c.slo_met / steady_c.requests - 0.15
    assert lat_b.slo_met / lat_b.requests == pytest.approx(steady_b.slo_met / steady_b.requests, abs=0.02)
    q_c, _ = totals("quality-regression")
    assert q_c.resolved / q_c.outcomes < steady_c.resolved / steady_c.outcomes - 0.08
    out_c, out_b = totals("provider-outage")
    assert out_c.fallbacks / out_c.requests > 0.25 and out_b.fallbacks / out_b.requests < 0.05
    cost_c, _ = totals("cost-spike")
    assert cost_c.cost_usd / cost_c.requests > 2 * steady_c.cost_usd / steady_c.requests
    join_c, join_b = totals("join-break")
    assert join_c.outcomes / join_c.exposures < 0.4 and join_b.outcomes / join_b.exposures > 0.85


def test_aa_candidate_matches_baseline(tmp_path):
    sim = make_sim(tmp_path, scenario="aa", bp=5000, rate=60)
    sim.advance_to(START + 1200)
    snap = sim.snapshot(START, START + 1200, 1200)
    c = snap.totals[RouteKey(FLAG, "balanced_core_v2", Arm.CANDIDATE)]
    b = snap.totals[RouteKey(FLAG, "fast_default_v1", Arm.BASELINE)]
    for num, den in (("resolved", "outcomes"), ("fallbacks", "requests"), ("slo_met", "requests")):
        pc, pb = getattr(c, num) / getattr(c, den), getattr(b, num) / getattr(b, den)
        assert pc == pytest.approx(pb, abs=0.03), num
    assert c.cost_usd / c.requests == pytest.approx(b.cost_usd / b.requests, rel=0.1)


def test_rollback_written_mid_run_sends_new_requests_to_baseline(tmp_path):
    path = tmp_path / "flags.json"
    sim = make_sim(tmp_path, bp=5000)
    sim.advance_to(START + 120)
    write_flags(path, candidate_bp=0, internal=False)
    sim.advance_to(START + 240)
    snap = sim.snapshot(START + 121, START + 240, 60)
    cand = snap.totals.get(RouteKey(FLAG, "balanced_core_v2", Arm.CANDIDATE))
    assert cand is None or cand.requests == 0
    assert snap.totals[RouteKey(FLAG, "fast_default_v1", Arm.BASELINE)].requests > 500


def test_cached_assignment_equals_a_fresh_evaluation(tmp_path):
    sim = make_sim(tmp_path, bp=2000)
    sim.advance_to(START + 60)
    fresh = FlagdFileEvaluator(tmp_path / "flags.json")
    checked = 0
    for (flag, unit, _service), row in list(sim._assign.items())[:400]:
        _variant, profile, arm = fresh.evaluate(flag, sim.pop.ids[unit], sim.pop.context(unit))
        key = sim.key_of(sim._eff_rows[row]["key"])
        assert (key.route, key.arm) == (profile["route"], arm)
        checked += 1
    assert checked >= 100


def test_every_scenario_runs(tmp_path):
    for name in SCENARIOS:
        d = tmp_path / name
        d.mkdir()
        sim = make_sim(d, scenario=name)
        sim.advance_to(START + 30)
        assert len(sim.log()["t"]) > 100


def test_invalid_flag_file_mid_run_keeps_last_good_config(tmp_path):
    path = tmp_path / "flags.json"
    sim = make_sim(tmp_path, bp=5000)
    sim.advance_to(START + 30)
    path.write_text("{ broken")
    sim.advance_to(START + 60)
    assert sim.evaluator.error and "last good" in sim.evaluator.error
    snap = sim.snapshot(START + 31, START + 60, 30)
    assert snap.totals[RouteKey(FLAG, "balanced_core_v2", Arm.CANDIDATE)].requests > 0


def test_units_report_crossover_and_maturity(tmp_path):
    path = tmp_path / "flags.json"
    sim = make_sim(tmp_path, bp=5000, rate=60)
    sim.advance_to(START + 300)
    write_flags(path, candidate_bp=0, internal=False)  # units that had the candidate now get baseline
    sim.advance_to(START + 600)
    units = sim.units(FLAG, START, maturation_s=120)
    assert any(u.crossed for u in units)
    assert all(u.mature_outcomes <= u.mature_exposures <= u.exposures for u in units)
    assert all(u.outcomes <= u.exposures for u in units)


def test_demo_flags_are_valid_route_flags():
    flags = demo_flags()
    assert {f.key for f in flags} == {"support-answer-route", "hard-case-route", "classify-route"}
    support = next(f for f in flags if f.key == FLAG)
    assert isinstance(support, RouteFlag) and support.allocation == Allocation(
        internal_audience="internal_support_team", internal_enabled=True,
        eligible_scope="english_support_chat", candidate_bp=500,
    )
