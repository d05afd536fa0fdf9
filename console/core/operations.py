"""One look and one action at a time: rule + flag platform + metrics + journal, without any UI.

The CLI commands, the console's rollout actions and the headless guard all go through here, so
an advance is journalled, written, confirmed and explained the same way wherever it starts.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from typing import TYPE_CHECKING

from . import rollout
from .audit.writer import current_os_user
from .change_note import noting
from .errors import BackendError, BadInput, VerdictRefused
from .fleet import MIXED_WARNING, fleet_rule
from .journal import Journal, record_action
from .models import Override, RolloutState, RouteFlag, Stage
from .ports import FlagPlatform, MetricsSource, WriteResult
from .timeouts import timeouts
from .stats.spec import Decision, DecisionSpec, GateAction, GateReadout, GateStatus, StageContext, StageSpec, Verdict
from .telemetry import DEFAULT_SLO_MS, Arm, RouteCounters

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


def unsettled(flag: RouteFlag) -> Decision | None:
    """The verdict when the flag's state cannot be taken at its word, else None.

    A write left half-done (the ``pending`` marker) or a state that reads "rolled back" while the
    candidate still serves claims more than the traffic does: a rollback in that position is
    finished (ROLLBACK, the safe direction), any other write holds until it is repeated or rolled back.
    """
    stage_name = rollout.current_stage_name(flag)
    state = flag.rollout
    serving = flag.allocation.serves_candidate
    now_serving = flag.allocation.describe()
    if state is not None and state.pending is not None:
        p = state.pending
        since = p.started_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if p.stage == Stage.ROLLED_BACK.value:
            if serving:
                why = (f"rollback: a rollback started at {since} was not confirmed and the candidate still serves "
                       f"{now_serving} — finish it (`routedeck rollback`)")
            else:
                why = (f"rollback: a rollback started at {since} was not confirmed: nobody is on the candidate, but the "
                       f"stage still reads {stage_name} — finish it (`routedeck rollback`)")
            return Decision(Verdict.ROLLBACK, stage_name, [], [], [why])
        return Decision(Verdict.HOLD, stage_name, [], [], [
            f"a write to stage {p.stage} ({p.allocation}) started at {since} was not confirmed: the platform may hold "
            f"part of it (it serves {now_serving}, the stage reads {stage_name}) — repeat it, or roll back"])
    if state is not None and state.stage is Stage.ROLLED_BACK and serving:
        return Decision(Verdict.ROLLBACK, stage_name, [], [], [
            f"rollback: the rollout reads rolled back, but the platform still serves the candidate to {now_serving} "
            "— roll back again"])
    return None


def look(rule: DecisionRule, platform: FlagPlatform, metrics: MetricsSource) -> Look:
    """Read the flag, read the stage's telemetry, and decide."""
    flag = platform.read_flag(rule.flag_key)
    now = metrics.now()
    now_dt = datetime.fromtimestamp(now, tz=timezone.utc)
    stage_name = rollout.current_stage_name(flag)
    odd = unsettled(flag)
    if odd is not None:
        return Look(flag, odd, now)
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
        if stage_name == Stage.BASELINE.value and rule.evaluation is not None:
            qualification_gate(rule, flag, decision)
        origin_notes(rule, decision)
        return Look(flag, decision, now)
    ctx = rollout.stage_context(flag, rule, now_dt)
    since = _ts(flag.rollout.stage_started_at if flag.rollout else None, now - ctx.elapsed_s)
    decision, gaps = judge_stage(rule, flag, metrics, ctx, since, now)
    for gap in gaps:
        decision.reasons.append(f"note: {gap}")
    if platform.kind == "flagd":
        fleet_notes(decision)
    if flag.allocation.cohort_salt is not None:
        decision.reasons.append(f"note: this rollout's cohort was drawn anew at its restart (salt "
                                f"{flag.allocation.cohort_salt}): other units than the last rollout's come first")
    origin_notes(rule, decision)
    return Look(flag, decision, now)


