"""The console's live reads: the flags, the metrics window, and one look at every rule — each in a worker.

One rule for every poll: the next read is scheduled only after the previous one finished, so a
slow backend stretches the period instead of piling up requests. Each result comes back as a
message; its handler updates the session (``console/core/session.py``) and publishes it. What a
read can meet (a backend failing, bad input) is caught and shown where that backend's status is;
anything else is a bug, and the App's one worker-failure handler shows it.

Mixed into the App, which provides ``session``, ``publish`` and ``start_rollback``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from textual.message import Message
from textual.worker import get_current_worker

from console.core.errors import RouteDeckError
from console.core.redact import redact
from console.core.safe_text import visible

if TYPE_CHECKING:
    from console.core.figures import RouteFigures
    from console.core.journal import Journal
    from console.core.models import RouteFlag
    from console.core.rules import DecisionRule
    from console.core.session import Session
    from console.core.stats.spec import Decision
    from console.core.telemetry import MetricsSnapshot

#: how long a change's routedeck outcome entry may trail the change on the platform (another process
#: journals it right after its read-back)
OUTCOME_GRACE_S = 1.5
#: what a read can meet and the operator must see: the backend's own errors, a file or socket error,
#: and a capability the source does not have
READ_FAILURES = (RouteDeckError, OSError, NotImplementedError)


def prewarm_writes() -> None:
    """Import the write path off the UI thread, so the first R press does not wait for it."""
    import console.core.operations  # noqa: F401


def failure_text(exc: BaseException) -> str:
    text = redact(str(exc)) if isinstance(exc, RouteDeckError) else f"{type(exc).__name__}: {redact(str(exc))}"
    return " ".join(text.split())


@dataclass
class MetricsRead(Message):
    snapshot: "MetricsSnapshot | None"
    figures: "list[RouteFigures]"
    error: str | None
    #: the source's clock at this read (the console's one clock for times on the rollout)
    at: float | None = None


@dataclass
class FlagsRead(Message):
    flags: "dict[str, RouteFlag] | None"
    error: str | None
    #: the console's writes in flight and finished when the read started (see ``Session.read_marker``)
    marker: tuple = (frozenset(), ())


@dataclass
class Judged(Message):
    """One look at every rule: each flag's decision, or why there is none."""

    decisions: "dict[str, Decision]"
    errors: dict[str, str]
    #: flags whose look failed because the metrics could not be read, and why (blind_after acts on it)
    unreadable: dict[str, str] = field(default_factory=dict)
    #: the look's moment on the metrics source's clock (one for every rule)
    at: float = 0.0
    #: the reads that reached the metrics source in this look (the others were shared)
    reads: int = 0


@dataclass
class ChangeSeen(Message):
    """A flag changed without this console: ``by`` names the routedeck write that did it, if any."""

    flag: str
    revision: str | None
    what: str
    by: str | None


@dataclass
class JournalWarning(Message):
    """An informational journal entry (rule loaded, foreign change seen, traffic stopped) could not be written."""

    text: str


