"""The simulated application's flag evaluation: the official flagd evaluator over the flag file."""

from __future__ import annotations

import os

import pytest

from console.core.errors import BadInput
from console.core.simulator.evaluator import FlagdFileEvaluator
from console.core.simulator.events import OutcomeEvent, RequestEvent
from console.core.telemetry import Arm

from .test_simulator import BASE, CAND, FLAG, START, make_sim, totals, write_flag_file

INTERNAL = {"audience": "internal_support_team", "workflow": "support_answer"}
ELIGIBLE = {"scope": "english_support_chat", "workflow": "support_answer"}


def test_variants_map_to_arms_by_the_flag_metadata(tmp_path):
    path = tmp_path / "flags.json"
    write_flag_file(path, 10_000)
    ev = FlagdFileEvaluator(path)
    variant, profile, arm = ev.evaluate(FLAG, "u-1", INTERNAL)
    assert (variant, profile["route"], profile["model"], arm) == ("balanced_core_v2", "balanced_core_v2",
                                                                   "provider-b/balanced", Arm.CANDIDATE)
    assert ev.evaluate(FLAG, "u-1", {"workflow": "support_answer"})[2] is Arm.BASELINE  # outside the scope
    assert ev.evaluate(FLAG, "u-1", ELIGIBLE)[2] is Arm.CANDIDATE  # 100% of the scope
    # a flag with no candidate has no rollout: its traffic is neither arm
    assert ev.evaluate("hard-case-route", "u-1", {})[:1] == ("premium_hard_cases_v1",)
    assert ev.evaluate("hard-case-route", "u-1", {})[2] is Arm.OTHER


def test_a_missing_flag_serves_the_applications_default(tmp_path):
    path = tmp_path / "flags.json"
    write_flag_file(path, drop=("classify-route",))
    ev = FlagdFileEvaluator(path)
    assert ev.evaluate("classify-route", "u-1", {}, {"route": "built_in"}) == ("", {"route": "built_in"}, Arm.OTHER)
    sim = make_sim(tmp_path)
    sim.advance_to(START + 60)
    routes = {k.route for k in totals(sim, START, START + 60) if k.flag == "classify-route"}
    assert routes == {"small_low_cost_v1"}  # the portfolio's built-in profile for classification


def test_an_unloadable_file_at_start_is_refused_in_one_line(tmp_path):
    with pytest.raises(BadInput) as err:
        FlagdFileEvaluator(tmp_path / "nope.json")
    assert "nope.json" in str(err.value) and "\n" not in str(err.value)
    bad = tmp_path / "bad.json"
    bad.write_text('{"flags": {"x": ')
    with pytest.raises(BadInput, match="bad.json"):
        FlagdFileEvaluator(bad)


def test_a_broken_or_missing_file_mid_run_keeps_the_last_good_flags(tmp_path):
    path = tmp_path / "flags.json"
    write_flag_file(path, 5000)
    sim = make_sim(tmp_path)
    sim.advance_to(START + 30)
    path.write_text('{"flags": {')
    sim.advance_to(START + 60)
    error = sim.evaluator.error
    assert error and str(path) in error and "last good" in error and "line 1" in error
    assert totals(sim, START + 30, START + 60)[CAND].requests > 50  # still the 50% split
    os.unlink(path)
    sim.advance_to(START + 90)
    assert "last good" in sim.evaluator.error
    assert totals(sim, START + 60, START + 90)[CAND].requests > 50
    write_flag_file(path, 0, internal=False)  # a good file again: picked up on the next tick
    sim.advance_to(START + 120)
    assert sim.evaluator.error is None
    after = totals(sim, START + 91, START + 120)
    assert after[CAND].requests == 0 and after[CAND].outcomes > 0  # earlier requests' outcomes still arrive
    assert after[BASE].requests > 100


def test_the_file_is_reread_only_when_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "flags.json"
    write_flag_file(path)
    ev = FlagdFileEvaluator(path)
    loads = []
    original = ev._core.set_flags
    monkeypatch.setattr(ev._core, "set_flags", lambda text: (loads.append(1), original(text)))
    rev = ev.revision
    for _ in range(5):
        ev.refresh()
    assert loads == [] and ev.revision == rev
    write_flag_file(path, 2000)
    ev.refresh()
    assert loads == [1] and ev.revision != rev


def test_listeners_get_each_ticks_requests_then_the_outcomes_arriving(tmp_path):
    sim = make_sim(tmp_path)
    calls: list[list] = []
    sim.add_listener(calls.append)
    sim.advance_to(START + 120)
    assert len(calls) == 120
    for tick, events in enumerate(calls):
        kinds = [isinstance(e, RequestEvent) for e in events]
        assert kinds == sorted(kinds, reverse=True)  # requests first
        assert all(e.time == START + tick for e in events)
    requests = [e for batch in calls for e in batch if isinstance(e, RequestEvent)]
    assert len(requests) == len(sim.log()["t"])
    assert not any(isinstance(e, OutcomeEvent) for e in calls[4])  # nothing arrives within 5 s
    first = next(e for e in requests if e.flag == FLAG and e.arm is Arm.BASELINE)
    assert first.segment["workflow"] == "support_answer" and first.provider == "provider-a"
    assert first.model == "provider-a/standard" and first.status in ("ok", "error", "429", "timeout")
    assert sum(e.new_unit for e in requests) == sum(c.new_units for c in totals(sim, START, START + 120).values())
    sim.remove_listener(calls.append)
    sim.advance_to(START + 130)
    assert len(calls) == 120
