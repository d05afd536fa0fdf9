"""RouteTable: one row per route serving a flag, grouped by flag, updated in place.

Keys: ``j``/``k`` (↓/↑) move, ``g``/``G`` first/last row; the screen binds the rest. Each route's
``alloc`` is what its flag says now (it changes the moment a write is confirmed); ``share`` is what
the traffic shows over the newest seconds — the two side by side are the data-plane proof. A
figure that moved since the previous read gets ↑/↓ (yellow when worse, green when better).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from console.core.safe_text import visible

if TYPE_CHECKING:  # the figures and the registry load with the first read, after the first frame
    from console.core.figures import RouteFigures
    from console.core.models import RouteFlag

NARROW = ("alloc", "share", "p95_latency", "cost_per_resolved_case", "resolved_without_escalation", "fallback_rate",
          "error_rate")
WIDE = ("alloc", "share", "p50_latency", "p95_latency", "p95_ttft", "cost_per_request", "cost_per_resolved_case",
        "resolved_without_escalation", "fallback_rate", "error_rate")
LABELS = {"alloc": "alloc", "share": "share", "p50_latency": "p50", "p95_latency": "p95", "p95_ttft": "ttft95",
          "cost_per_request": "$/req", "cost_per_resolved_case": "$/resolved", "resolved_without_escalation": "resolved",
          "fallback_rate": "fallback", "error_rate": "errors"}
NARROW_LABELS = LABELS | {"cost_per_resolved_case": "$/res", "resolved_without_escalation": "res",
                          "fallback_rate": "fb", "error_rate": "err"}
#: by arm (``Arm.value``): the tag after a route's name
ARM_TAG = {"candidate": " ◆cand", "baseline": " ●base", "other": ""}
NARROW_TAG = {"candidate": " ◆", "baseline": " ●", "other": ""}
#: what `S` sorts the routes of each flag by, in turn (None: baseline, candidate, others)
SORTS: tuple[str | None, ...] = (None, "p95_latency", "error_rate", "fallback_rate", "cost_per_resolved_case",
                                 "share")
#: a relative change smaller than this is noise from the moving window, not worth an arrow
DELTA_THRESHOLD = 0.02
GROUP_PREFIX = "flag|"


def flag_of_row(key: str) -> str:
    return key[len(GROUP_PREFIX):] if key.startswith(GROUP_PREFIX) else key.split("|", 1)[0]


def row_key(fig: "RouteFigures") -> str:
    return f"{fig.key.flag}|{fig.key.route}|{fig.key.arm.value}"


def allocation_text(flag: "RouteFlag | None", route: str) -> str:
    """The share of the flag's eligible units this route gets now, as the flag says (not as measured)."""
    if flag is None:
        return "—"
    a = flag.allocation
    if a.serve_all is not None:
        return "100%" if route == a.serve_all else "0%"
    if flag.foreign_targeting:
        return "?"
    if route == flag.candidate:
        share = f"{a.candidate_bp / 100:g}%"
        return share + "+i" if a.internal_enabled else share
    if route == flag.baseline:
        return f"{100 - a.candidate_bp / 100:g}%"
    return "—"


@dataclass(frozen=True)
class Cell:
    text: str
    style: str = ""


@dataclass(frozen=True)
class Row:
    key: str
    cells: tuple[Cell, ...]


