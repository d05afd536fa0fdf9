"""What the console knows at this moment, kept apart from any UI.

The App owns one ``Session``: its workers' results go in through the methods below, and the
screens draw from it (they never read the App). Nothing here blocks or does I/O, so every rule
of what the console shows can be tested without a terminal.

Two clocks, each named where it is used: the console's own clock (``now``, for how old a read
is) and the metrics source's clock (``metrics_now()``: stage dwell, when a rollback took effect,
when candidate traffic was last seen) — the one the rollout's times are written on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the models pull in pydantic: the session itself stays light to import
    from .audit.writer import Journal
    from .blind import BlindClock
    from .figures import RouteFigures
    from .models import Allocation, RouteFlag
    from .ports import FlagPlatform, MetricsSource
    from .rules import DecisionRule
    from .stats.spec import Decision
    from .telemetry import MetricsSnapshot

#: the time windows `[` and `]` step through (seconds)
WINDOWS_S = (60, 300, 900, 3600)
#: the metrics the trend can show, in the order `m` cycles through them
TREND_METRICS = ("p95_latency", "share", "cost_per_resolved_case", "resolved_without_escalation",
                 "fallback_rate", "error_rate", "cost_per_request", "p95_ttft", "p50_latency")
#: how many verdicts per (flag, stage) the interval trends keep
HISTORY_KEPT = 120


def window_text(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds / 60:g}m" if seconds >= 60 else f"{seconds:g}s"


@dataclass
class BackendStatus:
    """One backend as the console last reached it (times on the console's clock)."""

    name: str
    asked_at: float | None = None
    ok_at: float | None = None
    error: str | None = None
    failing_since: float | None = None

    def asked(self, now: float) -> None:
        self.asked_at = now

    def succeeded(self, now: float) -> None:
        self.ok_at, self.error, self.failing_since = now, None, None

    def failed(self, now: float, error: str) -> None:
        self.error = error
        if self.failing_since is None:
            self.failing_since = now

    def age(self, now: float) -> float | None:
        """Seconds since the last good read, or None before the first one."""
        return None if self.ok_at is None else max(0.0, now - self.ok_at)

    def stale(self, now: float, period_s: float) -> bool:
        """No good read for a few periods: what is shown may no longer be true."""
        age = self.age(now)
        return age is None and self.error is not None or age is not None and age > max(5.0, 3 * period_s)


@dataclass
class DataPlane:
    """Whether the application obeyed a rollback, from the traffic itself (times on the metrics clock)."""

    #: the route the rollback took traffic away from
    candidate: str
    #: when this console's rollback was confirmed by read-back
    rolled_back_at: float
    #: why it rolled back (the key pressed, or the verdict of the automatic rollback)
    reason: str = ""
    #: the newest moment the data shows a request served by the candidate route
    candidate_last_seen: float | None = None
    #: the data reaches this far (the snapshot's ``as_of``)
    data_until: float | None = None
    #: set once the data shows a quiet spell with traffic on the baseline and none on the candidate
    quiet_since: float | None = None
    #: the quiet spell has been recorded in the journal (once)
    journalled: bool = False

    @property
    def confirmed(self) -> bool:
        return self.quiet_since is not None

    def as_detail(self) -> dict:
        """What the journal records when the traffic confirmed the rollback (metrics-clock epoch seconds)."""
        return {"candidate": self.candidate, "rolled_back_at": self.rolled_back_at, "reason": self.reason,
                "candidate_last_seen": self.candidate_last_seen, "quiet_since": self.quiet_since,
                "data_until": self.data_until}


@dataclass(frozen=True)
class Notice:
    """Something the console did or saw, told to the operator for a while (times on the console's clock)."""

    text: str
    title: str
    severity: str
    at: float
    until: float


#: how many notices the session keeps (the screens show the newest that are still current)
NOTICES_KEPT = 20
#: how long the data must show traffic on the flag and none on the candidate before a rollback
#: counts as obeyed by the application (a few of the simulator's and Prometheus' scrape periods)
QUIET_S = 15.0


@dataclass
class Session:
    """The console's state: flags, rules and verdicts, backends' health, writes in flight, the flag in view."""

    clock: Callable[[], float] = time.monotonic
    read_only: bool = False
    refresh_s: float = 1.0
    window_s: float = 300.0
    platform: "FlagPlatform | None" = None
    metrics: "MetricsSource | None" = None
    journal: "Journal | None" = None
    rules: "dict[str, DecisionRule]" = field(default_factory=dict)
    flags: "dict[str, RouteFlag]" = field(default_factory=dict)
    decisions: "dict[str, Decision]" = field(default_factory=dict)
    verdict_errors: dict[str, str] = field(default_factory=dict)
    #: console clock of each flag's latest verdict (how old the verdict on screen is)
    judged_at: dict[str, float] = field(default_factory=dict)
    #: the metrics source's clock at that look (the moment its dwell and counts are measured at)
    judged_on_metrics_clock: dict[str, float] = field(default_factory=dict)
    #: per (flag, stage): (console time, {metric: interval}) of each verdict, for the interval trends
    interval_history: dict[tuple[str, str], list[tuple[float, dict]]] = field(default_factory=dict)
    #: flag -> what changed outside routedeck, and what another routedeck process changed (and who)
    foreign: dict[str, str] = field(default_factory=dict)
    by_routedeck: dict[str, str] = field(default_factory=dict)
    #: flag -> the writes this console has in flight on it ("rollback", "advance", "switch", …)
    writes: dict[str, list[str]] = field(default_factory=dict)
    #: flag -> the action being prepared or confirmed on it (a dialog is open; nothing is written yet)
    pending: dict[str, str] = field(default_factory=dict)
    #: how many of this console's writes to each flag have finished (a flag read that overlapped one is moot)
    writes_done: dict[str, int] = field(default_factory=dict)
    #: revisions this console's own writes read back (a later read of them is not a change made elsewhere)
    own_revisions: set[str] = field(default_factory=set)
    #: the allocation each emergency switch made here replaced (what `u` restores and checks)
    switched_from: "dict[str, Allocation]" = field(default_factory=dict)
    #: the flag of the route or rollout the operator is looking at (the screen on top says)
    in_view: str | None = None
    snapshot: "MetricsSnapshot | None" = None
    figures: "list[RouteFigures]" = field(default_factory=list)
    flags_status: BackendStatus = field(default_factory=lambda: BackendStatus("flags"))
    metrics_status: BackendStatus = field(default_factory=lambda: BackendStatus("metrics"))
    #: how often the console judges every rule: a look reads the whole stage, so not every second; the rules are
    #: anytime-valid, so looking more or less often never changes what a verdict means
    verdict_every_s: float = 10.0
    trend_metric: str = TREND_METRICS[0]
    paused: bool = False
    data_plane: dict[str, DataPlane] = field(default_factory=dict)
    #: set when start-up is done: the platform, the metrics source and the flags are in
    connected: bool = False
    notices: list[Notice] = field(default_factory=list)
    #: per flag: since when its metrics could not be read (the rule's blind_after acts on it)
    blind: "dict[str, BlindClock]" = field(default_factory=dict)
    #: the metrics source's clock as a worker last read it (``metrics_now``); None before the first read
    metrics_clock: float | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()

    # ---- clocks ---------------------------------------------------------------------

    def now(self) -> float:
        """The console's clock."""
        return self.clock()

    def metrics_now(self) -> float:
        """The metrics source's clock (simulated seconds in the demo) as the workers last read it, else the
        wall clock.

        Never read here: this runs on the UI thread (drawing, stamping a rollback), and a source may scan a
        directory to tell its time (``events:DIR``). Each metrics read and each look brings the source's
        clock in (``metrics_clock_read``), so the console keeps one clock, as fresh as its last read. Until
        the first read — or a source that cannot tell its time — the wall clock stands in (the read's own
        failure is shown by the look that hit it)."""
        if self.metrics is None or self.metrics_clock is None:
            return time.time()
        return self.metrics_clock

    def metrics_clock_read(self, at: float | None) -> None:
        """A worker read the metrics source's clock: ``at`` (it never runs backwards on screen)."""
        if at is not None and (self.metrics_clock is None or at > self.metrics_clock):
            self.metrics_clock = at

    @property
    def window_label(self) -> str:
        return window_text(self.window_s)

    # ---- the flag in view -------------------------------------------------------------

    def focus_key(self) -> str | None:
        """The flag whose rule, verdict and rollout actions apply: the one in view if it has a rule,
        else the first rule's."""
        if self.in_view in self.rules:
            return self.in_view
        return next(iter(self.rules), None)

    @property
    def rule(self) -> "DecisionRule | None":
        key = self.focus_key()
        return self.rules.get(key) if key else None

    @property
    def decision(self) -> "Decision | None":
        key = self.focus_key()
        return self.decisions.get(key) if key else None

    @property
    def verdict_error(self) -> str | None:
        key = self.focus_key()
        return self.verdict_errors.get(key) if key else None

    def set_rules(self, rules: "list[DecisionRule]") -> None:
        from .errors import BadInput

        seen: dict[str, DecisionRule] = {}
        for r in rules:
            if r.flag_key in seen:
                raise BadInput(f"{r.path} and {seen[r.flag_key].path}: two rules for flag {r.flag_key} — pass one")
            seen[r.flag_key] = r
        self.rules = seen

    # ---- writes in flight ---------------------------------------------------------------

    def write_started(self, key: str, kind: str) -> None:
        self.writes.setdefault(key, []).append(kind)

    def write_ended(self, key: str, kind: str, after: "RouteFlag | None") -> None:
        """``after`` is the state read back, or None when the write failed (the next read says what holds)."""
        kinds = self.writes.get(key, [])
        if kind in kinds:
            kinds.remove(kind)
        if not kinds:
            self.writes.pop(key, None)
        self.writes_done[key] = self.writes_done.get(key, 0) + 1
        if after is not None:
            self.own_revisions.add(after.revision)
            self.flags[key] = after
            # the operator acted on the state shown to them: earlier notices are settled
            self.foreign.pop(key, None)
            self.by_routedeck.pop(key, None)

    def busy_with(self, key: str) -> str | None:
        """What this console is doing to ``key`` now, in words (an action being confirmed, or a write)."""
        kinds = self.writes.get(key)
        if kinds:
            return kinds[-1].replace("_", " ")
        pending = self.pending.get(key)
        return pending.replace("_", " ") if pending else None

    def busy(self) -> str | None:
        """The first write in flight, in words."""
        for key, kinds in self.writes.items():
            if kinds:
                return f"{kinds[-1].replace('_', ' ')} of {key}"
        return None

    def read_marker(self) -> tuple[frozenset[str], tuple[tuple[str, int], ...]]:
        """Taken when a flag read starts: which writes were in flight and how many had finished."""
        return frozenset(self.writes), tuple(self.writes_done.items())

    # ---- reads --------------------------------------------------------------------------

    def flags_read(self, flags: "dict[str, RouteFlag]",
                   marker: tuple[frozenset[str], tuple[tuple[str, int], ...]]) -> "list[tuple[RouteFlag, RouteFlag]]":
        """Take a read of every flag; return the (old, new) pairs changed by someone else.

        A flag this console wrote while the read ran keeps what the write read back: the read tells
        nothing about changes made elsewhere, and the next one reads afresh."""
        writing, done = marker
        done_then = dict(done)
        for key in list(flags):
            if key in self.writes or key in writing or done_then.get(key, 0) != self.writes_done.get(key, 0):
                if key in self.flags:
                    flags[key] = self.flags[key]
        from .ports import same_routing

        changed = []
        for key, flag in flags.items():
            old = self.flags.get(key)
            if old is not None and old.revision != flag.revision and flag.revision not in self.own_revisions:
                # a platform whose revision covers several flags (one flag file) moves every flag's revision
                # on any write: only a change of what the flag routes or records is news
                if not (same_routing(old, flag) and old.rollout == flag.rollout):
                    changed.append((old, flag))
        self.flags = flags
        self.flags_status.succeeded(self.now())
        return changed

    def flags_failed(self, error: str) -> None:
        self.flags_status.failed(self.now(), error)

    def metrics_read(self, snapshot: "MetricsSnapshot", figures: "list[RouteFigures]", at: float | None = None) -> None:
        """A read of the window (routes already under their flags' roles, figures computed off the UI thread);
        ``at``: the source's clock, read by the worker for this read."""
        self.metrics_clock_read(at)
        self.snapshot = snapshot
        self.figures = figures
        self.metrics_status.succeeded(self.now())
        self._watch_data_plane(snapshot)

    def metrics_failed(self, error: str) -> None:
        self.metrics_status.failed(self.now(), error)

    def verdict_read(self, key: str, decision: "Decision", at: float | None = None) -> None:
        """A look's decision; ``at`` is the look's moment on the metrics source's clock."""
        self.decisions[key] = decision
        self.verdict_errors.pop(key, None)
        self.judged_at[key] = self.now()
        if at is not None:
            self.judged_on_metrics_clock[key] = at
            self.metrics_clock_read(at)
        if decision.metrics:
            history = self.interval_history.setdefault((key, decision.stage), [])
            history.append((self.now(), {m.name: m.interval for m in decision.metrics}))
            del history[:-HISTORY_KEPT]

    def verdict_failed(self, key: str, error: str) -> None:
        self.decisions.pop(key, None)
        self.verdict_errors[key] = error
        self.judged_at[key] = self.now()

    def change_seen(self, key: str, revision: str | None, what: str, by: str | None) -> bool:
        """A change notice for ``key``; False when the flag has moved on since (old news, dropped)."""
        shown = self.flags.get(key)
        if shown is None or shown.revision != revision:
            return False
        if by is not None:
            self.foreign.pop(key, None)
            self.by_routedeck[key] = f"{what} — {by}"
        else:
            self.by_routedeck.pop(key, None)
            self.foreign[key] = what
        return True

    # ---- the data plane after a rollback ---------------------------------------------------

    def rolled_back(self, before: "RouteFlag", at: float, reason: str = "") -> None:
        """This console's rollback was confirmed at ``at`` (metrics clock): watch the candidate's traffic stop.
        ``before`` is the flag as the rollback found it."""
        if before.candidate and before.allocation.serves_candidate:
            self.data_plane[before.key] = DataPlane(candidate=before.candidate, rolled_back_at=at, reason=reason)

    def _watch_data_plane(self, snapshot: "MetricsSnapshot") -> None:
        from .data_plane import candidate_last_seen, flag_last_seen

        for key, watch in list(self.data_plane.items()):
            flag = self.flags.get(key)
            if flag is not None and flag.allocation.serves_candidate:
                del self.data_plane[key]  # the candidate serves again (a new rollout): nothing left to confirm
                continue
            if flag is None or watch.confirmed:
                continue
            seen = candidate_last_seen(snapshot, key, watch.candidate)
            if seen is not None and (watch.candidate_last_seen is None or seen > watch.candidate_last_seen):
                watch.candidate_last_seen = seen
            watch.data_until = snapshot.as_of
            quiet_from = max(watch.rolled_back_at, watch.candidate_last_seen or watch.rolled_back_at)
            traffic = flag_last_seen(snapshot, key)
            # quiet only counts when the flag's traffic is seen after it: no data is never a confirmation
            if snapshot.as_of - quiet_from >= QUIET_S and traffic is not None and traffic > quiet_from + QUIET_S / 2:
                watch.quiet_since = watch.candidate_last_seen or watch.rolled_back_at

    # ---- notices --------------------------------------------------------------------------

    def notice(self, text: str, title: str = "", severity: str = "information", timeout_s: float = 5.0) -> None:
        now = self.now()
        self.notices.append(Notice(text, title, severity, now, now + timeout_s))
        del self.notices[:-NOTICES_KEPT]

    def current_notices(self) -> list[Notice]:
        now = self.now()
        return [n for n in self.notices if n.until > now]

    # ---- what the screens ask ------------------------------------------------------------

    def rollout_flags(self) -> "list[RouteFlag]":
        """Flags a rollback would change: serving a candidate, switched, or holding targeting routedeck did not write."""
        return [f for f in self.flags.values()
                if f.foreign_targeting or f.allocation.serve_all or (f.candidate and f.allocation.serves_candidate)]

    def operator_name(self) -> str:
        if self.journal is not None:
            op = self.journal.operator
            return op.name or op.os_user
        from .audit.writer import current_os_user

        return current_os_user()
