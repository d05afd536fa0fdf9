"""`f`: the cost-performance frontier — routes by cost per resolved task against resolved rate.

Keys of its own: ``tab`` shows every route, then each flag's routes in turn. Numbers come from the
dashboard's figures (the session's), so the two views agree.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from console.core.figures import format_value
from console.core.frontier import FrontierPoint, frontier_points
from console.core.safe_text import visible
from console.screens.base import SessionScreen
from widgets.fitted_table import fill_table
from widgets.frontier_plot import FrontierPlot
from widgets.notice_bar import NoticeBar
from widgets.footer import KeysFooter


class FrontierScreen(SessionScreen):
    AUTO_FOCUS = "DataTable"
    DEFAULT_CSS = """
    FrontierScreen { layout: vertical; }
    FrontierScreen #frontier-title { height: auto; padding: 0 1; }
    FrontierScreen DataTable { height: auto; max-height: 9; }
    """
    FOOTER = ("rollback", "back", "help", "quit")
    BINDINGS = [Binding("tab", "scope", "Next flag", tooltip="every route, then each flag's routes in turn")]

    def __init__(self, session) -> None:
        super().__init__(session)
        #: None: every route; else one flag's routes
        self.scope: str | None = None
        self._drawn: object = None
        self.points: list[FrontierPoint] = []

    def compose(self) -> ComposeResult:
        yield Static(id="frontier-title")
        yield FrontierPlot(id="frontier-plot")
        yield DataTable(id="frontier-table", cursor_type="row", zebra_stripes=False)
        yield NoticeBar()
        yield KeysFooter(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        self.redraw()

    def highlighted_flag(self) -> str | None:
        return self.scope

    def action_scope(self) -> None:
        flags = sorted({f.key.flag for f in self.session.figures if f.requests > 0})
        order = [None, *flags]
        i = order.index(self.scope) if self.scope in order else 0
        self.scope = order[(i + 1) % len(order)]
        self._drawn = None
        self.tell_in_view()
        self.redraw()

    def on_resize(self) -> None:
        self._drawn = None
        self.redraw()

    def render_session(self) -> None:
        """Redraw when the session has new figures (the plot is costly: only then)."""
        figures = self.session.figures
        ident = (id(figures), self.scope)
        if ident == self._drawn:
            return
        self._drawn = ident
        self.points = frontier_points(figures, self.scope)
        scope = f"flag {visible(self.scope)}" if self.scope else "every route"
        title = Text.assemble(("Cost-performance frontier", "bold"), f" · {scope} · last {self.session.window_label}",
                              (" · tab: next flag · esc: back", "dim"))
        if self.session.snapshot is None:
            title.append("  waiting for the metrics source…", "yellow")
        self.query_one("#frontier-title", Static).update(title)
        self.query_one(FrontierPlot).show(self.points, "")
        wide = self.size.width >= 110
        # narrow terminals lose the flag and request columns: the label names the flag when ambiguous
        headers = ["route", *(["flag"] if wide else []), "$/resolved", "resolved", "p95",
                   *(["requests"] if wide else []), "status"]
        rows = []
        for p in self.points:
            words = p.status if wide or p.on_frontier or not p.has_data else f"dom. by {p.dominated_by}"
            status = Text(visible(words), style="green" if p.on_frontier else ("red" if not p.has_data else "dim"))
            rows.append((f"{p.flag}|{p.route}|{p.arm.value}", [
                Text(visible(p.label)), *([Text(visible(p.flag))] if wide else []),
                format_value("cost_per_resolved_case", p.cost_per_resolved),
                format_value("resolved_without_escalation", p.resolved_rate),
                format_value("p95_latency", p.p95_latency_ms),
                *([str(p.requests)] if wide else []), status,
            ]))
        fill_table(self.query_one(DataTable), headers, rows)
