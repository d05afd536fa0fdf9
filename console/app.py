"""The Textual application: it owns the session, runs the workers that update it, and hands it to the screens.

Data flow. On a refresh: a worker reads a backend (``live.py``) → its message updates the session
(``console/core/session.py``) → ``publish`` hands the session to every screen in one message. On an
action: a key → the registry says whether it applies (``actions.py``) → a core operation runs in a
worker (``writes.py``) → its outcome goes into the session → ``publish``. A one-second tick publishes
too, for the clocks; it is the only timer that draws.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Callable

from rich.errors import MarkupError
from rich.text import Text
from textual.app import App
from textual.css.query import NoMatches
from textual.message import Message
from textual.worker import Worker, WorkerState

from console.actions import ACTIONS, BY_ID
from console.core import availability as av
from console.core.errors import BadInput, RouteDeckError
from console.core.safe_text import visible
from console.core.session import TREND_METRICS, WINDOWS_S, Session
from console.live import LiveReads, failure_text, prewarm_writes
from console.rollout_actions import RolloutActions
from console.screens.base import InView, SessionChanged, SessionScreen, WorkerFailed
from console.screens.dashboard import DashboardScreen
from console.switch_actions import EmergencySwitchActions
from console.writes import Writes

if TYPE_CHECKING:  # the models pull in pydantic: keep it off the path to the first frame
    from console.core.journal import Journal
    from console.core.models import RouteFlag
    from console.core.ports import FlagPlatform, MetricsSource
    from console.core.rules import DecisionRule
    from console.screens.confirm import Answer

#: the tick draws only when nothing was published for this long (each read publishes; the tick is for the clocks)
TICK_QUIET_S = 0.9
#: after the load, how long the flags wait for the first figures before they are drawn without them
FIRST_READ_WAIT_S = 0.3
#: builds (platform, metrics, flags[, journal[, rules]]) in a worker after the first frame; raises RouteDeckError
Loader = Callable[[], tuple]


@dataclass
class Loaded(Message):
    platform: "FlagPlatform | None"
    metrics: "MetricsSource | None"
    flags: "dict[str, RouteFlag] | None"
    error: RouteDeckError | None
    journal: "Journal | None" = None
    #: lines to tell the operator at start (e.g. that an earlier run's state is in use)
    notes: list[str] = field(default_factory=list)


def _palette() -> type:
    """The command palette's provider, imported when the palette first opens (not before the first frame)."""
    from console.palette import ActionCommands

    return ActionCommands


