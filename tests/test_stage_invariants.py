"""Random action sequences through the flagd file adapter, served by the official flagd evaluator.

After every step, over fixed unit keys: rollback serves the baseline to every unit; the candidate is
never served to a unit outside the eligible scope; the served share matches the stage's (within
sampling tolerance); cohorts stay nested across advances; refused actions change nothing on disk.
"""

from __future__ import annotations

import math
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from adapters.flags.flagd_file import FlagdFilePlatform
from console.core import rollout
from console.core.errors import BadInput
from console.core.models import FULL_SHARE_BP, RouteProfile, Stage
from console.core.rules import DecisionRule, load_rule, parse_rule

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
N_IN_SCOPE = 1000

SEED_RULE = """llm_route_decision:
  flag_key: support-answer-route
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  first_audience: internal_support_team
  eligible_scope: english_support_chat
  primary_metric: resolved_without_escalation
  guardrails: [p95_latency, cost_per_resolved_case, correction_rate, fallback_rate, complaint_rate]
  expand_when:
    - no critical segment shows unacceptable harm
"""


def _contexts(prefix: str, n: int, attributes: dict[str, str]) -> list[EvaluationContext]:
    return [EvaluationContext(targeting_key=f"{prefix}-{i}", attributes=dict(attributes)) for i in range(n)]


# name -> (rule, in-scope units outside the first audience, units outside the scope, first-audience units in scope)
CASES: dict[str, tuple[DecisionRule, list, list, list]] = {
    "default predicates": (
        parse_rule(SEED_RULE, "seed.yaml"),
        _contexts("unit", N_IN_SCOPE, {"scope": "english_support_chat", "audience": "customers"}),
        _contexts("unit", 150, {"scope": "french_email"}) + _contexts("anon", 50, {}),
        _contexts("staff", 100, {"scope": "english_support_chat", "audience": "internal_support_team"}),
    ),
    "explicit predicates": (
        load_rule(ROOT / "console" / "core" / "data" / "rule-extended.yaml"),
        _contexts("unit", N_IN_SCOPE, {"language": "en", "channel": "chat", "team": "sales"}),
        _contexts("unit", 100, {"language": "fr", "channel": "chat"})
        + _contexts("mail", 100, {"language": "en", "channel": "email"}),
        _contexts("staff", 100, {"language": "en", "channel": "chat", "team": "support-leads"}),
    ),
}

ACTIONS = st.sampled_from(["advance", "advance", "advance", "rollback", "promote", "ack"])


def serve(path: Path, key: str, contexts: list[EvaluationContext]) -> list[str]:
    core = FlagdCore()
    core.set_flags(path.read_text())
    return [core.resolve_object_value(key, {}, ctx).variant for ctx in contexts]


def tolerance(bp: int) -> float:
    p = bp / FULL_SHARE_BP
    return 4 * math.sqrt(p * (1 - p) / N_IN_SCOPE) + 1 / N_IN_SCOPE


def apply(platform: FlagdFilePlatform, rule: DecisionRule, action: str, now: datetime) -> None:
    """One action the way the operations layer performs it: compute with the stage machine, write, confirm."""
    flag = platform.read_flag(rule.flag_key)
    if action == "advance":
        target = rollout.advance(flag, rule, now, "ana")
        platform.set_allocation(flag.key, target.allocation, flag.revision, rollout=target.rollout)
    elif action == "promote":
        platform.write_flag(rollout.promote(flag, rule, now), flag.revision)
    elif action == "ack":
        pending = rollout.pending_checklist(flag, rule)
        item = pending[0] if pending else "nothing on the checklist"
        platform.write_flag(rollout.acknowledge(flag, item, "ana", now, rule), flag.revision)
    else:
        target = rollout.rollback(flag, now)
        platform.rollback_to_baseline(flag.key, flag.revision, rollout=target.rollout)


def check_invariants(path: Path, platform: FlagdFilePlatform, rule: DecisionRule, case: tuple, cohorts: list[set]) -> None:
    _, in_scope, outside, staff = case
    flag = platform.read_flag(rule.flag_key)
    assert flag.foreign_targeting is None
    stage = rollout.current_stage_name(flag)
    served_in = serve(path, flag.key, in_scope)
    served_out = serve(path, flag.key, outside)
    served_staff = serve(path, flag.key, staff)

    if flag.rollout.stage is Stage.PROMOTED:
        assert flag.baseline == rule.candidate_route and flag.candidate is None
        assert set(served_in + served_out + served_staff) == {rule.candidate_route}
        return
    assert flag.baseline == rule.baseline_route
    if flag.rollout.stage in (Stage.ROLLED_BACK, Stage.BASELINE):
        assert set(served_in + served_out + served_staff) == {rule.baseline_route}, stage
        return

    spec = rollout.stage_spec(rule, flag)
    assert spec is not None and flag.allocation.candidate_bp == spec.candidate_bp
    assert set(served_out) == {rule.baseline_route}, f"candidate served outside the eligible scope at {stage}"
    assert set(served_staff) == {rule.candidate_route if spec.internal else rule.baseline_route}
    cohort = {i for i, v in enumerate(served_in) if v == rule.candidate_route}
    share = len(cohort) / N_IN_SCOPE
    assert share <= spec.candidate_bp / FULL_SHARE_BP + tolerance(spec.candidate_bp), (stage, share)
    assert share >= spec.candidate_bp / FULL_SHARE_BP - tolerance(spec.candidate_bp), (stage, share)
    if cohorts:
        assert cohorts[-1] <= cohort, f"a unit lost the candidate when the rollout moved to {stage}"
    cohorts.append(cohort)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case_name=st.sampled_from(sorted(CASES)), actions=st.lists(ACTIONS, min_size=1, max_size=8))
@example(case_name="explicit predicates", actions=["advance"] * 5 + ["promote", "rollback"])
@example(case_name="default predicates", actions=["ack", "advance", "advance", "advance", "rollback", "advance"])
def test_random_action_sequences_keep_the_stage_invariants(case_name: str, actions: list[str]) -> None:
    case = CASES[case_name]
    rule = case[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flags.json"
        platform = FlagdFilePlatform(path)
        names = (rule.baseline_route, rule.candidate_route)
        platform.create_flag(rollout.init_flag(rule, {n: RouteProfile(route=n) for n in names}))
        cohorts: list[set] = []
        check_invariants(path, platform, rule, case, cohorts)
        for step, action in enumerate(actions):
            before = path.read_bytes()
            try:
                apply(platform, rule, action, T0 + timedelta(minutes=step))
            except BadInput:
                assert path.read_bytes() == before, f"a refused {action} changed the flag file"
                continue
            if action != "advance":
                cohorts.clear()  # nesting is promised across advances of one rollout
            check_invariants(path, platform, rule, case, cohorts)


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_every_unit_group_is_exercised(case_name: str) -> None:
    """The fixtures must separate the groups, or the invariants above would pass vacuously."""
    rule, in_scope, outside, staff = CASES[case_name]
    from json_logic import jsonLogic

    def attrs(ctx: EvaluationContext) -> dict:
        return dict(ctx.attributes)

    assert len(in_scope) >= 1000
    assert all(jsonLogic(rule.scope_predicate, attrs(c)) and not jsonLogic(rule.audience_predicate, attrs(c))
               for c in in_scope)
    assert not any(jsonLogic(rule.scope_predicate, attrs(c)) for c in outside)
    assert all(jsonLogic(rule.audience_predicate, attrs(c)) for c in staff)
