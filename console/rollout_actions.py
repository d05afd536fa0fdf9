"""The console's rollout actions: advance, override, hold, promote, acknowledge, and a new rollout.

Each one takes a fresh look (the verdict now, not the one on screen), says what changed if the
verdict moved since the operator saw it, shows the exact change in a confirm dialog (Cancel
focused; tab goes to the reason, then to the confirm button) and only then writes — through
``run_write``, the console's one way to change a flag.

Mixed into the App, which provides ``session``, ``publish`` and ``run_write``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.message import Message

from console.core import availability as av
from console.core.errors import BadInput
from console.core.safe_text import visible
from console.live import READ_FAILURES, failure_text

if TYPE_CHECKING:
    from console.core.operations import ActionResult, Look
    from console.core.rules import DecisionRule
    from console.core.session import Session
    from console.core.stats.spec import Decision
    from console.screens.confirm import Answer

def _cohort_choice():
    from console.screens.confirm import Choice

    # no default: which units come first in the new rollout is a decision, never an accident
    return Choice("cohort", "cohort", (("reuse the previous cohort — the same units come first again", "reuse"),
                                       ("draw a new cohort — other units come first", "new")))


NAMES = {"advance": "Advance", "promote": "Promote", "override": "Override", "hold": "Hold",
         "acknowledge": "Acknowledge", "restart": "New rollout"}


@dataclass
class RolloutPrepared(Message):
    """A rollout action's fresh look and the exact change it would make, ready for the confirm dialog."""

    kind: str
    rule: "DecisionRule"
    look: "Look | None"
    plan: "ActionResult | None"
    error: str | None
    #: the verdict on screen when the key was pressed
    shown: "Decision | None" = None


def verdict_words(d: "Decision") -> str:
    return f"{d.verdict.value} — {av.first_reason(d)}" if d.reasons else d.verdict.value


def what_changed(shown: "Decision | None", now: "Decision") -> str | None:
    """The verdict moved between what the operator saw and the fresh look: say how, or None."""
    if shown is None or shown.verdict == now.verdict and shown.stage == now.stage:
        return None
    return f"the verdict changed since it was shown: {shown.verdict.value} → {verdict_words(now)}"


