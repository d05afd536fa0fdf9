"""The stage machine: legal transitions only, the allocation each stage asks for, and the context it gives the engine."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from console.core import rollout
from console.core.errors import BadInput
from console.core.models import Override, RouteProfile, Stage
from console.core.rules import DecisionRule, parse_rule

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)

RULE_TEXT = """llm_route_decision:
  flag_key: support-answer-route
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  first_audience: internal_support_team
  eligible_scope: english_support_chat
  primary_metric: resolved_without_escalation
  guardrails: [correction_rate, fallback_rate]
  expand_when:
    - no critical segment shows unacceptable harm
    - the support leads have read the transcripts
"""


@pytest.fixture
def rule() -> DecisionRule:
    return parse_rule(RULE_TEXT, "rule.yaml")


def profiles(*names: str) -> dict[str, RouteProfile]:
    return {n: RouteProfile(route=n, model=f"model-{n}") for n in names}


@pytest.fixture
def flag(rule):
    return rollout.init_flag(rule, profiles("fast_default_v1", "balanced_core_v2", "unused_route"))


def walk(flag, rule, steps: int):
    for i in range(steps):
        flag = rollout.advance(flag, rule, T0 + timedelta(minutes=i + 1), "ana")
    return flag


def test_init_flag_serves_the_baseline_to_everyone_with_the_candidate_ready(flag, rule):
    assert flag.key == "support-answer-route"
    assert set(flag.variations) == {"fast_default_v1", "balanced_core_v2"}
    assert (flag.baseline, flag.candidate) == ("fast_default_v1", "balanced_core_v2")
    a = flag.allocation
    assert (a.candidate_bp, a.internal_enabled, a.serves_candidate) == (0, False, False)
    assert (a.internal_audience, a.eligible_scope) == ("internal_support_team", "english_support_chat")
    assert a.audience_predicate is None and a.scope_predicate is None  # the documented default applies
    assert flag.rollout.stage is Stage.BASELINE and flag.rollout.rule_hash == rule.rule_hash
    assert rollout.current_stage_name(flag) == "baseline"


def test_init_flag_needs_a_profile_for_both_routes(rule):
    with pytest.raises(BadInput, match="no route profile for balanced_core_v2"):
        rollout.init_flag(rule, profiles("fast_default_v1"))


def test_advance_walks_the_ladder_with_the_stage_allocations(flag, rule):
    seen = []
    for i in range(4):
        assert rollout.next_stage(rule, flag).name == rule.stages[i].name
        flag = rollout.advance(flag, rule, T0 + timedelta(minutes=i), "ana")
        a = flag.allocation
        seen.append((rollout.current_stage_name(flag), a.candidate_bp, a.internal_enabled))
        assert flag.rollout.stage_started_at == T0 + timedelta(minutes=i)
        assert flag.rollout.rule_hash == rule.rule_hash
        assert a.eligible_scope == "english_support_chat"
    assert seen == [("internal", 0, True), ("5%", 500, True), ("20%", 2000, True), ("full", 9500, True)]
    assert flag.rollout.stage is Stage.FULL
    assert rollout.next_stage(rule, flag) is None
    with pytest.raises(BadInput, match="last stage .*use promote"):
        rollout.advance(flag, rule, T0, "ana")


def test_custom_stage_names_are_kept_as_labels(rule):
    custom = parse_rule(RULE_TEXT + "  stages:\n    - {name: canary, share: 1%}\n    - {name: half, share: 50%}\n")
    flag = rollout.init_flag(custom, profiles("fast_default_v1", "balanced_core_v2"))
    flag = rollout.advance(flag, custom, T0, "ana")
    assert rollout.current_stage_name(flag) == "canary" and flag.allocation.candidate_bp == 100
    flag = rollout.advance(flag, custom, T0, "ana")
    assert rollout.current_stage_name(flag) == "half" and rollout.stage_spec(custom, flag).candidate_bp == 5000
    assert rollout.next_stage(custom, flag) is None


def test_override_is_recorded_with_the_advance(flag, rule):
    ov = Override(stage_from="baseline", stage_to="internal", verdict="HOLD", reason="smoke test done by hand",
                  by="ana", at=T0)
    flag = rollout.advance(flag, rule, T0, "ana", override=ov)
    assert flag.rollout.overrides == [ov]
    flag = rollout.advance(flag, rule, T0, "ana")
    assert flag.rollout.overrides == [ov]  # kept, not replaced


def test_rollback_sends_everyone_to_the_baseline_and_ends_the_rollout(flag, rule):
    flag = walk(flag, rule, 3)
    back = rollout.rollback(flag, T0 + timedelta(hours=1))
    a = back.allocation
    assert (a.candidate_bp, a.internal_enabled, a.serves_candidate) == (0, False, False)
    assert (a.internal_audience, a.eligible_scope) == ("internal_support_team", "english_support_chat")
    assert back.rollout.stage is Stage.ROLLED_BACK
    assert back.rollout.stage_started_at == T0 + timedelta(hours=1)
    assert rollout.current_stage_name(back) == "rolled_back"
    assert back.candidate == "balanced_core_v2"  # still there, just not served
    with pytest.raises(BadInput, match="rolled back: nothing to advance"):
        rollout.advance(back, rule, T0, "ana")
    with pytest.raises(BadInput, match="rolled back: nothing to promote"):
        rollout.promote(back, rule, T0)


def test_promote_only_from_the_last_stage(flag, rule):
    for steps in range(4):
        with pytest.raises(BadInput, match="promote only from the last stage \\(full\\)"):
            rollout.promote(walk(flag, rule, steps), rule, T0)


def test_promote_makes_the_candidate_the_baseline_and_keeps_the_old_one(flag, rule):
    done = rollout.promote(walk(flag, rule, 4), rule, T0)
    assert done.baseline == "balanced_core_v2" and done.candidate is None
    assert set(done.variations) == {"fast_default_v1", "balanced_core_v2"}
    assert (done.allocation.candidate_bp, done.allocation.internal_enabled) == (0, False)
    assert done.rollout.stage is Stage.PROMOTED
    with pytest.raises(BadInput, match="promoted: nothing to advance"):
        rollout.advance(done, rule, T0, "ana")
    with pytest.raises(BadInput, match="promoted: nothing to promote"):
        rollout.promote(done, rule, T0)


def test_rollback_after_promote_leaves_the_promoted_route_and_state(flag, rule):
    done = rollout.promote(walk(flag, rule, 4), rule, T0)
    again = rollout.rollback(done, T0 + timedelta(minutes=5))
    assert again.baseline == "balanced_core_v2"
    assert again.rollout.stage is Stage.PROMOTED


def test_the_rule_must_match_the_flag(flag, rule):
    other = parse_rule(RULE_TEXT.replace("balanced_core_v2", "premium_hard_cases_v1"))
    with pytest.raises(BadInput, match="names baseline fast_default_v1 and candidate premium_hard_cases_v1"):
        rollout.advance(flag, other, T0, "ana")
    renamed = parse_rule(RULE_TEXT.replace("support-answer-route", "hard-case-route"))
    with pytest.raises(BadInput, match="the rule is for flag 'hard-case-route'"):
        rollout.advance(flag, renamed, T0, "ana")


def test_checklist_is_acknowledged_per_stage(flag, rule):
    flag = walk(flag, rule, 1)
    item = "no critical segment shows unacceptable harm"
    assert rollout.pending_checklist(flag, rule) == tuple(rule.checklist)
    acked = rollout.acknowledge(flag, item, "ana", T0, rule)
    assert rollout.pending_checklist(acked, rule) == ("the support leads have read the transcripts",)
    assert acked.allocation == flag.allocation  # acknowledging changes no routing
    again = rollout.acknowledge(acked, item, "bo", T0, rule)
    assert len(again.rollout.acknowledgements) == 1 and again.rollout.acknowledgements[0].by == "bo"
    moved = rollout.advance(again, rule, T0, "ana")
    assert rollout.pending_checklist(moved, rule) == tuple(rule.checklist)  # a new stage asks again


def test_acknowledging_an_item_not_on_the_checklist_is_refused(flag, rule):
    with pytest.raises(BadInput, match="is not on the checklist"):
        rollout.acknowledge(flag, "all good", "ana", T0, rule)


def test_rule_changed_compares_hashes(flag, rule):
    assert not rollout.rule_changed(flag, rule)
    edited = parse_rule(RULE_TEXT + "  alpha: 0.01\n")
    assert rollout.rule_changed(flag, edited)
    assert not rollout.rule_changed(flag.model_copy(update={"rollout": None}), edited)


def test_stage_context_internal_has_no_control(flag, rule):
    flag = walk(flag, rule, 1)  # internal, started at T0 + 1 min
    ctx = rollout.stage_context(flag, rule, T0 + timedelta(minutes=11))
    assert ctx.stage.name == "internal"
    assert ctx.has_control is False and ctx.intended_candidate_share is None
    assert ctx.elapsed_s == 600
    assert ctx.pending_checklist == tuple(rule.checklist)
    assert ctx.rule_changed is False


def test_stage_context_percentage_stages_compare_with_the_baseline(flag, rule):
    flag = walk(flag, rule, 2)
    ctx = rollout.stage_context(flag, rule, T0 + timedelta(minutes=2))
    assert (ctx.stage.name, ctx.has_control, ctx.intended_candidate_share, ctx.elapsed_s) == ("5%", True, 0.05, 0)
    full = walk(flag, rule, 2)
    assert rollout.stage_context(full, rule, T0).intended_candidate_share == 0.95  # the holdback is the control
    edited = parse_rule(RULE_TEXT + "  alpha: 0.01\n")
    assert rollout.stage_context(flag, edited, T0).rule_changed is True


def test_explicit_predicates_reach_the_allocation():
    text = RULE_TEXT + ("  audiences:\n    internal_support_team: {\"==\": [{\"var\": \"team\"}, \"support\"]}\n"
                        "  scopes:\n    english_support_chat: {\"==\": [{\"var\": \"lang\"}, \"en\"]}\n")
    rule = parse_rule(text)
    flag = rollout.init_flag(rule, profiles("fast_default_v1", "balanced_core_v2"))
    assert flag.allocation.scope_rule() == {"==": [{"var": "lang"}, "en"]}
    flag = rollout.advance(flag, rule, T0, "ana")
    assert flag.allocation.audience_rule() == {"==": [{"var": "team"}, "support"]}
    assert flag.allocation.scope_rule() == {"==": [{"var": "lang"}, "en"]}
