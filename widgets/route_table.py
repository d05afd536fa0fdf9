"""RouteTable: one row per route, updated in place (only changed cells are written)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable


@dataclass(frozen=True)
class Cell:
    text: str
    style: str = ""


@dataclass(frozen=True)
class Row:
    key: str
    cells: tuple[Cell, ...]


class RouteTable(DataTable):
    """A dense route table. Keys: ↑/↓ move the highlight; the screen binds the rest."""

    DEFAULT_CSS = """
    RouteTable { height: auto; max-height: 100%; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, cell_padding=0, **kwargs)
        self._columns: tuple[str, ...] = ()
        self._cells: dict[str, tuple[Cell, ...]] = {}

    def set_columns(self, labels: tuple[str, ...]) -> None:
        """Reset the table when the set of columns changes (e.g. the terminal got wider)."""
        if labels == self._columns:
            return
        self.clear(columns=True)
        self._cells = {}
        self._columns = labels
        for label in labels:
            self.add_column(f" {label} ", key=label)

    def update_rows(self, rows: list[Row]) -> None:
        """Add, update and remove rows so the table shows exactly ``rows``, touching only what changed."""
        wanted = {r.key for r in rows}
        for key in [k for k in self._cells if k not in wanted]:
            self.remove_row(key)
            del self._cells[key]
        for row in rows:
            old = self._cells.get(row.key)
            if old is None:
                self.add_row(*(self._render(c) for c in row.cells), key=row.key)
            elif old != row.cells:
                for label, before, after in zip(self._columns, old, row.cells):
                    if before != after:
                        self.update_cell(row.key, label, self._render(after))
            self._cells[row.key] = row.cells

    @staticmethod
    def _render(cell: Cell) -> Text:
        # one space of gutter on each side, drawn in the cell so it takes the row's highlight
        return Text(f" {cell.text} ", style=cell.style)

    @property
    def highlighted_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # the cursor can point past the end for a moment after rows are removed
            return None
