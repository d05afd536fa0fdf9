"""The route table renders again only the cells (and the lines) a read changed, and never shows a figure it replaced."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable

from widgets.route_table import Cell, Row, RouteTable


class OneTable(App):
    def compose(self) -> ComposeResult:
        yield RouteTable(id="routes")


def rows(p95_a: str, p95_b: str) -> list[Row]:
    return [Row("f|a|baseline", (Cell(" a ●"), Cell(p95_a))), Row("f|b|candidate", (Cell(" b ◆", "bold"), Cell(p95_b)))]


def lines(table: RouteTable) -> list[str]:
    return [table.render_line(y).text for y in range(3)]


async def test_a_changed_cell_is_drawn_afresh_and_the_unchanged_ones_are_not_rendered_again(monkeypatch):
    app = OneTable()
    async with app.run_test(size=(40, 8)) as pilot:
        table = app.query_one(RouteTable)
        table._set_columns(("route", "p95"))
        table._update_rows(rows("410ms", "520ms"))
        await pilot.pause()
        assert "410ms" in lines(table)[1] and "520ms" in lines(table)[2]

        rendered: list[tuple[int, int]] = []
        rows_drawn: list[str] = []
        own = DataTable._render_cell
        own_row = DataTable._render_line_in_row

        def row_counted(self, row_key, *args, **kwargs):
            rows_drawn.append(row_key.value)
            return own_row(self, row_key, *args, **kwargs)

        monkeypatch.setattr(DataTable, "_render_line_in_row", row_counted)

        def counted(self, row_index, column_index, *args, **kwargs):
            rendered.append((row_index, column_index))
            return own(self, row_index, column_index, *args, **kwargs)

        monkeypatch.setattr(DataTable, "_render_cell", counted)
        table._update_rows(rows("415ms", "520ms"))  # one figure moved
        await pilot.pause()
        shown = lines(table)
        assert "415ms" in shown[1] and "410ms" not in shown[1] and "520ms" in shown[2]
        assert [cell for cell in rendered if cell[0] >= 0] == [(0, 1)]  # only the new figure was rendered
        assert "f|b|candidate" not in rows_drawn and "f|a|baseline" in rows_drawn  # only its row's line was rebuilt

        rendered.clear()
        rows_drawn.clear()
        table.move_cursor(row=1)  # the highlight moves: both rows are drawn in their new style
        await pilot.pause()
        shown = lines(table)
        assert "415ms" in shown[1] and "520ms" in shown[2]
        assert {cell for cell in rendered if cell[0] >= 0} == {(0, 0), (0, 1), (1, 0), (1, 1)}
        assert {"f|a|baseline", "f|b|candidate"} <= set(rows_drawn)
