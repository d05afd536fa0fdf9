"""The per-arm summary (additive, the reference for every source), read_summaries' default, and the verdict
rules built on it: quantile bounds, the request-level join gate, ETA, α accounting, triggers and signals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from console.core.stats import quantiles
from console.core.stats.engine import decide, eta_words
from console.core.stats.spec import (
    DecisionSpec,
    GateStatus,
    GuardrailSpec,
    HealthGateSpec,
    MarginKind,
    MetricVerdict,
    StageContext,
    StageSpec,
    Trigger,
    Verdict,
)
from console.core.stats.summary import (
    HISTOGRAMS,
    ArmSummary,
    GroupSummary,
    comparable_arms,
    group_units,
    summarise_counters,
    summarise_units,
)
from console.core.telemetry import LATENCY_BOUNDS_MS, Arm, RouteCounters, UnitRecord, bucket_index

STAGE = StageSpec("20%", 2000, internal=False, min_units=100, min_dwell_s=600)
CTX = StageContext(STAGE, elapsed_s=1200, intended_candidate_share=0.5)


def units(arm: Arm, n: int, seed: int, *, error: float = 0.01, latency: float = 900.0, join: float = 0.99,
          region: str = "us") -> list[UnitRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        req = int(rng.geometric(1 / 4))
        err = int(rng.binomial(req, error))
        lat = rng.lognormal(math.log(latency * rng.lognormal(0, 0.2)), 0.4, req)
        hist = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        for x in lat:
            hist[bucket_index(float(x), LATENCY_BOUNDS_MS)] += 1
        outc = int(rng.binomial(req, join))
        res = int(rng.binomial(outc, 0.7))
        out.append(UnitRecord(f"{arm.value}{seed}-{i}", "f", arm, "r", {"region": region, "scope": "s"}, 0.0,
                              requests=req, successes=req - err, exposures=req, outcomes=outc, resolved=res,
                              errors=err, fallbacks=err, slo_met=int((lat <= 2500).sum()) - err,
                              cost_usd=float(req * 0.006 * rng.gamma(2, 0.5)), mature_exposures=req,
                              mature_outcomes=outc, latency_hist=hist, ttft_hist=[req] + [0] * len(HISTOGRAMS["ttft_hist"])))
    return out


def test_summaries_add_up_and_equal_the_summary_of_the_union():
    a, b = units(Arm.CANDIDATE, 300, 1), units(Arm.CANDIDATE, 200, 2)
    whole = summarise_units(a + b)
    parts = summarise_units(a)
    parts.add(summarise_units(b))
    assert parts.units == whole.units == 500
    for field in ("sums", "squares", "products", "nonzero"):
        got, want = getattr(parts, field), getattr(whole, field)
        assert got.keys() == want.keys()
        assert all(got[k] == pytest.approx(want[k]) for k in want)
    assert parts.hist == whole.hist
    assert parts.hist_squares["latency_hist"] == pytest.approx(whole.hist_squares["latency_hist"])
    # Σ over units of (requests at or below the last edge)² is Σ requests²
    assert whole.hist_squares["latency_hist"][-1] == pytest.approx(whole.squares["requests"])
    # a column known on one side only is unknown in the sum, never taken as zero
    partial = ArmSummary(units=3, sums={"requests": 3.0})
    partial.add(ArmSummary(units=2, sums={"requests": 2.0, "errors": 1.0}))
    assert partial.sums == {"requests": 5.0}


def test_request_level_summary_treats_every_request_as_a_unit():
    c = RouteCounters(requests=1000, errors=12, exposures=1000, outcomes=950, resolved=600, slo_met=900,
                      cost_usd=6.0, cost_sq_usd=0.05)
    s = summarise_counters(c, matured=RouteCounters(exposures=800))
    assert s.request_level and s.units == 1000 and s.crossed is None
    assert s.squares["errors"] == 12 and s.product("errors", "requests") == 12
    assert s.squares["cost_usd"] == 0.05 and s.product("cost_usd", "resolved") is None  # unknown: worst case
    assert s.sums["mature_exposures"] == 800 and "mature_outcomes" not in s.sums


def test_read_summaries_default_groups_units_and_the_core_keeps_the_comparable_ones():
    from console.core.ports import MetricsSource
    from console.core.telemetry import SourceCapabilities

    records = units(Arm.CANDIDATE, 50, 3, region="eu") + units(Arm.CANDIDATE, 40, 4) + units(Arm.BASELINE, 60, 5)

    class Source(MetricsSource):
        capabilities = SourceCapabilities(unit_level=True)

        def describe(self):
            return "test"

        def now(self):
            return 0.0

        def read(self, start, end, step):
            raise AssertionError("a unit-level source's summaries come from its units")

        def read_units(self, flag, since, maturation_s=60.0):
            return records

    groups = Source().read_summaries("f", 0.0, 120.0, ("region",))
    assert {(g.arm, g.attributes["region"]) for g in groups} == {(Arm.CANDIDATE, "eu"), (Arm.CANDIDATE, "us"),
                                                                 (Arm.BASELINE, "us")}
    cand, base = comparable_arms(groups, lambda g: g.segment.get("region") == "us")
    assert cand.units == 40 and base.units == 60
    assert cand.sums == pytest.approx(summarise_units(records[50:90]).sums)
    # labelled groups of the current stage win over groups counted under the previous one
    old = GroupSummary(Arm.CANDIDATE, {}, "5%", summarise_units(records[:10]))
    new = GroupSummary(Arm.CANDIDATE, {}, "20%", summarise_units(records[10:30]))
    assert comparable_arms([old, new], None, stage="20%")[0].units == 20
    assert len(group_units(records, ())) == 2


def test_quantile_bounds_cover_the_true_p95_over_many_looks():
    """Lognormal latencies, bounds from bucket counts after every 200 requests: the true p95 stays inside."""
    rng = np.random.default_rng(11)
    true = math.exp(math.log(1200) + 1.6449 * 0.5)
    alpha, streams, misses = 0.1, 200, 0
    for _ in range(streams):
        lat = rng.lognormal(math.log(1200), 0.5, 4000)
        idx = np.searchsorted(np.asarray(LATENCY_BOUNDS_MS), lat, side="left")
        for n in range(200, 4001, 200):
            s = ArmSummary(units=n, request_level=True)
            s.hist = {"latency_hist": np.bincount(idx[:n], minlength=len(LATENCY_BOUNDS_MS) + 1).tolist()}
            b = quantiles.bounds(s, "latency_hist", 0.95, alpha)
            if not b.low < true <= b.high:
                misses += 1
                break
    assert misses / streams <= alpha
    assert b.low < b.point < b.high  # and the last look's bounds are finite around the estimate


def _counters(requests, exposures_matured, outcomes, errors=10):
    c = RouteCounters(new_units=requests // 4, requests=requests, exposures=requests, outcomes=outcomes,
                      resolved=int(outcomes * 0.7), errors=errors, fallbacks=errors, slo_met=requests - errors,
                      successes=requests - errors, cost_usd=requests * 0.006, cost_sq_usd=requests * 0.006**2 * 1.5)
    c.latency_hist[bucket_index(900, LATENCY_BOUNDS_MS)] = requests
    return summarise_counters(c, RouteCounters(exposures=exposures_matured))


def test_join_break_rolls_back_on_a_request_level_source():
    spec = DecisionSpec(guardrails=(GuardrailSpec("error_rate", 1.0, MarginKind.RELATIVE, critical=True),))
    healthy = decide(spec, CTX, _counters(4000, 3000, 3960), _counters(16000, 12000, 15840), request_units=(1000, 4000))
    join = next(g for g in healthy.health if g.name.startswith("exposure"))
    assert join.status is GateStatus.PASS, join.detail
    # 40% of the candidate's outcomes lost: below the floor on matured exposures, beyond doubt
    broken = decide(spec, CTX, _counters(4000, 3000, 2376), _counters(16000, 12000, 15840), request_units=(1000, 4000))
    join = next(g for g in broken.health if g.name.startswith("exposure"))
    assert join.status is GateStatus.FAIL and broken.verdict is Verdict.ROLLBACK
    # the gap counts in both directions: the baseline's outcomes lost is no pass either
    reverse = decide(DecisionSpec(gates=HealthGateSpec(join_floor=0.5)), CTX, _counters(4000, 3000, 3960),
                     _counters(16000, 12000, 11000), request_units=(1000, 4000))
    assert next(g for g in reverse.health if g.name.startswith("exposure")).status is GateStatus.FAIL


def test_eta_alpha_statement_triggers_and_signals():
    spec = DecisionSpec(guardrails=(GuardrailSpec("error_rate", 1.0, MarginKind.RELATIVE, on_harm=Trigger.HOLD),),
                        signals=(GuardrailSpec("cost_per_request", 0.0, MarginKind.RELATIVE, on_harm=Trigger.WARN),),
                        stages=4)
    cand, base = summarise_units(units(Arm.CANDIDATE, 400, 21)), summarise_units(units(Arm.BASELINE, 400, 22))
    early = decide(spec, StageContext(STAGE, 300, intended_candidate_share=0.5), cand, base)
    assert early.verdict is Verdict.HOLD and early.eta_s is not None and early.eta_s >= 300
    assert any(r.startswith("note: ADVANCE expected in ≈") for r in early.reasons)
    assert early.alpha.rollout == pytest.approx(0.2) and "whole rollout ≤ 0.2" in early.alpha.statement
    # harm on a hold guardrail holds; a harmed signal only warns, never blocks
    worse = summarise_units(units(Arm.CANDIDATE, 4000, 23, error=0.08))
    d = decide(spec, CTX, worse, summarise_units(units(Arm.BASELINE, 4000, 24)))
    err = next(m for m in d.metrics if m.name == "error_rate")
    assert err.verdict is MetricVerdict.HARM and err.action == "hold" and d.verdict is Verdict.HOLD
    assert d.eta_s is None and "harmed" in d.eta_note
    sig = next(m for m in d.metrics if m.name == "cost_per_request")
    assert sig.signal and sig.action == "warn"
    assert not any(r.startswith("hold: cost_per_request") for r in d.reasons)
    assert eta_words(1500) == "≈ 25 min" and eta_words(None) == "unknown"


def test_advance_never_sits_beside_an_unjudged_readout():
    spec = DecisionSpec(guardrails=(GuardrailSpec("error_rate", 1.0, MarginKind.RELATIVE, critical=True),
                                    GuardrailSpec("p95_latency", 0.4, MarginKind.RELATIVE)))
    for n, seed in ((60, 31), (400, 33), (3000, 35)):
        d = decide(spec, CTX, summarise_units(units(Arm.CANDIDATE, n, seed)),
                   summarise_units(units(Arm.BASELINE, n, seed + 1)))
        blocking = [m for m in d.metrics if not m.signal]
        assert (d.verdict is Verdict.ADVANCE) == all(m.judged for m in blocking) or d.verdict is Verdict.ROLLBACK
        for m in blocking:
            if not m.judged:
                assert any(r.startswith(f"hold: {m.name} not judged yet") for r in d.reasons)


def test_an_estimate_before_the_stages_minimums_is_too_little_data_not_never():
    """Seconds into a stage nothing is judged even at 48× the data: that is too little data, not a forecast
    that no ADVANCE comes. Past the rule's minimum units and dwell the same data is a forecast."""
    from console.core.stats.engine import eta_sentence
    from console.core.stats.spec import PrimarySpec

    tight = 0.0001  # a margin the spread of these arms cannot resolve even at 48× the data
    spec = DecisionSpec(primary=PrimarySpec("error_rate", margin=tight),
                        guardrails=(GuardrailSpec("error_rate", tight, critical=True),))
    cand, base = summarise_units(units(Arm.CANDIDATE, 400, 31)), summarise_units(units(Arm.BASELINE, 400, 32))
    early = decide(spec, StageContext(STAGE, 30, intended_candidate_share=0.5), cand, base)
    assert early.verdict is Verdict.HOLD and early.eta_s is None and early.eta_early
    assert early.eta_note == "0m30s of the 10m00s dwell so far", early.eta_note
    assert "note: too little data yet to estimate when — 0m30s of the 10m00s dwell so far" in early.reasons
    assert not any("no ADVANCE expected" in r for r in early.reasons), early.reasons
    # a harm seen only by extrapolating thin data is no forecast either
    worse = summarise_units(units(Arm.CANDIDATE, 400, 41))
    assert "would be harmed" in decide(spec, CTX, worse, base).eta_note
    assert decide(spec, StageContext(STAGE, 30, intended_candidate_share=0.5), worse, base).eta_early
    late = decide(spec, CTX, cand, base)
    assert late.verdict is Verdict.HOLD and late.eta_s is None and not late.eta_early
    # the primary metric is a guardrail too: two readouts, one name in the note
    assert late.eta_note.startswith("error_rate not judged even with 48× the data"), late.eta_note
    assert eta_sentence(late) == f"no ADVANCE expected at the current traffic — {late.eta_note}"
    assert f"note: {eta_sentence(late)}" in late.reasons


