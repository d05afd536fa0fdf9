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

    def rollout_why_not(self, action: str) -> str | None:
        """Why a rollout action (advance, override, hold, promote, acknowledge) does not apply now, or None."""

    def switch_target(self) -> tuple[str | None, str]:
        """(flag an emergency switch would move, or None, and why not)."""

    def undo_switch_target(self) -> tuple[str | None, str]:
        """(flag whose emergency switch can be undone, or None, and why not)."""


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
    Action("rollout", "o", "Rollout", "the rollout screen: stage ladder, guardrails with intervals, profile diff"),
    Action("advance", "A", "Advance", "move the rollout one stage on (confirm shows the exact change)",
           writes=True, show_in_footer=False, why_not=lambda state: state.rollout_why_not("advance")),
    Action("override", "O", "Override", "advance one stage against the verdict, with a mandatory reason",
           writes=True, show_in_footer=False, why_not=lambda state: state.rollout_why_not("override")),
    Action("hold", "H", "Hold", "record a decision to stay at this stage, with the evidence",
           writes=True, show_in_footer=False, why_not=lambda state: state.rollout_why_not("hold")),
    Action("promote", "P", "Promote", "make the candidate the baseline for everyone (from the last stage)",
           writes=True, show_in_footer=False, why_not=lambda state: state.rollout_why_not("promote")),
    Action("acknowledge", "K", "Acknowledge", "acknowledge the next item of the rule's manual checklist",
           writes=True, show_in_footer=False, why_not=lambda state: state.rollout_why_not("acknowledge")),
    Action("restart", "N", "New rollout", "start a new rollout on a flag whose last one was rolled back or "
           "promoted: 100% baseline, candidate ready (confirmed)", writes=True, show_in_footer=False,
           why_not=lambda state: state.rollout_why_not("restart")),
    Action("details", "enter", "Details", "every figure of the highlighted route, with its providers"),
    Action("verdict", "v", "Verdict", "the rule's verdict in full: gates, metrics with intervals, reasons",
           show_in_footer=False, why_not=lambda state: state.verdict_unavailable()),
    Action("audit", "a", "Audit", "the audit timeline: every journalled decision and the platform's own history",
           show_in_footer=False),
    Action("frontier", "f", "Frontier", "routes by cost per resolved task against resolved rate, Pareto frontier marked",
           show_in_footer=False),
    Action("budgets", "b", "Budgets", "spend against budget per policy, plan tier and route; month-end projection",
           show_in_footer=False),
    Action("incident", "i", "Incident", "hurt routes and segments, with their failing providers ranked by errors, "
           "429s, timeouts, fallback ratio", show_in_footer=False),
    Action("segments", "s", "Segments", "candidate vs baseline per pre-registered segment, harm highlighted; "
           "x there excludes a harmed segment (confirmed)", show_in_footer=False,
           why_not=lambda state: None if getattr(state, "rule", None) is not None
           else "no decision rule: start the console with --rule FILE"),
    Action("emergency_switch", "x", "Switch", "send every unit of the highlighted route's flag to a safe route "
           "(confirmed, with a reason)", dangerous=True, writes=True, show_in_footer=False,
           why_not=lambda state: None if state.switch_target()[0] else state.switch_target()[1]),
    Action("undo_switch", "u", "Undo switch", "restore exactly the allocation an emergency switch replaced (confirmed)",
           writes=True, show_in_footer=False,
           why_not=lambda state: None if state.undo_switch_target()[0] else state.undo_switch_target()[1]),
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
