"""The stage machine: pure functions from (rule, flag) to the next flag. No I/O here.

The ladder is the rule's stage plan (internal → 5% → 20% → full by default) followed by
``promoted``. Every transition returns a new ``RouteFlag`` whose allocation and rollout state
are what the platform must hold afterwards; the caller writes it and confirms by read-back.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from .errors import BadInput
from .models import Acknowledgement, Allocation, Override, RolloutState, RouteFlag, RouteProfile, Stage
from .stats.spec import StageContext, StageSpec

if TYPE_CHECKING:  # the rule loader pulls in YAML: a rollback never needs it
    from .rules import DecisionRule

STAGE_BY_NAME = {s.value: s for s in Stage}
TERMINAL = (Stage.PROMOTED, Stage.ROLLED_BACK)


def current_stage_name(flag: RouteFlag) -> str:
    """The rollout's stage as the rule names it ('baseline' before the first advance)."""
    if flag.rollout is None:
        return Stage.BASELINE.value
    return flag.rollout.stage_label or flag.rollout.stage.value


def _stage_enum(name: str) -> Stage:
    return STAGE_BY_NAME.get(name, Stage.PCT20)


def stage_spec(rule: DecisionRule, flag: RouteFlag) -> StageSpec | None:
    """The rule's spec of the stage the flag is in, or None before the first stage / after the end."""
    name = current_stage_name(flag)
    for s in rule.stages:
        if s.name == name:
            return s
    return None


def next_stage(rule: DecisionRule, flag: RouteFlag) -> StageSpec | None:
    """The stage an advance would move to; None at the last stage (promote instead)."""
    name = current_stage_name(flag)
    if flag.rollout is not None and flag.rollout.stage in TERMINAL:
        return None
    if name == Stage.BASELINE.value:
        return rule.stages[0]
    names = [s.name for s in rule.stages]
    if name not in names:
        raise BadInput(f"flag {flag.key} is at stage {name!r}, which {rule.path} does not define — "
                       "roll back or fix the stage plan")
    i = names.index(name)
    return rule.stages[i + 1] if i + 1 < len(rule.stages) else None


def allocation_for(rule: DecisionRule, stage: StageSpec, current: Allocation) -> Allocation:
    """Who gets the candidate at ``stage``: the first audience (from the internal stage on) and a share of the scope."""
    return current.model_copy(update={
        "internal_audience": rule.first_audience,
        "eligible_scope": rule.eligible_scope,
        "internal_enabled": bool(stage.internal and rule.first_audience),
        "candidate_bp": stage.candidate_bp,
        "audience_predicate": rule.audience_predicate if rule.explicit_predicates else None,
        "scope_predicate": rule.scope_predicate if rule.explicit_predicates else None,
    })


def check_matches_rule(rule: DecisionRule, flag: RouteFlag) -> None:
    if flag.key != rule.flag_key:
        raise BadInput(f"{rule.path}: the rule is for flag {rule.flag_key!r}, not {flag.key!r}")
    if flag.baseline != rule.baseline_route or flag.candidate != rule.candidate_route:
        raise BadInput(
            f"flag {flag.key} has baseline {flag.baseline} and candidate {flag.candidate}, but {rule.path} names "
            f"baseline {rule.baseline_route} and candidate {rule.candidate_route} — fix the rule or the flag"
        )


def rule_changed(flag: RouteFlag, rule: DecisionRule) -> bool:
    """True when the rollout started under another version of the rule file (compared by hash)."""
    return bool(flag.rollout and flag.rollout.rule_hash and flag.rollout.rule_hash != rule.rule_hash)


def advance(flag: RouteFlag, rule: DecisionRule, now: datetime, by: str, *, override: Override | None = None) -> RouteFlag:
    """The flag one stage further along the ladder."""
    if flag.rollout is not None and flag.rollout.stage in TERMINAL:
        raise BadInput(f"flag {flag.key} is {flag.rollout.stage.value.replace('_', ' ')}: nothing to advance — "
                       "start a new rollout with `routedeck init`")
    check_matches_rule(rule, flag)
    target = next_stage(rule, flag)
    if target is None:
        raise BadInput(f"flag {flag.key} is at the last stage ({current_stage_name(flag)}): use promote")
    previous = flag.rollout or RolloutState()
    overrides = list(previous.overrides) + ([override] if override else [])
    acks = [a for a in previous.acknowledgements if a.stage == target.name]
    state = previous.model_copy(update={
        "stage": _stage_enum(target.name),
        "stage_label": target.name,
        "stage_started_at": now,
        "rule_hash": rule.rule_hash,
        "overrides": overrides,
        "acknowledgements": acks,
        "pending": None,  # this write sets the whole routing: an earlier interrupted one is superseded
    })
    return flag.model_copy(update={"allocation": allocation_for(rule, target, flag.allocation), "rollout": state})


