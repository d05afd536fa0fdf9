"""The one registry of operator actions: it feeds the key bindings, the footer, `?` help and the palette.

Every action is the App's (``app.<id>``) and is bound on every screen with the same key, so a key
means one thing wherever the operator is; a screen adds only keys of its own that no action here
uses (``local_keys_clash`` checks it). Each action says whether it applies right now and, when it
does not, why — so a greyed-out key explains itself ("rollback: … already serves 100% baseline").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from console.core import availability as av

if TYPE_CHECKING:
    from textual.binding import Binding

    from console.core.session import Session


@dataclass(frozen=True)
class Action:
    id: str
    key: str
    label: str
    description: str
    #: changes a flag platform (hidden and refused in read-only mode; in the palette only on its exact name)
    writes: bool = False
    show_in_footer: bool = True
    #: the footer's word for it where the label is long (80 columns hold the keys a screen offers)
    short: str = ""
    why_not: Callable[["Session"], str | None] = lambda session: None

    def reason_unavailable(self, session: "Session") -> str | None:
        """None when the action applies now, else a short reason."""
        if self.writes and session.read_only:
            return av.READ_ONLY
        return self.why_not(session)


def _target(find) -> Callable[["Session"], str | None]:
    def why_not(session: "Session") -> str | None:
        key, why = find(session)
        return None if key else why

    return why_not


def _rollout(kind: str) -> Callable[["Session"], str | None]:
    return lambda session: av.rollout_why_not(session, kind)


ACTIONS: tuple[Action, ...] = (
    Action("rollback", "R", "Rollback", "send the flag in view back to 100% baseline, at once (no question)",
           writes=True, why_not=_target(av.rollback_target)),
    Action("rollout", "o", "Rollout", "the rollout screen: stage ladder, guardrails with intervals, profile diff"),
    Action("advance", "A", "Advance", "move the rollout one stage on (a dialog shows the exact change first)",
           writes=True, show_in_footer=False, why_not=_rollout("advance")),
    Action("override", "O", "Override", "advance one stage against the verdict, with a mandatory reason",
           writes=True, show_in_footer=False, why_not=_rollout("override")),
    Action("hold", "H", "Hold", "record a decision to stay at this stage, with the evidence",
           writes=True, show_in_footer=False, why_not=_rollout("hold")),
    Action("promote", "P", "Promote", "make the candidate the baseline for everyone (from the last stage)",
           writes=True, show_in_footer=False, why_not=_rollout("promote")),
    Action("acknowledge", "K", "Acknowledge", "acknowledge the next item of the rule's manual checklist",
           writes=True, show_in_footer=False, short="Ack", why_not=_rollout("acknowledge")),
    Action("restart", "N", "New rollout", "start a new rollout on a flag whose last one was rolled back or "
           "promoted: 100% baseline, candidate ready (confirmed)", writes=True, show_in_footer=False, short="New",
           why_not=_rollout("restart")),
    Action("verdict", "v", "Verdict", "the rule's verdict in full: gates, metrics with intervals, reasons",
           show_in_footer=False, why_not=av.verdict_unavailable),
    Action("audit", "a", "Audit", "the audit timeline: every journalled decision and the platform's own history",
           show_in_footer=False),
    Action("frontier", "f", "Frontier", "routes by cost per resolved task against resolved rate, Pareto frontier marked",
           show_in_footer=False),
    Action("budgets", "b", "Budgets", "spend against budget per policy, plan tier and route; month-end projection",
           show_in_footer=False),
    Action("incident", "i", "Incident", "hurt routes and segments, with their failing providers ranked by errors, "
           "429s, timeouts, fallback ratio", show_in_footer=False),
    Action("segments", "s", "Segments", "candidate vs baseline per pre-registered segment, harm highlighted; "
           "e there excludes a harmed segment (confirmed)", show_in_footer=False,
           why_not=lambda session: None if session.rule is not None else av.NO_RULE),
    Action("emergency_switch", "x", "Switch", "send every unit of the flag in view to a safe route "
           "(confirmed, with a reason)", writes=True, show_in_footer=False, why_not=_target(av.switch_target)),
    Action("undo_switch", "u", "Undo switch", "restore exactly the allocation an emergency switch replaced (confirmed)",
           writes=True, show_in_footer=False, why_not=_target(av.undo_switch_target)),
    Action("next_metric", "m", "Metric", "trend the next metric (M: previous)", show_in_footer=False),
    Action("prev_metric", "M", "Prev metric", "trend the previous metric", show_in_footer=False),
    Action("wider_window", "right_square_bracket", "Window+", "widen the time window of figures and trends", show_in_footer=False),
    Action("narrower_window", "left_square_bracket", "Window-", "narrow the time window", show_in_footer=False),
    Action("toggle_pause", "space", "Pause", "pause or resume live updates (writes and rollback still work)",
           show_in_footer=False),
    Action("help", "question_mark", "Help", "the keys of this screen, whether each applies now, and why not"),
    Action("command_palette", "colon", "Commands", "search every action by name (changes only on an exact name)"),
    Action("back", "escape", "Back", "close this screen (on the dashboard: clear the filter)", show_in_footer=False),
    Action("quit", "q", "Quit", "leave routedeck (asks first while this console is a rollout's only guard "
           "or a write is in flight)"),
)

BY_ID: dict[str, Action] = {a.id: a for a in ACTIONS}
KEYS: frozenset[str] = frozenset(a.key for a in ACTIONS)
#: ctrl+p opens the palette too; the keys every screen's widgets take for moving around are the screen's own
KEY_LABELS = {"question_mark": "?", "colon": ":", "space": "space", "enter": "enter", "escape": "esc", "slash": "/",
              "right_square_bracket": "]", "left_square_bracket": "["}


def key_label(key: str) -> str:
    return KEY_LABELS.get(key, key)


def bindings(footer: tuple[str, ...] | None = None) -> "list[Binding]":
    """Every registry action as a binding of the App's action; ``footer`` picks those shown in the footer
    (default: each action's ``show_in_footer``)."""
    from textual.binding import Binding

    out = []
    for a in ACTIONS:
        show = a.id in footer if footer is not None else a.show_in_footer
        # no priority: a focused text field (a reason, a search) must get its letters, R included
        action = "back" if a.id == "back" else f"app.{a.id}"  # esc: each screen says what "back" is there
        out.append(Binding(a.key, action, a.short or a.label, show=show, id=a.id, tooltip=a.description))
    out.append(Binding("ctrl+p", "app.command_palette", "Commands", show=False, id="command_palette_ctrl"))
    return out


def local_keys_clash(local: "list[Binding]") -> list[str]:
    """Keys a screen binds for itself that the registry already uses (each key must mean one thing)."""
    clashes = []
    for b in local:
        for key in b.key.split(","):
            if key.strip() in KEYS:
                clashes.append(f"{key.strip()} ({b.description or b.action})")
    return clashes
