"""The events source and the simulator's own unit-level path judge the same traffic the same way."""

from __future__ import annotations

import zlib

import pytest

from console.core import event_format as ef
from console.core import operations as ops
from console.core.stats.spec import Verdict

from .helpers import FLAG, rewrite, rollout


def _readout(decision):
    return ([(g.name, g.status.value, g.detail) for g in decision.health],
            [(m.name, m.verdict.value, m.n_candidate, m.n_baseline) for m in decision.metrics])


@pytest.mark.parametrize("scenario", ["steady", "latency-regression", "provider-outage", "join-break"])
def test_same_verdict_as_the_simulator(tmp_path, scenario):
    r = rollout(tmp_path, scenario)
    on_sim = ops.look(r.rule, r.platform, r.sim).decision
    source = r.events()
    try:
        on_events = ops.look(r.rule, r.platform, source).decision
    finally:
        source.close()
    assert on_events.verdict == on_sim.verdict
    assert _readout(on_events) == _readout(on_sim)
    for a, b in zip(on_events.metrics, on_sim.metrics):
        assert a.candidate == pytest.approx(b.candidate, rel=1e-9, abs=1e-12), a.name
        assert a.baseline == pytest.approx(b.baseline, rel=1e-9, abs=1e-12), a.name
    assert not on_events.request_level


def test_units_equal_the_simulators_units(tmp_path):
    r = rollout(tmp_path, "steady", minutes=10)
    since = r.platform.read_flag(FLAG).rollout.stage_started_at.timestamp()
    truth = {u.unit_id: u for u in r.sim.read_units(FLAG, since, 120)}
    source = r.events()
    try:
        read = {u.unit_id: u for u in source.read_units(FLAG, since, 120)}
    finally:
        source.close()
    assert set(read) == set(truth) and len(truth) > 500
    for unit, want in truth.items():
        got = read[unit]
        assert got.cost_usd == pytest.approx(want.cost_usd, rel=1e-9)
        got.cost_usd = want.cost_usd
        assert got == want
    assert sum(u.crossed for u in truth.values()) == sum(u.crossed for u in read.values())


def _candidate_variant(r) -> str:
    return r.platform.read_flag(FLAG).candidate


def test_a_broken_join_rolls_back(tmp_path):
    """40% of the candidate's outcome records never reach the store: the join gate rolls back."""
    r = rollout(tmp_path, "steady")
    candidate_requests = set()

    def drop(record):
        if record[ef.EVENT] == ef.CALL and record[ef.VARIANT] == _candidate:
            candidate_requests.add(record[ef.REQUEST_ID])
        if record[ef.EVENT] == ef.OUTCOME and record[ef.REQUEST_ID] in candidate_requests:
            if zlib.crc32(record[ef.REQUEST_ID].encode()) % 10 < 4:
                return None
        return record

    _candidate = _candidate_variant(r)
    source = r.events()
    try:
        healthy = ops.look(r.rule, r.platform, source).decision
    finally:
        source.close()
    rewrite(r.events_dir, drop)
    source = r.events()
    try:
        broken = ops.look(r.rule, r.platform, source).decision
    finally:
        source.close()
    join = {g.name: g for g in broken.health}["exposure→outcome join"]
    assert healthy.verdict is not Verdict.ROLLBACK
    assert broken.verdict is Verdict.ROLLBACK, broken.reasons
    assert join.status.value == "fail" and "cannot join" in join.detail


def test_a_slow_but_whole_join_does_not_roll_back(tmp_path):
    """Every outcome arrives, 30 s later than usual (still inside the maturation window): no rollback."""
    r = rollout(tmp_path, "steady")

    def delay(record):
        if record[ef.EVENT] == ef.OUTCOME:
            record[ef.TIME] = ef.rfc3339(ef.parse_time(record[ef.TIME]) + 30)
        return record

    rewrite(r.events_dir, delay)
    source = r.events()
    try:
        slow = ops.look(r.rule, r.platform, source).decision
    finally:
        source.close()
    join = {g.name: g for g in slow.health}["exposure→outcome join"]
    assert join.status.value == "pass", join.detail
    assert slow.verdict is not Verdict.ROLLBACK, slow.reasons


#: the dashboard's counters the events give exactly as the simulator counts them (the events also know each
#: request's cost squared; the fallback call's provider is not in a call record)
TREND_FIELDS = ("requests", "exposures", "successes", "errors", "rate_limited", "timeouts", "fallbacks", "slo_met",
                "new_units", "outcomes", "resolved", "escalated", "corrected", "complaints", "tokens_in", "tokens_out",
                "latency_hist", "ttft_hist")


def test_time_buckets_equal_the_simulators(tmp_path):
    r = rollout(tmp_path, "provider-outage", minutes=6)
    now = r.sim.now()
    source = r.events()
    try:
        got = source.read(now - 600, now, 60)
    finally:
        source.close()
    want = r.sim.read(now - 600, now, 60)
    assert len(got.buckets) == len(want.buckets) == 10
    assert got.fallback_served == want.fallback_served
    for g, w in zip(got.buckets, want.buckets):
        assert set(g.counters) == set(w.counters)
        for key, c in w.counters.items():
            for name in TREND_FIELDS:
                assert getattr(g.counters[key], name) == getattr(c, name), (g.start, key, name)
            assert g.counters[key].cost_usd == pytest.approx(c.cost_usd, rel=1e-9, abs=1e-12)
    busy = [b for b in got.buckets if any(c.outcomes for c in b.counters.values())]
    assert len(busy) == 10  # outcomes in every bucket: the trend is not one total
