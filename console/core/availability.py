"""Whether each console action applies to the session now, and if not, why — in the operator's words.

The action registry (``console/actions.py``) asks these for the footer, `?` help and the
palette; the actions ask them again before they act. Pure functions of a ``Session``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .errors import RouteDeckError

if TYPE_CHECKING:
    from .models import RouteFlag
    from .session import Session

READ_ONLY = "read-only console: actions that change flags are disabled"
NO_RULE = "no decision rule: start the console with --rule FILE"


def rollback_target(s: "Session") -> tuple[str | None, str]:
    """(flag `R` would roll back, or None, and why not). The flag in view, else the only flag in rollout."""
    if s.platform is None:
        return None, "still connecting to the flag platform"
    key = s.in_view
    if key is not None:
        flag = s.flags.get(key)
        if flag is None:
            return None, f"{key} has not been read from the flag platform yet"
        if flag.candidate is None and not flag.foreign_targeting and not flag.allocation.serve_all:
            others = s.rollout_flags()
            if len(others) == 1:
                return others[0].key, ""
            if flag.rollout is not None and flag.rollout.stage.value == "promoted":
                return None, f"{key} is promoted: {flag.baseline} is its baseline and serves everyone"
            return None, f"{key} has no candidate route: highlight a route of a flag in rollout"
        if not (flag.allocation.serves_candidate or flag.foreign_targeting or flag.allocation.serve_all):
            return None, f"{key} already serves 100% baseline ({flag.baseline})"
        return key, ""
    flags = s.rollout_flags()
    if len(flags) == 1:
        return flags[0].key, ""
    if not flags:
        return None, "no flag is serving a candidate route"
    return None, "several flags are in rollout: highlight a route of the one to roll back"


def verdict_unavailable(s: "Session") -> str | None:
    if s.rule is None:
        return NO_RULE
    if s.decision is None:
        return s.verdict_error or "the first verdict is still being computed"
    return None


def ended(flag: "RouteFlag") -> str | None:
    """'promoted' or 'rolled back' once the flag's rollout is over, else None."""
    from . import rollout as ro  # the models pull in pydantic: not on the path to the first frame

    if flag.rollout is not None and flag.rollout.stage in ro.TERMINAL:
        return flag.rollout.stage.value.replace("_", " ")
    return None


def restart_blocked(flag: "RouteFlag", rule) -> str | None:
    """Why a new rollout (N) of this flag cannot start with this rule, as ``operations.restart`` would refuse
    it; None when it can. After a promote the candidate serves as the baseline, and a rule that still names
    the old baseline cannot start anything on it."""
    if flag.baseline != rule.baseline_route:
        return (f"the rule's baseline {rule.baseline_route} no longer serves {flag.key} ({flag.baseline} does): "
                f"a new rollout needs a rule whose baseline_route is {flag.baseline}")
    return None


def next_rollout(flag: "RouteFlag", rule, short: bool = False) -> str:
    """What N does for an ended rollout, in words: it starts a new one, or it is unavailable and why."""
    blocked = restart_blocked(flag, rule)
    if blocked is None:
        return "N starts a new rollout"
    return "N unavailable: the rule's baseline no longer serves" if short else f"N is unavailable: {blocked}"


def rollout_why_not(s: "Session", action: str) -> str | None:
    """Why a rollout action (advance, override, hold, promote, acknowledge, restart) does not apply now."""
    rule = s.rule
    if rule is None:
        return NO_RULE
    if s.platform is None or s.metrics is None:
        return "still connecting to the flag platform and the metrics source"
    busy = s.busy_with(rule.flag_key)
    if busy:
        return f"{busy} of {rule.flag_key} is in progress"
    flag = s.flags.get(rule.flag_key)
    if flag is None:
        return f"{rule.flag_key} has not been read from the flag platform yet"
    from . import rollout as ro  # the models pull in pydantic: not on the path to the first frame

    stage = ro.current_stage_name(flag)
    over = ended(flag)
    if action == "restart":
        if not over:
            return (f"the rollout is at stage {stage}: a new one starts only after this one ended (rolled back "
                    "or promoted)")
        return restart_blocked(flag, rule)
    if over:
        blocked = restart_blocked(flag, rule)
        return f"the rollout is {over}: nothing to {action}" + (" — N starts a new one" if blocked is None else "")
    if action == "acknowledge":
        return None if ro.pending_checklist(flag, rule) else "no checklist item is waiting to be acknowledged"
    d = s.decision
    if d is None or d.stage != stage:
        return s.verdict_error or "the verdict for this stage is still being computed"
    if action == "hold":
        return None if flag.allocation.serves_candidate else "the candidate gets no traffic yet: nothing to hold"
    try:
        nxt = ro.next_stage(rule, flag)
    except RouteDeckError as exc:
        return str(exc)
    verdict = d.verdict.value
    first = first_reason(d)
    if action == "advance":
        if nxt is None:
            return f"at the last stage ({stage}): promote instead"
        return None if verdict == "ADVANCE" else f"{verdict} — {first}"
    if action == "promote":
        if nxt is not None:
            return f"at stage {stage}: promote only from the last stage ({rule.stages[-1].name})"
        return None if verdict == "ADVANCE" else f"{verdict} — {first}"
    if action == "override":
        return "the verdict is ADVANCE: no override needed" if verdict == "ADVANCE" else None
    return None


