"""One look and one action at a time: rule + flag platform + metrics + journal, without any UI.

The CLI commands, the console's rollout actions and the headless guard all go through here, so
an advance is journalled, written, confirmed and explained the same way wherever it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from typing import TYPE_CHECKING

from . import rollout
from .errors import BadInput
from .journal import Journal, record_action
from .models import Override, RolloutState, RouteFlag, Stage
from .ports import FlagPlatform, MetricsSource, WriteResult
from .stats.spec import Decision, StageContext, StageSpec, Verdict
from .telemetry import Arm, RouteCounters

if TYPE_CHECKING:  # the rule loader and the statistics (numpy) are imported where a look needs them: a
    # rollback, an acknowledgement or a restart never waits for them
    from .rules import DecisionRule
    from .stats.segments import SegmentReadout


@dataclass
class Look:
    flag: RouteFlag
    decision: Decision
    at: float  # the metrics source's clock


def _ts(moment: datetime | None, default: float) -> float:
    return moment.timestamp() if moment is not None else default


def look(rule: DecisionRule, platform: FlagPlatform, metrics: MetricsSource) -> Look:
    """Read the flag, read the stage's telemetry, and decide."""
    flag = platform.read_flag(rule.flag_key)
    now = metrics.now()
    now_dt = datetime.fromtimestamp(now, tz=timezone.utc)
    stage_name = rollout.current_stage_name(flag)
    if flag.rollout is not None and flag.rollout.stage in rollout.TERMINAL:
        # checked before the routes: a promoted flag's baseline is the rule's candidate now
        decision = Decision(Verdict.HOLD, stage_name, [], [], [f"the rollout is {stage_name.replace('_', ' ')}: nothing to decide"])
        return Look(flag, decision, now)
    rollout.check_matches_rule(rule, flag)
    if flag.allocation.serve_all is not None:
        decision = Decision(Verdict.HOLD, stage_name, [], [],
                            [f"everyone is on {flag.allocation.serve_all} (emergency switch): undo it before deciding"])
        return Look(flag, decision, now)
    if stage_name == Stage.BASELINE.value or not flag.allocation.serves_candidate:
        first = rule.stages[0].name
        decision = Decision(Verdict.ADVANCE, stage_name, [], [],
                            [f"not started: no traffic on the candidate yet; advancing starts stage {first}"])
        return Look(flag, decision, now)
    ctx = rollout.stage_context(flag, rule, now_dt)
    since = _ts(flag.rollout.stage_started_at if flag.rollout else None, now - ctx.elapsed_s)
    decision, gaps = judge_stage(rule, flag, metrics, ctx, since, now)
    for gap in gaps:
        decision.reasons.append(f"note: {gap}")
    return Look(flag, decision, now)


def judge_stage(rule: DecisionRule, flag: RouteFlag, metrics: MetricsSource, ctx, since: float,
                now: float) -> tuple[Decision, list[str]]:
    """The stage's decision from the source's per-arm summaries (a look never reads raw observations).

    Unit-level sources give summaries grouped by the attributes the rule's predicates read; the rule's
    comparable-unit predicate keeps the comparable groups. Request-level sources give one group per arm;
    their comparable units are counted from the source's unit groups.
    """
    from .comparable_counts import comparable_unit_counts, rule_attributes
    from .ports import summaries_from_snapshots
    from .stats.engine import decide
    from .stats.summary import comparable_arms

    comparable = comparable_for(rule, flag)
    stage = flag.rollout.stage.value if flag.rollout is not None else None
    maturation = rule.spec.gates.maturation_s
    if metrics.capabilities.unit_level:
        groups = metrics.read_summaries(flag.key, since, maturation, tuple(sorted(rule_attributes(rule, flag))))
        snap = metrics.read(since, now, max(1.0, now - since))
    else:
        snap = metrics.read(since, now, max(1.0, now - since))
        cutoff = now - maturation
        matured = metrics.read(since, cutoff, max(1.0, cutoff - since)) if cutoff > since else None
        groups = summaries_from_snapshots(snap, matured, flag.key)
    cand, base = comparable_arms(groups, comparable, stage, control=ctx.has_control)
    totals: dict[Arm, RouteCounters] = {}
    for key, c in snap.totals.items():
        if key.flag == flag.key:
            totals.setdefault(key.arm, RouteCounters()).add(c)
    gaps = list(snap.gaps)
    if not cand.request_level and not cand.hist and not cand.empty:
        # per-unit histograms unknown: the arm's request histogram (every unit of the arm, comparable or not)
        for summary, arm in ((cand, Arm.CANDIDATE), (base, Arm.BASELINE)):
            c = totals.get(arm)
            if c is not None:
                summary.hist = {"latency_hist": list(c.latency_hist), "ttft_hist": list(c.ttft_hist)}
        gaps.append("the source gives no per-unit latency histograms: quantiles read every request of each arm")
    counts = None
    request_units = None
    if cand.request_level or base.request_level or not metrics.capabilities.unit_level:
        counts = comparable_unit_counts(rule, flag, snap.unit_groups, metrics.capabilities.unit_attributes, comparable)
        request_units = (totals.get(Arm.CANDIDATE, RouteCounters()).new_units,
                         totals.get(Arm.BASELINE, RouteCounters()).new_units)
    decision = decide(rule.spec, ctx, cand, base, counts, request_units=request_units)
    if counts is not None and counts.note:
        decision.reasons.append(f"note: {counts.note}")
    return decision, gaps


