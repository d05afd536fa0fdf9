"""What every full screen of the console shares: the session it draws from, the global keys, and "back".

The App hands the screens its ``Session`` in one message, ``SessionChanged``, after every change
(a read, a verdict, a write) and once a second for the clocks; a screen redraws from it in
``render_session`` and never reads the App. A screen tells the App which flag the operator is
looking at with ``InView``. Every registry action is bound here with its one key (so ``R``, ``?``,
``:``, ``esc`` and ``q`` work everywhere); a screen adds only keys of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from console.actions import bindings
from widgets.notice_bar import NoticeBar

if TYPE_CHECKING:
    from console.core.session import Session


class SessionChanged(Message):
    """The session changed, or a second passed: draw it. Queued duplicates collapse into the newest."""

    def __init__(self, session: "Session") -> None:
        super().__init__()
        self.session = session

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SessionChanged)


class InView(Message):
    """The flag the operator is looking at is now ``flag`` (the App records it in the session)."""

    def __init__(self, flag: str | None) -> None:
        super().__init__()
        self.flag = flag


class WorkerFailed(Message):
    """A screen's worker met a failure nobody planned for (a bug): the App shows it, as it does its own."""

    def __init__(self, worker) -> None:
        super().__init__()
        self.worker = worker


class SessionScreen(Screen):
    """A full screen drawn from the session. Subclasses implement ``render_session`` and, when they show
    one flag or route at a time, ``highlighted_flag``."""

    #: registry action ids shown in this screen's footer (None: each action's own default)
    FOOTER: ClassVar[tuple[str, ...] | None] = None
    #: the screen's own keys, for `?` — subclasses list them in BINDINGS as usual
    BINDINGS: ClassVar[list[Binding]] = []

    def __init__(self, session: "Session") -> None:
        super().__init__()
        self.session = session

    def __init_subclass__(cls, **kwargs) -> None:
        # the registry's bindings first, the screen's own after them (their keys never clash: see actions.py);
        # set before Textual merges the class's bindings in its own __init_subclass__
        own = [b for b in cls.__dict__.get("BINDINGS", []) if isinstance(b, Binding)]
        cls.BINDINGS = bindings(cls.FOOTER) + own
        super().__init_subclass__(**kwargs)

    # ---- the session ---------------------------------------------------------------------

    def on_session_changed(self, message: SessionChanged) -> None:
        self.session = message.session
        self.redraw()

    def on_screen_resume(self) -> None:
        self.tell_in_view()
        self.redraw()

    def redraw(self) -> None:
        """Draw the session if this screen is on top (a covered screen redraws when it comes back)."""
        if not self.is_mounted or self.app.screen is not self:
            return
        try:
            self.render_session()
            for bar in self.query(NoticeBar):
                bar.show(self.session.current_notices())
        except NoMatches:
            return  # the app is closing and has removed the widgets: a late message is moot

    def render_session(self) -> None:
        raise NotImplementedError

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.post_message(WorkerFailed(event.worker))

    # ---- the flag in view ------------------------------------------------------------------

    def highlighted_flag(self) -> str | None:
        """The flag of the route or rollout the operator is looking at here (None: none in particular)."""
        return None

    def tell_in_view(self) -> None:
        try:
            key = self.highlighted_flag()
        except NoMatches:
            return
        if key != self.session.in_view:
            self.post_message(InView(key))

    # ---- keys ------------------------------------------------------------------------------

    def action_back(self) -> None:
        """esc: close this screen (the dashboard, at the bottom, overrides it)."""
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