def short_reason(reason: str, decision=None) -> str:
    """A reason without the numbers a metric's readout adds after " — " (the tables show them)."""
    head, sep, tail = reason.partition(" — ")
    names = {m.name for m in decision.metrics} if decision is not None else set()
    if sep and (tail.split(" ", 1)[0] in names | {"p95_latency"} or not names and " cand " in tail):
        return head
    return reason


def first_reason(decision) -> str:
    """The decision's first reason that is not a note, short, without its 'hold:'/'rollback:' prefix."""
    first = short_reason(next((r for r in decision.reasons if not r.startswith("note")), ""), decision)
    return first.partition(": ")[2] if first.startswith(("hold:", "rollback:")) else first


def safe_choices(flag: "RouteFlag") -> list[str]:
    """Variations a switch may send everyone to: not the candidate, nor the baseline that already serves all."""
    from .incident import safe_routes

    names = safe_routes(flag.variations, flag.candidate)
    if not flag.allocation.serves_candidate:
        names = [n for n in names if n != flag.baseline]
    return names


def worst_flag(s: "Session") -> str | None:
    """The flag of the most failing route of the worst provider (what `x` acts on by default)."""
    if s.snapshot is None:
        return None
    from .incident import provider_health

    for ph in provider_health(s.snapshot):
        hurt = ph.hurt_routes()
        if hurt:
            return hurt[0].key.flag
    return None


def switch_target(s: "Session") -> tuple[str | None, str]:
    if s.platform is None:
        return None, "still connecting to the flag platform"
    if not getattr(s.platform, "can_switch", False):
        return None, f"{s.platform.describe()} cannot send everyone to one route yet: R rolls back instead"
    key = s.in_view or worst_flag(s)
    if key is None:
        return None, "no flag to switch: highlight a route (i lists the routes a failing provider hurts)"
    busy = s.busy_with(key)
    if busy:
        return None, f"{busy} of {key} is in progress"
    flag = s.flags.get(key)
    if flag is None:
        return None, f"{key} has not been read from the flag platform yet"
    if flag.allocation.serve_all:
        return None, f"{key} already sends everyone to {flag.allocation.serve_all} (u undoes it)"
    if flag.foreign_targeting:
        return None, f"{key} holds targeting routedeck did not write: roll back (R) first"
    if not safe_choices(flag):
        return None, f"{key} has no other route among its variations to switch to"
    return key, ""


def undo_switch_target(s: "Session") -> tuple[str | None, str]:
    if s.platform is None:
        return None, "still connecting to the flag platform"
    switched = sorted(k for k, f in s.flags.items() if f.allocation.serve_all)
    if not switched:
        return None, "no emergency switch is in force"
    key = s.in_view if s.in_view in switched else switched[0] if len(switched) == 1 else None
    if key is None:
        return None, f"several flags are switched ({', '.join(switched)}): highlight a route of one"
    busy = s.busy_with(key)
    if busy:
        return None, f"{busy} of {key} is in progress"
    return key, ""


def unguarded_rollouts(s: "Session", now: datetime | None = None) -> list[str]:
    """Flags whose only automatic-rollback watch is this console: a rule with automatic rollback, the
    candidate serving, and no live lease held by a headless guard."""
    from .lease import is_live

    now = now or datetime.now(timezone.utc)
    out = []
    for key, rule in s.rules.items():
        flag = s.flags.get(key)
        if flag is None or not rule.spec.auto_rollback or not flag.allocation.serves_candidate:
            continue
        lease = flag.rollout.lease if flag.rollout is not None else None
        if lease is not None and is_live(lease, now) and lease.holder.startswith("guard:"):
            continue
        out.append(key)
    return out


def quit_question(s: "Session") -> str | None:
    """Why quitting needs a second thought (None: quit at once)."""
    if s.writes:
        return f"{s.busy()} is in flight: quitting now leaves its outcome unseen here"
    if s.read_only:
        return None
    alone = unguarded_rollouts(s)
    if alone:
        return (f"this console is the only automatic-rollback watch of {', '.join(alone)} (no guard holds its lease): "
                "after you quit, nothing rolls it back on a ROLLBACK verdict")
    return None