def operator_now() -> datetime:
    return datetime.now(timezone.utc)


def _stage_clock(current: Look) -> datetime:
    """The look's "now" on the metrics source's clock: dwell and the stage's counts are measured on it."""
    return datetime.fromtimestamp(current.at, tz=timezone.utc)


def verdict_snapshot(decision: Decision) -> dict[str, Any]:
    """The evidence behind an action, as the journal stores it."""
    return {
        "verdict": decision.verdict.value,
        "stage": decision.stage,
        "health": [{"name": g.name, "status": g.status.value, "detail": g.detail} for g in decision.health],
        "metrics": [
            {"name": m.name, "candidate": m.candidate, "baseline": m.baseline,
             "interval": list(m.interval) if m.interval else None, "threshold": m.threshold,
             "n": [m.n_candidate, m.n_baseline], "verdict": m.verdict.value, "critical": m.critical,
             "action": m.action, "signal": m.signal}
            for m in decision.metrics
        ],
        "reasons": decision.reasons,
        "request_level": decision.request_level,
        "eta_s": decision.eta_s,
        "alpha": decision.alpha.as_json() if decision.alpha is not None else None,
    }


@dataclass
class ActionResult:
    before: RouteFlag
    after: RouteFlag
    write: WriteResult | None  # None for a dry run
    warning: str | None = None


def _write(platform: FlagPlatform, journal: Journal | None, action: str, target: RouteFlag, before: RouteFlag, *,
           reason: str, rule: DecisionRule | None, decision: Decision | None, required: bool,
           rollback_write: bool = False, evidence: dict[str, Any] | None = None) -> ActionResult:
    def call() -> WriteResult:
        flag = target
        if journal is not None and flag.rollout is not None:
            # anchor the journal outside itself: the platform keeps the head (the intent just written)
            anchored = flag.rollout.model_copy(update={"chain_head": journal.head.to_text()})
            flag = flag.model_copy(update={"rollout": anchored})
        if rollback_write:
            return platform.rollback_to_baseline(flag.key, before.revision, rollout=flag.rollout)
        return platform.write_flag(flag, before.revision)

    if journal is None:
        return ActionResult(before, call().after, None)
    recorded = record_action(
        journal, action, call=call, flag=target.key,
        before=before.allocation.model_dump(mode="json"), planned=target.allocation.model_dump(mode="json"),
        reason=reason, rule_hash=rule.rule_hash if rule else None,
        verdict=verdict_snapshot(decision) if decision else evidence, required=required,
    )
    return ActionResult(before, recorded.result.after, recorded.result, recorded.warning)


def advance(rule: DecisionRule, platform: FlagPlatform, current: Look, journal: Journal | None, by: str, *,
            override_reason: str | None = None, reason: str | None = None, dry_run: bool = False,
            on_metrics_clock: bool = False) -> ActionResult:
    """Move one stage if the verdict allows it (or an override with a reason forces it).

    ``on_metrics_clock``: the stage starts at the look's time on the metrics source's clock rather than
    the wall clock — for a long-lived simulator running faster than real time (the console's demo).
    """
    decision = current.decision
    override = None
    if decision.verdict is not Verdict.ADVANCE:
        if not override_reason:
            raise BadInput(f"advance refused: verdict {decision.verdict.value} — " + "; ".join(decision.reasons[:3])
                           + " (use --override --reason TEXT to force one stage)")
        target_stage = rollout.next_stage(rule, current.flag)
        override = Override(stage_from=rollout.current_stage_name(current.flag),
                            stage_to=target_stage.name if target_stage else "?", verdict=decision.verdict.value,
                            reason=override_reason, by=by, at=operator_now())
    started = _stage_clock(current) if on_metrics_clock else operator_now()
    target = rollout.advance(current.flag, rule, started, by, override=override)
    if dry_run:
        return ActionResult(current.flag, target, None)
    action = "override" if override else "advance"
    return _write(platform, journal, action, target, current.flag, reason=override_reason or reason or "verdict ADVANCE",
                  rule=rule, decision=decision, required=True)