def origin_notes(rule: DecisionRule, decision: Decision) -> None:
    """Say which guardrails the rule got from the config's rule_defaults, and from where."""
    by_source: dict[str, list[str]] = {}
    for metric, where in rule.inherited_guards().items():
        by_source.setdefault(where, []).append(metric)
    for where, metrics in by_source.items():
        decision.reasons.append(f"note: guardrail{'s' if len(metrics) > 1 else ''} {', '.join(metrics)} "
                                f"from {where}, not from {rule.path}")


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
    decision = decide(as_counted(rule, metrics), ctx, cand, base, counts, request_units=request_units)
    changed = engine_changed(flag)
    if changed is not None and decision.verdict is Verdict.ADVANCE:  # a rollback verdict stands: the safe way
        decision.verdict = Verdict.HOLD
        decision.reasons.insert(0, f"hold: {changed}")
    elif changed is not None:
        decision.reasons.append(f"note: {changed}")
    if counts is not None and counts.note:
        decision.reasons.append(f"note: {counts.note}")
    return decision, gaps


def as_counted(rule: DecisionRule, metrics: MetricsSource) -> DecisionSpec:
    """The rule's spec with the SLO the source counts in-SLO requests at: a metric computed from that count is
    judged only when it is the rule's ``latency_slo_ms`` (``stats.spec.slo_mismatch`` says why not). The
    source counts at one SLO for every rule of a look, so a shared read serves them all."""
    return replace(rule.spec, source_slo_ms=float(getattr(metrics, "slo_ms", DEFAULT_SLO_MS)))


def qualification_gate(rule: DecisionRule, flag: RouteFlag, decision: Decision) -> None:
    """Offline evaluation before any traffic moves: HOLD until the rule's results file proves the
    candidate (matched by its route profile's hash) meets the thresholds; the evidence rides on the
    decision (a health readout, ``decision.evaluation``) into check --json, the journal and the screens."""
    from .evaluation import judge

    requirement = rule.evaluation
    candidate = flag.variations.get(rule.candidate_route)
    if requirement is None:
        return
    if candidate is None:
        status, detail, evidence = GateStatus.FAIL, f"the flag holds no route profile {rule.candidate_route}", None
    else:
        try:
            evidence = judge(requirement, candidate)
        except BadInput as exc:
            status, detail, evidence = GateStatus.FAIL, str(exc), None
        else:
            status = GateStatus.PASS if evidence.ok else GateStatus.FAIL
            detail = evidence.summary() + ("" if evidence.ok else " — " + "; ".join(evidence.problems))
    decision.health.append(GateReadout("offline-eval", status, detail, GateAction.HOLD))
    decision.evaluation = evidence.to_json() if evidence is not None else {"file": str(requirement.results),
                                                                             "ok": False, "refused": detail}
    if status is not GateStatus.PASS:
        decision.verdict = Verdict.HOLD
        decision.reasons[:] = [f"offline evaluation not proven ({requirement.describe()}): {detail}"]
    else:
        decision.reasons.insert(0, f"offline evaluation passed: {evidence.summary()}")


def fleet_notes(decision: Decision) -> None:
    """On a flagd file: warn when the fleet is declared mixed, and name the fleet's bucketing as the likely
    cause when the crossover gate finds units served both arms."""
    mixed = fleet_rule() == "mixed"
    if mixed:
        decision.reasons.append(f"warning: {MIXED_WARNING}")
    for gate in decision.health:
        if gate.name == "crossover" and gate.status is GateStatus.FAIL:
            gate.detail += (" — likely cause: the fleet is declared mixed (services bucketing the flagd file by "
                            "different rules serve one unit both routes)" if mixed else
                            " — if services evaluate the flagd file with different evaluators (Python and "
                            "JavaScript bucket differently), that is the likely cause: set fleet_bucketing")


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
        **({"evaluation": decision.evaluation} if decision.evaluation is not None else {}),
    }


@dataclass
class ActionResult:
    before: RouteFlag
    after: RouteFlag
    write: WriteResult | None  # None for a dry run
    warning: str | None = None


