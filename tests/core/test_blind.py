"""blind_after: the rule field and the core verdict every watcher uses when the metrics cannot be read."""

from __future__ import annotations

import pytest

from console.core.blind import BlindAfter, BlindClock, blind_decision
from console.core.errors import BadInput
from console.core.models import Allocation, RolloutState, RouteFlag, RouteProfile, Stage
from console.core.rules import parse_rule
from console.core.stats.spec import Verdict

RULE = """llm_route_decision:
  flag_key: f
  candidate_route: cand
  baseline_route: base
  primary_metric: resolved_without_escalation
{extra}"""


def flag(bp: int = 2000, stage: Stage = Stage.PCT20) -> RouteFlag:
    return RouteFlag(key="f", variations={"base": RouteProfile(route="base"), "cand": RouteProfile(route="cand")},
                     baseline="base", candidate="cand", allocation=Allocation(candidate_bp=bp),
                     rollout=RolloutState(stage=stage))


@pytest.mark.parametrize("text, expected", [
    ("  blind_after: 15m", BlindAfter(900, "rollback")),
    ("  blind_after: 90s hold", BlindAfter(90, "hold")),
    ("  blind_after: {after: 1h, action: rollback}", BlindAfter(3600, "rollback")),
    ("", None),
])
def test_blind_after_forms(text, expected):
    assert parse_rule(RULE.format(extra=text)).blind_after == expected


@pytest.mark.parametrize("text, needle", [
    ("  blind_after: soon", "rule.yaml:6: blind_after: must be a duration"),
    ("  blind_after: 15m panic", "the action must be rollback or hold"),
    ("  blind_after: {after: 5m, when: now}", "rule.yaml:6: blind_after.when: unknown key"),
    ("  blind_after: .nan", "rule.yaml:6: blind_after: '.nan' is not a finite number"),
])
def test_bad_blind_after_is_one_line_naming_file_and_line(text, needle):
    with pytest.raises(BadInput) as exc:
        parse_rule(RULE.format(extra=text))
    assert needle in str(exc.value)


def test_blind_holds_until_the_bound_then_rolls_back():
    clock = BlindClock()
    clock.unreadable(1000.0, "Prometheus: cannot connect")
    clock.unreadable(1005.0, "Prometheus: cannot connect")  # the clock keeps its start
    limit = BlindAfter(60, "rollback")
    early = blind_decision(limit, flag(), clock, 1030.0)
    assert early.verdict is Verdict.HOLD and "rolls back in 30s" in early.reasons[0]
    late = blind_decision(limit, flag(), clock, 1061.0)
    assert late.verdict is Verdict.ROLLBACK and late.reasons[0].startswith("rollback:")
    assert "blind for 1m01s" in late.reasons[0] and "cannot connect" in late.reasons[0]
    clock.readable()
    assert clock.blind_for(5000.0) == 0.0


def test_blind_hold_never_rolls_back_and_no_bound_holds_forever():
    clock = BlindClock()
    clock.unreadable(0.0, "no data")
    held = blind_decision(BlindAfter(10, "hold"), flag(), clock, 3600.0)
    assert held.verdict is Verdict.HOLD and "blind past" in held.reasons[0]
    forever = blind_decision(None, flag(), clock, 86400.0)
    assert forever.verdict is Verdict.HOLD and "never passes" in forever.reasons[0]


def test_nobody_on_the_candidate_is_never_a_blind_rollback():
    clock = BlindClock()
    clock.unreadable(0.0, "down")
    for f in (flag(bp=0), flag(stage=Stage.ROLLED_BACK, bp=0)):
        assert blind_decision(BlindAfter(1, "rollback"), f, clock, 100.0).verdict is Verdict.HOLD