def rollback(platform: FlagPlatform, key: str, journal: Journal | None, *, reason: str, decision: Decision | None = None,
             rule: DecisionRule | None = None, action: str = "rollback", dry_run: bool = False) -> ActionResult:
    """Everyone back on the baseline. Never refused: it is the safe direction; the journal cannot block it."""
    flag = platform.read_flag(key)
    target = rollout.rollback(flag, operator_now())
    if dry_run:
        return ActionResult(flag, target, None)
    return _write(platform, journal, action, target, flag, reason=reason, rule=rule, decision=decision,
                  required=False, rollback_write=True)


def promote(rule: DecisionRule, platform: FlagPlatform, current: Look, journal: Journal | None, by: str, *,
            override_reason: str | None = None, reason: str | None = None, dry_run: bool = False,
            on_metrics_clock: bool = False) -> ActionResult:
    if current.decision.verdict is not Verdict.ADVANCE and not override_reason:
        raise BadInput(f"promote refused: verdict {current.decision.verdict.value} — "
                       + "; ".join(current.decision.reasons[:3]) + " (use --override --reason TEXT to force it)")
    target = rollout.promote(current.flag, rule, _stage_clock(current) if on_metrics_clock else operator_now())
    if dry_run:
        return ActionResult(current.flag, target, None)
    return _write(platform, journal, "promote", target, current.flag, reason=override_reason or reason or "verdict ADVANCE",
                  rule=rule, decision=current.decision, required=True)


def restart(rule: DecisionRule, platform: FlagPlatform, journal: Journal | None, *, profiles: dict | None = None,
            reason: str = "", dry_run: bool = False) -> ActionResult:
    """A new rollout on a flag whose last one ended (rolled back or promoted): 100% baseline, the rule's
    candidate ready, stage baseline — nothing serves the candidate until the first advance.

    ``profiles`` supplies the candidate's route profile when the flag no longer carries it."""
    flag = platform.read_flag(rule.flag_key)
    if flag.rollout is None or flag.rollout.stage not in rollout.TERMINAL:
        raise BadInput(f"{flag.key} is at stage {rollout.current_stage_name(flag)}: a new rollout starts only after "
                       "the last one ended (rolled back or promoted) — roll it back first, or keep advancing it")
    if flag.baseline != rule.baseline_route:
        raise BadInput(f"{flag.key} serves baseline {flag.baseline}, but {rule.path} names "
                       f"{rule.baseline_route} — fix the rule's baseline_route")
    variations = dict(flag.variations)
    if rule.candidate_route not in variations:
        if not profiles or rule.candidate_route not in profiles:
            raise BadInput(f"{flag.key} has no route profile for {rule.candidate_route} — run "
                           "`routedeck init --restart --profiles FILE` with one")
        variations[rule.candidate_route] = profiles[rule.candidate_route]
    fresh = rollout.init_flag(rule, {rule.baseline_route: variations[rule.baseline_route],
                                     rule.candidate_route: variations[rule.candidate_route]})
    target = flag.model_copy(update={
        "variations": variations, "candidate": rule.candidate_route, "allocation": fresh.allocation,
        "rollout": RolloutState(stage=Stage.BASELINE, rule_hash=rule.rule_hash),
    })
    if dry_run:
        return ActionResult(flag, target, None)
    return _write(platform, journal, "restart", target, flag, reason=reason or f"new rollout, rule {rule.path}",
                  rule=rule, decision=None, required=True)


def acknowledge(rule: DecisionRule, platform: FlagPlatform, item: str, journal: Journal | None, by: str, *,
                dry_run: bool = False) -> ActionResult:
    flag = platform.read_flag(rule.flag_key)
    target = rollout.acknowledge(flag, item, by, operator_now(), rule)
    if dry_run:
        return ActionResult(flag, target, None)
    return _write(platform, journal, "acknowledge", target, flag, reason=item, rule=rule, decision=None, required=True)