def _anchored(state: RolloutState | None, journal: Journal | None) -> RolloutState | None:
    """The state as this routedeck writes it: its format and version marked (never lowered: a rollback of
    a newer routedeck's state keeps its marks), and with the journal's head (the intent just written) stored
    beside it — an anchor of the journal kept outside it."""
    from .versions import STATE_SCHEMA, routedeck_version

    if state is None:
        return state
    update: dict[str, Any] = {}
    if state.state_schema is None or state.state_schema <= STATE_SCHEMA:
        update |= {"state_schema": STATE_SCHEMA, "writer": routedeck_version()}
    if journal is not None:
        update |= {"chain_head": journal.head.to_text(), "chain_journal": journal.identity}
    return state.model_copy(update=update)


def _write(platform: FlagPlatform, journal: Journal | None, action: str, target: RouteFlag, before: RouteFlag, *,
           reason: str, rule: DecisionRule | None, decision: Decision | None, required: bool,
           rollback_within_s: float | None = None, evidence: dict[str, Any] | None = None,
           sleep: Callable[[float], None] = time.sleep, at: datetime | None = None) -> ActionResult:
    who = journal.operator.name if journal is not None else current_os_user()
    stage = rollout.current_stage_name(target)
    note = f"{who}: {action} to {stage} — {reason}" if stage != rollout.current_stage_name(before) else \
        f"{who}: {action} — {reason}"

    def call() -> WriteResult:
        with noting(note):  # who and why, kept by the platform in its own history (change_note)
            if rollback_within_s is not None:
                return _rollback_until_it_holds(platform, target.key, before, journal, rollback_within_s, sleep,
                                                at or operator_now())
            flag = target.model_copy(update={"rollout": _anchored(target.rollout, journal)})
            return platform.write_flag(flag, before.revision)

    if journal is None:
        result = call()
        return ActionResult(before, result.after, result)
    recorded = record_action(
        journal, action, call=call, flag=target.key,
        before=before.allocation.model_dump(mode="json"), planned=target.allocation.model_dump(mode="json"),
        reason=reason, rule_hash=rule.rule_hash if rule else None,
        verdict=verdict_snapshot(decision) if decision else evidence, required=required,
        detail={"platform": platform.describe()},  # where the anchor of this write is kept (audit verify reads it)
    )
    return ActionResult(before, recorded.result.after, recorded.result, recorded.warning)


class RollbackNotConfirmed(BackendError):
    """A rollback that did not hold within its bound; the message says what the platform holds."""


def _rollback_until_it_holds(platform: FlagPlatform, key: str, before: RouteFlag, journal: Journal | None,
                             within_s: float, sleep: Callable[[float], None], moment: datetime) -> WriteResult:
    """Apply the rollback; if a request fails or the read-back shows something else (a write racing
    it, a platform that dropped part of it), read again and re-apply, until it holds or ``within_s``
    has passed."""
    deadline = time.monotonic() + within_s
    pause = 0.2
    attempts = 0

    def state_for(current: RouteFlag) -> RolloutState | None:
        return _anchored(rollout.rollback(current, moment).rollout, journal)

    while True:
        attempts += 1
        try:
            result = platform.rollback_to_baseline(key, before.revision, rollout=state_for)
            return replace(result, attempts=attempts)
        except BackendError as exc:
            last = exc
        if not last.transient or time.monotonic() + pause > deadline:  # a refused token will not change
            break
        sleep(pause)
        pause = min(2.0, pause * 2)
    try:
        holds = f"the platform now holds {platform.read_flag(key).allocation.describe()}"
    except (BackendError, BadInput):
        holds = "what the platform holds now cannot be read"
    raise RollbackNotConfirmed(
        f"rollback of {key} not confirmed after {attempts} attempt{'s' if attempts > 1 else ''} in {within_s:g} s "
        f"({last}); {holds} — run `routedeck rollback --flag {key}` again"
    ) from None


def _judged_by_this_engine(flag: RouteFlag) -> RouteFlag:
    """The flag with its (new) stage marked as judged by this routedeck's decision engine."""
    from .versions import engine_version

    if flag.rollout is None:
        return flag
    return flag.model_copy(update={"rollout": flag.rollout.model_copy(update={"engine": engine_version()})})


