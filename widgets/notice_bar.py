"""NoticeBar: what the console just did or saw, in the layout above the footer — never over the figures.

The newest notices first, errors before the rest, at most ``MAX_SHOWN``; each goes when its time is
up. A warning or an error is shown whole (it wraps); a confirmation keeps to one line. A notice's text came from a write's result, a platform or an operator: it is drawn with
``visible`` (control characters shown, markup never read).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from console.core.safe_text import visible

if TYPE_CHECKING:
    from console.core.session import Notice

MAX_SHOWN = 2
STYLE = {"error": "bold white on dark_red", "warning": "black on yellow", "information": "black on grey70"}


class NoticeBar(Static):
    DEFAULT_CSS = """
    NoticeBar { height: auto; max-height: 6; padding: 0 1; display: none; }
    NoticeBar.-shown { display: block; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: tuple = ()

    def show(self, notices: "Sequence[Notice]") -> None:
        picked = sorted(notices, key=lambda n: (n.severity != "error", -n.at))[:MAX_SHOWN]
        ident = tuple((n.at, n.text) for n in picked)
        if ident == self._shown:
            return
        self._shown = ident
        self.set_class(bool(picked), "-shown")
        lines = []
        room = max(20, (self.size.width or self.app.size.width) - 2)
        for n in picked:
            line = Text.assemble((f" {visible(n.title) or n.severity} ", STYLE.get(n.severity, STYLE["information"])),
                                 f" {visible(n.text)}")
            if n.severity == "information":
                line.truncate(room, overflow="ellipsis")  # a confirmation: its start says it; the rest is in the journal
            lines.append(line)
        self.update(Text("\n").join(lines), layout=True)
