"""Comparable units from a source that counts units but keeps no per-unit records.

A rule compares only units inside its eligible scope and outside its first audience (and outside
any excluded segment). A request-level source splits its unit counts by a few attributes; when the
rule's predicates use only those, the same predicates pick the comparable groups, so the
sample-ratio and crossover gates see the population the stage's share applies to. When they use
an attribute the source does not split by, the counts are missing, said in words — never guessed
from every unit. Units an application labels with the current stage are preferred over units it
counted before it saw the stage change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .models import RouteFlag
from .rules import DecisionRule
from .stats.engine import UnitCounts
from .telemetry import Arm, UnitGroup


def predicate_attributes(predicate: Any) -> set[str]:
    """The attribute names a JsonLogic predicate reads with ``var`` (the first part of a dotted path)."""
    found: set[str] = set()
    if isinstance(predicate, dict):
        for op, args in predicate.items():
            if op == "var":
                name = args[0] if isinstance(args, list) and args else args
                if isinstance(name, str) and name:
                    found.add(name.split(".")[0])
                continue
            found |= predicate_attributes(args)
    elif isinstance(predicate, list):
        for item in predicate:
            found |= predicate_attributes(item)
    return found


def rule_attributes(rule: DecisionRule, flag: RouteFlag) -> set[str]:
    """Every attribute that decides whether a unit may be compared under ``rule`` on ``flag`` now."""
    used = predicate_attributes(rule.scope_predicate) | predicate_attributes(rule.audience_predicate)
    return used | {attr for attr, _ in flag.allocation.excluded_segments}


def comparable_unit_counts(
    rule: DecisionRule,
    flag: RouteFlag,
    groups: list[UnitGroup] | None,
    attributes: Iterable[str],
    is_comparable: Callable[[Any], bool],
) -> UnitCounts | None:
    """The comparable units per arm, or why they cannot be counted; None when every unit is comparable
    and the source gives no groups (the engine then uses the source's unit totals as they are)."""
    used = rule_attributes(rule, flag)
    if groups is None:
        if not used:
            return None
        return UnitCounts(missing=f"the metrics source does not split units by {_names(used)}, so the units this "
                                  "rule compares (eligible scope, not the first audience) cannot be counted")
    lacking = used - set(attributes)
    if lacking:
        return UnitCounts(missing=f"the rule's scope or audience reads {_names(lacking)}, which the metrics source "
                                  "does not split units by — the units it compares cannot be counted")
    mine = [g for g in groups if g.key.flag == flag.key and g.key.arm in (Arm.CANDIDATE, Arm.BASELINE)]
    stage = flag.rollout.stage.value if flag.rollout is not None else None
    if stage is not None and any(g.stage == stage for g in mine):
        # units the application counted under the stage before (it had not yet fetched the change) were
        # split by the old share: only those counted under this stage are tested against its share
        mine = [g for g in mine if g.stage == stage]
    note = ""
    blank = sorted(a for a in used if mine and all(not g.segment.get(a) for g in mine))
    if blank:
        note = (f"no unit of {flag.key} carries {_names(set(blank))} in the metrics — is the application "
                "labelling units with the targeting attributes it sends? Units without them are not comparable")
    chosen = [g for g in mine if is_comparable(g)]
    cand = sum(g.units for g in chosen if g.key.arm is Arm.CANDIDATE)
    base = sum(g.units for g in chosen if g.key.arm is Arm.BASELINE)
    crossed = None if any(g.crossed is None for g in mine) else sum(g.crossed or 0 for g in chosen)
    return UnitCounts(cand, base, crossed, note=note)


def _names(attrs: set[str]) -> str:
    return ", ".join(f"'{a}'" for a in sorted(attrs))