class RouteTable(DataTable):
    """The dashboard's route table (keys in the module docstring)."""

    DEFAULT_CSS = """
    RouteTable { height: auto; max-height: 100%; }
    """
    BINDINGS = [
        Binding("enter", "select_cursor", "Details", show=False, tooltip="every figure of the highlighted route"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "First", show=False),
        Binding("G", "scroll_bottom", "Last", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, cell_padding=0, **kwargs)
        self._columns: tuple[str, ...] = ()
        self._widths: list[int] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}
        #: figures of the read before the one on screen (what ↑/↓ compare with) and of the one on screen
        self._previous: dict[str, dict[str, float | None]] = {}
        self._current: dict[str, dict[str, float | None]] = {}
        self._figures_drawn: object = None
        self.rows_by_key: dict[str, RouteFigures] = {}
        #: each cell's rendering, kept while the cell holds the same value (see ``_render_cell``)
        self._cell_lines: dict[tuple, tuple[object, object]] = {}
        #: each line's strip, kept while its row's cells and the table's layout and styles stay (``_render_line``)
        self._line_strips: dict[int, tuple[tuple, tuple, object]] = {}

    # ---- what the screen asks -----------------------------------------------------------

    @property
    def highlighted_key(self) -> str | None:
        if not self.row_count or not 0 <= self.cursor_row < self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def highlighted_route(self) -> "RouteFigures | None":
        key = self.highlighted_key
        return self.rows_by_key.get(key) if key else None

    # ---- drawing ------------------------------------------------------------------------

    def show(self, figures: "Sequence[RouteFigures]", flags: "Mapping[str, RouteFlag]", *, wide: bool,
             query: str = "", sort: str | None = None) -> None:
        """Draw ``figures`` (one read) under the flags as they stand, filtered by ``query`` (a flag or route
        contains it) and sorted within each flag by ``sort``."""
        metrics = WIDE if wide else NARROW
        labels = NARROW_LABELS
        columns = ("route",) + tuple(labels[m] + ("▼" if m == sort else "") for m in metrics) + \
            (("worst provider",) if wide else ())
        self._set_columns(columns)
        if figures is not self._figures_drawn:  # a new read: only then do the arrows' reference values move on
            self._previous, self._figures_drawn = self._current, figures
            self._current = {row_key(f): dict(f.values) for f in figures}
        wanted = query.strip().lower()
        shown = [f for f in figures if not wanted or wanted in f.key.flag.lower() or wanted in f.key.route.lower()]
        self.rows_by_key = {row_key(f): f for f in shown}
        rows: list[Row] = []
        for flag_key in dict.fromkeys(f.key.flag for f in shown):  # flags in the figures' order
            group = [f for f in shown if f.key.flag == flag_key]
            if sort is not None:
                group.sort(key=lambda f: _sort_value(f, sort))
            blank = (Cell(""),) * (len(columns) - 1)
            rows.append(Row(GROUP_PREFIX + flag_key, (Cell(visible(flag_key), "bold underline"),) + blank))
            for fig in group:
                rows.append(Row(row_key(fig), self._cells_of(fig, flags.get(flag_key), metrics, wide)))
        first_fill = self.row_count == 0
        with self.app.batch_update():
            self._update_rows(rows)
        if first_fill:
            self._focus_rollout_row()

    def _cells_of(self, fig: "RouteFigures", flag: "RouteFlag | None", metrics: tuple[str, ...], wide: bool) -> tuple:
        prev = self._previous.get(row_key(fig), {})
        tags = ARM_TAG if wide else NARROW_TAG
        fallback_only = not fig.requests and not fig.idle
        tag = " ↪fb" if fallback_only else tags[fig.key.arm.value]
        cells = [Cell(" " + visible(fig.key.route) + tag, "bold" if fig.key.arm.value == "candidate" else "")]
        for m in metrics:
            if m == "alloc":
                cells.append(Cell(allocation_text(flag, fig.key.route), "bold"))
            elif m == "share" and fallback_only:
                cells.append(Cell(f"fb {fig.via_fallback}", "dim"))
            else:
                cells.append(self._cell(fig, m, prev.get(m)))
        if wide:
            wp = fig.worst_provider
            cells.append(Cell(f"{visible(wp.split('/')[0])} {fig.worst_provider_rate * 100:.1f}%" if wp else "—",
                              "red" if fig.marks.get("error_rate") else ""))
        return tuple(cells)

    @staticmethod
    def _cell(fig: "RouteFigures", metric: str, before: float | None) -> Cell:
        from console.core.figures import format_value
        from console.core.registry import lookup

        value = fig.values.get(metric)
        if not fig.requests and metric != "share":
            return Cell("—", "dim")
        text = format_value(metric, value)
        style = ""
        if fig.marks.get(metric):
            text += "!"
            style = "bold red"
        if value is not None and before is not None and abs(value - before) > DELTA_THRESHOLD * max(abs(before), 1e-9):
            meta = lookup(metric)
            up = value > before
            text += "↑" if up else "↓"
            if meta is not None and not style:
                style = "yellow" if up == meta.worse_is_higher else "green"
        return Cell(text, style)

    def _set_columns(self, labels: tuple[str, ...]) -> None:
        """Reset the table when the set of columns changes (the terminal got wider, another sort)."""
        if labels == self._columns:
            return
        self.clear(columns=True)
        self._cells = {}
        self._columns = labels
        self._widths = [len(label) + 1 for label in labels]
        for label, width in zip(labels, self._widths):
            self.add_column(f" {label}", key=label, width=width)

    def _fit_widths(self, rows: list[Row]) -> None:
        """Widen a column when a cell needs it, never narrow one: the table's size (and so the screen's
        layout) changes only when a figure grows a digit, not every time a value moves."""
        wider = False
        for row in rows:
            for i, cell in enumerate(row.cells):
                need = len(cell.text) + 1
                if need > self._widths[i]:
                    self._widths[i] = need
                    wider = True
        if wider:
            for label, width in zip(self._columns, self._widths):
                self.columns[ColumnKey(label)].width = width
            self._require_update_dimensions = True
            self.refresh(layout=True)

    def _update_rows(self, rows: list[Row]) -> None:
        """Make the table show exactly ``rows``: in place when the rows are the same ones in the same order
        (only changed cells are written), else rebuilt with the cursor kept on its row."""
        self._fit_widths(rows)
        order = [r.key for r in rows]
        if order != list(self._cells):
            keep = self.highlighted_key
            self.clear()
            self._cells = {}
            for row in rows:
                self.add_row(*(self._render(c) for c in row.cells), key=row.key)
                self._cells[row.key] = row.cells
            if keep in self._cells:
                self.move_cursor(row=order.index(keep))
            return
        updated = False
        for row in rows:
            old = self._cells[row.key]
            if old != row.cells:
                for label, before, after in zip(self._columns, old, row.cells):
                    if before != after:
                        # the widths were fitted above: a number is never cut to "92.…"
                        self.update_cell(row.key, label, self._render(after))
                        updated = True
                self._cells[row.key] = row.cells
        if updated:
            self._drop_stale_renders()

    def _drop_stale_renders(self) -> None:
        """DataTable keys its rendered cells, rows and lines by a count every ``update_cell`` raises: what was
        rendered before is never read again, yet is kept until 10,000 cells and 1,000 rows and lines pile up —
        tens of megabytes on a console left open for days. Dropped once the cells are written, before the
        next frame renders them afresh (it would anyway)."""
        for cache in (self._cell_render_cache, self._row_render_cache, self._row_renderable_cache, self._line_cache):
            cache.clear()

    def _render_cell(self, row_index: int, column_index: int, base_style, width: int, cursor: bool = False,
                     hover: bool = False):
        """DataTable renders every cell of the screen again after any ``update_cell`` (its caches are keyed by
        a count each update raises), though a read changes only some figures: a cell whose value is the very
        object rendered before, at the same place, width and style, is not rendered again."""
        if row_index < 0 or column_index < 0:  # the header and row labels: DataTable's own way
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        value = self._data[row_key][self._column_locations.get_key(column_index)]
        key = (row_index, column_index, base_style, width, cursor, hover, self._show_hover_cursor,
               self._pseudo_class_state, self.rows[row_key].height)
        found = self._cell_lines.get(key)
        if found is not None and found[0] is value:
            return found[1]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._cell_lines[key] = (value, lines)
        return lines

    def _render_line(self, y: int, x1: int, x2: int, base_style):
        """A route row's line is drawn again only when one of its cells holds another value (or the cursor,
        the hover, the widths or the style moved): each read rebuilt every line of the table."""
        try:
            row_key, offset = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        values = self._data.get(row_key)
        if values is None:  # the header: DataTable's own way
            return super()._render_line(y, x1, x2, base_style)
        key = (x1, x2, self.size.width, self.cursor_coordinate, self.hover_coordinate, base_style, self.cursor_type,
               self._show_hover_cursor, self._pseudo_class_state, row_key, offset,
               tuple(column.get_render_width(self) for column in self.ordered_columns))
        cells = tuple(values.values())
        found = self._line_strips.get(y)
        if found is not None and found[0] == key and len(found[1]) == len(cells) and all(
                a is b for a, b in zip(found[1], cells)):
            return found[2]
        strip = super()._render_line(y, x1, x2, base_style)
        self._line_strips[y] = (key, cells, strip)
        return strip

    def _clear_caches(self) -> None:
        super()._clear_caches()
        for own in ("_cell_lines", "_line_strips"):  # (DataTable may clear before __init__ has made them)
            self.__dict__.get(own, {}).clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        for own in ("_cell_lines", "_line_strips"):
            self.__dict__.get(own, {}).clear()

    @staticmethod
    def _render(cell: Cell) -> Text:
        # one space of gutter, drawn in the cell so it takes the row's highlight (80 columns hold every figure)
        return Text(f" {cell.text}", style=cell.style)

    def _focus_rollout_row(self) -> None:
        """Start on the candidate of a flag in rollout: that is what an operator came to watch."""
        for i, row in enumerate(self.ordered_rows):
            if (row.key.value or "").endswith("|candidate"):
                self.move_cursor(row=i)
                return


def _sort_value(fig: "RouteFigures", metric: str) -> tuple:
    """Worst first: highest where higher is worse, lowest where lower is worse; no figure last."""
    from console.core.registry import lookup

    value = fig.values.get(metric)
    if value is None:
        return (1, 0.0)
    meta = lookup(metric)
    worse_high = meta.worse_is_higher if meta is not None else True
    return (0, -value if worse_high else value)
