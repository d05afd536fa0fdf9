"""Every figure of one route, with its providers (Enter on the dashboard; Esc closes)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.core.figures import RouteFigures, format_value
from console.core.registry import lookup
from console.core.safe_text import visible

ORDER = (
    "share", "p50_latency", "p95_latency", "p95_ttft", "slo_attainment", "timeout_rate", "cost_per_request",
    "cost_per_resolved_case", "resolved_without_escalation", "correction_rate", "complaint_rate",
    "fallback_rate", "error_rate", "rate_limit_rate", "join_coverage",
)


class RouteDetailsScreen(ModalScreen):
    DEFAULT_CSS = """
    RouteDetailsScreen { align: center middle; }
    RouteDetailsScreen > VerticalScroll { width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close")]

    def __init__(self, figures: RouteFigures, window: str) -> None:
        super().__init__()
        self.figures = figures
        self.window = window

    def compose(self) -> ComposeResult:
        f = self.figures
        table = Table(box=None, show_header=False, padding=(0, 1))
        table.add_column(style="bold")
        table.add_column(justify="right")
        table.add_column(style="dim")
        for name in ORDER:
            metric = lookup(name)
            value = f.values.get(name)
            mark = "  over the default guardrail" if f.marks.get(name) else ""
            table.add_row(metric.label if metric else name, format_value(name, value),
                          Text((metric.description if metric else "share of the flag's requests over the last 10 s")
                               + mark))
        table.add_row("requests", str(f.requests), f"in the last {self.window}")
        table.add_row("served for fallbacks", str(f.via_fallback), "requests other routes of this flag fell back to")
        providers = (
            f"served no request in the last {self.window}: nothing about it is measured" if f.idle else
            f"worst provider: {visible(f.worst_provider)} fails {f.worst_provider_rate * 100:.1f}% of its calls"
            if f.worst_provider else "no provider failures in this window"
        )
        with VerticalScroll():
            yield Static(Text.assemble((visible(f.key.route), "bold"),
                                       f" · {f.key.arm.value} arm of {visible(f.key.flag)} · last {self.window}"))
            yield Static(table)
            yield Static(Text(providers))
            yield Static(Text("esc closes", "dim"))
