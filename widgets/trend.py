"""TrendPanel: a titled sparkline of one metric over the time window."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline


class TrendPanel(Vertical):
    DEFAULT_CSS = """
    TrendPanel { height: 4; border-top: solid $primary-darken-2; padding: 0 1; }
    TrendPanel > Label { width: 100%; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    TrendPanel > Sparkline { height: 2; }
    """

    def compose(self) -> ComposeResult:
        yield Label("", id="trend-title")
        yield Sparkline([], id="trend-spark")

    def show(self, title: Text, values: list[float]) -> None:
        """Draw ``values`` (already cleaned of missing buckets) under ``title`` (Text: never read as markup)."""
        label = self.query_one("#trend-title", Label)
        if getattr(self, "_title", None) != (title.plain, title.spans):
            self._title = (title.plain, title.spans)
            label.update(title, layout=False)  # one line whatever it says: no layout pass
        spark = self.query_one(Sparkline)
        # an empty sparkline draws a flat line at the bottom, as if every value were the lowest: none is drawn
        if spark.visible != bool(values):
            spark.visible = bool(values)
        if list(spark.data or []) != values:
            spark.data = values