class LiveReads:
    session: "Session"

    def start_polling(self) -> None:
        self.poll_flags()
        self.poll_metrics()  # the first look at the rules follows the first read: the routes come first
        self._first_look_pending = True
        watch = getattr(self.session.platform, "watch_changes", None)
        if callable(watch):  # a platform that streams its changes gets them read at once, not at the next tick
            watch(self._flag_changed_elsewhere, self._flag_stream_status)

    def _flag_changed_elsewhere(self, keys: list[str]) -> None:
        """Runs on the platform's stream thread: schedule an immediate flag read on the app's thread."""
        try:
            self.call_from_thread(self.poll_flags)
        except RuntimeError:  # the app is closing
            pass

    def _flag_stream_status(self, text: str, final: bool) -> None:
        """Runs on the stream thread; a stream refused for good is said once (flag reads go on polling)."""
        if final:
            try:
                self.call_from_thread(self.notify, visible(text), title="Live flag updates stopped",
                                      severity="error", timeout=30, markup=False)
            except RuntimeError:
                pass

    def _rearm(self, name: str, delay: float, callback) -> None:
        """Keep one chain per poll: a read asked for out of turn must not start a second one."""
        timers = self.__dict__.setdefault("_poll_timers", {})
        timer = timers.pop(name, None)
        if timer is not None:
            timer.stop()
        if delay >= 0:
            timers[name] = self.set_timer(delay, callback)

    # ---- the metrics window ----------------------------------------------------------------

    def poll_metrics(self) -> None:
        s = self.session
        self._rearm("metrics", -1, None)
        if s.paused or s.metrics is None:
            return
        s.metrics_status.asked(s.now())
        self.run_worker(partial(self._metrics_worker, s.metrics, s.window_s, dict(s.flags)), thread=True,
                        exclusive=True, group="metrics", exit_on_error=False)

    def _metrics_worker(self, metrics, window_s: float, flags: "dict[str, RouteFlag]") -> None:
        from console.core.figures import by_current_roles, route_figures

        try:
            now = metrics.now()
            step = max(1.0, window_s / 60)
            # buckets on a fixed grid: a bucket that ended reads the same next time (the source may keep it)
            raw = metrics.read(math.floor((now - window_s) / step) * step, now, step)
            # the roles the flags give each route now (after a promote the new baseline is one row); done
            # here, off the UI thread, like every other computation on the data
            snapshot = by_current_roles(raw, flags)
            result = MetricsRead(snapshot, route_figures(snapshot), None, now)
        except READ_FAILURES as exc:
            result = MetricsRead(None, [], failure_text(exc))
        if not get_current_worker().is_cancelled:
            self.post_message(result)

    def on_metrics_read(self, message: MetricsRead) -> None:
        s = self.session
        self._awaiting_first_read = False  # the flags waited for this read: drawn now, with it
        if message.snapshot is not None:
            s.metrics_read(message.snapshot, message.figures, message.at)
            self._journal_data_plane()
        else:
            s.metrics_failed(message.error or "no data")
        self.publish()
        self._rearm("metrics", s.refresh_s, self.poll_metrics)
        if self.__dict__.pop("_first_look_pending", False):
            # the first look once these figures are drawn: its worker would take the CPU from that frame
            self.call_after_refresh(self._first_look)

    def _first_look(self) -> None:
        self.poll_verdicts()
        if self.__dict__.pop("_prewarm_after_first_read", False):
            # the write path, once the routes have their figures
            self.run_worker(prewarm_writes, thread=True, group="load", exit_on_error=False)

    # ---- the flags -------------------------------------------------------------------------

    def poll_flags(self) -> None:
        s = self.session
        self._rearm("flags", -1, None)
        if s.platform is None:
            return
        s.flags_status.asked(s.now())
        self.run_worker(partial(self._flags_worker, s.platform, s.read_marker()), thread=True, exclusive=True,
                        group="flags", exit_on_error=False)

    def _flags_worker(self, platform, marker) -> None:
        try:
            flags = {key: platform.read_flag(key) for key in platform.list_flags()}
            self.post_message(FlagsRead(flags, None, marker))
        except READ_FAILURES as exc:
            self.post_message(FlagsRead(None, failure_text(exc), marker))

    def on_flags_read(self, message: FlagsRead) -> None:
        s = self.session
        if message.flags is not None:
            for old, new in s.flags_read(message.flags, message.marker):
                from console.core.ports import describe_difference

                self._classify_change(old, new, describe_difference(old, new))
        else:
            s.flags_failed(message.error or "unreadable")
        self.publish_unless_awaiting_first_read()
        self._rearm("flags", s.refresh_s, self.poll_flags)

    # ---- one look at every rule --------------------------------------------------------------

    def poll_verdicts(self) -> None:
        """Judge every rule's flag now, in one look (one moment, each read once); the next look follows it."""
        s = self.session
        self._rearm("verdicts", -1, None)
        if not s.rules or s.metrics is None or s.platform is None:
            return
        if s.paused:
            self._rearm("verdicts", s.verdict_every_s, self.poll_verdicts)
            return
        self.run_worker(partial(self._verdicts_worker, dict(s.rules), s.platform, s.metrics), thread=True,
                        exclusive=True, group="verdicts", exit_on_error=False)

    def _verdicts_worker(self, rules: "dict[str, DecisionRule]", platform, metrics) -> None:
        from console.core.operations import look
        from console.core.shared_reads import SharedReads

        shared = SharedReads(metrics)
        decisions, errors, unreadable = {}, {}, {}
        for key, rule in rules.items():
            if shared.now_error is None:
                shared.failure = None
            try:
                decisions[key] = look(rule, platform, shared).decision
            except READ_FAILURES as exc:
                errors[key] = failure_text(exc)
                if shared.failure is not None:  # the metrics, not the platform: the look was blind
                    unreadable[key] = failure_text(exc)
        if not get_current_worker().is_cancelled:
            self.post_message(Judged(decisions, errors, unreadable=unreadable, at=shared.moment(), reads=shared.reads))

    def on_judged(self, message: Judged) -> None:
        from console.core.blind import BlindClock

        s = self.session
        for key, decision in message.decisions.items():
            if key in s.rules:
                decision = self._seen_blind(key, decision, message.at, s.blind.setdefault(key, BlindClock()))
                s.verdict_read(key, decision, message.at)
                self._maybe_roll_back(key, decision)
        for key, error in message.errors.items():
            if key not in s.rules:
                continue
            flag = s.flags.get(key)
            if key in message.unreadable and flag is not None:
                # the metrics cannot be read: the rule's blind_after says how long the candidate may serve unseen
                from console.core.blind import blind_decision
                from console.core.operations import unsettled

                clock = s.blind.setdefault(key, BlindClock())
                clock.unreadable(message.at, message.unreadable[key])
                decision = unsettled(flag) or blind_decision(s.rules[key].blind_after, flag, clock, message.at)
                s.verdict_read(key, decision, message.at)
                self._maybe_roll_back(key, decision)
            else:
                s.verdict_failed(key, error)
        self.publish()
        self._rearm("verdicts", s.verdict_every_s, self.poll_verdicts)
        from console.memory import give_back

        give_back()  # a look over a long stage built large temporaries: their pages go back to the system

    def _seen_blind(self, key: str, decision: "Decision", at: float, clock) -> "Decision":
        """A look that read nothing for a serving candidate is as blind as a failed read (as the guard sees it)."""
        from console.core.blind import blind_decision, no_data

        flag, limit = self.session.flags.get(key), self.session.rules[key].blind_after
        if (flag is not None and flag.allocation.serves_candidate and decision.verdict.value != "ROLLBACK"
                and no_data(decision)):
            clock.unreadable(at, "the metrics source holds no data for this stage")
            if limit is not None and clock.blind_for(at) >= limit.after_s:
                return blind_decision(limit, flag, clock, at)
            return decision
        clock.readable()
        return decision

    def _maybe_roll_back(self, key: str, d: "Decision") -> None:
        """The rule says ROLLBACK and allows it: roll back at once, through the one rollback."""
        s = self.session
        rule, flag = s.rules[key], s.flags.get(key)
        if (d.verdict.value != "ROLLBACK" or not rule.spec.auto_rollback or s.read_only or flag is None
                or not flag.allocation.serves_candidate or "rollback" in s.writes.get(key, [])):
            return
        first = next((r for r in d.reasons if r.startswith("rollback")), d.reasons[0] if d.reasons else "")
        self.bell()
        self.notify(f"AUTO-ROLLBACK of {visible(key)}: {visible(first)}", title="Rule says ROLLBACK",
                    severity="error", timeout=30, markup=False)
        self.start_rollback(key, reason=f"auto-rollback: {first}", decision=d)

    # ---- journal entries about what was seen -------------------------------------------------

    def note_rules(self, journal: "Journal | None", flags: "dict[str, RouteFlag] | None") -> None:
        """Journal the rules this console loaded, and a change of rule (runs in a worker thread)."""
        if journal is None:
            return
        from console.core.audit.notes import note_rule_loaded

        for key, rule in list(self.session.rules.items()):
            for warning in note_rule_loaded(journal, rule, (flags or {}).get(key), by="console"):
                self.post_message(JournalWarning(warning))

    def _classify_change(self, old: "RouteFlag", new: "RouteFlag", what: str) -> None:
        """Off the UI thread: was the change a routedeck write by another process sharing the journal
        (its confirmed outcome holds the revision read now)? If not, it is foreign: journal it."""
        journal = self.session.journal

        def work() -> None:
            from console.core.audit.notes import describe_write, note_foreign_change, routedeck_write

            entry = routedeck_write(journal, new.key, new.revision)
            if entry is None:
                # shown at once; another process journals its outcome just after reading its write back,
                # so look again before calling it foreign in the journal
                self.post_message(ChangeSeen(new.key, new.revision, what, None))
                if journal is None:
                    return
                time.sleep(OUTCOME_GRACE_S)
                entry = routedeck_write(journal, new.key, new.revision)
            if entry is not None:
                self.post_message(ChangeSeen(new.key, new.revision, what, describe_write(entry)))
                return
            warning = note_foreign_change(journal, old, new, seen_by="console")
            if warning:
                self.post_message(JournalWarning(warning))

        self.run_worker(work, thread=True, group="journal", exit_on_error=False)

    def on_change_seen(self, message: ChangeSeen) -> None:
        if not self.session.change_seen(message.flag, message.revision, message.what, message.by):
            return  # the flag has moved on since (this console's own write, or another change): old news
        key, what = visible(message.flag), visible(message.what)
        if message.by is not None:
            self.notify(f"{key} changed by routedeck elsewhere: {what} ({visible(message.by)})",
                        title="Changed by routedeck", severity="information", timeout=8, markup=False)
        else:
            self.notify(f"{key} changed outside this console: {what}", title="Foreign change", severity="warning",
                        timeout=12, markup=False)
        self.publish()

    def on_journal_warning(self, message: JournalWarning) -> None:
        self.notify(f"audit journal: {visible(message.text)}", title="Journal", severity="warning", timeout=12,
                    markup=False)

    def _journal_data_plane(self) -> None:
        """Record once, per rollback, that the traffic itself stopped reaching the candidate."""
        s = self.session
        for key, watch in s.data_plane.items():
            if not watch.confirmed or watch.journalled:
                continue
            watch.journalled = True
            self.notify(f"{visible(key)}: no candidate traffic since the rollback — the application obeyed",
                        title="Rollback seen in the traffic", timeout=10, markup=False)
            if s.journal is None:
                continue
            journal, detail = s.journal, watch.as_detail()

            def work(journal=journal, key=key, detail=detail) -> None:
                from console.core.journal import record_event

                _, warning = record_event(journal, "traffic_stopped", flag=key, detail=detail,
                                          reason="no candidate traffic in the data since the rollback")
                if warning:
                    self.post_message(JournalWarning(warning))

            self.run_worker(work, thread=True, group="journal", exit_on_error=False)