class RouteDeckApp(LiveReads, Writes, RolloutActions, EmergencySwitchActions, App):
    TITLE = "routedeck"
    COMMANDS = {_palette}
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
        from console.memory import limit_arenas

        limit_arenas()  # before any worker thread: a console left open for days stays flat
        self.session = Session(clock=clock, read_only=read_only, refresh_s=refresh_s, window_s=window_s,
                               platform=platform, metrics=metrics, journal=journal, flags=dict(flags or {}))
        self.session.set_rules(list(rules or []) + ([rule] if rule is not None else []))
        self._loader = loader
        #: set when start-up failed on bad input; the CLI prints it as one line and exits 2
        self.startup_error: RouteDeckError | None = None
        #: the monthly budgets of the b view (--budgets FILE), else the shipped example
        self.budgets_config = None
        #: which registry actions applied at the last publish (the footer is redrawn when this changes)
        self._applies: tuple[bool, ...] = ()
        self._publish_pending = False
        self._published_at = -TICK_QUIET_S
        #: the loaded flags wait (at most FIRST_READ_WAIT_S) for the first metrics read, to be drawn with it
        self._awaiting_first_read = False

    # ---- life cycle ---------------------------------------------------------------------

    def get_default_screen(self) -> DashboardScreen:
        """The dashboard is the bottom screen itself. Pushed over Textual's blank default screen from
        ``on_mount`` (inside the App's start-up batch) it was laid out and rendered once for nothing and
        again after the batch: ~25–40 ms of CPU more before the first frame."""
        return DashboardScreen(self.session)

    def on_mount(self) -> None:
        # notices are drawn in the layout (NoticeBar), never as toasts over the figures and the verdict
        self._disable_notifications = True
        self.set_interval(1.0, self._tick)  # the clocks on screen move even when no read arrives
        if self._loader is not None:
            # the loader imports the adapters, the models and numpy: it starts once the first frame is out,
            # or the UI thread would wait for those imports before it could draw anything
            self.call_after_refresh(self.run_worker, self._load_worker, thread=True, group="load",
                                    exit_on_error=False)
            return
        self.session.connected = True
        self.run_worker(prewarm_writes, thread=True, group="load", exit_on_error=False)
        if self.session.rules and self.session.journal is not None:
            self.run_worker(partial(self.note_rules, self.session.journal, self.session.flags), thread=True,
                            group="journal", exit_on_error=False)
        self.start_polling()

    def _load_worker(self) -> None:
        try:
            loaded = self._loader()
            platform, metrics, flags = loaded[:3]
            journal = loaded[3] if len(loaded) > 3 else None
            if len(loaded) > 4 and loaded[4] is not None:
                self.session.set_rules(loaded[4] if isinstance(loaded[4], (list, tuple)) else [loaded[4]])
            self.note_rules(journal or self.session.journal, flags)
            self.post_message(Loaded(platform, metrics, flags, None, journal, list(loaded[5]) if len(loaded) > 5 else []))
        except RouteDeckError as exc:
            self.post_message(Loaded(None, None, None, exc))

    def on_loaded(self, message: Loaded) -> None:
        if message.error is not None:
            self.startup_error = message.error
            self.exit(return_code=2 if isinstance(message.error, BadInput) else 1)
            return
        s = self.session
        s.platform, s.metrics, s.flags = message.platform, message.metrics, dict(message.flags or {})
        s.journal = message.journal or s.journal
        s.connected = True
        self._prewarm_after_first_read = True
        from console.memory import settle_collection

        settle_collection()  # start-up's objects (modules, models, the simulator) stay out of later collections
        for note in message.notes:
            self.notify(note, title="Demo state", severity="warning", timeout=30, markup=False)
        # the routes are drawn once, with their first figures, unless that read takes longer than the wait: a
        # frame of routes without figures just before the one with them took CPU from the read it waited for
        self._awaiting_first_read = True
        self.set_timer(FIRST_READ_WAIT_S, self._first_read_overdue)
        self.start_polling()

    def publish_unless_awaiting_first_read(self) -> None:
        """Publish, unless the loaded flags are still waiting (briefly) for the first metrics read: the
        passive redraws (the clock tick, a flags read) hold off; what the operator does is drawn at once."""
        if not self._awaiting_first_read:
            self.publish()

    def _first_read_overdue(self) -> None:
        """The wait is over: draw the flags without figures, unless the first read has drawn them already."""
        if self._awaiting_first_read:
            self._awaiting_first_read = False
            self.publish()

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = True) -> None:
        """Every notice goes into the session (the screens' NoticeBar shows it) and Textual's own record."""
        text = message
        if markup:
            try:
                text = Text.from_markup(message).plain
            except MarkupError:
                pass
        timeout = self.NOTIFICATION_TIMEOUT if timeout is None else timeout
        if self._thread_id == threading.get_ident():
            self.session.notice(text, title, severity, timeout)
            self.publish()
        else:  # a stream's thread: the session is the UI thread's
            self.call_from_thread(lambda: (self.session.notice(text, title, severity, timeout), self.publish()))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # ---- the session, to every screen --------------------------------------------------------

    def publish(self) -> None:
        """Hand the session to every screen, once per turn of the event loop however often it is asked."""
        if self._publish_pending:
            return
        self._publish_pending = True
        self.call_later(self._publish_now)

    def _tick(self) -> None:
        """The one-second tick: a read that published within the last second has moved the clocks already (and
        loaded flags still waiting for their first figures are not drawn by a tick either)."""
        if time.monotonic() - self._published_at >= TICK_QUIET_S:
            self.publish_unless_awaiting_first_read()

    def _publish_now(self) -> None:
        self._publish_pending = False
        self._published_at = time.monotonic()
        if not self.screen_stack:
            return  # closing: the screens are gone
        self.sync_in_view()
        for screen in self.screen_stack:
            if isinstance(screen, SessionScreen):
                screen.post_message(SessionChanged(self.session))
        # the footer greys out what does not apply: redrawn only when that changed (a footer rebuild is costly)
        applies = tuple(a.reason_unavailable(self.session) is None for a in ACTIONS)
        if applies != self._applies:
            self._applies = applies
            self.refresh_bindings()

    def sync_in_view(self) -> None:
        """The flag in view is the one the topmost full screen shows (a dialog over it changes nothing)."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, SessionScreen):
                try:
                    self.session.in_view = screen.highlighted_flag()
                except NoMatches:  # a screen still composing has nothing highlighted yet
                    self.session.in_view = None
                return

    def on_in_view(self, message: InView) -> None:
        self.session.in_view = message.flag
        self.publish()

    # ---- actions: the registry decides, every key says why when it cannot ----------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        registered = BY_ID.get(action)
        if registered is None:
            return True
        if registered.writes and self.session.read_only:
            return False
        return None if registered.reason_unavailable(self.session) else True

    async def run_action(self, action, default_namespace=None, namespaces=None) -> bool:
        """No dead keys: an action that does not apply says why instead of doing nothing."""
        name = action.rpartition(".")[2].partition("(")[0] if isinstance(action, str) else None
        registered = BY_ID.get(name or "")
        if registered is not None:
            self.sync_in_view()  # the flag highlighted at this key press, not at the last redraw
            why = registered.reason_unavailable(self.session)
            if why:
                self.notify(f"{registered.label.lower()}: {visible(why)}", severity="warning", timeout=6, markup=False)
                return True
        return await super().run_action(action, default_namespace, namespaces)

    def palette_write(self, action_id: str) -> None:
        """A change of traffic chosen in the palette: a rollback asks first; the others open their dialog."""
        if action_id != "rollback":
            self.call_later(self.run_action, action_id)
            return
        self.sync_in_view()
        key, why = av.rollback_target(self.session)
        if key is None:
            self.notify(f"rollback: {visible(why)}", severity="warning", markup=False)
            return
        from console.screens.confirm import ConfirmScreen

        def answered(answer: "Answer | None") -> None:
            if answer is not None:
                self.start_rollback(key, reason=f"chosen in the command palette: {answer.reason}", decision=None)

        flag = self.session.flags[key]
        self.push_screen(ConfirmScreen(f"Roll back {key}?", [f"allocation: {flag.allocation.describe()}  →  0% "
                                                              f"(100% {flag.baseline})"],
                                       confirm_label="Roll back", reason_required=False, danger=True,
                                       default_reason="rollback"), callback=answered)

    async def action_quit(self) -> None:
        """q: quit, after a question when this console is a rollout's only guard or a write is in flight."""
        why = av.quit_question(self.session)
        if why is None:
            self.exit()
            return
        from console.screens.confirm import ConfirmScreen

        self.push_screen(ConfirmScreen("Quit routedeck?", [why], confirm_label="Quit", reason_required=False,
                                       ask_reason=False, danger=True),
                         callback=lambda answer: self.exit() if answer is not None else None)

    # ---- views ---------------------------------------------------------------------------

    def _show(self, screen_type: type, make: Callable[[], SessionScreen]) -> None:
        if isinstance(self.screen, screen_type):
            return
        for i, screen in enumerate(self.screen_stack):
            if isinstance(screen, screen_type):  # already open below: go back to it rather than stack another
                while len(self.screen_stack) > i + 1:
                    self.pop_screen()
                return
        self.push_screen(make())

    def action_rollout(self) -> None:
        from console.screens.rollout import RolloutScreen

        self.sync_in_view()
        key = self.session.in_view or self.session.focus_key()
        self._show(RolloutScreen, lambda: RolloutScreen(self.session, key))

    def action_audit(self) -> None:
        from console.screens.audit import AuditScreen

        s = self.session
        self._show(AuditScreen, lambda: AuditScreen(s, s.journal.path if s.journal is not None else None,
                                                    s.platform, sorted(s.flags)))

    def action_frontier(self) -> None:
        from console.screens.frontier import FrontierScreen

        self._show(FrontierScreen, lambda: FrontierScreen(self.session))

    def action_budgets(self) -> None:
        from console.core.budgets import BudgetConfig
        from console.screens.budgets import BudgetsScreen

        config = self.budgets_config or BudgetConfig.defaults()
        self._show(BudgetsScreen, lambda: BudgetsScreen(self.session, config))

    def action_segments(self) -> None:
        from console.screens.segments import SegmentsScreen

        self._show(SegmentsScreen, lambda: SegmentsScreen(self.session))

    def action_incident(self) -> None:
        from console.screens.incident import IncidentScreen

        self._show(IncidentScreen, lambda: IncidentScreen(self.session))

    def action_verdict(self) -> None:
        from console.screens.verdict import VerdictScreen

        why = av.verdict_unavailable(self.session)
        if why:
            self.notify(f"verdict: {visible(why)}", severity="warning", markup=False)
            return
        self.push_screen(VerdictScreen(self.session.rule, self.session.decision))

    def action_help(self) -> None:
        from console.screens.help import HelpScreen, help_rows

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(help_rows(self.screen, self.active_bindings, self.session)))

    # ---- what the operator sees: pause, metric, window ---------------------------------------

    def action_toggle_pause(self) -> None:
        self.session.paused = not self.session.paused
        if not self.session.paused:
            self.poll_metrics()
        self.publish()

    def _cycle_metric(self, step: int) -> None:
        s = self.session
        s.trend_metric = TREND_METRICS[(TREND_METRICS.index(s.trend_metric) + step) % len(TREND_METRICS)]
        self.publish()

    def action_next_metric(self) -> None:
        self._cycle_metric(1)

    def action_prev_metric(self) -> None:
        self._cycle_metric(-1)

    def _cycle_window(self, step: int) -> None:
        s = self.session
        i = min(range(len(WINDOWS_S)), key=lambda j: abs(WINDOWS_S[j] - s.window_s))
        s.window_s = WINDOWS_S[max(0, min(len(WINDOWS_S) - 1, i + step))]
        self.notify(f"window: last {s.window_label}", timeout=2)
        if not s.paused:
            self.poll_metrics()
        self.publish()

    def action_wider_window(self) -> None:
        self._cycle_window(1)

    def action_narrower_window(self) -> None:
        self._cycle_window(-1)

    # ---- requests from screens ----------------------------------------------------------------

    def on_segments_screen_exclude_confirmed(self, message) -> None:
        """The segments screen's confirmed exclusion, written like every other change."""
        from console.core import operations

        s = self.session
        rule = s.rules.get(message.flag)
        if rule is None:
            return
        attribute, value = message.segment
        self.run_write("exclude_segment", message.flag, partial(
            operations.exclude_segment, rule, s.platform, message.flag, attribute, value, s.journal,
            s.operator_name(), message.reason, evidence=message.evidence), detail=f"{attribute}={value}")

    # ---- a worker that failed in a way nobody planned for ---------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self._worker_failed(event.worker)

    def on_worker_failed(self, message: WorkerFailed) -> None:
        self._worker_failed(message.worker)

    def _worker_failed(self, worker: Worker) -> None:
        """A bug in a worker (the App's or a screen's): shown as one line, and the state it left put right."""
        error = worker.error
        text = failure_text(error) if error is not None else "unknown error"
        group = worker.group or ""
        s = self.session
        if group == "metrics":
            s.metrics_failed(text)
        elif group == "flags":
            s.flags_failed(text)
        elif group == "verdicts":
            for key in s.rules:
                s.verdict_failed(key, text)
        elif group == "rollout-action":
            s.pending.clear()
        self.notify(f"unexpected error ({group or worker.name}): {visible(text)} — shown, nothing assumed",
                    severity="error", timeout=15, markup=False)
        self.publish()
        rearm = {"metrics": self.poll_metrics, "flags": self.poll_flags, "verdicts": self.poll_verdicts}.get(group)
        if rearm is not None:
            self.set_timer(self.session.refresh_s, rearm)
