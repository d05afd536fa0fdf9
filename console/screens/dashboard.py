"""The dashboard: every route serving traffic, live, with one-key rollback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer

from console.actions import ACTIONS
from console.core.figures import PANEL_METRICS, RouteFigures, format_value, trend
from console.core.registry import lookup
from console.core.telemetry import Arm, RouteKey
from widgets.route_table import Cell, Row, RouteTable
from widgets.status_header import StatusHeader
from widgets.trend import TrendPanel

if TYPE_CHECKING:
    from console.app import RouteDeckApp

NARROW = ("share", "p95_latency", "cost_per_resolved_case", "resolved_without_escalation", "fallback_rate",
          "error_rate")
WIDE = ("share", "p50_latency", "p95_latency", "p95_ttft", "cost_per_request", "cost_per_resolved_case",
        "resolved_without_escalation", "fallback_rate", "error_rate")
LABELS = dict(PANEL_METRICS)
NARROW_LABELS = LABELS | {"cost_per_resolved_case": "$/res", "resolved_without_escalation": "res",
                          "fallback_rate": "fb", "error_rate": "err"}
#: metrics the trend can show, in the order `m` cycles through them
TREND_METRICS = ("p95_latency", "share", "cost_per_resolved_case", "resolved_without_escalation",
                 "fallback_rate", "error_rate", "cost_per_request", "p95_ttft", "p50_latency")
ARM_TAG = {Arm.CANDIDATE: " ◆cand", Arm.BASELINE: " ●base", Arm.OTHER: ""}
NARROW_TAG = {Arm.CANDIDATE: " ◆", Arm.BASELINE: " ●", Arm.OTHER: ""}
#: a relative change smaller than this is noise from the moving window, not worth an arrow
DELTA_THRESHOLD = 0.02
GROUP_PREFIX = "flag|"


def flag_of_row(key: str) -> str:
    return key[len(GROUP_PREFIX):] if key.startswith(GROUP_PREFIX) else key.split("|", 1)[0]


def row_key(key: RouteKey) -> str:
    return f"{key.flag}|{key.route}|{key.arm.value}"


class DashboardScreen(Screen):
    """Keys: see console/actions.py (the one registry); bindings are built from it."""

    AUTO_FOCUS = "RouteTable"
    DEFAULT_CSS = """
    DashboardScreen { layout: vertical; }
    DashboardScreen RouteTable { height: 1fr; }
    DashboardScreen #trends { height: auto; }
    DashboardScreen #trends TrendPanel { width: 1fr; }
    DashboardScreen #trends.tall TrendPanel { height: 7; }
    DashboardScreen #trends.tall TrendPanel > Sparkline { height: 5; }
    """
    BINDINGS = [
        Binding(a.key, f"app.{a.id}" if a.id != "details" else "details", a.label, show=a.show_in_footer,
                id=a.id, priority=a.key in ("R", "space"))
        for a in ACTIONS
    ]

    def __init__(self) -> None:
        super().__init__()
        #: figures of the read before the one on screen (what ↑/↓ compare with) and of the one on screen
        self._previous: dict[str, dict[str, float | None]] = {}
        self._current: dict[str, dict[str, float | None]] = {}
        self._figures_drawn: object = None
        self._rows: dict[str, RouteFigures] = {}

    @property
    def rd(self) -> "RouteDeckApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        yield RouteTable(id="routes")
        with Horizontal(id="trends"):
            for i in range(3):
                yield TrendPanel(id=f"trend-{i}")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.refresh_view()

    def on_resize(self) -> None:
        self.refresh_view()

    def on_data_table_row_highlighted(self) -> None:
        self._draw_trend()

    def on_data_table_row_selected(self) -> None:
        self.action_details()

    def action_details(self) -> None:
        key = self.query_one(RouteTable).highlighted_key
        if key and key in self._rows:
            from console.screens.details import RouteDetailsScreen

            self.app.push_screen(RouteDetailsScreen(self._rows[key], self.rd.window_label))

    def highlighted_route(self) -> RouteFigures | None:
        key = self.query_one(RouteTable).highlighted_key
        return self._rows.get(key) if key else None

    def highlighted_flag(self) -> str | None:
        """The flag of the highlighted row (a route row or a flag's heading row)."""
        key = self.query_one(RouteTable).highlighted_key
        return flag_of_row(key) if key else None

    # ---- drawing ------------------------------------------------------------------

    def refresh_view(self) -> None:
        """Redraw from the app's latest state (called after every poll and once a second)."""
        if not self.is_mounted:
            return
        try:
            self.query_one(StatusHeader).show(self.rd.header_lines(self.size.width))
            if self.app.screen is not self:
                return  # a modal covers the table: skip the work
            self._draw_table()
            self._draw_trend()
        except NoMatches:
            return  # the app is quitting and has already removed the widgets; a late poll result is moot

    def _draw_table(self) -> None:
        table = self.query_one(RouteTable)
        wide = self.size.width >= 120
        metrics = WIDE if wide else NARROW
        columns = ("route",) + tuple(NARROW_LABELS[m] for m in metrics) + (("worst provider",) if wide else ())
        table.set_columns(columns)
        rows = []
        figures = self.rd.figures
        if figures is not self._figures_drawn:  # a new read: only then do the arrows' reference values move on
            self._previous, self._figures_drawn = self._current, figures
            self._current = {row_key(f.key): dict(f.values) for f in figures}
        self._rows = {row_key(f.key): f for f in figures}
        current_flag = None
        for fig in figures:
            key = row_key(fig.key)
            prev = self._previous.get(key, {})
            cells = []
            if fig.key.flag != current_flag:
                blank = (Cell(""),) * (len(metrics) + (1 if wide else 0))
                rows.append(Row(GROUP_PREFIX + fig.key.flag, (Cell(fig.key.flag, "bold underline"),) + blank))
            current_flag = fig.key.flag
            route_style = "bold" if fig.key.arm is Arm.CANDIDATE else ""
            tags = ARM_TAG if wide else NARROW_TAG
            tag = tags[fig.key.arm] if fig.requests else " ↪fb"
            cells.append(Cell(" " + fig.key.route + tag, route_style))
            for m in metrics:
                if m == "share" and not fig.requests:
                    cells.append(Cell(f"fb {fig.via_fallback}", "dim"))
                    continue
                cells.append(self._cell(fig, m, prev.get(m)))
            if wide:
                wp = fig.worst_provider
                cells.append(Cell(f"{wp.split('/')[0]} {fig.worst_provider_rate * 100:.1f}%" if wp else "—",
                                  "red" if fig.marks.get("error_rate") else ""))
            rows.append(Row(key, tuple(cells)))
        first_fill = table.row_count == 0
        with self.app.batch_update():
            table.update_rows(rows)
        if first_fill:
            self._focus_rollout_row(table, figures)

    def _focus_rollout_row(self, table: RouteTable, figures: list[RouteFigures]) -> None:
        """Start on the candidate of a flag in rollout: that is what an operator came to watch."""
        for i in range(table.row_count):
            key = table.coordinate_to_cell_key((i, 0)).row_key.value or ""
            if key.endswith("|" + Arm.CANDIDATE.value):
                table.move_cursor(row=i)
                return

    def _cell(self, fig: RouteFigures, metric: str, before: float | None) -> Cell:
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
                worse = up == meta.worse_is_higher
                style = "yellow" if worse else "green"
        return Cell(text, style)

    def _trend_metrics(self) -> list[str]:
        """The focused metric first; wide terminals add two more that matter in an incident."""
        focused = self.rd.trend_metric
        if self.size.width < 120:
            return [focused]
        extra = [m for m in ("fallback_rate", "cost_per_resolved_case", "error_rate") if m != focused]
        return [focused] + extra[:2]

    def _draw_trend(self) -> None:
        metrics = self._trend_metrics()
        trends = self.query_one("#trends")
        trends.set_class(self.size.height >= 36, "tall")
        for i, panel in enumerate(self.query(TrendPanel)):
            panel.display = i < len(metrics)
            if i < len(metrics):
                self._draw_one_trend(panel, metrics[i], focused=i == 0)

    def _draw_one_trend(self, panel: TrendPanel, metric: str, focused: bool) -> None:
        fig = self.highlighted_route()
        snapshot = self.rd.snapshot
        label = LABELS.get(metric, metric)
        if fig is None or snapshot is None:
            panel.show(f"trend: {label} — highlight a route", [])
            return
        values = trend(snapshot, fig.key, metric)
        present = [v for v in values if v is not None]
        gaps = len(values) - len(present)
        last = format_value(metric, present[-1]) if present else "no data"
        title = Text.assemble(
            (f"{label}", "bold"),
            f" · {fig.key.route} ({fig.key.arm.value}) · last {self.rd.window_label} · now " if focused else " · now ",
            (last, "bold"), (f" · {gaps} empty" if gaps else "", "dim"), ("  m: next metric" if focused else "", "dim"),
        )
        title.truncate(max(10, panel.size.width - 2 if panel.size.width else self.size.width - 4), overflow="ellipsis")
        panel.show(title, [float(v) for v in present])
