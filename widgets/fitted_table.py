"""Fill a DataTable whose columns are sized to their content (headers and cells, measured once)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable


def _width(cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else len(str(cell))


def fill_table(table: DataTable, headers: list[str], rows: list[tuple[str, list]]) -> None:
    """Replace ``table``'s columns and rows; ``rows`` are (row key, cells). The cursor row is kept."""
    cursor = table.cursor_row
    table.clear(columns=True)
    for i, name in enumerate(headers):
        table.add_column(name, width=max([len(name)] + [_width(cells[i]) for _, cells in rows]))
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if rows:
        table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))
