"""The frontier (f) and budgets (b) views as an operator opens them: numbers equal the dashboard's."""

from __future__ import annotations

from rich.console import Console
from textual.widgets import DataTable

from console.core.figures import format_value
from console.screens.budgets import BudgetsScreen, usd
from console.screens.frontier import FrontierScreen

from .helpers import demo_app, settle


def text_of(static) -> str:
    """What a Static shows, as plain text (tables included)."""
    console = Console(width=200)
    with console.capture() as captured:
        console.print(static.content)
    return captured.get()


async def test_frontier_table_shows_the_dashboards_figures_and_cycles_flags(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("f")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, FrontierScreen)
        table = screen.query_one(DataTable)
        assert table.row_count == len([f for f in app.session.figures if f.requests > 0])
        for i in range(table.row_count):
            route, flag, cost, resolved, p95, requests, status = table.get_row_at(i)
            fig = next(f for f in app.session.figures if f.key.flag == flag.plain and route.plain.startswith(f.key.route)
                       and f.requests == int(requests))
            assert cost == format_value("cost_per_resolved_case", fig.values["cost_per_resolved_case"])
            assert resolved == format_value("resolved_without_escalation", fig.values["resolved_without_escalation"])
            assert p95 == format_value("p95_latency", fig.values["p95_latency"])
        assert "frontier" in str(table.get_row_at(0)[-1])
        assert any("dominated by" in str(table.get_row_at(i)[-1]) for i in range(table.row_count))
        await pilot.press("tab")
        await settle(app, pilot)
        assert screen.scope is not None
        assert {p.flag for p in screen.points} == {screen.scope}
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, FrontierScreen)


async def test_budgets_view_shows_spend_that_matches_the_dashboard_and_the_what_if_alert(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("b")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, BudgetsScreen)
        await settle(app, pilot)
        report = screen.report
        assert report is not None
        by_key = {f.key: f for f in app.session.figures}
        for r in report.routes:
            f = by_key[r.key]
            assert abs(r.spend_usd - f.values["cost_per_request"] * f.requests) < 1e-9
        alerts = str(screen.query_one("#budgets-alerts").render())
        assert "ALERT what-if: with balanced_core_v2 on 100% of support-answer-route" in alerts
        routes = text_of(screen.query_one("#budgets-routes"))
        top = report.routes[0]
        assert usd(top.spend_usd) in routes
        assert format_value("cost_per_resolved_case", top.cost_per_resolved) in routes
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, BudgetsScreen)


async def test_budgets_file_given_to_the_console_is_the_one_shown(tmp_path):
    from console.core.budgets import parse_budgets

    app = demo_app(tmp_path)
    app.budgets_config = parse_budgets("[policies.premium_budget]\nmonthly_usd = 10\n", "tiny.toml")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("b")
        await settle(app, pilot)
        await settle(app, pilot)
        screen = app.screen
        assert "tiny.toml" in str(screen.query_one("#budgets-title").render())
        assert "ALERT policy premium_budget" in str(screen.query_one("#budgets-alerts").render())
        assert "no budget in tiny.toml" in str(screen.query_one("#budgets-gaps").render())