def hold(rule: DecisionRule, current: Look, journal: Journal | None, *, reason: str) -> None:
    """Stay at this stage on purpose: recorded with the evidence, nothing written to the platform."""
    if journal is None:
        raise BadInput("hold: there is no audit journal to record it in — a hold is only a record")
    journal.append(kind="event", action="hold", flag=rule.flag_key,
                   before=current.flag.allocation.model_dump(mode="json"), reason=reason, rule_hash=rule.rule_hash,
                   verdict=verdict_snapshot(current.decision),
                   detail={"stage": rollout.current_stage_name(current.flag)})


def comparable_for(rule: DecisionRule, flag: RouteFlag):
    """Units that may be compared at this look: the rule's comparable units minus excluded segments
    (their units all get the baseline now, so they are no longer randomised)."""
    base = rule.comparable()
    excluded = flag.allocation.excluded_segments
    if not excluded:
        return base

    def check(unit) -> bool:
        return base(unit) and not any(unit.segment.get(attr) == value for attr, value in excluded)

    return check


@dataclass
class SegmentLook:
    flag: RouteFlag
    readout: SegmentReadout
    at: float  # the metrics source's clock
    stage: str


def look_segments(rule: DecisionRule, platform: FlagPlatform, metrics: MetricsSource) -> SegmentLook:
    """Read the flag and the stage's unit records, and compare the arms within every pre-registered segment."""
    from .comparable_counts import rule_attributes
    from .stats.segments import SegmentReadout, readout_from_groups, segment_readout

    flag = platform.read_flag(rule.flag_key)
    rollout.check_matches_rule(rule, flag)
    now = metrics.now()
    stage_name = rollout.current_stage_name(flag)
    excluded = flag.allocation.excluded_segments
    if not flag.allocation.serves_candidate or (flag.rollout is not None and flag.rollout.stage in rollout.TERMINAL):
        readout = SegmentReadout([], rule.spec.alpha, 0, [f"stage {stage_name}: nobody is on the candidate — "
                                                          "no segment to compare"])
        return SegmentLook(flag, readout, now, stage_name)
    ctx = rollout.stage_context(flag, rule, datetime.fromtimestamp(now, tz=timezone.utc))
    since = _ts(flag.rollout.stage_started_at if flag.rollout else None, now - ctx.elapsed_s)
    if not metrics.capabilities.unit_level:
        readout = segment_readout(rule.spec, rule.segments, None)
    elif not ctx.has_control:
        readout = segment_readout(rule.spec, rule.segments, [], has_control=False)
    else:
        group_by = tuple(sorted(set(rule.segments) | rule_attributes(rule, flag)))
        groups = metrics.read_summaries(flag.key, since, rule.spec.gates.maturation_s, group_by)
        stage = flag.rollout.stage.value if flag.rollout is not None else None
        if stage is not None and any(g.stage == stage for g in groups):
            groups = [g for g in groups if g.stage == stage]
        readout = readout_from_groups(rule.spec, groups, rule.segments, comparable_for(rule, flag), excluded)
    return SegmentLook(flag, readout, now, stage_name)


def segment_response(rule: DecisionRule, current: SegmentLook) -> list[str]:
    """What the rule's ``segment_harm`` asks for, given the segments flagged at this look, in words."""
    harmed = current.readout.harmed
    if not harmed:
        return []
    names = ", ".join(f"{a}={v}" for a, v in harmed)
    if rule.segment_harm == "exclude":
        return [f"exclude {a}={v} from the candidate (the rule says segment harm excludes the segment)" for a, v in harmed]
    if rule.segment_harm == "rollback":
        return [f"rollback: harm in {names} and the rule says segment harm rolls the whole candidate back"]
    return [f"report: harm in {names} (the rule only reports segment harm)"]


def segment_evidence(readout: SegmentReadout, attribute: str, value: str) -> dict[str, Any]:
    """The rows behind a segment decision, as the journal stores them."""
    return {
        "segment": {"attribute": attribute, "value": value},
        "alpha": readout.alpha,
        "hypotheses": readout.hypotheses,
        "correction": "e-BH over every (segment, guardrail)",
        "metrics": [
            {"name": r.metric, "candidate": r.candidate, "baseline": r.baseline,
             "interval": list(r.interval) if r.interval else None, "threshold": r.margin,
             "n": [r.n_candidate, r.n_baseline], "e_value": r.e_value, "p_value": r.p_value,
             "verdict": r.verdict.value, "critical": r.critical}
            for r in readout.rows if r.segment == (attribute, value)
        ],
    }


