"""`?`: every key, whether it applies now, and if not, why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.actions import ACTIONS, key_label

if TYPE_CHECKING:
    from console.actions import ConsoleState


class HelpScreen(ModalScreen):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 100%; max-width: 130; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1; }
    HelpScreen Horizontal { height: auto; }
    HelpScreen .column { width: 1fr; }
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

    def _table(self, rows: list[tuple[str, str, str]], *, describe: bool,
               notes: dict[str, int] | None = None) -> Table:
        """``notes``: reason → number; a row then shows "✗ n" and the reason is written once, below."""
        table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold", expand=True)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action", no_wrap=not describe, overflow="ellipsis" if not describe else "fold",
                         ratio=3 if describe else None)
        table.add_column("now", overflow="fold", ratio=2)
        for key, label, status in rows:
            shown = status
            if notes is not None and status != "ready":
                shown = f"✗ {notes.setdefault(status.removeprefix('unavailable: '), len(notes) + 1)}"
            table.add_row(key, label if describe else label.split(" — ")[0], shown,
                          style="dim" if status != "ready" else "")
        return table

    def compose(self) -> ComposeResult:
        rows = self.rows()
        writes = {key_label(a) for a in ACTIONS if a.writes}
        views = [r for r in rows if r[0] not in writes]
        changes = [r for r in rows if r[0] in writes]
        with VerticalScroll():
            yield Static("[b]Keys[/b]  (↑/↓ move between routes; esc closes)")
            if self.app.size.width >= 120:
                yield Static(self._table(rows, describe=True))
            else:
                # two columns, each reason written once: on 80×24 every key stays on screen
                notes: dict[str, int] = {}
                left = self._table(views, describe=False, notes=notes)
                right = self._table(changes, describe=False, notes=notes)
                why = Text()
                for reason, n in notes.items():
                    why.append(f"\n✗ {n} ", "bold")
                    why.append(reason, "dim")
                with Horizontal():
                    yield Static(left, classes="column")
                    yield Static(Group(Text("changes traffic", style="bold"), right, why), classes="column")
