"""The emergency switch and its undo on the flagd file: exact restore, read-back, journal, evaluator."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from console.commands.demo import prepare_state_dir
from console.core.emergency import allocation_lines, emergency_switch, plan_switch, undo_switch
from console.core.errors import BadInput, ConflictError
from console.core.journal import Journal, journal_path, read_entries
from console.core.simulator.evaluator import FlagdFileEvaluator
from console.core.telemetry import Arm

FLAG = "support-answer-route"
SAFE = "fallback_baseline_v1"
CTX = {"scope": "english_support_chat", "workflow": "support_answer"}


@pytest.fixture
def demo(tmp_path):
    path = prepare_state_dir(tmp_path)
    return FlagdFilePlatform(path), Journal(journal_path(tmp_path)), path


def variants(path, flag=FLAG, n=800) -> Counter:
    ev = FlagdFileEvaluator(path)
    return Counter(ev.evaluate(flag, f"u{i}", {**CTX, **({"audience": "internal_support_team"} if i % 9 == 0 else {})})[0]
                   for i in range(n))


def test_switch_serves_the_safe_route_to_everyone_and_undo_restores_exactly(demo):
    platform, journal, path = demo
    before = platform.read_flag(FLAG)
    result = emergency_switch(platform, FLAG, SAFE, journal, reason="provider down", seen_revision=before.revision)
    assert result.after.allocation.serve_all == SAFE and result.after.allocation.held() == before.allocation
    assert variants(path) == Counter({SAFE: 800})
    ev = FlagdFileEvaluator(path)
    assert ev.evaluate(FLAG, "u1", CTX)[2] is Arm.OTHER  # neither arm of the rollout
    undone = undo_switch(platform, FLAG, journal, reason="provider back", before_switch=before.allocation)
    assert undone.after.allocation == before.allocation
    assert json.loads(path.read_text())["flags"][FLAG]["targeting"] == json.loads(
        json.dumps(_targeting_of(before, platform)))
    assert set(variants(path)) == {"fast_default_v1", "balanced_core_v2"}
    actions = [(e.kind, e.action, e.status) for e in read_entries(journal.path) if e.action != "init"]
    assert actions == [("intent", "emergency_switch", None), ("outcome", "emergency_switch", "confirmed"),
                       ("intent", "undo_switch", None), ("outcome", "undo_switch", "confirmed")]


def _targeting_of(flag, platform):
    from adapters.flags.flagd_file import render_targeting

    return render_targeting(flag)


def test_a_flag_without_candidate_can_be_switched_and_undone(demo):
    platform, journal, path = demo
    emergency_switch(platform, "hard-case-route", SAFE, journal, reason="premium provider down")
    assert variants(path, "hard-case-route", 200) == Counter({SAFE: 200})
    undo_switch(platform, "hard-case-route", journal, reason="back")
    assert variants(path, "hard-case-route", 200) == Counter({"premium_hard_cases_v1": 200})


def test_switch_is_refused_to_the_candidate_twice_without_reason_or_on_a_stale_read(demo):
    platform, journal, _ = demo
    flag = platform.read_flag(FLAG)
    with pytest.raises(BadInput, match="is the candidate"):
        plan_switch(flag, "balanced_core_v2")
    with pytest.raises(BadInput, match="no variation 'nope'"):
        plan_switch(flag, "nope")
    with pytest.raises(BadInput, match="reason is required"):
        emergency_switch(platform, FLAG, SAFE, journal, reason=" ")
    with pytest.raises(ConflictError, match="changed since it was shown"):
        emergency_switch(platform, FLAG, SAFE, journal, reason="x", seen_revision="0" * 16)
    emergency_switch(platform, FLAG, SAFE, journal, reason="x")
    with pytest.raises(BadInput, match="already on"):
        emergency_switch(platform, FLAG, SAFE, journal, reason="again")


def test_undo_never_gives_the_candidate_more_than_before_the_switch(demo):
    platform, journal, path = demo
    before = platform.read_flag(FLAG)
    emergency_switch(platform, FLAG, SAFE, journal, reason="x")
    # someone widens the held allocation behind the switch
    switched = platform.read_flag(FLAG)
    wider = switched.allocation.model_copy(update={"candidate_bp": 2000})
    platform.write_flag(switched.model_copy(update={"allocation": wider}), switched.revision)
    with pytest.raises(ConflictError, match="more candidate traffic"):
        undo_switch(platform, FLAG, journal, reason="x", before_switch=before.allocation)
    assert platform.read_flag(FLAG).allocation.serve_all == SAFE  # nothing written
    with pytest.raises(BadInput, match="no switch in force"):
        undo_switch(platform, "classify-route", journal, reason="x")


def test_rollback_lifts_a_switch_to_the_baseline(demo):
    platform, _, path = demo
    emergency_switch(platform, FLAG, SAFE, None, reason="x")
    after = platform.rollback_to_baseline(FLAG).after
    assert after.allocation.serve_all is None and not after.allocation.serves_candidate
    assert variants(path) == Counter({"fast_default_v1": 800})


def test_hand_written_switch_to_an_unknown_variant_is_reported_as_foreign(demo):
    platform, _, path = demo
    doc = json.loads(path.read_text())
    doc["flags"][FLAG]["targeting"] = {"if": [True, "ghost", doc["flags"][FLAG]["targeting"]]}
    path.write_text(json.dumps(doc))
    flag = FlagdFilePlatform(path).read_flag(FLAG)
    assert flag.allocation.serve_all is None and "ghost" in flag.foreign_targeting


def test_allocation_lines_say_who_gets_what(demo):
    platform, _, _ = demo
    flag = platform.read_flag(FLAG)
    assert allocation_lines(flag) == ["internal_support_team → balanced_core_v2",
                                      "5% of english_support_chat → balanced_core_v2", "everyone else → fast_default_v1"]
    switched = flag.allocation.model_copy(update={"serve_all": SAFE})
    assert allocation_lines(flag, switched) == [f"everyone → {SAFE}"]
    assert "everyone on fallback_baseline_v1" in switched.describe()


def test_a_platform_that_cannot_hold_a_switch_refuses_before_writing(demo):
    platform, journal, path = demo

    class NoSwitch(FlagdFilePlatform):
        can_switch = False

    limited = NoSwitch(path)
    before = path.read_bytes()
    with pytest.raises(BadInput, match="roll back"):
        emergency_switch(limited, FLAG, SAFE, journal, reason="x")
    assert path.read_bytes() == before
    assert [e for e in read_entries(journal.path) if e.action != "init"] == []  # only the demo's set-up
