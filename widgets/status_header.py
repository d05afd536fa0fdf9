"""StatusHeader: what the console is connected to, the flags' allocation, and how fresh the data is."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class StatusHeader(Static):
    DEFAULT_CSS = """
    StatusHeader { height: auto; background: $boost; padding: 0 1; }
    """

    def show(self, lines: list[Text]) -> None:
        text = Text("\n").join(lines)
        if getattr(self, "_last", None) != text.markup:
            self._last = text.markup
            self.update(text)
