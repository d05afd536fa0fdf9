"""Every change this console makes goes out one way: a core operation run in a worker, one message back.

``run_write`` runs a call into ``console/core/operations.py`` (or ``emergency.py``) off the UI
thread — the same calls the CLI and the guard make, so a write is journalled, confirmed by
read-back and explained the same way wherever it starts. ``on_write_done`` records the outcome in
the session and tells the operator what happened. Rollback (``R`` and the automatic one) is the
one write that never waits: not for a dialog, nor for another write on the flag.

Mixed into the App, which provides ``session``, ``publish``, ``poll_flags`` and ``poll_verdicts``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.message import Message

from console.core import availability as av
from console.core.safe_text import visible
from console.live import READ_FAILURES, failure_text

if TYPE_CHECKING:
    from console.core.models import RouteFlag
    from console.core.operations import ActionResult
    from console.core.session import Session
    from console.core.stats.spec import Decision

#: how long the redraw after a key that writes waits for the write to get going
WRITE_FIRST_S = 0.03
#: the writes the console makes, as the operator reads them
TITLES = {"rollback": "Rolled back", "advance": "Advanced", "promote": "Promoted", "override": "Overridden",
          "acknowledge": "Acknowledged", "restart": "New rollout", "hold": "Hold recorded",
          "emergency_switch": "Switched", "undo_switch": "Switch undone", "exclude_segment": "Segment excluded"}


@dataclass
class WriteDone(Message):
    """A write finished: its result (None for a hold, which writes only the journal) or the error."""

    kind: str
    flag: str
    result: "ActionResult | None"
    error: str | None
    elapsed_s: float
    #: the flag as this console showed it when the write started
    seen: "RouteFlag | None" = None
    detail: str = ""


class Writes:
    session: "Session"

    # ---- the one way out ------------------------------------------------------------------

    def run_write(self, kind: str, key: str, call: Callable[[], Any], *, detail: str = "") -> None:
        """Run ``call`` (a core operation returning an ``ActionResult``) in a worker; ``on_write_done`` follows."""
        s = self.session
        s.pending.pop(key, None)
        s.write_started(key, kind)
        # the write starts at once on its own thread (not queued behind the event loop's next turn), and the
        # redraw waits a moment so it does not compete with the write: the rollback first, the picture second
        threading.Thread(target=self._write_worker, args=(kind, key, call, s.flags.get(key), detail),
                         name=f"write:{key}:{kind}", daemon=True).start()
        self.set_timer(WRITE_FIRST_S, self.publish)

    def _write_worker(self, kind: str, key: str, call: Callable[[], Any], seen: "RouteFlag | None",
                      detail: str) -> None:
        started = time.perf_counter()
        try:
            result = call()
        except READ_FAILURES as exc:  # the platform, the journal or the disk said no: shown, never assumed
            self.post_message(WriteDone(kind, key, None, failure_text(exc), time.perf_counter() - started, seen, detail))
            return
        except Exception as exc:  # noqa: BLE001 — a bug: this thread's one handler shows it and rereads the flag
            self.post_message(WriteDone(kind, key, None, f"unexpected error ({failure_text(exc)})",
                                        time.perf_counter() - started, seen, detail))
            return
        self.post_message(WriteDone(kind, key, result, None, time.perf_counter() - started, seen, detail))

    def on_write_done(self, message: WriteDone) -> None:
        s = self.session
        result = message.result
        after = result.after if result is not None else None
        s.write_ended(message.flag, message.kind, after)
        key = visible(message.flag)
        if message.error is not None:
            self.bell()
            what = message.kind.replace("_", " ").upper()
            if message.kind == "rollback":
                text = (f"ROLLBACK OF {key} FAILED: {visible(message.error)}. The platform's state is unknown — "
                        "the flag is read again; check it and press R again.")
            else:
                text = f"{what} OF {key} FAILED: {visible(message.error)}. Nothing is assumed: the flag is read again."
            self.notify(text, title=f"{what.capitalize()} failed", severity="error", timeout=30, markup=False)
            self.poll_flags()
            self.publish()
            return
        self.notify(self._done_text(message), title=TITLES.get(message.kind, message.kind), timeout=12, markup=False)
        if message.kind == "rollback" and result is not None:
            # one time: the moment the rollback was stamped with on the flag, not the clock as it reads now
            stamped = result.after.rollout.stage_started_at if result.after.rollout is not None else None
            s.rolled_back(result.before, stamped.timestamp() if stamped is not None else s.metrics_now(),
                          reason=message.detail)
        elif after is not None and after.allocation.serves_candidate:
            s.data_plane.pop(message.flag, None)  # traffic on the candidate again: the last rollback is history
        elif message.kind == "emergency_switch" and result is not None:
            s.switched_from[message.flag] = result.before.allocation
        elif message.kind == "undo_switch":
            s.switched_from.pop(message.flag, None)
        if message.kind not in ("rollback", "hold") and after is not None:
            s.decisions.pop(message.flag, None)  # the old verdict judged the old stage
            self.poll_verdicts()
        warning = result.warning if result is not None else None
        if warning:
            self.bell()
            self.notify(f"NOT RECORDED in the audit journal: {visible(warning)}", title="Journal", severity="error",
                        timeout=30, markup=False)
        self.publish()

    def _done_text(self, m: WriteDone) -> str:
        result = m.result
        key = visible(m.flag)
        if result is None:
            return f"{key}: hold recorded in the journal with the evidence; traffic unchanged"
        after = result.after
        ms = (result.write.elapsed_s if result.write is not None else m.elapsed_s) * 1000
        confirmed = f"confirmed by read-back in {ms:.0f} ms"
        if m.kind == "rollback":
            text = (f"{key}: 100% {visible(after.baseline)}"
                    + (f", candidate {visible(after.candidate)} at 0%" if after.candidate else "")
                    + f" — {confirmed}")
            seen = m.seen
            if (seen is not None and result.before.revision != seen.revision
                    and result.before.revision not in self.session.own_revisions):
                from console.core.ports import describe_difference

                text += f". It had been changed elsewhere before: {visible(describe_difference(seen, result.before))}"
            return text
        if m.kind == "emergency_switch":
            return (f"{key}: everyone on {visible(after.allocation.serve_all)} — {confirmed} "
                    f"(u restores {visible(after.allocation.held().describe())})")
        if m.kind == "undo_switch":
            return f"{key}: restored {visible(after.allocation.describe())} — {confirmed}"
        if m.kind == "exclude_segment":
            return f"{key}: {visible(m.detail)} excluded — now {visible(after.allocation.describe())}; {confirmed}"
        from console.core.rollout import current_stage_name

        return (f"{key}: {m.kind} done — now stage {visible(current_stage_name(after))}, "
                f"{visible(after.allocation.describe())}; {confirmed}")

    # ---- rollback: R and the automatic one -----------------------------------------------------

    def action_rollback(self) -> None:
        s = self.session
        if s.read_only:
            self.notify("read-only console: rollback is disabled", severity="warning")
            return
        key, why = av.rollback_target(s)
        if key is None:
            self.notify(f"rollback: {visible(why)}", severity="warning", markup=False)
            return
        if "rollback" in s.writes.get(key, []):
            self.notify(f"rollback of {visible(key)} already in progress", severity="warning", markup=False)
            return
        self.start_rollback(key, reason="R pressed in the console", decision=None)

    def start_rollback(self, key: str, *, reason: str, decision: "Decision | None") -> None:
        """THE rollback (``core/operations.py``), as the CLI and the guard run it."""
        from console.core import operations

        from datetime import datetime, timezone

        s = self.session
        # one clock: the rolled-back stage starts on the metrics source's clock, as the console's dwell is read
        at = datetime.fromtimestamp(s.metrics_now(), tz=timezone.utc)
        call = partial(operations.rollback, s.platform, key, s.journal, reason=reason, decision=decision,
                       rule=s.rules.get(key), at=at)
        # what the header says afterwards: the key, or the verdict the automatic rollback acted on
        why = "R pressed" if decision is None else f"automatic rollback on verdict {decision.verdict.value}: " + \
            next((r for r in decision.reasons if r.startswith("rollback")), "")
        self.run_write("rollback", key, call, detail=why)
