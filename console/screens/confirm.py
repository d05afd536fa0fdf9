"""A confirm dialog for actions that change a flag: the exact change, a reason, Cancel focused.

Keys: ``tab``/``shift+tab`` go Cancel → (choices) → reason → confirm, in that order; ``enter`` in the
reason confirms; ``esc`` cancels. Dismisses with an ``Answer`` (the reason typed, or the default
reason, and the value of each choice) when confirmed, and with None when cancelled.

A dialog that must ask more (which cohort salt a new rollout uses, say) passes ``choices``: each is
a ``Choice`` drawn as a selector between the change and the reason, its value in ``Answer.values``.
Everything in ``title`` and ``change`` is drawn as text: control characters shown, markup never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from console.core.safe_text import visible
from widgets.safe_input import SafeInput


@dataclass(frozen=True)
class Choice:
    """One more question in a confirm dialog: ``options`` are (shown text, value) pairs. Without a
    ``default`` nothing is picked: the operator must choose before confirming (no answer by accident)."""

    name: str
    label: str
    options: tuple[tuple[str, Any], ...]
    default: Any = None


@dataclass(frozen=True)
class Answer:
    reason: str
    values: dict[str, Any] = field(default_factory=dict)


def change_text(lines: Sequence[str], arrows: bool = True) -> Text:
    """The change, a line each; with ``arrows``, on a line with an arrow the old side is red and the new
    side green (``arrows=False`` where an arrow says who gets which route, not before and after)."""
    text = Text()
    for i, line in enumerate(lines):
        if i:
            text.append("\n")
        line = visible(line)
        before, arrow, after = line.partition("→")
        if arrow and arrows:
            text.append(before, "red")
            text.append("→ ", "bold")
            text.append(after.lstrip(), "green")
        else:
            text.append(line)
    return text


class ConfirmScreen(ModalScreen["Answer | None"]):
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 96; max-width: 100%; height: auto; max-height: 100%;
        border: thick $warning; background: $surface; padding: 0 1; }
    ConfirmScreen #title { text-style: bold; }
    ConfirmScreen #change-box { height: auto; max-height: 50vh; margin: 1 0 0 0; }
    ConfirmScreen Input { margin-top: 1; }
    ConfirmScreen #change { height: auto; }
    ConfirmScreen #problem { color: $error; height: auto; }
    ConfirmScreen Horizontal { height: auto; align: right middle; }
    ConfirmScreen Button { margin: 0 1; }
    ConfirmScreen Input.-hidden { display: none; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("tab", "step(1)", "Next", show=False, priority=True),
        Binding("shift+tab", "step(-1)", "Previous", show=False, priority=True),
    ]
    NOTE = "Cancel is focused · tab: the reason, then the confirm button · esc cancels"
    NOTE_NO_REASON = "Cancel is focused · tab: the confirm button · esc cancels"

    def __init__(self, title: str, change: Sequence[str], *, confirm_label: str, reason_required: bool,
                 default_reason: str = "", note: str = "", choices: Sequence[Choice] = (),
                 danger: bool = False, ask_reason: bool = True, arrows: bool = True) -> None:
        super().__init__()
        self.title_text = title
        self.change = list(change)
        self.confirm_label = confirm_label
        self.reason_required = reason_required
        self.default_reason = default_reason
        self.note = note
        self.choices = tuple(choices)
        self.danger = danger
        self.ask_reason = ask_reason
        self.arrows = arrows

    def compose(self) -> ComposeResult:
        hint = "reason (required)" if self.reason_required else f"reason (empty: {self.default_reason})"
        # a short terminal (80×24) gets the one-line forms of the fields: the change and the buttons both fit
        compact = self.app.size.height < 32
        with Vertical():
            yield Static(Text(visible(self.title_text), "bold"), id="title")
            # a long change scrolls in its own box: the reason and the buttons always stay on screen
            with VerticalScroll(id="change-box"):
                yield Static(change_text(self.change, self.arrows), id="change")
            note = visible(self.note) if self.note else self.NOTE if self.ask_reason else self.NOTE_NO_REASON
            if self.choices and not self.note:
                note = note.replace("tab: ", "tab: " + ", ".join(c.label for c in self.choices) + ", ")
            yield Static(Text(note, "dim"), id="note")
            for choice in self.choices:
                yield Label(Text(choice.label))
                picked = {"value": choice.default} if choice.default is not None else {}
                yield Select([(visible(text), value) for text, value in choice.options], prompt=f"choose: {choice.label}",
                             allow_blank=choice.default is None, id=f"choice-{choice.name}", compact=compact, **picked)
            yield SafeInput(placeholder=hint, id="reason", classes="" if self.ask_reason else "-hidden", compact=compact)
            yield Static("", id="problem")
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary", compact=compact)
                yield Button(self.confirm_label, id="confirm", variant="error" if self.danger else "warning",
                             compact=compact)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def focus_order(self) -> list:
        """Cancel first, then the choices and the reason, then the button that acts — never straight to it."""
        reason = [self.query_one("#reason")] if self.ask_reason else []
        return [self.query_one("#cancel"), *self.query(Select), *reason, self.query_one("#confirm")]

    def action_step(self, step: int) -> None:
        order = self.focus_order()
        current = self.focused
        i = next((n for n, w in enumerate(order) if w is current or (current is not None and w in current.ancestors)),
                 -1)
        order[(i + step) % len(order)].focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _confirm(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if self.reason_required and not reason:
            self.query_one("#problem", Static).update("a reason is required: type it above, then confirm")
            self.query_one("#reason", Input).focus()
            return
        values = {c.name: self.query_one(f"#choice-{c.name}", Select).value for c in self.choices}
        for c in self.choices:
            if values[c.name] is Select.NULL:
                self.query_one("#problem", Static).update(f"choose {c.label} first: nothing is picked for you")
                self.query_one(f"#choice-{c.name}", Select).focus()
                return
        self.dismiss(Answer(reason or self.default_reason, values))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm":
            self._confirm()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._confirm()