def exclude_segment(rule: DecisionRule, platform: FlagPlatform, flag: str, attribute: str, value: str,
                    journal: Journal | None, by: str, reason: str, *, evidence: dict[str, Any] | None = None,
                    dry_run: bool = False) -> ActionResult:
    """Send one segment of the rule's flag to the baseline for the rest of the rollout.

    Only a pre-registered segment attribute may be excluded; the change is journalled (intent with the
    evidence, then the outcome) and confirmed by reading the flag back, like any other write.
    """
    if not (reason and reason.strip()):
        raise BadInput("excluding a segment needs a reason: say why (it is recorded in the journal)")
    if attribute not in rule.segments:
        raise BadInput(f"{rule.path}: segments: {attribute!r} is not a pre-registered segment attribute "
                       f"({', '.join(rule.segments)}) — only attributes fixed before exposure can be excluded")
    if not value:
        raise BadInput(f"exclude {attribute}=…: name the segment value, e.g. {attribute}=eu")
    current = platform.read_flag(flag)
    rollout.check_matches_rule(rule, current)
    if current.candidate is None:
        raise BadInput(f"flag {flag} has no candidate: there is nothing to exclude {attribute}={value} from")
    if (attribute, value) in current.allocation.excluded_segments:
        raise BadInput(f"flag {flag}: {attribute}={value} is already excluded from the candidate — nothing changed")
    allocation = current.allocation.model_copy(
        update={"excluded_segments": current.allocation.excluded_segments + ((attribute, value),)})
    target = current.model_copy(update={"allocation": allocation})
    if dry_run:
        return ActionResult(current, target, None)
    if journal is None:
        return ActionResult(current, platform.write_flag(target, current.revision).after, None)
    evidence = dict(evidence or {}) | {"by": by}
    return _write(platform, journal, "exclude_segment", target, current, reason=reason.strip(), rule=rule,
                  decision=None, required=True, evidence=evidence)


def describe_change(before: RouteFlag, after: RouteFlag) -> list[str]:
    """The exact before/after of a flag change, line by line (for --dry-run and confirm dialogs)."""
    lines = []
    if before.allocation != after.allocation:
        lines.append(f"allocation: {before.allocation.describe()}{' (internal on)' if before.allocation.internal_enabled else ''}"
                     f"  →  {after.allocation.describe()}{' (internal on)' if after.allocation.internal_enabled else ''}")
        if before.allocation.candidate_bp != after.allocation.candidate_bp:
            lines.append(f"  candidate weight {before.allocation.candidate_bp} → {after.allocation.candidate_bp} of 10000 "
                         f"(baseline {10000 - before.allocation.candidate_bp} → {10000 - after.allocation.candidate_bp})")
        if before.allocation.excluded_segments != after.allocation.excluded_segments:
            names = [", ".join(f"{a}={v}" for a, v in x.excluded_segments) or "none"
                     for x in (before.allocation, after.allocation)]
            lines.append(f"  excluded from the candidate (always baseline): {names[0]} → {names[1]}")
        if before.allocation.internal_enabled != after.allocation.internal_enabled:
            lines.append(f"  first audience {before.allocation.internal_audience}: "
                         f"{'on' if before.allocation.internal_enabled else 'off'} → {'on' if after.allocation.internal_enabled else 'off'}")
    if before.baseline != after.baseline:
        lines.append(f"baseline: {before.baseline} → {after.baseline}")
    if before.candidate != after.candidate:
        lines.append(f"candidate: {before.candidate or 'none'} → {after.candidate or 'none (the baseline serves everyone)'}")
    b_stage = rollout.current_stage_name(before)
    a_stage = rollout.current_stage_name(after)
    if b_stage != a_stage:
        lines.append(f"stage: {b_stage} → {a_stage}")
    return lines or ["no change"]


def stage_of(rule: DecisionRule, flag: RouteFlag) -> StageSpec | None:
    return rollout.stage_spec(rule, flag)


__all__ = ["Look", "ActionResult", "look", "advance", "rollback", "promote", "acknowledge", "hold", "describe_change",
           "verdict_snapshot", "StageContext", "comparable_for", "SegmentLook", "look_segments", "segment_response",
           "segment_evidence", "exclude_segment"]