def engine_changed(flag: RouteFlag) -> str | None:
    """In words, when the current stage started under another decision engine than this one; else None."""
    from .versions import engine_version

    state = flag.rollout
    if state is None or state.engine is None or state.engine == engine_version() or state.stage in rollout.TERMINAL:
        return None
    return (f"the stage started under decision engine {state.engine} and this routedeck judges with "
            f"{engine_version()}: the same data may read differently — hold until an operator acknowledges "
            "it (`routedeck ack --engine`)")


def acknowledge_engine(rule: DecisionRule, platform: FlagPlatform, journal: Journal | None, by: str, *,
                       dry_run: bool = False, holder: str | None = None, take_over: str | None = None) -> ActionResult:
    """An operator accepts that the current stage goes on under this routedeck's decision engine."""
    from .versions import engine_version

    flag = platform.read_flag(rule.flag_key)
    rollout.check_matches_rule(rule, flag)
    was = flag.rollout.engine if flag.rollout else None
    if engine_changed(flag) is None:
        return ActionResult(flag, flag, None, warning=f"the stage is judged by this routedeck's engine "
                                                      f"({engine_version()}) already")
    target = _judged_by_this_engine(flag)
    respect_lease(flag, journal, "acknowledge_engine", holder=holder, take_over=take_over, dry_run=dry_run)
    if dry_run:
        return ActionResult(flag, target, None)
    return _write(platform, journal, "acknowledge_engine", target, flag, reason=f"engine {was} → {engine_version()}",
                  rule=rule, decision=None, required=True, evidence={"from": was, "to": engine_version(), "by": by})


def _not_ended(flag: RouteFlag, what: str) -> None:
    """An ended rollout is refused as bad input (exit 2), before any verdict is asked: it is the stage,
    not the evidence, that says no."""
    if flag.rollout is not None and flag.rollout.stage in rollout.TERMINAL:
        raise BadInput(f"flag {flag.key} is {flag.rollout.stage.value.replace('_', ' ')}: nothing to {what} — "
                       "start a new rollout with `routedeck init --restart`")


def respect_lease(flag: RouteFlag, journal: Journal | None, action: str, *, holder: str | None,
                  take_over: str | None, dry_run: bool) -> None:
    """Writes other than a rollback wait for a live lease held by someone else (a guard watching the
    rollout): refused with LeaseHeld (exit 5), unless the operator takes it over with a reason — then the
    take-over is journalled before the write, and the holder keeps its lease (it goes on guarding)."""
    from . import lease as leases

    hint = ("it is guarding this rollout: stop it, wait until it lapses, or repeat with --take-over-lease "
            "--reason TEXT")
    if take_over is None:
        leases.check_free(flag, holder, hint=hint)
        return
    if not take_over.strip():
        raise BadInput("taking over a lease needs a reason: say why (it is recorded in the journal)")
    held = leases.current(flag)
    if dry_run or held is None or held.holder == holder or not leases.is_live(held, datetime.now(timezone.utc)):
        return
    if journal is None:
        raise BadInput("taking over a lease is journalled, and there is no journal to record it in")
    journal.append(kind="event", action="lease_override", flag=flag.key, reason=take_over.strip(),
                   detail={"holder": held.holder, "expires_at": held.expires_at.isoformat(), "for": action})


