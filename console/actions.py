"""The one registry of operator actions: it feeds the key bindings, the footer, `?` help and the palette.

Each action says whether it applies right now and, when it does not, why — so a greyed-out
key can explain itself ("rollback: support-answer-route already serves 100% baseline").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol


class ConsoleState(Protocol):
    """What actions look at to decide whether they apply (the app provides it)."""

    read_only: bool
    paused: bool

    def rollback_target(self) -> tuple[str | None, str]:
        """(flag key to roll back, or None, and why not)."""

    def verdict_unavailable(self) -> str | None:
        """Why the rule's verdict cannot be shown now, or None."""


@dataclass(frozen=True)
class Action:
    id: str
    key: str
    label: str
    description: str
    dangerous: bool = False
    #: changes a flag platform (hidden and refused in read-only mode)
    writes: bool = False
    show_in_footer: bool = True
    why_not: Callable[[ConsoleState], str | None] = lambda state: None

    def reason_unavailable(self, state: ConsoleState) -> str | None:
        """None when the action applies now, else a short reason."""
        if self.writes and state.read_only:
            return "read-only console: actions that change flags are disabled"
        return self.why_not(state)


def _rollback_why_not(state: ConsoleState) -> str | None:
    flag, why = state.rollback_target()
    return None if flag else why


ACTIONS: tuple[Action, ...] = (
    Action("rollback", "R", "Rollback", "send the highlighted route's flag back to 100% baseline, at once",
           dangerous=False, writes=True, why_not=_rollback_why_not),
    Action("details", "enter", "Details", "every figure of the highlighted route, with its providers"),
    Action("verdict", "v", "Verdict", "the rule's verdict in full: gates, metrics with intervals, reasons",
           show_in_footer=False, why_not=lambda state: state.verdict_unavailable()),
    Action("next_metric", "m", "Metric", "trend the next metric (shift+m: previous)"),
    Action("prev_metric", "M", "Prev metric", "trend the previous metric", show_in_footer=False),
    Action("wider_window", "]", "Window+", "widen the time window of figures and trends"),
    Action("narrower_window", "[", "Window-", "narrow the time window", show_in_footer=False),
    Action("toggle_pause", "space", "Pause", "pause or resume live updates"),
    Action("help", "question_mark", "Help", "the keys that apply now, and why others do not"),
    Action("command_palette", "colon", "Commands", "search every action by name"),
    Action("quit", "q", "Quit", "leave routedeck"),
)

BY_ID: dict[str, Action] = {a.id: a for a in ACTIONS}

KEY_LABELS = {"question_mark": "?", "colon": ":", "space": "space", "enter": "enter"}


def key_label(action: Action) -> str:
    return KEY_LABELS.get(action.key, action.key)
