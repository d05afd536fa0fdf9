"""AuditList: the audit timeline, one line per record, drawing only the lines on screen.

A journal can hold 100,000 entries, so this is a ScrollView using the Line API: the list holds
the records and the indices that pass the current filter, and ``render_line`` builds the few
strips the terminal shows. Moving the cursor redraws two lines, not the list.

| key | does |
|---|---|
| `j` `↓` / `k` `↑` | next / previous record |
| `g` `home` / `G` `end` | first / last record |
| `pgdn` / `pgup` | a page down / up |
| `enter` | open the highlighted record (posts ``AuditList.Selected``) |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from console.core.audit.timeline import TimelineRecord
from console.core.safe_text import visible

#: the mark before the action: what kind of record the line is
KIND_MARK = {"intent": "→", "event": "•", "change": " "}
#: the first column: where the record comes from (legend: ``LEGEND``)
ORIGIN_MARK = {"journal": "●", "paired": "○", "state": "·", "outside": "!"}
LEGEND = "● journal  ○ platform: routedeck's write  ! platform: not journalled (made elsewhere)  · no routing change"


class AuditList(ScrollView, can_focus=True):
    """The timeline's records, filtered; keys in the module docstring."""

    DEFAULT_CSS = """
    AuditList { height: 1fr; background: $surface; }
    AuditList > .audit-list--cursor { background: $accent 40%; text-style: bold; }
    AuditList:focus > .audit-list--cursor { background: $accent; color: $text; }
    AuditList > .audit-list--time { color: $text-muted; }
    AuditList > .audit-list--platform { color: $text-muted; }
    AuditList > .audit-list--foreign { color: $warning; text-style: bold; }
    AuditList > .audit-list--failed { color: $error; text-style: bold; }
    AuditList > .audit-list--empty { color: $text-muted; text-style: italic; }
    """
    COMPONENT_CLASSES = {
        "audit-list--cursor", "audit-list--time", "audit-list--platform", "audit-list--foreign",
        "audit-list--failed", "audit-list--empty",
    }
    BINDINGS = [
        Binding("j,down", "cursor_down", "Down", show=False),
        Binding("k,up", "cursor_up", "Up", show=False),
        Binding("g,home", "first", "Top", show=False),
        Binding("G,end", "last", "Bottom", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("enter", "select", "Detail", show=False, tooltip="the highlighted record in full"),
    ]

    @dataclass
    class Highlighted(Message):
        """The cursor moved to ``record`` (None when the list is empty)."""

        record: TimelineRecord | None
        position: int

    @dataclass
    class Selected(Message):
        """Enter on ``record``."""

        record: TimelineRecord

    def __init__(self, *, empty_text: str = "nothing to show", **kwargs) -> None:
        super().__init__(**kwargs)
        self._records: Sequence[TimelineRecord] = ()
        self._visible: Sequence[int] = ()
        self.cursor = 0
        self.empty_text = empty_text

    # ---- data ---------------------------------------------------------------------

    def set_rows(self, records: Sequence[TimelineRecord], visible: Sequence[int], *, cursor: int | None = None) -> None:
        """Show ``records[i]`` for each ``i`` in ``visible``; the cursor goes to ``cursor`` (default: last)."""
        self._records, self._visible = records, visible
        self.virtual_size = Size(self.size.width, len(visible))
        last = max(0, len(visible) - 1)
        self.cursor = last if cursor is None else max(0, min(cursor, last))
        self._scroll_to_cursor(center=True)
        self.refresh()
        self.post_message(self.Highlighted(self.highlighted, self.cursor))

    def set_empty_text(self, text: str) -> None:
        self.empty_text = text
        self.refresh()

    @property
    def row_count(self) -> int:
        return len(self._visible)

    @property
    def highlighted(self) -> TimelineRecord | None:
        if not self._visible:
            return None
        return self._records[self._visible[self.cursor]]

    # ---- keys ---------------------------------------------------------------------

    def move_to(self, position: int) -> None:
        """Put the cursor on line ``position`` (clamped), scrolling it into view."""
        if not self._visible:
            return
        position = max(0, min(position, len(self._visible) - 1))
        if position == self.cursor:
            return
        old, self.cursor = self.cursor, position
        scrolled = self._scroll_to_cursor()
        if not scrolled:
            top = int(self.scroll_offset.y)
            for line in (old, position):
                self.refresh(Region(0, line - top, self.size.width, 1))
        self.post_message(self.Highlighted(self.highlighted, self.cursor))

    def action_cursor_down(self) -> None:
        self.move_to(self.cursor + 1)

    def action_cursor_up(self) -> None:
        self.move_to(self.cursor - 1)

    def action_first(self) -> None:
        self.move_to(0)

    def action_last(self) -> None:
        self.move_to(len(self._visible) - 1)

    def action_page_down(self) -> None:
        self.move_to(self.cursor + max(1, self.size.height - 1))

    def action_page_up(self) -> None:
        self.move_to(self.cursor - max(1, self.size.height - 1))

    def action_select(self) -> None:
        record = self.highlighted
        if record is not None:
            self.post_message(self.Selected(record))

    def _scroll_to_cursor(self, center: bool = False) -> bool:
        """Scroll so the cursor's line is visible; True when the view moved."""
        height = max(1, self.size.height)
        top = int(self.scroll_offset.y)
        if center and not (top <= self.cursor < top + height):
            target = max(0, self.cursor - height + 1)
        elif self.cursor < top:
            target = self.cursor
        elif self.cursor >= top + height:
            target = self.cursor - height + 1
        else:
            return False
        self.scroll_to(y=target, animate=False, immediate=True)
        self.refresh()
        return True

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self._visible))
        self._scroll_to_cursor()

    # ---- drawing ------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        line = int(self.scroll_offset.y) + y
        if not self._visible:
            if y == 0:
                text = set_cell_size(" " + visible(self.empty_text), width)
                return Strip([Segment(text, base + self.get_component_rich_style("audit-list--empty"))], width)
            return Strip.blank(width, base)
        if line >= len(self._visible):
            return Strip.blank(width, base)
        record = self._records[self._visible[line]]
        strip = Strip(self._cells(record, width, base), width)
        if line == self.cursor:
            strip = strip.apply_style(self.get_component_rich_style("audit-list--cursor"))
        return strip

    def _cells(self, r: TimelineRecord, width: int, base: Style) -> list[Segment]:
        wide = width >= 110
        muted = base + self.get_component_rich_style("audit-list--time")
        if r.origin == "outside":
            style = base + self.get_component_rich_style("audit-list--foreign")
        elif r.status == "failed":
            style = base + self.get_component_rich_style("audit-list--failed")
        elif r.source == "platform":
            style = base + self.get_component_rich_style("audit-list--platform")
        else:
            style = base
        when = r.time[:19].replace("T", " ") if wide else r.time[5:19].replace("T", " ")
        mark = "✗" if r.status == "failed" else "✓" if r.kind == "outcome" else KIND_MARK.get(r.kind, " ")
        actor_w, action_w, flag_w = (16, 16, 24) if wide else (9, 13, 14)
        cells = [
            (f" {when} ", muted),
            (ORIGIN_MARK.get(r.origin, " ") + " ", style),
            # who, what and why come from operators and platforms: their control characters are shown, never sent
            (_fit(visible(r.actor), actor_w) + " ", style),
            (_fit(f"{mark}{visible(r.action)}", action_w) + " ", style),
            (_fit(visible(r.flag) if r.flag else "—", flag_w) + " ", style if r.flag else muted),
        ]
        used = sum(cell_len(text) for text, _ in cells)
        summary = visible(r.summary + (f" — {r.reason}" if r.reason and r.kind != "outcome" else ""))
        cells.append((set_cell_size(summary, max(0, width - used)), style))
        return [Segment(text, st) for text, st in cells]


def _fit(text: str, width: int) -> str:
    """``text`` padded or cut to ``width`` cells, with an ellipsis when cut."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"
