"""A confirm dialog for actions that move traffic: the exact change, a reason, Cancel focused.

Dismisses with the reason typed (or the default reason) when confirmed, and with None when cancelled.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class ConfirmScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 96; max-width: 100%; height: auto; max-height: 100%;
        border: thick $warning; background: $surface; padding: 0 1; }
    ConfirmScreen #title { text-style: bold; }
    ConfirmScreen #change-box { height: auto; max-height: 40vh; margin: 1 0; }
    ConfirmScreen #change { height: auto; }
    ConfirmScreen #problem { color: $error; height: auto; }
    ConfirmScreen Horizontal { height: auto; align: right middle; }
    ConfirmScreen Button { margin: 0 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, change: list[str], *, confirm_label: str, reason_required: bool,
                 default_reason: str = "", note: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.change = change
        self.confirm_label = confirm_label
        self.reason_required = reason_required
        self.default_reason = default_reason
        self.note = note

    def compose(self) -> ComposeResult:
        change = Text()
        for i, line in enumerate(self.change):
            if i:
                change.append("\n")
            before, arrow, after = line.partition("→")
            if arrow:
                change.append(before, "red")
                change.append("→ ", "bold")
                change.append(after.lstrip(), "green")
            else:
                change.append(line)
        hint = "reason (required)" if self.reason_required else f"reason (empty: {self.default_reason})"
        with Vertical():
            yield Static(self.title_text, id="title")
            # a long change scrolls in its own box: the reason and the buttons always stay on screen
            with VerticalScroll(id="change-box"):
                yield Static(change, id="change")
            if self.note:
                yield Static(Text(self.note, "dim"), id="note")
            yield Input(placeholder=hint, id="reason")
            yield Static("", id="problem")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, id="confirm", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _confirm(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if self.reason_required and not reason:
            self.query_one("#problem", Static).update("a reason is required: type it above, then confirm")
            self.query_one("#reason", Input).focus()
            return
        self.dismiss(reason or self.default_reason)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm":
            self._confirm()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._confirm()
