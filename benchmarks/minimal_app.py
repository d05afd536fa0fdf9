"""The yardstick: a minimal Textual app updating one 20-row table and one Sparkline every second."""

from __future__ import annotations

import random

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Sparkline


class MinimalApp(App):
    def compose(self) -> ComposeResult:
        yield DataTable(id="table")
        yield Sparkline([], id="spark")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label in ("row", "a", "b", "c"):
            table.add_column(label, key=label)
        for i in range(20):
            table.add_row(f"row {i}", "0", "0", "0", key=str(i))
        self._rng = random.Random(1)
        self._series: list[float] = []
        self.set_interval(1.0, self.tick)

    def tick(self) -> None:
        table = self.query_one(DataTable)
        for i in range(20):
            table.update_cell(str(i), "a", f"{self._rng.random():.3f}")
        self._series = (self._series + [self._rng.random()])[-60:]
        self.query_one(Sparkline).data = list(self._series)


if __name__ == "__main__":
    MinimalApp().run()
