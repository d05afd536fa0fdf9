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

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
        table.add_column("key")
        table.add_column("action")
        table.add_column("now")
        for action in ACTIONS:
            why = action.reason_unavailable(self.state)
            if action.writes and self.state.read_only:
                continue  # read-only consoles do not offer write actions at all
            status = f"[dim]unavailable: {why}[/dim]" if why else "[green]ready[/green]"
            label = f"{action.label} — {action.description}" + (" [red](changes traffic)[/red]" if action.writes else "")
            table.add_row(f"[b]{key_label(action)}[/b]", label, status)
        with VerticalScroll():
            yield Static("[b]Keys[/b]  (↑/↓ move between routes; esc closes)")
            yield Static(table)
