"""The dashboard: every route serving traffic, live, with one-key rollback.

Keys of its own: ``enter`` the highlighted route's figures, ``/`` filter the routes (``esc`` clears),
``S`` sort each flag's routes by the next figure; ``j``/``k``/``g``/``G`` move. Every other key is the
registry's (``?`` lists them, with whether each applies now).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input

from console.core.safe_text import visible
from console.screens.base import SessionScreen
from widgets.route_table import LABELS, SORTS, RouteTable, flag_of_row
from widgets.status_header import StatusHeader
from widgets.trend import TrendPanel
from widgets.notice_bar import NoticeBar
from widgets.safe_input import SafeInput
from widgets.footer import KeysFooter


class DashboardScreen(SessionScreen):
    AUTO_FOCUS = "RouteTable"
    DEFAULT_CSS = """
    DashboardScreen { layout: vertical; }
    DashboardScreen RouteTable { height: 1fr; }
    DashboardScreen #trends { height: auto; }
    DashboardScreen #trends TrendPanel { width: 1fr; }
    DashboardScreen #trends.tall TrendPanel { height: 7; }
    DashboardScreen #trends.tall TrendPanel > Sparkline { height: 5; }
    DashboardScreen #filter { dock: bottom; display: none; margin-bottom: 1; border: tall $accent; }
    DashboardScreen #filter.shown { display: block; }
    """
    FOOTER = ("rollback", "rollout", "help", "command_palette", "quit")
    BINDINGS = [
        Binding("enter", "details", "Details", show=False, tooltip="every figure of the highlighted route"),
        Binding("slash", "filter", "Filter", tooltip="show only routes or flags containing a text (esc clears)"),
        Binding("S", "sort", "Sort", tooltip="sort each flag's routes by the next figure, worst first"),
    ]

    def __init__(self, session) -> None:
        super().__init__(session)
        self.query_text = ""
        self.sort_by: str | None = None
        #: what the table and the trends were last drawn from: a publish that changed neither skips them
        self._table_drawn: object = None
        self._trend_drawn: object = None
        #: the filter field, mounted where compose would have put it the first time `/` is pressed (an Input
        #: that stays hidden until then cost ~4 ms of CPU before the first frame: its styles and mount)
        self._filter: SafeInput | None = None
        #: trend panels mounted since the terminal widened, not composed yet (drawn once they are)
        self._mounting: set[TrendPanel] = set()

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        yield RouteTable(id="routes")
        with Horizontal(id="trends"):
            # below 120 columns one trend shows: the other two are composed on a wide terminal only (and
            # mounted when a terminal widens): ~4 ms of CPU before the first frame
            for i in range(3 if self.app.size.width >= 120 else 1):
                yield TrendPanel(id=f"trend-{i}")
        yield NoticeBar()
        yield KeysFooter(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        self.redraw()

    def on_resize(self) -> None:
        self._table_drawn = self._trend_drawn = None
        self.redraw()

    # ---- the flag in view ------------------------------------------------------------

    def highlighted_flag(self) -> str | None:
        """The flag of the highlighted row (a route row or a flag's heading row)."""
        key = self.query_one(RouteTable).highlighted_key
        return flag_of_row(key) if key else None

    def on_data_table_row_highlighted(self) -> None:
        self.tell_in_view()
        self._draw_trend()

    def on_data_table_row_selected(self) -> None:
        self.action_details()

    # ---- keys ---------------------------------------------------------------------

    def action_details(self) -> None:
        fig = self.query_one(RouteTable).highlighted_route()
        if fig is None:
            self.notify("details: highlight a route row (not a flag's heading)", severity="warning", timeout=4)
            return
        from console.screens.details import RouteDetailsScreen

        self.app.push_screen(RouteDetailsScreen(fig, self.session.window_label))

    async def action_filter(self) -> None:
        field = self._filter
        if field is None:
            field = self._filter = SafeInput(id="filter", placeholder="routes or flags containing… (enter keeps, esc clears)")
            await self.mount(field, before=self.query_one(NoticeBar))
        field.value = self.query_text
        field.add_class("shown")
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self.redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._close_filter(keep=True)

    def _close_filter(self, keep: bool) -> None:
        field = self._filter
        if not keep:
            self.query_text = ""
        if field is not None:
            field.remove_class("shown")
        self.query_one(RouteTable).focus()
        self.redraw()

    def action_back(self) -> None:
        """esc: leave the filter field, then clear the filter; the dashboard itself stays."""
        field = self._filter
        if (field is not None and field.has_class("shown")) or self.query_text:
            self._close_filter(keep=False)

    def action_sort(self) -> None:
        i = SORTS.index(self.sort_by)
        self.sort_by = SORTS[(i + 1) % len(SORTS)]
        self.notify(f"routes sorted by {LABELS.get(self.sort_by, self.sort_by)}, worst first" if self.sort_by
                    else "routes in their usual order (baseline, candidate, others)", timeout=3)
        self.redraw()

    # ---- drawing ------------------------------------------------------------------

    def render_session(self) -> None:
        s = self.session
        self.query_one(StatusHeader).show(s)
        table = self.query_one(RouteTable)
        wide = self.size.width >= 120
        drawn = (id(s.figures), tuple((k, f.revision) for k, f in s.flags.items()), self.query_text, self.sort_by, wide)
        if drawn == self._table_drawn:
            return  # a tick for the clocks: the header moved, the figures did not
        self._table_drawn = drawn
        rows = s.figures
        if s.flags:  # every route the flags name, with or without data (the module loads with the flags)
            from console.core.figures import with_flag_routes

            rows = with_flag_routes(s.figures, s.flags)
        table.show(rows, s.flags, wide=wide, query=self.query_text, sort=self.sort_by)
        if self.query_text:
            self.query_one("#filter", Input).border_title = (
                f"filter: {len(table.rows_by_key)} of {len(rows)} routes")
        self._draw_trend()

    def _trend_metrics(self) -> list[str]:
        """The focused metric first; wide terminals add two more that matter in an incident."""
        focused = self.session.trend_metric
        if self.size.width < 120:
            return [focused]
        extra = [m for m in ("fallback_rate", "cost_per_resolved_case", "error_rate") if m != focused]
        return [focused] + extra[:2]

    def _draw_trend(self) -> None:
        metrics = self._trend_metrics()
        key = self.query_one(RouteTable).highlighted_key
        drawn = (id(self.session.snapshot), key, tuple(metrics), self.size)
        if drawn == self._trend_drawn:
            return
        self._trend_drawn = drawn
        trends = self.query_one("#trends")
        trends.set_class(self.size.height >= 36, "tall")
        panels = list(self.query(TrendPanel))
        if len(panels) < len(metrics):
            self._mount_trend_panels(trends, len(panels), len(metrics))
        for i, panel in enumerate(panels):
            if panel in self._mounting:
                continue
            panel.display = i < len(metrics)
            if i < len(metrics):
                self._draw_one_trend(panel, metrics[i], focused=i == 0)

    def _mount_trend_panels(self, trends, have: int, want: int) -> None:
        """The terminal widened past 120 columns: the trend panels it shows besides the first, drawn once mounted."""
        new = [TrendPanel(id=f"trend-{i}") for i in range(have, want)]
        self._mounting.update(new)
        mounted = trends.mount_all(new)

        async def draw() -> None:
            await mounted
            self._mounting.difference_update(new)
            self._trend_drawn = None
            self._draw_trend()

        self.call_later(draw)

    def _draw_one_trend(self, panel: TrendPanel, metric: str, focused: bool) -> None:
        fig = self.query_one(RouteTable).highlighted_route()
        snapshot = self.session.snapshot
        label = LABELS.get(metric, metric)
        if fig is None or snapshot is None:
            panel.show(Text(f"trend: {label} — " + ("highlight a route" if fig is None else "no figures read yet")), [])
            return
        from console.core.figures import format_value, trend  # with the first figures, not before the first frame
        values = trend(snapshot, fig.key, metric)
        present = [v for v in values if v is not None]
        gaps = len(values) - len(present)
        last = format_value(metric, present[-1]) if present else "no data"
        title = Text.assemble(
            (f"{label}", "bold"),
            (f" · {visible(fig.key.route)} ({fig.key.arm.value}) · last {self.session.window_label} · now "
             if focused else " · now "),
            (last, "bold"), (f" · {gaps} empty" if gaps else "", "dim"),
        )
        width = max(10, panel.size.width - 2 if panel.size.width else self.size.width - 4)
        hint = "  m: next metric"
        if focused and len(title) + len(hint) <= width:  # the key's hint only whole: never cut to "m: nex…"
            title.append(hint, "dim")
        title.truncate(width, overflow="ellipsis")
        panel.show(title, [float(v) for v in present])