def test_an_estimate_that_waits_for_a_person_never_says_if_nothing_changes():
    """With only the checklist left, nothing in the traffic brings the ADVANCE: the sentence says who must act,
    in the console and in `check` alike, instead of "ADVANCE expected in < 1 min if nothing changes"."""
    from dataclasses import replace

    from console.core.stats.engine import eta_sentence, waits_for_a_person

    spec = DecisionSpec(guardrails=(GuardrailSpec("error_rate", 1.0, MarginKind.RELATIVE, critical=True),))
    cand, base = summarise_units(units(Arm.CANDIDATE, 4000, 51)), summarise_units(units(Arm.BASELINE, 4000, 52))
    assert decide(spec, CTX, cand, base).verdict is Verdict.ADVANCE
    waiting = decide(spec, replace(CTX, pending_checklist=("no critical segment shows unacceptable harm",)), cand, base)
    assert waiting.verdict is Verdict.HOLD and waiting.eta_s == 0.0
    said = eta_sentence(waiting)
    assert said.startswith("ADVANCE possible in") and "once the checklist is acknowledged" in said, said
    assert "if nothing changes" not in said and f"note: {said}" in waiting.reasons
    assert waits_for_a_person(waiting) and not waits_for_a_person(decide(spec, CTX, cand, base))
    # said by the estimate itself (a field check --json carries), not read back from the wording of its note
    assert waiting.eta_needs_person and not decide(spec, CTX, cand, base).eta_needs_person
