"""The Textual application: polls the adapters in workers and keeps the console's state.

Polling follows one rule: the next read is scheduled only after the previous one finished,
so a slow backend stretches the period instead of piling up requests. Rollback runs in its
own worker group, so it never waits behind a stuck metrics read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Callable

from rich.text import Text
from textual.app import App
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.message import Message
from textual.worker import get_current_worker

from console.actions import ACTIONS, BY_ID
from console.core.errors import BadInput, RouteDeckError
from console.core.figures import RouteFigures, route_figures
from console.core.redact import redact
from console.core.telemetry import MetricsSnapshot
from console.screens.dashboard import TREND_METRICS, DashboardScreen
from console.screens.help import HelpScreen
from console.rollout_actions import RolloutActions
from console.switch_actions import EmergencySwitchActions

if TYPE_CHECKING:  # the models pull in pydantic: keep it off the path to the first frame
    from console.core.journal import Journal
    from console.core.models import RouteFlag
    from console.core.rules import DecisionRule
    from console.core.stats.spec import Decision
    from console.core.ports import FlagPlatform, MetricsSource, WriteResult

#: builds (platform, metrics, flags) in a worker after the first frame; raises RouteDeckError on bad input
Loader = Callable[[], "tuple[FlagPlatform, MetricsSource, dict[str, RouteFlag]]"]

WINDOWS_S = (60, 300, 900, 3600)
#: how often the console judges the rollout against the rule (the guardrails are anytime-valid)
VERDICT_EVERY_S = 5.0
#: how long a change's routedeck outcome entry may trail the change on the platform (another process
#: journals it right after its read-back)
_OUTCOME_GRACE_S = 1.5


def window_text(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds / 60:g}m" if seconds >= 60 else f"{seconds:g}s"


class ActionCommands(Provider):
    """The command palette lists the same actions as the keys and `?` help."""

    def _available(self):
        app: RouteDeckApp = self.app  # type: ignore[assignment]
        for action in ACTIONS:
            if action.id == "command_palette" or (action.writes and app.read_only):
                continue
            yield action, action.reason_unavailable(app)

    async def discover(self) -> Hits:
        for action, why in self._available():
            yield DiscoveryHit(action.label, partial(self.app.run_action, action.id),
                               help=why and f"unavailable: {why}" or action.description)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action, why in self._available():
            text = f"{action.label}: {action.description}"
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self.app.run_action, action.id),
                          help=why and f"unavailable: {why}" or None)


@dataclass
class MetricsRead(Message):
    snapshot: MetricsSnapshot | None
    error: str | None
    elapsed_s: float


@dataclass
class Loaded(Message):
    platform: "FlagPlatform | None"
    metrics: "MetricsSource | None"
    flags: "dict[str, RouteFlag] | None"
    error: RouteDeckError | None
    journal: "Journal | None" = None


@dataclass
class VerdictRead(Message):
    decision: "Decision | None"
    error: str | None
    flag: str = ""


@dataclass
class FlagsRead(Message):
    flags: dict[str, RouteFlag] | None
    error: str | None
    #: the console's writes in flight and finished when the read started (see ``begin_write``)
    writing: frozenset[str] = frozenset()
    writes_done: tuple[tuple[str, int], ...] = ()


@dataclass
class ChangeSeen(Message):
    """A flag changed without this console: ``by`` names the routedeck write that did it, if any."""

    flag: str
    revision: str | None
    what: str
    by: str | None


@dataclass
class JournalWarning(Message):
    """An informational journal entry (rule loaded, foreign change seen) could not be written."""

    text: str


@dataclass
class RollbackDone(Message):
    flag: str
    result: "WriteResult | None"
    error: str | None
    journal_warning: str | None = None


class RouteDeckApp(RolloutActions, EmergencySwitchActions, App):
    TITLE = "routedeck"
    COMMANDS = {ActionCommands}
    COMMAND_PALETTE_BINDING = "ctrl+p"
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        platform: "FlagPlatform | None" = None,
        metrics: "MetricsSource | None" = None,
        *,
        loader: Loader | None = None,
        flags: "dict[str, RouteFlag] | None" = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = 1.0,
        window_s: float = 300.0,
        read_only: bool = False,
        journal: "Journal | None" = None,
        rule: "DecisionRule | None" = None,
        rules: "list[DecisionRule] | None" = None,
    ) -> None:
        super().__init__()
        self.journal = journal
        #: one decision rule per flag (several flags can roll out at once), with each one's latest verdict
        self.rules: dict[str, DecisionRule] = {}
        self.decisions: dict[str, Decision] = {}
        self.verdict_errors: dict[str, str] = {}
        self._verdict_timers: dict[str, object] = {}
        self.set_rules(list(rules or []) + ([rule] if rule is not None else []))
        self.platform = platform
        self.metrics = metrics
        self.flags: dict[str, RouteFlag] = dict(flags or {})
        self.clock = clock
        self.refresh_s = refresh_s
        self.window_s = window_s
        self.read_only = read_only
        self.paused = False
        self.snapshot: MetricsSnapshot | None = None
        self.figures: list[RouteFigures] = []
        self.metrics_error: str | None = None
        self.flags_error: str | None = None
        self.last_metrics_ok: float | None = None
        self.metrics_asked_at: float | None = None
        self.trend_metric = TREND_METRICS[0]
        self.foreign: dict[str, str] = {}  # flag -> what changed outside this console
        #: flag -> what another routedeck process (same journal) changed, and who
        self.by_routedeck: dict[str, str] = {}
        self._own_revisions: set[str] = set()
        #: flags this console is writing now, and how many of its writes to each have finished: a flag
        #: read that overlapped one of our writes tells nothing about changes made elsewhere
        self._writing: set[str] = set()
        self._writes_done: dict[str, int] = {}
        self._rollback_running: set[str] = set()
        #: the rollout action (advance, override, hold, promote, acknowledge) being prepared or written
        self._rollout_busy: str | None = None
        #: per (flag, stage): (time, {metric: interval}) of each verdict, for the interval trends
        self.interval_history: dict[tuple[str, str], list[tuple[float, dict]]] = {}
        self._started = clock()
        self._metrics_timer = None
        self._flags_timer = None
        self._loader = loader
        #: set when start-up failed on bad input; the CLI prints it as one line and exits 2
        self.startup_error: RouteDeckError | None = None

    # ---- life cycle ---------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(DashboardScreen())
        self.set_interval(1.0, self._tick)
        if self._loader is not None:
            self.run_worker(self._load_worker, thread=True, group="load", exit_on_error=False)
        else:
            if self.rules and self.journal is not None:
                self.run_worker(partial(self._note_rule, self.journal, self.flags), thread=True, group="journal",
                                exit_on_error=False)
            self._start_polling()

    def _load_worker(self) -> None:
        try:
            loaded = self._loader()
            platform, metrics, flags = loaded[:3]
            journal = loaded[3] if len(loaded) > 3 else None
            if len(loaded) > 4 and loaded[4] is not None:
                self.set_rules(loaded[4] if isinstance(loaded[4], (list, tuple)) else [loaded[4]])
            self._note_rule(journal or self.journal, flags)
            self.post_message(Loaded(platform, metrics, flags, None, journal))
        except RouteDeckError as exc:
            self.post_message(Loaded(None, None, None, exc))

    def on_loaded(self, message: Loaded) -> None:
        if message.error is not None:
            self.startup_error = message.error
            self.exit(return_code=2 if isinstance(message.error, BadInput) else 1)
            return
        self.platform, self.metrics, self.flags = message.platform, message.metrics, dict(message.flags or {})
        self.journal = message.journal or self.journal
        self._start_polling()

    def _start_polling(self) -> None:
        self.poll_flags()
        self.poll_metrics()
        self.poll_verdict()
        watch = getattr(self.platform, "watch_changes", None)
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
                self.call_from_thread(self.notify, text, title="Live flag updates stopped", severity="error",
                                      timeout=30)
            except RuntimeError:
                pass

    # ---- the rule's verdict and automatic rollback -------------------------------------

    # the rule, verdict and verdict error of the flag in view (the highlighted route's, or the one on the
    # rollout screen), else of the first rule: what `v`, the rollout actions and the screens act on
    def set_rules(self, rules: "list[DecisionRule]") -> None:
        seen: dict[str, DecisionRule] = {}
        for r in rules:
            if r.flag_key in seen:
                raise BadInput(f"{r.path} and {seen[r.flag_key].path}: two rules for flag {r.flag_key} — pass one")
            seen[r.flag_key] = r
        self.rules = seen

    def focus_key(self) -> str | None:
        if not self.rules:
            return None
        for screen in reversed(self.screen_stack):
            if hasattr(screen, "highlighted_flag"):
                try:
                    key = screen.highlighted_flag()
                except Exception:  # a screen not (or no longer) mounted has nothing highlighted
                    key = None
                if key in self.rules:
                    return key
                break
        return next(iter(self.rules))

    @property
    def rule(self) -> "DecisionRule | None":
        key = self.focus_key()
        return self.rules.get(key) if key else None

    @rule.setter
    def rule(self, value: "DecisionRule | None") -> None:
        self.set_rules([value] if value is not None else [])

    @property
    def decision(self) -> "Decision | None":
        key = self.focus_key()
        return self.decisions.get(key) if key else None

    @property
    def verdict_error(self) -> str | None:
        key = self.focus_key()
        return self.verdict_errors.get(key) if key else None

    def poll_verdict(self, key: str | None = None) -> None:
        """Judge every rule's flag now (or only ``key``'s); each look schedules that flag's next one."""
        if not self.rules or self.metrics is None or self.platform is None:
            return
        for k in ([key] if key else list(self.rules)):
            timer = self._verdict_timers.pop(k, None)
            if timer is not None:  # a look asked for out of turn (after an action) must not start a 2nd chain
                timer.stop()
            if self.paused:
                self._verdict_timers[k] = self.set_timer(VERDICT_EVERY_S, partial(self.poll_verdict, k))
                continue
            self.run_worker(partial(self._verdict_worker, k), thread=True, exclusive=True, group=f"verdict:{k}",
                            exit_on_error=False)

    def _verdict_worker(self, key: str) -> None:
        from console.core.operations import look

        try:
            self.post_message(VerdictRead(look(self.rules[key], self.platform, self.metrics).decision, None, key))
        except RouteDeckError as exc:
            self.post_message(VerdictRead(None, str(exc), key))
        except Exception as exc:
            self.post_message(VerdictRead(None, f"{type(exc).__name__}: {redact(str(exc))}", key))

    def on_verdict_read(self, message: VerdictRead) -> None:
        key = message.flag
        rule = self.rules.get(key)
        if rule is None:
            return
        d = message.decision
        if d is None:
            self.decisions.pop(key, None)
            self.verdict_errors[key] = message.error or "no verdict"
        else:
            self.decisions[key] = d
            self.verdict_errors.pop(key, None)
        if d is not None and d.metrics:
            history = self.interval_history.setdefault((key, d.stage), [])
            history.append((self.clock(), {m.name: m.interval for m in d.metrics}))
            del history[:-120]
        flag = self.flags.get(key)
        if (d is not None and d.verdict.value == "ROLLBACK" and rule.spec.auto_rollback and not self.read_only
                and flag is not None and flag.allocation.serves_candidate and key not in self._rollback_running):
            first = next((r for r in d.reasons if r.startswith("rollback")), d.reasons[0] if d.reasons else "")
            self.bell()
            self.notify(f"AUTO-ROLLBACK of {key}: {first}", title="Rule says ROLLBACK", severity="error", timeout=30)
            self._start_rollback(key, reason=f"auto-rollback: {first}", decision=d)
        self._redraw()
        timer = self._verdict_timers.pop(key, None)
        if timer is not None:
            timer.stop()
        self._verdict_timers[key] = self.set_timer(VERDICT_EVERY_S, partial(self.poll_verdict, key))

    def _tick(self) -> None:
        for screen in self.screen_stack[1:]:
            for header in screen.query("StatusHeader"):  # none while the app is quitting
                lines = self.header_lines(screen.size.width)
                header.show([lines[0], lines[-1]] if getattr(screen, "COMPACT_HEADER", False) else lines)
            if hasattr(screen, "tick"):
                screen.tick()

    def _redraw(self) -> None:
        for screen in self.screen_stack:
            if hasattr(screen, "refresh_view"):
                screen.refresh_view()

    # ---- polling ------------------------------------------------------------------

    def poll_metrics(self) -> None:
        if self._metrics_timer is not None:
            self._metrics_timer.stop()
            self._metrics_timer = None
        if self.paused or self.metrics is None:
            return
        self.metrics_asked_at = self.clock()
        self._read_metrics()

    def _read_metrics_now(self) -> MetricsRead:
        started = time.perf_counter()
        try:
            now = self.metrics.now()
            step = max(1.0, self.window_s / 60)
            snap = self.metrics.read(now - self.window_s, now, step)
            return MetricsRead(snap, None, time.perf_counter() - started)
        except RouteDeckError as exc:
            return MetricsRead(None, str(exc), time.perf_counter() - started)
        except Exception as exc:  # an adapter bug must not take the console down; show it
            return MetricsRead(None, f"{type(exc).__name__}: {redact(str(exc))}", time.perf_counter() - started)

    def _read_metrics(self) -> None:
        self.run_worker(self._metrics_worker, thread=True, exclusive=True, group="metrics", exit_on_error=False)

    def _metrics_worker(self) -> None:
        result = self._read_metrics_now()
        if not get_current_worker().is_cancelled:
            self.post_message(result)

    def on_metrics_read(self, message: MetricsRead) -> None:
        if message.snapshot is not None:
            self.snapshot = message.snapshot
            self.figures = route_figures(message.snapshot)
            self.metrics_error = None
            self.last_metrics_ok = self.clock()
        else:
            self.metrics_error = message.error
        self._redraw()
        if self._metrics_timer is not None:  # a read that finished just as it was superseded: keep one chain
            self._metrics_timer.stop()
        self._metrics_timer = self.set_timer(self.refresh_s, self.poll_metrics)

    def poll_flags(self) -> None:
        if self._flags_timer is not None:
            self._flags_timer.stop()
            self._flags_timer = None
        self.run_worker(self._flags_worker, thread=True, exclusive=True, group="flags", exit_on_error=False)

    def begin_write(self, key: str) -> None:
        """A write of ``key`` by this console starts (call on the UI thread, before the worker runs)."""
        self._writing.add(key)

    def end_write(self, key: str, after: "RouteFlag | None") -> None:
        """It ended; ``after`` is the state read back, or None when the write failed."""
        self._writing.discard(key)
        self._writes_done[key] = self._writes_done.get(key, 0) + 1
        if after is not None:
            self._own_revisions.add(after.revision)
            self.flags[key] = after
            # the operator acted on the state shown in the confirm dialog: earlier notices are settled
            self.foreign.pop(key, None)
            self.by_routedeck.pop(key, None)

    def _flags_worker(self) -> None:
        writing, done = frozenset(self._writing), tuple(self._writes_done.items())
        try:
            flags = {key: self.platform.read_flag(key) for key in self.platform.list_flags()}
            self.post_message(FlagsRead(flags, None, writing, done))
        except RouteDeckError as exc:
            self.post_message(FlagsRead(None, str(exc)))
        except Exception as exc:
            self.post_message(FlagsRead(None, f"{type(exc).__name__}: {redact(str(exc))}"))

    def on_flags_read(self, message: FlagsRead) -> None:
        before = ({k: f.revision for k, f in self.flags.items()}, self.flags_error)
        if message.flags is not None:
            done_then = dict(message.writes_done)
            for key in list(message.flags):
                if key in self._writing or key in message.writing or done_then.get(key, 0) != self._writes_done.get(key, 0):
                    # read while we were writing it: keep what our write read back; the next poll reads afresh
                    if key in self.flags:
                        message.flags[key] = self.flags[key]
            for key, flag in message.flags.items():
                old = self.flags.get(key)
                if old is not None and old.revision != flag.revision and flag.revision not in self._own_revisions:
                    from console.core.ports import describe_difference

                    self._classify_change(old, flag, describe_difference(old, flag))
            self.flags = message.flags
            self.flags_error = None
        else:
            self.flags_error = message.error
        if before != ({k: f.revision for k, f in self.flags.items()}, self.flags_error):
            self._redraw()  # an unchanged flag needs no redraw: this poll runs every second
        if self._flags_timer is not None:  # an extra poll (e.g. after a failed rollback) must not start a 2nd chain
            self._flags_timer.stop()
        self._flags_timer = self.set_timer(self.refresh_s, self.poll_flags)

    # ---- state the screens and actions read ---------------------------------------

    @property
    def window_label(self) -> str:
        return window_text(self.window_s)

    def rollout_flags(self) -> list[RouteFlag]:
        # a hand-edited flag (foreign targeting) may hide who gets what: it can always be rolled back
        return [f for f in self.flags.values()
                if f.foreign_targeting or f.allocation.serve_all or (f.candidate and f.allocation.serves_candidate)]

    def rollback_target(self) -> tuple[str | None, str]:
        screen = self.screen
        if not hasattr(screen, "highlighted_flag"):  # a dialog over a screen: its flag is the one in view
            screen = next((s for s in reversed(self.screen_stack) if hasattr(s, "highlighted_flag")), None)
        highlighted = screen.highlighted_flag() if screen is not None else None
        if highlighted is not None:
            flag = self.flags.get(highlighted)
            if flag is None:
                return None, f"{highlighted} has not been read from the flag platform yet"
            if flag.candidate is None and not flag.foreign_targeting and not flag.allocation.serve_all:
                others = self.rollout_flags()
                if len(others) == 1:
                    return others[0].key, ""
                return None, f"{flag.key} has no candidate route: highlight a route of a flag in rollout"
            if not (flag.allocation.serves_candidate or flag.foreign_targeting or flag.allocation.serve_all):
                return None, f"{flag.key} already serves 100% baseline ({flag.baseline})"
            return flag.key, ""
        flags = self.rollout_flags()
        if len(flags) == 1:
            return flags[0].key, ""
        if not flags:
            return None, "no flag is serving a candidate route"
        return None, "several flags are in rollout: highlight a route of the one to roll back"

    def header_lines(self, width: int) -> list[Text]:
        lines = []
        top = Text("routedeck ", style="bold")
        if self.read_only:
            top.append("READ-ONLY", "bold reverse")
            top.append(" ")
        from console.core.tls import tls_settings

        if tls_settings().warning:
            top.append(tls_settings().warning, "bold reverse red")
            top.append(" ")
        if self.platform is None or self.metrics is None:
            top.append("connecting to the flag platform and the metrics source…")
        else:
            top.append(f"flags {self.platform.describe()} · metrics {self.metrics.describe()}")
        lines.append(top)
        at_baseline = []
        for flag in sorted(self.flags.values(), key=lambda f: f.key):
            if flag.allocation.serve_all:
                lines.append(Text.assemble((flag.key, "bold"), ("  SWITCHED: everyone on ", "bold red"),
                                           (flag.allocation.serve_all, "bold red"),
                                           f" (held: {flag.allocation.held().describe()}) — u undoes"))
                continue
            if not flag.candidate:
                at_baseline.append(flag)
                continue
            stage = (flag.rollout.stage_label or flag.rollout.stage.value).replace("_", " ") if flag.rollout else "—"
            line = Text.assemble((flag.key, "bold"), f"  baseline {flag.baseline} → candidate ", (flag.candidate, "bold"))
            lines.append(line)
            line = Text("  ◆ to ")
            if flag.foreign_targeting:
                line.append(f"targeting unrecognised ({flag.foreign_targeting}) — R rewrites it to baseline", "bold red")
            elif flag.allocation.serves_candidate:
                line.append(flag.allocation.describe(), "bold yellow")
            else:
                line.append("100% baseline", "green")
            line.append(f" · stage {stage}")
            if flag.key in self.foreign:
                line.append("  changed elsewhere", "bold magenta")
            elif flag.key in self.by_routedeck:
                line.append("  changed by routedeck", "cyan")
            lines.append(line)
        if at_baseline:
            names = ", ".join(f"{f.key} → {f.baseline}" for f in at_baseline)
            lines.append(Text(f"steady: {names}", style="dim"))
        for key in self.rules:
            lines.append(self._verdict_line(key))
        status = Text()
        now = self.clock()
        if self.paused:
            status.append("PAUSED (space resumes)", "bold reverse")
        elif self.metrics_error:
            age = f"last good data {now - self.last_metrics_ok:.0f}s ago" if self.last_metrics_ok else "no good data yet"
            status.append(f"metrics failing ({age}): {self.metrics_error}", "bold red")
        elif self.last_metrics_ok is None:
            waited = now - (self.metrics_asked_at or self._started)
            status.append(f"waiting for the metrics source ({waited:.0f}s)", "yellow")
        else:
            age = now - self.last_metrics_ok
            stale = age > max(5.0, 3 * self.refresh_s)
            status.append(f"data {age:.0f}s old", "bold red" if stale else "green")
            if stale:
                status.append(" — metrics source not answering", "bold red")
        if self.flags_error:
            status.append(f" · flags error: {self.flags_error}", "bold red")
        status.append(f" · window {self.window_label} · trend {self.trend_metric}", "dim")
        lines.append(status)
        for line in lines:
            line.truncate(max(10, width - 2), overflow="ellipsis")
        return lines

    def verdict_unavailable(self) -> str | None:
        if self.rule is None:
            return "no decision rule: start the console with --rule FILE"
        if self.decision is None:
            return self.verdict_error or "the first verdict is still being computed"
        return None

    def action_verdict(self) -> None:
        why = self.verdict_unavailable()
        if why:
            self.notify(f"verdict: {why}", severity="warning")
            return
        from console.screens.verdict import VerdictScreen

        self.push_screen(VerdictScreen(self.rule, self.decision))

    def _verdict_line(self, key: str) -> Text:
        rule, decision, error = self.rules[key], self.decisions.get(key), self.verdict_errors.get(key)
        line = Text(f"rule {rule.path} · " if len(self.rules) == 1 else f"{key} · ")
        if error:
            line.append(f"verdict unavailable: {error}", "bold red")
        elif decision is None:
            line.append("judging…", "dim")
        else:
            style = {"ADVANCE": "bold green", "HOLD": "bold yellow", "ROLLBACK": "bold red"}[decision.verdict.value]
            line.append(f"verdict {decision.verdict.value}", style)
            first = next((r for r in decision.reasons if not r.startswith("note")), "")
            if first:
                line.append(f" — {first}")
        return line

    # ---- actions ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        registered = BY_ID.get(action)
        if registered is None:
            return True
        if registered.writes and self.read_only:
            return False
        return None if registered.reason_unavailable(self) else True

    def action_rollback(self) -> None:
        if self.read_only:
            self.notify("read-only console: rollback is disabled", severity="warning")
            return
        key, why = self.rollback_target()
        if key is None:
            self.notify(f"rollback: {why}", severity="warning")
            return
        if key in self._rollback_running:
            self.notify(f"rollback of {key} already in progress", severity="warning")
            return
        self._start_rollback(key, reason="R pressed in the console", decision=None)

    def _start_rollback(self, key: str, *, reason: str, decision: "Decision | None") -> None:
        self._rollback_running.add(key)
        self.begin_write(key)
        self.run_worker(partial(self._rollback_worker, key, self.flags.get(key), reason, decision, self.rules.get(key)),
                        thread=True, group="rollback", exit_on_error=False)

    def _rollback_worker(self, key: str, seen: "RouteFlag | None", reason: str, decision: "Decision | None",
                         rule: "DecisionRule | None") -> None:
        """The CLI's and the guard's rollback (core/operations.py), run off the UI thread."""
        from console.core import operations
        from console.core.ports import WriteResult, describe_difference

        started = time.perf_counter()
        try:
            result = operations.rollback(self.platform, key, self.journal, reason=reason, decision=decision, rule=rule)
        except RouteDeckError as exc:
            self.post_message(RollbackDone(key, None, str(exc)))
            return
        except Exception as exc:
            self.post_message(RollbackDone(key, None, f"{type(exc).__name__}: {redact(str(exc))}"))
            return
        elapsed = result.write.elapsed_s if result.write is not None else time.perf_counter() - started
        # what changed between this console's last read and the rollback's own read
        foreign = None
        if seen is not None and result.before.revision != seen.revision and result.before.revision not in self._own_revisions:
            foreign = describe_difference(seen, result.before)
        done = WriteResult(result.before, result.after, elapsed, foreign)
        self.post_message(RollbackDone(key, done, None, result.warning))

    def on_rollback_done(self, message: RollbackDone) -> None:
        self._rollback_running.discard(message.flag)
        self.end_write(message.flag, message.result.after if message.result is not None else None)
        if message.result is None:
            self.bell()
            self.notify(
                f"ROLLBACK OF {message.flag} FAILED: {message.error}. The platform's state is unknown — "
                "check it and press R again.",
                title="Rollback failed", severity="error", timeout=30,
            )
            self.poll_flags()
            return
        after = message.result.after
        self.foreign.pop(message.flag, None)
        text = (
            f"{message.flag}: 100% {after.baseline}, candidate {after.candidate} at 0% — "
            f"confirmed by read-back in {message.result.elapsed_s * 1000:.0f} ms"
        )
        if message.result.foreign_change:
            text += f". It had been changed elsewhere before: {message.result.foreign_change}"
        self.notify(text, title="Rolled back", severity="information", timeout=15)
        if message.journal_warning:
            self.bell()
            self.notify(f"NOT RECORDED in the audit journal: {message.journal_warning}", title="Journal",
                        severity="error", timeout=30)
        self._redraw()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.poll_metrics()
        self._redraw()

    def _cycle_metric(self, step: int) -> None:
        i = TREND_METRICS.index(self.trend_metric)
        self.trend_metric = TREND_METRICS[(i + step) % len(TREND_METRICS)]
        self._redraw()

    def action_next_metric(self) -> None:
        self._cycle_metric(1)

    def action_prev_metric(self) -> None:
        self._cycle_metric(-1)

    def _cycle_window(self, step: int) -> None:
        i = min(range(len(WINDOWS_S)), key=lambda j: abs(WINDOWS_S[j] - self.window_s))
        self.window_s = WINDOWS_S[max(0, min(len(WINDOWS_S) - 1, i + step))]
        self.notify(f"window: last {self.window_label}", timeout=2)
        if not self.paused:
            self.poll_metrics()

    def action_wider_window(self) -> None:
        self._cycle_window(1)

    def action_narrower_window(self) -> None:
        self._cycle_window(-1)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self))

    def action_details(self) -> None:
        screen = self.screen
        if isinstance(screen, DashboardScreen):
            screen.action_details()

    # ---- informational journal entries and the audit screen ---------------------------

    def _note_rule(self, journal: "Journal | None", flags: "dict[str, RouteFlag] | None") -> None:
        """Journal the rules this console loaded, and a change of rule (runs in a worker thread)."""
        if journal is None:
            return
        from console.core.audit.notes import note_rule_loaded

        for key, rule in list(self.rules.items()):
            for warning in note_rule_loaded(journal, rule, (flags or {}).get(key), by="console"):
                self.post_message(JournalWarning(warning))

    def _classify_change(self, old: "RouteFlag", new: "RouteFlag", what: str) -> None:
        """Off the UI thread: was the change a routedeck write by another process sharing the journal
        (its confirmed outcome holds the revision read now)? If not, it is foreign: journal it."""
        journal = self.journal

        def work() -> None:
            from console.core.audit.notes import describe_write, note_foreign_change, routedeck_write

            entry = routedeck_write(journal, new.key, new.revision)
            if entry is None:
                # shown at once; another process journals its outcome just after reading its write back,
                # so look again before calling it foreign in the journal
                self.post_message(ChangeSeen(new.key, new.revision, what, None))
                if journal is None:
                    return
                time.sleep(_OUTCOME_GRACE_S)
                entry = routedeck_write(journal, new.key, new.revision)
            if entry is not None:
                self.post_message(ChangeSeen(new.key, new.revision, what, describe_write(entry)))
                return
            warning = note_foreign_change(journal, old, new, seen_by="console")
            if warning:
                self.post_message(JournalWarning(warning))

        self.run_worker(work, thread=True, group="journal", exit_on_error=False)

    def on_change_seen(self, message: ChangeSeen) -> None:
        key = message.flag
        shown = self.flags.get(key)
        if shown is None or shown.revision != message.revision:
            return  # the flag has moved on since (this console's own write, or another change): old news
        if message.by is not None:
            self.foreign.pop(key, None)
            self.by_routedeck[key] = f"{message.what} — {message.by}"
            self.notify(f"{key} changed by routedeck elsewhere: {message.what} ({message.by})",
                        title="Changed by routedeck", severity="information", timeout=8)
        else:
            self.by_routedeck.pop(key, None)
            self.foreign[key] = message.what
            self.notify(f"{key} changed outside this console: {message.what}", title="Foreign change",
                        severity="warning", timeout=12)
        self._redraw()

    def on_journal_warning(self, message: JournalWarning) -> None:
        self.notify(f"audit journal: {message.text}", title="Journal", severity="warning", timeout=12)

    def action_audit(self) -> None:
        """The audit timeline; it loads the journal and the platform's history in a worker."""
        from console.screens.audit import AuditScreen

        if isinstance(self.screen, AuditScreen):
            return
        self.push_screen(AuditScreen(self.journal.path if self.journal is not None else None, self.platform,
                                     sorted(self.flags)))

    # ---- rollout actions: a fresh look, the exact change in a confirm dialog, then the write ----------

    async def run_action(self, action, default_namespace=None, namespaces=None) -> bool:
        """No dead keys: an action that does not apply says why instead of doing nothing."""
        name = action.rpartition(".")[2].partition("(")[0] if isinstance(action, str) else None
        registered = BY_ID.get(name or "")
        if registered is not None:
            why = registered.reason_unavailable(self)
            if why:
                self.notify(f"{registered.label.lower()}: {why}", severity="warning", timeout=6)
                return True
        return await super().run_action(action, default_namespace, namespaces)

    def action_rollout(self) -> None:
        from console.screens.rollout import RolloutScreen

        if not isinstance(self.screen, RolloutScreen):
            screen = next((s for s in reversed(self.screen_stack) if hasattr(s, "highlighted_flag")), None)
            try:
                key = screen.highlighted_flag() if screen is not None else None
            except Exception:
                key = None
            self.push_screen(RolloutScreen(key or self.focus_key()))  # the flag the operator was looking at

    def operator_name(self) -> str:
        if self.journal is not None:
            op = self.journal.operator
            return op.name or op.os_user
        from console.core.audit.writer import current_os_user

        return current_os_user()

    # ---- frontier (f), budgets (b), incident (i) and the emergency switch (x, u) ----------------

    def action_frontier(self) -> None:
        from console.screens.frontier import FrontierScreen

        if not isinstance(self.screen, FrontierScreen):
            self.push_screen(FrontierScreen())

    def action_budgets(self) -> None:
        from console.screens.budgets import BudgetsScreen

        if not isinstance(self.screen, BudgetsScreen):
            self.push_screen(BudgetsScreen())

    def action_segments(self) -> None:
        from console.screens.segments import SegmentsScreen

        if not isinstance(self.screen, SegmentsScreen):
            self.push_screen(SegmentsScreen())

    def action_incident(self) -> None:
        from console.screens.incident import IncidentScreen

        if not isinstance(self.screen, IncidentScreen):
            self.push_screen(IncidentScreen())
