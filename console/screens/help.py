"""`?`: every key, whether it applies now, and if not, why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.actions import ACTIONS, key_label

if TYPE_CHECKING:
    from console.actions import ConsoleState


class HelpScreen(ModalScreen):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, state: "ConsoleState") -> None:
        super().__init__()
        self.state = state

    def rows(self) -> list[tuple[str, str, str]]:
        """(key, what it does, whether it applies now and why not) for every action on offer."""
        out = []
        for action in ACTIONS:
            if action.writes and self.state.read_only:
                continue  # read-only consoles do not offer write actions at all
            why = action.reason_unavailable(self.state)
            label = f"{action.label} — {action.description}" + (" (changes traffic)" if action.writes else "")
            out.append((key_label(action), label, f"unavailable: {why}" if why else "ready"))
        return out

    def compose(self) -> ComposeResult:
        # below 100 columns a wrapped description pushes the last keys off an 80×24 screen: cut it instead
        narrow = self.app.size.width < 100
        table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold", expand=narrow)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action", no_wrap=narrow, overflow="ellipsis", ratio=3 if narrow else None)
        rows = self.rows()
        reasons = any(status != "ready" for _, _, status in rows)
        table.add_column("now", ratio=2 if narrow and reasons else None)
        for key, label, status in rows:
            table.add_row(key, label, status, style="dim" if status != "ready" else "")
        with VerticalScroll():
            yield Static("[b]Keys[/b]  (↑/↓ move between routes; esc closes)")
            yield Static(table)
