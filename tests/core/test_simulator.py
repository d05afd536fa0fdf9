"""The traffic simulator: its statistics follow its parameters, deterministically, clustered by unit."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from console.core.errors import BadInput
from console.core.simulator import SCENARIOS, get_scenario
from console.core.simulator.engine import ERR_429, ERR_ERROR, ERR_NONE, ERR_TIMEOUT, TrafficSimulator
from console.core.simulator.evaluator import FlagdFileEvaluator
from console.core.simulator.events import OutcomeEvent, RequestEvent
from console.core.simulator.portfolio import BEHAVIOURS, demo_flags
from console.core.telemetry import LATENCY_BOUNDS_MS, Arm, RouteKey, histogram_quantile

FLAG = "support-answer-route"
BASE = RouteKey(FLAG, "fast_default_v1", Arm.BASELINE)
CAND = RouteKey(FLAG, "balanced_core_v2", Arm.CANDIDATE)
START = 1_700_000_000.0


def write_flag_file(
    path: Path,
    candidate_bp: int = 500,
    internal: bool = True,
    overrides: dict[str, dict[str, Any]] | None = None,
    drop: tuple[str, ...] = (),
) -> None:
    """A flag file in the shape routedeck's flagd adapter writes (built here, without the adapter).

    ``overrides`` patches route profiles by variant name; ``drop`` leaves flags out.
    """
    flags: dict[str, Any] = {}
    for flag in demo_flags():
        if flag.key in drop:
            continue
        variants = {n: {**p.to_wire(), **(overrides or {}).get(n, {})} for n, p in flag.variations.items()}
        body: dict[str, Any] = {
            "state": "ENABLED",
            "defaultVariant": flag.baseline,
            "variants": variants,
            "metadata": {"routedeck.baseline": flag.baseline},
        }
        if flag.candidate:
            body["metadata"]["routedeck.candidate"] = flag.candidate
            branches: list[Any] = []
            if internal:
                branches += [{"==": [{"var": "audience"}, "internal_support_team"]}, flag.candidate]
            branches += [
                {"==": [{"var": "scope"}, "english_support_chat"]},
                {"fractional": [[flag.candidate, candidate_bp], [flag.baseline, 10_000 - candidate_bp]]},
                flag.baseline,
            ]
            body["targeting"] = {"if": branches}
        flags[flag.key] = body
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"flags": flags}))
    tmp.replace(path)


def make_sim(directory: Path, scenario: str = "steady", *, seed: int = 11, bp: int = 500, rate: float = 30.0,
             **kw: Any) -> TrafficSimulator:
    path = directory / "flags.json"
    if not path.exists():
        write_flag_file(path, bp)
    return TrafficSimulator(FlagdFileEvaluator(path), demo_flags(), scenario, seed, rate_rps=rate, start_time=START, **kw)


def totals(sim: TrafficSimulator, start: float, end: float):
    return sim.snapshot(start, end, end - start).totals


@pytest.fixture(scope="module")
def steady(tmp_path_factory):
    """Twenty simulated minutes of steady traffic at 20% with every event recorded."""
    sim = make_sim(tmp_path_factory.mktemp("steady"), bp=2000, rate=60)
    events: list = []
    sim.add_listener(events.extend)
    sim.advance_to(START + 1200)
    return sim, events


# ---- scenarios ---------------------------------------------------------------------


def test_unknown_scenario_is_refused_naming_the_valid_ones(tmp_path):
    with pytest.raises(BadInput) as err:
        get_scenario("meltdown")
    assert all(name in str(err.value) for name in SCENARIOS)
    with pytest.raises(BadInput):
        make_sim(tmp_path, "meltdown")


def test_every_scenario_has_a_one_line_description():
    assert set(SCENARIOS) == {"steady", "aa", "latency-regression", "quality-regression", "provider-outage",
                              "cost-spike", "join-break", "region-regression"}
    assert all(s.description and "\n" not in s.description for s in SCENARIOS.values())


# ---- determinism ---------------------------------------------------------------------


def test_same_seed_gives_the_same_stream_and_a_shorter_run_is_a_prefix(tmp_path):
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    a, b = make_sim(tmp_path / "a"), make_sim(tmp_path / "b")
    heard_a: list = []
    heard_b: list = []
    a.add_listener(heard_a.extend)
    b.add_listener(heard_b.extend)
    a.advance_to(START + 300)  # generated a block of ticks at a time
    for t in (17, 18, 60.5, 61, 120):  # uneven steps must not change anything
        b.advance_to(START + t)
    la, lb = a.log(), b.log()
    n = len(lb["t"])
    assert n > 2000 and len(la["t"]) > n
    for col in la:
        np.testing.assert_array_equal(la[col][:n], lb[col], err_msg=col)
    # the listeners hear the same requests and outcomes, tick by tick, however the ticks were batched
    assert len(heard_a) > len(heard_b) > n
    assert heard_a[:len(heard_b)] == heard_b
    # the outcomes that have arrived by 120 s are the same in both runs
    sa, sb = a.snapshot(START, START + 120, 10), b.snapshot(START, START + 120, 10)
    assert [vars(c) for c in sa.totals.values()] == [vars(c) for c in sb.totals.values()]
    c = make_sim(tmp_path / "c", seed=12)
    c.advance_to(START + 120)
    assert not np.array_equal(c.log()["unit"][:100], lb["unit"][:100])


# ---- statistics follow the parameters ---------------------------------------------------


def test_request_rate_and_error_kinds_match_the_parameters(steady):
    sim, _ = steady
    log = sim.log()
    assert len(log["t"]) == pytest.approx(60 * 1200, rel=0.02)
    base = log["key"] == sim._key_index[BASE]
    beh = BEHAVIOURS["fast_default_v1"]
    n = base.sum()
    err = log["err"][base]
    assert (err == ERR_ERROR).sum() / n == pytest.approx(beh.error_rate, abs=3 * math.sqrt(beh.error_rate / n) + 1e-3)
    assert (err == ERR_429).sum() / n == pytest.approx(beh.rate_limit_rate, abs=3 * math.sqrt(beh.rate_limit_rate / n) + 1e-3)
    t = totals(sim, START, START + 1200)[BASE]
    assert t.errors == (err != ERR_NONE).sum() and t.rate_limited == (err == ERR_429).sum()
    # every failed call fell back: the baseline profile names a fallback route
    assert t.fallbacks == t.errors


def test_latency_quantiles_match_the_route_distribution(steady):
    sim, _ = steady
    beh = BEHAVIOURS["fast_default_v1"]
    hist = totals(sim, START, START + 1200)[BASE].latency_hist
    # log latency = log median + N(0, σ²) per request + N(0, 0.15²) per unit (its slowness)
    sigma = math.hypot(beh.latency_sigma, 0.15)
    p50 = histogram_quantile(hist, LATENCY_BOUNDS_MS, 0.5)
    p95 = histogram_quantile(hist, LATENCY_BOUNDS_MS, 0.95)
    assert p50 == pytest.approx(beh.latency_median_ms, rel=0.07)
    assert p95 == pytest.approx(beh.latency_median_ms * math.exp(1.645 * sigma), rel=0.1)
    cand_p50 = histogram_quantile(totals(sim, START, START + 1200)[CAND].latency_hist, LATENCY_BOUNDS_MS, 0.5)
    assert cand_p50 == pytest.approx(BEHAVIOURS["balanced_core_v2"].latency_median_ms, rel=0.1)


def test_candidate_share_follows_the_allocation(steady):
    sim, _ = steady
    units = sim.units(FLAG, START)
    pop = sim.pop
    index = {uid: i for i, uid in enumerate(pop.ids)}
    internal = [u for u in units if pop.internal[index[u.unit_id]]]
    eligible = [u for u in units if not pop.internal[index[u.unit_id]] and pop.english[index[u.unit_id]]]
    outside = [u for u in units if not pop.internal[index[u.unit_id]] and not pop.english[index[u.unit_id]]]
    assert internal and all(u.arm is Arm.CANDIDATE for u in internal)
    assert outside and all(u.arm is Arm.BASELINE for u in outside)
    share = sum(u.arm is Arm.CANDIDATE for u in eligible) / len(eligible)
    assert share == pytest.approx(0.20, abs=3 * math.sqrt(0.16 / len(eligible)))


def test_a_timeout_is_a_call_slower_than_the_profiles_timeout(tmp_path):
    path = tmp_path / "flags.json"
    # the baseline's median is 1.1 s: with a 1 s timeout more than half of its calls time out
    write_flag_file(path, 0, internal=False, overrides={"fast_default_v1": {"timeoutMs": 1000, "maxOutputTokens": 100}})
    sim = make_sim(tmp_path, rate=30)
    sim.advance_to(START + 300)
    log = sim.log()
    base = log["key"] == sim._key_index[BASE]
    share = (log["err"][base] == ERR_TIMEOUT).mean()
    sigma = math.hypot(BEHAVIOURS["fast_default_v1"].latency_sigma, 0.15)
    expected = 0.5 * math.erfc(math.log(1000 / 1100) / sigma / math.sqrt(2))
    assert share == pytest.approx(expected, abs=0.06)
    # answers are cut at the profile's maxOutputTokens (fallback answers come from the fallback route)
    plain = base & (log["err"] == ERR_NONE)
    assert log["tout"][plain].max() <= 100


def test_fallback_cost_counts_against_the_assigned_route_and_shows_where_it_went(tmp_path):
    sim = make_sim(tmp_path, "provider-outage", bp=5000)
    events: list = []
    sim.add_listener(events.extend)
    sim.advance_to(START + 600)
    snap = sim.snapshot(START, START + 600, 600)
    requests = [e for e in events if isinstance(e, RequestEvent)]
    fell = [e for e in requests if e.route == "balanced_core_v2" and e.fallback]
    assert len(fell) > 200
    # the candidate falls back to the baseline route: served there, billed to the candidate
    assert {e.served_route for e in fell} == {"fast_default_v1"}
    assert all(e.cost_usd > 0 for e in fell if e.success)
    assert snap.totals[CAND].cost_usd == pytest.approx(sum(e.cost_usd for e in requests if e.route == "balanced_core_v2"))
    assert snap.totals[BASE].requests == sum(1 for e in requests if e.route == "fast_default_v1")
    assert snap.fallback_served[(FLAG, "fast_default_v1")] == len(fell)
    base_fell = sum(1 for e in requests if e.route == "fast_default_v1" and e.fallback)
    assert snap.fallback_served[(FLAG, "fallback_baseline_v1")] == base_fell


def test_outcomes_arrive_late_and_are_joined_at_the_configured_rate(steady):
    sim, events = steady
    outcomes = [e for e in events if isinstance(e, OutcomeEvent)]
    delays = np.array([e.time - e.request_time for e in outcomes])
    assert delays.min() >= 5 and delays.max() <= 89
    assert delays.mean() == pytest.approx(47, abs=2)
    base = [e for e in outcomes if e.route == "fast_default_v1"]
    joined = np.mean([e.joined for e in base])
    assert joined == pytest.approx(BEHAVIOURS["fast_default_v1"].join_probability, abs=0.004)
    # a window counts outcomes that arrived in it and were joined
    snap = sim.snapshot(START + 600, START + 900, 300)
    arrived = [e for e in base if START + 600 <= e.time < START + 900 and e.joined]
    assert snap.totals[BASE].outcomes == len(arrived)
    assert snap.totals[BASE].resolved == sum(e.kind == "resolved" for e in arrived)


def test_requests_of_one_unit_are_correlated(steady):
    sim, events = steady
    by_unit: dict[str, list[float]] = {}
    for e in events:
        if isinstance(e, RequestEvent) and e.route == "fast_default_v1" and e.status == "ok" and e.tokens_out:
            by_unit.setdefault(e.unit_id, []).append(math.log(e.cost_usd))
    groups = [np.array(v) for v in by_unit.values() if len(v) >= 3]
    assert len(groups) > 200
    # one-way ANOVA: independent requests give F ≈ 1; units with their own verbosity give F well above
    grand = np.concatenate(groups).mean()
    k, n = len(groups), sum(len(g) for g in groups)
    msb = sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / (k - 1)
    msw = sum(((g - g.mean()) ** 2).sum() for g in groups) / (n - k)
    assert msb / msw > 2.0
    # and units make several requests each, some many (skewed activity)
    counts = np.array([u.requests for u in sim.units(FLAG, START)])
    assert counts.mean() > 2 and counts.max() > 10 * np.median(counts)


def test_buckets_add_up_to_the_totals(steady):
    sim, _ = steady
    snap = sim.snapshot(START + 100, START + 700, 60)
    assert len(snap.buckets) == 10
    summed = snap.total_of(snap.buckets)
    for key, c in snap.totals.items():
        assert summed[key].requests == c.requests and summed[key].outcomes == c.outcomes
        assert summed[key].latency_hist == c.latency_hist
        assert summed[key].provider_requests == c.provider_requests
        assert summed[key].cost_usd == pytest.approx(c.cost_usd)
    assert snap.totals[BASE].provider_requests[("provider-a", "provider-a/standard")] == snap.totals[BASE].requests


# ---- scenarios hit the candidate only ------------------------------------------------------


@pytest.fixture(scope="module")
def by_scenario(tmp_path_factory):
    out = {}
    for name in SCENARIOS:
        sim = make_sim(tmp_path_factory.mktemp(name), name, bp=5000, rate=40)
        sim.advance_to(START + 900)
        out[name] = totals(sim, START, START + 900)
    return out


def _rate(c, num: str, den: str) -> float:
    return getattr(c, num) / getattr(c, den)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "steady"])
def test_a_scenario_leaves_the_baseline_untouched(by_scenario, scenario):
    # same seed, same flag file: the baseline's requests are the very same draws
    a, b = by_scenario["steady"][BASE], by_scenario[scenario][BASE]
    assert (a.requests, a.errors, a.outcomes, a.resolved, a.latency_hist) == (
        b.requests, b.errors, b.outcomes, b.resolved, b.latency_hist)


def test_each_regression_moves_its_metric_on_the_candidate(by_scenario):
    s = by_scenario["steady"][CAND]
    lat = by_scenario["latency-regression"][CAND]
    assert histogram_quantile(lat.latency_hist, LATENCY_BOUNDS_MS, 0.95) > 1.6 * histogram_quantile(
        s.latency_hist, LATENCY_BOUNDS_MS, 0.95)
    q = by_scenario["quality-regression"][CAND]
    assert _rate(q, "resolved", "outcomes") < _rate(s, "resolved", "outcomes") - 0.10
    assert _rate(q, "corrected", "outcomes") > _rate(s, "corrected", "outcomes") + 0.03
    out = by_scenario["provider-outage"][CAND]
    assert _rate(out, "fallbacks", "requests") > 0.25 > 0.05 > _rate(s, "fallbacks", "requests")
    assert out.provider_errors[("provider-b", "provider-b/balanced", "error")] > 0.25 * out.requests
    cost = by_scenario["cost-spike"][CAND]
    assert _rate(cost, "cost_usd", "requests") > 2 * _rate(s, "cost_usd", "requests")
    assert _rate(cost, "tokens_in", "requests") > 2 * _rate(s, "tokens_in", "requests")
    join = by_scenario["join-break"][CAND]
    assert _rate(join, "outcomes", "exposures") < 0.4 < 0.85 < _rate(s, "outcomes", "exposures")


def test_steady_candidate_is_a_little_better_and_a_little_costlier(by_scenario):
    c, b = by_scenario["steady"][CAND], by_scenario["steady"][BASE]
    assert _rate(c, "resolved", "outcomes") > _rate(b, "resolved", "outcomes")
    assert _rate(c, "cost_usd", "requests") > _rate(b, "cost_usd", "requests")
    assert _rate(c, "errors", "requests") < 0.03


def test_aa_candidate_behaves_like_the_baseline(by_scenario):
    c, b = by_scenario["aa"][CAND], by_scenario["aa"][BASE]
    for num, den in (("resolved", "outcomes"), ("fallbacks", "requests"), ("slo_met", "requests"),
                     ("corrected", "outcomes")):
        pc, pb = _rate(c, num, den), _rate(b, num, den)
        se = math.sqrt(pb * (1 - pb) * (1 / getattr(c, den) + 1 / getattr(b, den))) + 1e-3
        assert abs(pc - pb) < 4 * se, num
    # heavy units make cost per request noisy; the routes' prices differ by far more than this
    assert _rate(c, "cost_usd", "requests") == pytest.approx(_rate(b, "cost_usd", "requests"), rel=0.12)
    p50 = [histogram_quantile(x.latency_hist, LATENCY_BOUNDS_MS, 0.5) for x in (c, b)]
    assert p50[0] == pytest.approx(p50[1], rel=0.08)


# ---- the flag file steers the traffic -----------------------------------------------------


def test_a_rollback_written_mid_run_sends_new_requests_to_the_baseline(tmp_path):
    path = tmp_path / "flags.json"
    write_flag_file(path, 5000)
    sim = make_sim(tmp_path)
    sim.advance_to(START + 120)
    assert totals(sim, START, START + 120)[CAND].requests > 300
    write_flag_file(path, 0, internal=False)
    sim.advance_to(START + 240)
    after = totals(sim, START + 121, START + 240)
    assert CAND not in after or after[CAND].requests == 0
    assert after[BASE].requests > 500
    units = sim.units(FLAG, START)
    assert any(u.crossed for u in units)  # units that had the candidate came back to the baseline


def test_cached_assignments_equal_fresh_evaluations(tmp_path):
    path = tmp_path / "flags.json"
    write_flag_file(path, 2000)
    sim = make_sim(tmp_path)
    sim.advance_to(START + 60)
    write_flag_file(path, 5000)  # a new revision: the cache must not carry the old split over
    sim.advance_to(START + 120)
    fresh = FlagdFileEvaluator(path)
    checked = 0
    for (flag, unit, _service), row in sim._assign.items():
        _variant, profile, arm = fresh.evaluate(flag, sim.pop.ids[unit], sim.pop.context(unit))
        key = sim.key_of(sim._eff_rows[row]["key"])
        assert (key.flag, key.route, key.arm) == (flag, profile["route"], arm)
        checked += 1
    assert checked > 1000
    assert {sim.key_of(sim._eff_rows[r]["key"]).arm for r in sim._assign.values()} >= {Arm.BASELINE, Arm.CANDIDATE}


def test_units_report_maturity_and_first_seen(steady):
    sim, _ = steady
    units = sim.units(FLAG, START + 600, maturation_s=300)
    assert units and all(u.first_seen >= START + 600 for u in units)
    assert all(u.mature_outcomes <= u.mature_exposures <= u.exposures for u in units)
    assert all(u.outcomes <= u.exposures == u.requests for u in units)
    # exposures less than 300 s old are not mature yet (one exactly 300 s old is)
    recent = sum(u.exposures for u in units) - sum(u.mature_exposures for u in units)
    assert recent == sum(totals(sim, START + 901, START + 1200)[k].requests for k in (BASE, CAND))
    seg = units[0].segment
    assert set(seg) >= {"plan", "region", "workflow"} and seg["workflow"] == "support_answer"


# ---- memory and speed -----------------------------------------------------------------------


def test_old_request_detail_is_dropped_and_a_window_beyond_it_says_so(tmp_path):
    sim = make_sim(tmp_path, keep_s=600)
    sim.advance_to(START + 1500)
    assert START + 1500 - 600 - 60 <= sim.retained_from <= START + 1500 - 600
    assert len(sim.log()["t"]) < 30 * 700
    assert sim.snapshot(START, START + 1500, 100).gaps
    assert not sim.snapshot(START + 1000, START + 1500, 100).gaps


def test_generation_and_reads_cost_a_small_share_of_a_core(tmp_path):
    sim = make_sim(tmp_path)
    sim.advance_to(START + 600)  # warm the assignment cache, as a running demo has
    began = time.process_time()
    for t in range(601, 1201):
        sim.advance_to(START + t)
        if t % 2 == 0:  # the console reads every couple of seconds
            sim.snapshot(START + t - 300, START + t, 5)
    per_second = (time.process_time() - began) / 600
    # at speed 1 this is the share of one core; 2% would be 20 ms
    assert per_second < 0.01, f"{per_second * 1000:.1f} ms per simulated second"


def test_a_window_reaching_back_before_the_start_reuses_the_buckets_that_ended(tmp_path, monkeypatch):
    """The demo's window (5 min) reaches back before its 2 min of history for its first minutes: the buckets
    that ended are still kept, so a read aggregates only the newest rows — and says what a fresh read says."""
    sim = make_sim(tmp_path)
    sim.advance_to(START + 120)
    sim.snapshot(START + 120 - 300, START + 120, 5)
    sim.advance_to(START + 125)
    aggregated = []
    real = TrafficSimulator._aggregate

    def counting(self, log, start, end, step, nb, nk):
        aggregated.append(nb)
        return real(self, log, start, end, step, nb, nk)

    monkeypatch.setattr(TrafficSimulator, "_aggregate", counting)
    kept = sim.snapshot(START + 125 - 300, START + 125, 5)
    assert aggregated == [1]  # the one bucket that ended since the last read, not all 60
    monkeypatch.undo()
    fresh = make_sim(tmp_path)
    fresh.advance_to(START + 125)
    again = fresh.snapshot(START + 125 - 300, START + 125, 5)
    assert [(b.start, b.end, b.counters) for b in kept.buckets] == [(b.start, b.end, b.counters) for b in again.buckets]
    assert kept.totals == again.totals and kept.totals[BASE].requests > 0


def test_a_sliding_window_keeps_only_the_buckets_it_can_ask_for_again_and_reads_the_same(tmp_path):
    sim = make_sim(tmp_path, rate=10)
    fresh = make_sim(tmp_path, rate=10)
    for t in range(600, 2401, 5):  # the console's window: 5 minutes on a 5 s grid, read as time moves
        sim.advance_to(START + t)
        start = (START + t - 300) // 5 * 5
        sim.snapshot(start, START + t, 5)
    # hours of ended 5 s buckets are never asked for again by a 5-minute window: not held
    assert len(sim._memo) <= 300 / 5 + 2
    sim.snapshot(START + 1200, START + 2400, 60)  # a wider window on another grid is held beside it
    assert sum(1 for step, _ in sim._memo if step == 60) == 20
    # what was dropped is read again from the request detail, exactly
    fresh.advance_to(START + 2400)
    for start, end, step in ((START + 1800, START + 2400, 5), (START + 1200, START + 2400, 60)):
        got, want = sim.snapshot(start, end, step), fresh.snapshot(start, end, step)
        assert [b.counters for b in got.buckets] == [b.counters for b in want.buckets]
        assert got.totals == want.totals


@pytest.mark.parametrize("fleet", ["cbor", "mixed"])
def test_unit_summaries_equal_the_unit_records_grouped_and_summarised(tmp_path, fleet):
    """The look reads the simulator's summaries from its per-unit columns: the same groups, in the same order,
    with the same sums to the last bit as the reference (the records, grouped by ``group_units``)."""
    from console.core.stats.summary import group_units

    path = tmp_path / "flags.json"
    write_flag_file(path, 2000)
    sim = TrafficSimulator(FlagdFileEvaluator(path, fleet=fleet), demo_flags(), "steady", 11, rate_rps=40,
                           start_time=START)
    sim.advance_to(START + 900)
    crossed = 0
    for since in (START, START + 300, START + 890):
        for group_by in ((), ("internal",), ("plan", "region"), ("internal", "plan", "region", "workflow")):
            for maturation in (60.0, 120.0):
                expected = group_units(sim.units(FLAG, since, maturation), group_by)
                assert sim.unit_summaries(FLAG, since, maturation, group_by) == expected
                crossed += sum(g.summary.crossed or 0 for g in expected)
    assert sim.unit_summaries("no-such-flag", START, 120.0) == [] == sim.units("no-such-flag", START, 120.0)
    assert (crossed > 0) == (fleet == "mixed")  # units seen on both arms are counted as the records count them