def advance(rule: DecisionRule, platform: FlagPlatform, current: Look, journal: Journal | None, by: str, *,
            override_reason: str | None = None, reason: str | None = None, dry_run: bool = False,
            on_metrics_clock: bool = False, holder: str | None = None, take_over: str | None = None) -> ActionResult:
    """Move one stage if the verdict allows it (or an override with a reason forces it).

    ``on_metrics_clock``: the stage starts at the look's time on the metrics source's clock rather than
    the wall clock — for a long-lived simulator running faster than real time (the console's demo).
    ``holder`` names the caller's own lease (a console's); a live lease of anyone else refuses the write
    (LeaseHeld) unless ``take_over`` gives a reason.
    """
    decision = current.decision
    override = None
    _not_ended(current.flag, "advance")
    if decision.verdict is not Verdict.ADVANCE:
        if not override_reason:
            raise VerdictRefused(f"advance refused: verdict {decision.verdict.value} — " + "; ".join(decision.reasons[:3])
                                 + " (use --override --reason TEXT to force one stage)", decision.verdict.value)
        target_stage = rollout.next_stage(rule, current.flag)
        override = Override(stage_from=rollout.current_stage_name(current.flag),
                            stage_to=target_stage.name if target_stage else "?", verdict=decision.verdict.value,
                            reason=override_reason, by=by, at=operator_now())
    started = _stage_clock(current) if on_metrics_clock else operator_now()
    target = _judged_by_this_engine(rollout.advance(current.flag, rule, started, by, override=override))
    action = "override" if override else "advance"
    respect_lease(current.flag, journal, action, holder=holder, take_over=take_over, dry_run=dry_run)
    if dry_run:
        return ActionResult(current.flag, target, None)
    return _write(platform, journal, action, target, current.flag, reason=override_reason or reason or "verdict ADVANCE",
                  rule=rule, decision=decision, required=True)


def rollback(platform: FlagPlatform, key: str, journal: Journal | None, *, reason: str, decision: Decision | None = None,
             rule: DecisionRule | None = None, action: str = "rollback", dry_run: bool = False,
             within_s: float | None = None, sleep: Callable[[float], None] = time.sleep,
             at: datetime | None = None) -> ActionResult:
    """Everyone back on the baseline. Never refused: it is the safe direction; the journal cannot block it.

    THE rollback of every path (command line, guard, console key, automatic rollback). It re-reads and
    re-applies until the read-back shows it holds, for at most ``within_s`` (default: the profile's
    ``rollback_within``, 30 s): a write racing it or a request the platform failed does not leave the
    candidate serving. The result's ``write.attempts`` says how many tries it took; ``warning`` says
    what the journal could not record (the rollback is made all the same). ``at`` is when the rolled-back
    stage starts (default: now on the wall clock; the console's demo passes its simulated clock).
    """
    within = timeouts().rollback_within_s if within_s is None else within_s
    moment = at or operator_now()
    flag = _read_retrying(platform, key, within, sleep)
    target = rollout.rollback(flag, moment)
    if dry_run:
        return ActionResult(flag, target, None)
    return _write(platform, journal, action, target, flag, reason=reason, rule=rule, decision=decision,
                  required=False, rollback_within_s=within, sleep=sleep, at=moment)


def _read_retrying(platform: FlagPlatform, key: str, within_s: float, sleep: Callable[[float], None]) -> RouteFlag:
    """The flag, read again on a backend failure for up to ``within_s`` (a rollback must not give up on one blip)."""
    deadline = time.monotonic() + within_s
    pause = 0.2
    while True:
        try:
            return platform.read_flag(key)
        except BackendError as exc:
            if not exc.transient or time.monotonic() + pause > deadline:
                raise
        sleep(pause)
        pause = min(2.0, pause * 2)


def promote(rule: DecisionRule, platform: FlagPlatform, current: Look, journal: Journal | None, by: str, *,
            override_reason: str | None = None, reason: str | None = None, dry_run: bool = False,
            on_metrics_clock: bool = False, holder: str | None = None, take_over: str | None = None) -> ActionResult:
    _not_ended(current.flag, "promote")
    if current.decision.verdict is not Verdict.ADVANCE and not override_reason:
        raise VerdictRefused(f"promote refused: verdict {current.decision.verdict.value} — "
                             + "; ".join(current.decision.reasons[:3]) + " (use --override --reason TEXT to force it)",
                             current.decision.verdict.value)
    target = rollout.promote(current.flag, rule, _stage_clock(current) if on_metrics_clock else operator_now())
    respect_lease(current.flag, journal, "promote", holder=holder, take_over=take_over, dry_run=dry_run)
    if dry_run:
        return ActionResult(current.flag, target, None)
    return _write(platform, journal, "promote", target, current.flag, reason=override_reason or reason or "verdict ADVANCE",
                  rule=rule, decision=current.decision, required=True)


COHORT_CHOICES = ("reuse", "new")


