"""`?`: the keys of the screen the operator is on — built from its live bindings — whether each applies now,
and if not, why.

Keys: ``esc``, ``q`` or ``?`` close it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.actions import BY_ID, key_label
from console.core.safe_text import visible

if TYPE_CHECKING:
    from textual.binding import ActiveBinding
    from textual.screen import Screen

    from console.core.session import Session

#: moving around a table or list: said once, not a row per key
MOVES = {"up", "down", "j", "k", "g", "G", "home", "end", "pageup", "pagedown", "left", "right", "ctrl+home",
         "ctrl+end", "ctrl+pageup", "ctrl+pagedown", "shift+up", "shift+down"}


@dataclass(frozen=True)
class HelpRow:
    key: str
    label: str
    description: str
    #: "ready", or why the key does not apply now
    status: str
    writes: bool = False


def help_rows(screen: "Screen", active: "Mapping[str, ActiveBinding]", session: "Session") -> list[HelpRow]:
    """One row per key bound on ``screen`` right now (its own keys and the registry's), in binding order."""
    rows: list[HelpRow] = []
    seen: set[str] = set()
    for key, bound in active.items():
        binding: Binding = bound.binding
        name = binding.action.rpartition(".")[2]
        action = BY_ID.get(binding.id or "") or BY_ID.get(name)
        if action is not None:
            if action.id in seen or action.id == "command_palette" and key == "ctrl+p":
                continue
            seen.add(action.id)
            if action.writes and session.read_only:
                continue  # read-only consoles do not offer write actions at all
            why = action.reason_unavailable(session)
            rows.append(HelpRow(key_label(action.key), action.label, action.description,
                                f"unavailable: {why}" if why else "ready", action.writes))
            continue
        if key in MOVES or not (binding.description or bound.tooltip) or name in ("copy_text", "focus_next", "focus_previous"):
            continue  # moving around is one row below; copying a selection is the terminal's business
        rows.append(HelpRow(key_label(key), binding.description or name, bound.tooltip or binding.description,
                            "ready" if bound.enabled else "unavailable here now"))
    if any(k in active for k in ("j", "down")):
        rows.append(HelpRow("j/k g/G", "Move", "down/up a row (↓/↑ too); first/last row", "ready"))
    return rows


class HelpScreen(ModalScreen):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 100%; max-width: 130; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1; }
    HelpScreen Horizontal { height: auto; }
    HelpScreen .column { width: 1fr; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, rows: list[HelpRow]) -> None:
        super().__init__()
        self.help = rows

    def rows(self) -> list[tuple[str, str, str]]:
        """(key, what it does, whether it applies now and why not) for every key on offer."""
        return [(r.key, f"{r.label} — {r.description}" + (" (changes traffic)" if r.writes else ""), r.status)
                for r in self.help]

    def _table(self, rows: list[HelpRow], *, describe: bool, notes: dict[str, int] | None = None) -> Table:
        """``notes``: reason → number; a row then shows "✗ n" and the reason is written once, below."""
        table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold", expand=True)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action", no_wrap=not describe, overflow="ellipsis" if not describe else "fold",
                         ratio=3 if describe else None)
        table.add_column("now", overflow="fold", ratio=2)
        for r in rows:
            shown = r.status
            if notes is not None and r.status != "ready":
                shown = f"✗ {notes.setdefault(r.status.removeprefix('unavailable: '), len(notes) + 1)}"
            label = f"{r.label} — {r.description}" + (" (changes traffic)" if r.writes else "") if describe else r.label
            table.add_row(Text(r.key), Text(visible(label)), Text(visible(shown)),
                          style="dim" if r.status != "ready" else "")
        return table

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text.assemble(("Keys on this screen", "bold"), "  (esc closes)"))
            if self.app.size.width >= 120:
                yield Static(self._table(self.help, describe=True))
            else:
                # two columns, each reason written once: on 80×24 every key stays on screen
                notes: dict[str, int] = {}
                left = self._table([r for r in self.help if not r.writes], describe=False, notes=notes)
                right = self._table([r for r in self.help if r.writes], describe=False, notes=notes)
                why = Text()
                for reason, n in notes.items():
                    why.append(f"\n✗ {n} ", "bold")
                    why.append(visible(reason), "dim")
                with Horizontal():
                    yield Static(left, classes="column")
                    yield Static(Group(Text("changes traffic", style="bold"), right, why), classes="column")