def rollback(flag: RouteFlag, now: datetime) -> RouteFlag:
    """Everyone on the baseline; the rollout ends as rolled back."""
    if flag.rollout is not None and flag.rollout.stage is Stage.PROMOTED:
        # the promoted route is the baseline now: nothing to send back, and "rolled back" would misstate it
        return flag.model_copy(update={"allocation": flag.allocation.rolled_back(),
                                       "rollout": flag.rollout.model_copy(update={"pending": None})})
    state = (flag.rollout or RolloutState()).model_copy(
        update={"stage": Stage.ROLLED_BACK, "stage_label": None, "stage_started_at": now, "pending": None})
    return flag.model_copy(update={"allocation": flag.allocation.rolled_back(), "rollout": state})


def acknowledge(flag: RouteFlag, item: str, by: str, now: datetime, rule: DecisionRule) -> RouteFlag:
    if item not in rule.checklist:
        raise BadInput(f"{item!r} is not on the checklist of {rule.path}: {'; '.join(rule.checklist) or 'empty'}")
    state = flag.rollout or RolloutState()
    stage = current_stage_name(flag)
    acks = [a for a in state.acknowledgements if not (a.item == item and a.stage == stage)]
    acks.append(Acknowledgement(item=item, by=by, at=now, stage=stage))
    return flag.model_copy(update={"rollout": state.model_copy(update={"acknowledgements": acks})})


def pending_checklist(flag: RouteFlag, rule: DecisionRule) -> tuple[str, ...]:
    stage = current_stage_name(flag)
    done = {a.item for a in (flag.rollout.acknowledgements if flag.rollout else []) if a.stage == stage}
    return tuple(item for item in rule.checklist if item not in done)


def promote(flag: RouteFlag, rule: DecisionRule, now: datetime) -> RouteFlag:
    """The candidate becomes the baseline for everyone; the old baseline stays as a variation."""
    if flag.rollout is not None and flag.rollout.stage in TERMINAL:
        raise BadInput(f"flag {flag.key} is {flag.rollout.stage.value.replace('_', ' ')}: nothing to promote — "
                       "start a new rollout with `routedeck init`")
    check_matches_rule(rule, flag)
    last = rule.stages[-1].name
    if current_stage_name(flag) != last:
        raise BadInput(f"flag {flag.key} is at stage {current_stage_name(flag)}: promote only from the last stage ({last})")
    state = (flag.rollout or RolloutState()).model_copy(
        update={"stage": Stage.PROMOTED, "stage_label": None, "stage_started_at": now, "pending": None})
    cleared = Allocation(internal_audience=flag.allocation.internal_audience, eligible_scope=flag.allocation.eligible_scope)
    return flag.model_copy(update={"baseline": flag.candidate, "candidate": None, "allocation": cleared, "rollout": state})


def init_flag(rule: DecisionRule, profiles: dict[str, RouteProfile]) -> RouteFlag:
    """A new route flag for the rule: baseline for everyone, the candidate ready, audience and scope set."""
    missing = [r for r in (rule.baseline_route, rule.candidate_route) if r not in profiles]
    if missing:
        raise BadInput(f"no route profile for {', '.join(missing)} — pass --profiles FILE with a JSON object of "
                       "route name → profile")
    allocation = Allocation(
        internal_audience=rule.first_audience, eligible_scope=rule.eligible_scope,
        audience_predicate=rule.audience_predicate if rule.explicit_predicates else None,
        scope_predicate=rule.scope_predicate if rule.explicit_predicates else None,
    )
    return RouteFlag(
        key=rule.flag_key,
        variations={rule.baseline_route: profiles[rule.baseline_route], rule.candidate_route: profiles[rule.candidate_route]},
        baseline=rule.baseline_route, candidate=rule.candidate_route, allocation=allocation,
        rollout=RolloutState(stage=Stage.BASELINE, rule_hash=rule.rule_hash),
    )


def stage_context(flag: RouteFlag, rule: DecisionRule, now: datetime) -> StageContext:
    """What the guardrail engine needs to know about where the rollout stands."""
    spec = stage_spec(rule, flag)
    if spec is None:
        spec = StageSpec(current_stage_name(flag), flag.allocation.candidate_bp, min_units=0, min_dwell_s=0)
    started = flag.rollout.stage_started_at if flag.rollout else None
    elapsed = (now - started).total_seconds() if started else 0.0
    has_control = 0 < flag.allocation.candidate_bp < 10_000
    share = flag.allocation.candidate_share if has_control else None
    return StageContext(
        stage=spec, elapsed_s=max(0.0, elapsed), has_control=has_control,
        pending_checklist=pending_checklist(flag, rule), rule_changed=rule_changed(flag, rule),
        intended_candidate_share=share, segments=bool(rule.segments),
    )