class RolloutActions:
    session: "Session"

    def _rollout_action(self, kind: str) -> None:
        s = self.session
        why = av.READ_ONLY if s.read_only else av.rollout_why_not(s, kind)
        if why:
            self.notify(f"{kind}: {visible(why)}", severity="warning", markup=False)
            return
        rule = s.rule  # the flag in view now: the dialog and the write stay with it
        s.pending[rule.flag_key] = f"preparing {kind}"
        self.publish()
        self.run_worker(partial(self._prepare_worker, kind, rule, s.decisions.get(rule.flag_key)), thread=True,
                        group="rollout-action", exit_on_error=False)

    def action_advance(self) -> None:
        self._rollout_action("advance")

    def action_override(self) -> None:
        self._rollout_action("override")

    def action_hold(self) -> None:
        self._rollout_action("hold")

    def action_promote(self) -> None:
        self._rollout_action("promote")

    def action_acknowledge(self) -> None:
        self._rollout_action("acknowledge")

    def action_restart(self) -> None:
        self._rollout_action("restart")

    def _prepare_worker(self, kind: str, rule: "DecisionRule", shown: "Decision | None") -> None:
        from console.core import operations as ops
        from console.core import rollout as ro

        s = self.session
        platform, metrics, by = s.platform, s.metrics, s.operator_name()
        try:
            current = ops.look(rule, platform, metrics)
            plan = None
            if kind in ("advance", "promote") and current.decision.verdict.value != "ADVANCE":
                # no plan to show: the verdict moved; the handler says how, on the UI thread
                self.post_message(RolloutPrepared(kind, rule, current, None, None, shown))
                return
            if kind == "advance":
                plan = ops.advance(rule, platform, current, None, by, dry_run=True)
            elif kind == "promote":
                plan = ops.promote(rule, platform, current, None, by, dry_run=True)
            elif kind == "override":
                move = ops.promote if ro.next_stage(rule, current.flag) is None else ops.advance
                plan = move(rule, platform, current, None, by, override_reason="?", dry_run=True)
            elif kind == "restart":
                plan = ops.restart(rule, platform, None, profiles=_builtin_profiles(), dry_run=True)
            elif kind == "acknowledge":
                pending = ro.pending_checklist(current.flag, rule)
                if not pending:
                    raise BadInput("no checklist item is waiting to be acknowledged")
                plan = ops.ActionResult(current.flag, ro.acknowledge(current.flag, pending[0], by, ops.operator_now(),
                                                                     rule), None)
            self.post_message(RolloutPrepared(kind, rule, current, plan, None, shown))
        except READ_FAILURES as exc:
            self.post_message(RolloutPrepared(kind, rule, None, None, failure_text(exc), shown))

    def _drop_pending(self, key: str, text: str | None, severity: str = "warning") -> None:
        self.session.pending.pop(key, None)
        if text:
            self.notify(text, severity=severity, timeout=12, markup=False)
        self.publish()

    def on_rollout_prepared(self, message: RolloutPrepared) -> None:
        from console.core import rollout as ro
        from console.core.operations import describe_change
        from console.screens.confirm import ConfirmScreen

        s = self.session
        kind, rule, current, plan = message.kind, message.rule, message.look, message.plan
        key = rule.flag_key
        if message.error is not None or current is None:
            self._drop_pending(key, f"{kind}: {visible(message.error)}", "error")
            return
        d = current.decision
        s.verdict_read(key, d, current.at)  # what the dialog shows is what the screens show
        changed = what_changed(message.shown, d)
        if kind in ("advance", "promote") and d.verdict.value != "ADVANCE":
            self._drop_pending(key, f"{kind} not done: {changed or 'the verdict is ' + verdict_words(d)}")
            return
        if kind == "override" and d.verdict.value == "ADVANCE":
            self._drop_pending(key, f"override not needed: {changed or 'the verdict is ADVANCE'} — A advances")
            return
        verdict = f"verdict now: {verdict_words(d)}"
        lines = [changed] if changed else []
        choices: list = []
        if kind == "hold":
            title = f"Hold {key} at stage {ro.current_stage_name(current.flag)}?"
            lines += ["no change to traffic: a HOLD decision is recorded in the journal with the evidence below",
                      verdict]
            required, label, default = True, "Record hold", ""
        elif kind == "restart":
            title = f"Start a new rollout of {key}?"
            lines += describe_change(plan.before, plan.after) + [
                f"nobody gets {plan.after.candidate} until the first advance; the rule's stages start again",
                "cohort: the units the last rollout exposed first come first again (reuse), or others do (new)"]
            required, label, default = False, "Start", "new rollout"
            choices = [_cohort_choice()]
        elif kind == "acknowledge":
            item = ro.pending_checklist(current.flag, rule)[0]
            title = f"Acknowledge for {key}, stage {ro.current_stage_name(current.flag)}:"
            # the item itself is what the journal records: no reason field that would be dropped unsaid
            lines += [f"“{item}”", "stored with the rollout state and journalled as this item, under your name; "
                      "traffic does not change"]
            required, label, default = False, "Acknowledge", item
        else:
            what = {"advance": "Advance", "promote": "Promote", "override": "OVERRIDE the verdict and move"}[kind]
            title = f"{what} {key}?"
            lines += describe_change(plan.before, plan.after) + [verdict]
            if kind == "promote":
                lines.append(f"after it, {plan.before.candidate} is the baseline and there is no candidate "
                             "(a new rollout starts with N)")
            required = kind == "override"
            label = NAMES[kind]
            default = "verdict ADVANCE"
        self.push_screen(ConfirmScreen(title, lines, confirm_label=label, reason_required=required,
                                       default_reason=default, ask_reason=kind != "acknowledge", choices=choices),
                         callback=partial(self._confirmed, kind, rule, current))
        self.publish()

    def _confirmed(self, kind: str, rule: "DecisionRule", current: "Look", answer: "Answer | None") -> None:
        key = rule.flag_key
        if answer is None:
            self._drop_pending(key, f"{kind} cancelled: nothing changed")
            return
        self.run_write(kind, key, partial(self._act, kind, rule, current, answer.reason, answer.values))

    def _act(self, kind: str, rule: "DecisionRule", current: "Look", reason: str,
             values: dict | None = None) -> "ActionResult | None":
        """The confirmed action, as the CLI would run it (runs in the write worker)."""
        from console.core import operations as ops
        from console.core import rollout as ro

        s = self.session
        platform, journal, by = s.platform, s.journal, s.operator_name()
        # the new stage starts now, at the write, not when the dialog opened: traffic served meanwhile
        # (many simulated minutes in a fast demo) belongs to the stage it was served in
        current = dataclasses.replace(current, at=s.metrics.now())
        if kind == "advance":
            return ops.advance(rule, platform, current, journal, by, reason=reason, on_metrics_clock=True)
        if kind == "promote":
            return ops.promote(rule, platform, current, journal, by, reason=reason, on_metrics_clock=True)
        if kind == "override":
            move = ops.promote if ro.next_stage(rule, current.flag) is None else ops.advance
            return move(rule, platform, current, journal, by, override_reason=reason, on_metrics_clock=True)
        if kind == "acknowledge":
            item = ro.pending_checklist(current.flag, rule)[0]
            return ops.acknowledge(rule, platform, item, journal, by)
        if kind == "restart":
            return ops.restart(rule, platform, journal, profiles=_builtin_profiles(), reason=reason,
                               cohort=str((values or {}).get("cohort", "reuse")))
        ops.hold(rule, current, journal, reason=reason)
        return None


def _builtin_profiles() -> dict:
    """Route profiles for a candidate the flag no longer carries (the ones `routedeck init` uses by default)."""
    from console.core.simulator.portfolio import PROFILES

    return dict(PROFILES)
