"""The confirm dialogs of the emergency switch and of its undo: before/after shown, Cancel focused.

``SwitchScreen`` dismisses with ``(safe_variation, reason)`` or None; ``UndoSwitchScreen``
dismisses with the reason or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from console.core.emergency import allocation_lines
from console.core.models import RouteFlag


def _lines(title: str, lines: list[str], style: str) -> Text:
    text = Text(f"{title}\n", style="bold")
    for line in lines:
        text.append(f"  {line}\n", style=style)
    return text


class _ConfirmBase(ModalScreen):
    DEFAULT_CSS = """
    _ConfirmBase { align: center middle; }
    _ConfirmBase > Vertical { width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: thick $error; background: $surface; padding: 0 1; }
    _ConfirmBase Horizontal { height: auto; align-horizontal: right; }
    _ConfirmBase Button { margin: 0 1; }
    _ConfirmBase #error { color: $error; height: auto; }
    """
    AUTO_FOCUS = "#cancel"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)


class SwitchScreen(_ConfirmBase):
    """Send every unit of a flag to a safe route."""

    def __init__(self, flag: RouteFlag, choices: list[str], why: str = "") -> None:
        super().__init__()
        self.flag = flag
        self.choices = choices
        self.why = why

    def compose(self) -> ComposeResult:
        flag = self.flag
        safe = self.choices[0]
        with Vertical():
            yield Static(Text.assemble(("EMERGENCY SWITCH ", "bold reverse red"), (flag.key, "bold"),
                                       f"  — every unit to one route{': ' + self.why if self.why else ''}"))
            yield Static(_lines("now", allocation_lines(flag), "yellow"), id="before")
            yield Select([(n if flag.variations[n].route == n else f"{n} ({flag.variations[n].route})", n)
                          for n in self.choices], value=safe,
                         allow_blank=False, id="safe")
            yield Static(self._after(safe), id="after")
            yield Static(Text("undo (u) restores exactly the allocation shown under \"now\"", style="dim"))
            yield Input(placeholder="reason (required, goes into the audit journal)", id="reason")
            yield Static(id="error")
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Switch", id="confirm", variant="error")

    def _after(self, safe: str) -> Text:
        after = self.flag.allocation.model_copy(update={"serve_all": safe})
        return _lines("after", allocation_lines(self.flag, after), "bold red")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.value in self.flag.variations:
            self.query_one("#after", Static).update(self._after(str(event.value)))

    def on_input_submitted(self) -> None:
        self._confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self._confirm()

    def _confirm(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.query_one("#error", Static).update("a reason is required: type why (e.g. provider-b failing)")
            self.query_one("#reason", Input).focus()
            return
        self.dismiss((str(self.query_one("#safe", Select).value), reason))


class UndoSwitchScreen(_ConfirmBase):
    """Lift a switch: the allocation it held back comes back into force."""

    def __init__(self, flag: RouteFlag, note: str = "") -> None:
        super().__init__()
        self.flag = flag
        self.note = note

    def compose(self) -> ComposeResult:
        flag = self.flag
        with Vertical():
            yield Static(Text.assemble(("UNDO SWITCH ", "bold reverse"), (flag.key, "bold")))
            yield Static(_lines("now", allocation_lines(flag), "yellow"), id="before")
            yield Static(_lines("after (the allocation before the switch)",
                                allocation_lines(flag, flag.allocation.held()), "bold"), id="after")
            if self.note:
                yield Static(Text(self.note, style="dim"))
            yield Input(placeholder="reason (optional)", id="reason")
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Undo switch", id="confirm", variant="warning")

    def on_input_submitted(self) -> None:
        self._confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self._confirm()

    def _confirm(self) -> None:
        self.dismiss(self.query_one("#reason", Input).value.strip() or "undo the emergency switch")


@dataclass
class SwitchDone(Message):
    """A switch or its undo finished: the confirmed result, or the error."""

    kind: str  # "switch" or "undo"
    flag: str
    result: Any
    error: str | None
