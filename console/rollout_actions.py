"""The console's rollout actions: advance, override, hold, promote, acknowledge, and a new rollout.

Each one takes a fresh look (the verdict now, not the one on screen), shows the exact change in a
confirm dialog with Cancel focused, and only then writes — journalled, confirmed by read-back.
Mixed into the app; it uses the app's state (rule, platform, metrics, journal, flags).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.message import Message

from console.core.errors import BadInput, RouteDeckError
from console.core.redact import redact

if TYPE_CHECKING:
    from console.core.operations import ActionResult, Look


@dataclass
class RolloutPrepared(Message):
    """A rollout action's fresh look and the exact change it would make, ready for the confirm dialog."""

    kind: str
    look: "Look | None"
    plan: "ActionResult | None"
    error: str | None


@dataclass
class RolloutActed(Message):
    kind: str
    result: "ActionResult | None"
    error: str | None
    warning: str | None = None


class RolloutActions:
    def rollout_why_not(self, action: str) -> str | None:
        from console.core import rollout as ro

        if self.rule is None:
            return "no decision rule: start the console with --rule FILE"
        if self.platform is None or self.metrics is None:
            return "still connecting to the flag platform and the metrics source"
        if self._rollout_busy:
            return f"{self._rollout_busy} is in progress"
        flag = self.flags.get(self.rule.flag_key)
        if flag is None:
            return f"{self.rule.flag_key} has not been read from the flag platform yet"
        stage = ro.current_stage_name(flag)
        ended = flag.rollout is not None and flag.rollout.stage in ro.TERMINAL
        if action == "restart":
            return None if ended else (f"the rollout is at stage {stage}: a new one starts only after this one "
                                       "ended (rolled back or promoted)")
        if ended:
            return f"the rollout is {stage.replace('_', ' ')}: nothing to {action} — N starts a new one"
        if action == "acknowledge":
            pending = ro.pending_checklist(flag, self.rule)
            return None if pending else "no checklist item is waiting to be acknowledged"
        d = self.decision
        if d is None or d.stage != stage:
            return self.verdict_error or "the verdict for this stage is still being computed"
        if action == "hold":
            return None if flag.allocation.serves_candidate else "the candidate gets no traffic yet: nothing to hold"
        try:
            nxt = ro.next_stage(self.rule, flag)
        except RouteDeckError as exc:
            return str(exc)
        verdict = d.verdict.value
        first = next((r for r in d.reasons if not r.startswith("note")), "")
        first = first.partition(": ")[2] if first.startswith(("hold:", "rollback:")) else first
        if action == "advance":
            if nxt is None:
                return f"at the last stage ({stage}): promote instead"
            return None if verdict == "ADVANCE" else f"{verdict} — {first}"
        if action == "promote":
            if nxt is not None:
                return f"at stage {stage}: promote only from the last stage ({self.rule.stages[-1].name})"
            return None if verdict == "ADVANCE" else f"{verdict} — {first}"
        if action == "override":
            return "the verdict is ADVANCE: no override needed" if verdict == "ADVANCE" else None
        return None

    def _rollout_action(self, kind: str) -> None:
        why = self.rollout_why_not(kind) if not self.read_only else "read-only console"
        if why:
            self.notify(f"{kind}: {why}", severity="warning")
            return
        self._rollout_busy = kind
        self._acting = self.rule  # the flag in view now; the dialog and the write stay with it
        self.begin_write(self._acting.flag_key)
        self._redraw()
        self.run_worker(partial(self._prepare_worker, kind), thread=True, group="rollout-action", exit_on_error=False)

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

    def _prepare_worker(self, kind: str) -> None:
        from console.core import operations as ops
        from console.core import rollout as ro

        try:
            current = ops.look(self._acting, self.platform, self.metrics)
            by = self.operator_name()
            plan = None
            if kind == "advance":
                plan = ops.advance(self._acting, self.platform, current, None, by, dry_run=True)
            elif kind == "promote":
                plan = ops.promote(self._acting, self.platform, current, None, by, dry_run=True)
            elif kind == "override":
                if ro.next_stage(self._acting, current.flag) is None:
                    plan = ops.promote(self._acting, self.platform, current, None, by, override_reason="?", dry_run=True)
                else:
                    plan = ops.advance(self._acting, self.platform, current, None, by, override_reason="?", dry_run=True)
            elif kind == "restart":
                plan = ops.restart(self._acting, self.platform, None, profiles=_builtin_profiles(), dry_run=True)
            elif kind == "acknowledge":
                pending = ro.pending_checklist(current.flag, self._acting)
                if not pending:
                    raise BadInput("no checklist item is waiting to be acknowledged")
                plan = ops.ActionResult(current.flag, ro.acknowledge(current.flag, pending[0], by, ops.operator_now(),
                                                                     self._acting), None)
            self.post_message(RolloutPrepared(kind, current, plan, None))
        except RouteDeckError as exc:
            self.post_message(RolloutPrepared(kind, None, None, str(exc)))
        except Exception as exc:
            self.post_message(RolloutPrepared(kind, None, None, f"{type(exc).__name__}: {redact(str(exc))}"))

    def on_rollout_prepared(self, message: RolloutPrepared) -> None:
        from console.core import rollout as ro
        from console.core.operations import describe_change
        from console.screens.confirm import ConfirmScreen

        if message.error is not None or message.look is None:
            self._rollout_busy = None
            self.end_write(self._acting.flag_key, None)
            self.notify(f"{message.kind}: {message.error}", severity="error", timeout=12)
            self._redraw()
            return
        kind, current, plan = message.kind, message.look, message.plan
        d = current.decision
        key = current.flag.key
        verdict = f"verdict now: {d.verdict.value}" + (f" — {d.reasons[0]}" if d.reasons else "")
        if kind == "advance" and d.verdict.value != "ADVANCE":
            self._rollout_busy = None
            self.end_write(self._acting.flag_key, None)
            self.notify(f"advance: the verdict changed to {d.verdict.value} — {d.reasons[0] if d.reasons else ''}",
                        severity="warning", timeout=10)
            self._redraw()
            return
        if kind == "hold":
            title = f"Hold {key} at stage {ro.current_stage_name(current.flag)}?"
            change = ["no change to traffic: a HOLD decision is recorded in the journal with the evidence below",
                      verdict]
            required, label, default = True, "Record hold", ""
        elif kind == "restart":
            title = f"Start a new rollout of {key}?"
            change = describe_change(plan.before, plan.after) + [
                f"nobody gets {plan.after.candidate} until the first advance; the rule's stages start again"]
            required, label, default = False, "Start", "new rollout"
        elif kind == "acknowledge":
            item = ro.pending_checklist(current.flag, self._acting)[0]
            title = f"Acknowledge for {key}, stage {ro.current_stage_name(current.flag)}:"
            change = [f"“{item}”", "stored with the rollout state and journalled; traffic does not change"]
            required, label, default = False, "Acknowledge", "checked by the operator"
        else:
            what = {"advance": "Advance", "promote": "Promote", "override": "OVERRIDE the verdict and move"}[kind]
            title = f"{what} {key}?"
            change = describe_change(plan.before, plan.after) + [verdict]
            required = kind == "override"
            label = {"advance": "Advance", "promote": "Promote", "override": "Override"}[kind]
            default = "verdict ADVANCE"
        note = "Cancel is focused: tab moves to the reason and the buttons; esc cancels"
        self.push_screen(ConfirmScreen(title, change, confirm_label=label, reason_required=required,
                                       default_reason=default, note=note),
                         callback=partial(self._confirmed, kind, current))

    def _confirmed(self, kind: str, current: "Look", reason: str | None) -> None:
        if reason is None:
            self._rollout_busy = None
            self.end_write(self._acting.flag_key, None)
            self.notify(f"{kind} cancelled: nothing changed", timeout=4)
            self._redraw()
            return
        self.run_worker(partial(self._act_worker, kind, current, reason), thread=True, group="rollout-action",
                        exit_on_error=False)

    def _act_worker(self, kind: str, current: "Look", reason: str) -> None:
        from console.core import operations as ops
        from console.core import rollout as ro

        by = self.operator_name()
        try:
            # the new stage starts now, at the write, not when the dialog opened: traffic served meanwhile
            # (many simulated minutes in a fast demo) belongs to the stage it was served in
            current = dataclasses.replace(current, at=self.metrics.now())
            result = None
            if kind == "advance":
                result = ops.advance(self._acting, self.platform, current, self.journal, by, reason=reason,
                                       on_metrics_clock=True)
            elif kind == "promote":
                result = ops.promote(self._acting, self.platform, current, self.journal, by, reason=reason,
                                       on_metrics_clock=True)
            elif kind == "override":
                if ro.next_stage(self._acting, current.flag) is None:
                    result = ops.promote(self._acting, self.platform, current, self.journal, by, override_reason=reason,
                                           on_metrics_clock=True)
                else:
                    result = ops.advance(self._acting, self.platform, current, self.journal, by, override_reason=reason,
                                           on_metrics_clock=True)
            elif kind == "acknowledge":
                item = ro.pending_checklist(current.flag, self._acting)[0]
                result = ops.acknowledge(self._acting, self.platform, item, self.journal, by)
            elif kind == "restart":
                result = ops.restart(self._acting, self.platform, self.journal, profiles=_builtin_profiles(),
                                     reason=reason)
            elif kind == "hold":
                ops.hold(self._acting, current, self.journal, reason=reason)
            self.post_message(RolloutActed(kind, result, None, result.warning if result else None))
        except RouteDeckError as exc:
            self.post_message(RolloutActed(kind, None, str(exc)))
        except Exception as exc:
            self.post_message(RolloutActed(kind, None, f"{type(exc).__name__}: {redact(str(exc))}"))

    def on_rollout_acted(self, message: RolloutActed) -> None:
        self._rollout_busy = None
        self.end_write(self._acting.flag_key, message.result.after if message.result is not None else None)
        kind = message.kind
        if message.error is not None:
            self.bell()
            self.notify(f"{kind.upper()} FAILED: {message.error}. Nothing is assumed: the flag is read again.",
                        title=f"{kind} failed", severity="error", timeout=30)
            self.poll_flags()
            self._redraw()
            return
        if message.result is not None:
            after = message.result.after
            ms = message.result.write.elapsed_s * 1000 if message.result.write else 0
            from console.core import rollout as ro

            self.notify(f"{after.key}: {kind} done — now stage {ro.current_stage_name(after)}, "
                        f"{after.allocation.describe()}; confirmed by read-back in {ms:.0f} ms",
                        title=kind.capitalize(), timeout=10)
            self.decisions.pop(after.key, None)  # the old verdict judged the old stage
            self.poll_verdict(after.key)
        else:
            self.notify(f"hold recorded in the journal for {self._acting.flag_key}", title="Hold", timeout=8)
        if message.warning:
            self.bell()
            self.notify(f"NOT RECORDED in the audit journal: {message.warning}", title="Journal",
                        severity="error", timeout=30)
        self._redraw()


def _builtin_profiles() -> dict:
    """Route profiles for a candidate the flag no longer carries (the ones `routedeck init` uses by default)."""
    from console.core.simulator.portfolio import PROFILES

    return dict(PROFILES)
