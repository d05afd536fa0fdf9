"""`b`: spend against budgets — per budget policy, per plan tier and per route, projected to the month.

No keys of its own (``esc`` goes back, as everywhere). The report is computed in a worker whenever
the session has a new metrics snapshot (spend per plan reads per-unit data, which takes a moment).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from console.core.budgets import BudgetConfig, BudgetLine, BudgetReport, budget_report
from console.core.errors import RouteDeckError
from console.core.figures import format_value
from console.core.safe_text import visible
from console.core.telemetry import Arm
from console.screens.base import SessionScreen
from widgets.notice_bar import NoticeBar
from widgets.footer import KeysFooter

if TYPE_CHECKING:
    pass

ARM_TAG = {Arm.CANDIDATE: " ◆", Arm.BASELINE: " ●", Arm.OTHER: ""}


def usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if value < 100 else f"${value:,.0f}"


class BudgetsScreen(SessionScreen):
    AUTO_FOCUS = None
    DEFAULT_CSS = """
    BudgetsScreen { layout: vertical; }
    BudgetsScreen #budgets-title { height: auto; padding: 0 1; }
    BudgetsScreen VerticalScroll { height: 1fr; padding: 0 1; }
    BudgetsScreen #budgets-plans, BudgetsScreen #budgets-routes { margin-top: 1; }
    """
    FOOTER = ("rollback", "back", "help", "quit")

    @dataclass
    class Computed(Message):
        report: BudgetReport | None
        error: str | None
        ident: object

    def __init__(self, session, config: BudgetConfig) -> None:
        super().__init__(session)
        self.config = config
        self._asked: object = None
        self.report: BudgetReport | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="budgets-title")
        with VerticalScroll():
            yield Static(id="budgets-alerts")
            yield Static(id="budgets-policies")
            yield Static(id="budgets-plans")
            yield Static(id="budgets-routes")
            yield Static(id="budgets-gaps")
        yield NoticeBar()
        yield KeysFooter(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        self._draw()
        self.redraw()

    def render_session(self) -> None:
        """A new metrics snapshot in the session: compute the report from it (in a worker)."""
        s = self.session
        snapshot = s.snapshot
        if snapshot is None or id(snapshot) == self._asked:
            return
        self._asked = id(snapshot)
        self.run_worker(partial(self._compute, snapshot, s.figures, dict(s.flags), s.metrics, id(snapshot)),
                        thread=True, exclusive=True, group="budgets", exit_on_error=False)

    def _compute(self, snapshot, figures, flags, metrics, ident) -> None:
        try:
            units = None
            if metrics is not None and metrics.capabilities.unit_level:
                units = [u for key in flags for u in metrics.read_units(key, snapshot.start)
                         if u.first_seen < snapshot.end]
            report = budget_report(snapshot, figures, flags, self.config, units)
            self.post_message(self.Computed(report, None, ident))
        except (RouteDeckError, OSError, NotImplementedError) as exc:
            self.post_message(self.Computed(None, str(exc), ident))

    def on_budgets_screen_computed(self, message: "BudgetsScreen.Computed") -> None:
        self.report, self.error = message.report, message.error
        self._draw()

    def _draw(self) -> None:
        config = self.config
        title = Text.assemble(("Budgets", "bold"), f" · {visible(config.source)} · last {self.session.window_label}",
                              (" · esc: back", "dim"))
        r = self.report
        if r is not None:
            title.append(f"\nmonth = {r.month_s / 86400:.0f} days at the window's rate", "dim")
        self.query_one("#budgets-title", Static).update(title)
        if r is None:
            self.query_one("#budgets-alerts", Static).update(
                Text(f"budgets unavailable: {visible(self.error)}", "bold red") if self.error
                else Text("computing spend from the latest window…", "yellow"))
            return
        alerts = Text()
        for line in r.alerts:
            alerts.append(f"ALERT {visible(line)}\n", "bold red")
        if not r.alerts:
            alerts.append("no projection crosses a budget\n", "green")
        self.query_one("#budgets-alerts", Static).update(alerts)
        self.query_one("#budgets-policies", Static).update(self._lines_table("budget policy", r.policies, True))
        self.query_one("#budgets-plans", Static).update(
            self._lines_table("plan", r.plans, False) if r.plans else Text("plans: no per-unit data", "dim"))
        self.query_one("#budgets-routes", Static).update(self._routes_table(r))
        gaps = Text()
        for gap in r.gaps:
            gaps.append(f"gap: {visible(gap)}\n", "yellow")
        self.query_one("#budgets-gaps", Static).update(gaps)

    def _lines_table(self, heading: str, lines: list[BudgetLine], whatif: bool) -> Table:
        table = Table(box=None, padding=(0, 1), header_style="bold", expand=False)
        for name, justify in ((heading, "left"), ("budget/mo", "right"), ("window", "right"),
                              ("month at rate", "right"), ("used", "right")):
            table.add_column(name, justify=justify, no_wrap=True)
        if whatif:
            table.add_column("cand. 100%", justify="right", no_wrap=True)
        for line in lines:
            used = f"{line.used * 100:.0f}%" if line.used is not None else "no budget"
            style = "bold red" if line.over else ("yellow" if line.budget_usd is None else "")
            row = [Text(visible(line.name)), usd(line.budget_usd), usd(line.spend_usd), usd(line.month_usd), used]
            if whatif:
                cell = Text(usd(line.whatif_usd), style="bold red" if line.whatif_over else "")
                row.append(cell)
            table.add_row(*row, style=style)
        return table

    def _routes_table(self, r: BudgetReport) -> Table:
        # below 100 columns the policy column goes (the policy table above names each route's budget)
        wide = self.size.width >= 100
        table = Table(box=None, padding=(0, 1), header_style="bold", expand=False)
        for name, justify in (("route", "left"), *((("policy", "left"),) if wide else ()), ("window", "right"),
                              ("month at rate", "right"), ("$/resolved", "right")):
            table.add_column(name, justify=justify, no_wrap=True)
        for s in r.routes:
            table.add_row(Text(visible(s.key.route) + ARM_TAG[s.key.arm]), *([Text(visible(s.policy or "—"))] if wide else []), usd(s.spend_usd),
                          usd(s.month_usd), format_value("cost_per_resolved_case", s.cost_per_resolved))
        for w in r.whatifs:
            month = w.month_usd(r.month_s)
            if month is not None:
                table.add_row(Text(f"{visible(w.candidate)} at 100%"), *([Text(visible(w.policy or "—"))] if wide else []), "—",
                              usd(month), format_value("cost_per_resolved_case", w.candidate_cost_per_resolved))
        return table