def describe_cohort(salt: str | None, previous: str | None) -> str:
    """The cohort a rollout draws its units from, in words (for dialogs, output and the journal)."""
    if salt == previous:
        return "the previous rollout's cohort (the same units come first)"
    return f"a new cohort (salt {salt})" if salt is not None else "the flag's first cohort"


def restart(rule: DecisionRule, platform: FlagPlatform, journal: Journal | None, *, profiles: dict | None = None,
            reason: str = "", dry_run: bool = False, cohort: str = "reuse", salt: str | None = None,
            holder: str | None = None, take_over: str | None = None) -> ActionResult:
    """A new rollout on a flag whose last one ended (rolled back or promoted): 100% baseline, the rule's
    candidate ready, stage baseline — nothing serves the candidate until the first advance.

    ``profiles`` supplies the candidate's route profile when the flag no longer carries it. ``cohort``:
    ``reuse`` keeps the bucketing, so the units first exposed last time are first again; ``new`` draws
    another cohort (a fresh salt, or ``salt``) — the people a regression hurt are not the first exposed again."""
    if cohort not in COHORT_CHOICES:
        raise BadInput(f"cohort {cohort!r}: choose reuse (the same units first) or new (a cohort drawn anew)")
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
    previous = flag.allocation.cohort_salt
    drawn = previous if cohort == "reuse" else (salt or secrets.token_hex(4))
    target = flag.model_copy(update={
        "variations": variations, "candidate": rule.candidate_route,
        "allocation": fresh.allocation.model_copy(update={"cohort_salt": drawn}),
        "rollout": RolloutState(stage=Stage.BASELINE, rule_hash=rule.rule_hash),
    })
    target = _judged_by_this_engine(target)
    respect_lease(flag, journal, "restart", holder=holder, take_over=take_over, dry_run=dry_run)
    if dry_run:
        return ActionResult(flag, target, None)
    return _write(platform, journal, "restart", target, flag, reason=reason or f"new rollout, rule {rule.path}",
                  rule=rule, decision=None, required=True,
                  evidence={"cohort": cohort, "cohort_salt": drawn, "previous_cohort_salt": previous,
                            "cohort_described": describe_cohort(drawn, previous)})


def acknowledge(rule: DecisionRule, platform: FlagPlatform, item: str, journal: Journal | None, by: str, *,
                dry_run: bool = False, holder: str | None = None, take_over: str | None = None) -> ActionResult:
    """Record that ``item`` of the rule's checklist is done for the current stage. An item already
    acknowledged at this stage is not written again: the result has no write and ``warning`` says
    who acknowledged it and when."""
    flag = platform.read_flag(rule.flag_key)
    stage = rollout.current_stage_name(flag)
    done = next((a for a in (flag.rollout.acknowledgements if flag.rollout else []) if a.item == item and a.stage == stage),
                None)
    if done is not None and item in rule.checklist:
        when = done.at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return ActionResult(flag, flag, None, warning=f"already acknowledged at stage {stage} by {done.by} at {when}")
    target = rollout.acknowledge(flag, item, by, operator_now(), rule)
    respect_lease(flag, journal, "acknowledge", holder=holder, take_over=take_over, dry_run=dry_run)
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
        readout = readout_from_groups(as_counted(rule, metrics), groups, rule.segments, comparable_for(rule, flag),
                                      excluded)
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
                    dry_run: bool = False, holder: str | None = None, take_over: str | None = None) -> ActionResult:
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
    respect_lease(current, journal, "exclude_segment", holder=holder, take_over=take_over, dry_run=dry_run)
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
        if before.allocation.cohort_salt != after.allocation.cohort_salt:
            lines.append(f"  cohort: {describe_cohort(after.allocation.cohort_salt, before.allocation.cohort_salt)}")
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


__all__ = ["Look", "ActionResult", "look", "unsettled", "RollbackNotConfirmed", "respect_lease", "advance", "rollback", "promote", "acknowledge", "hold", "describe_change",
           "verdict_snapshot", "StageContext", "comparable_for", "SegmentLook", "look_segments", "segment_response",
           "segment_evidence", "exclude_segment"]
