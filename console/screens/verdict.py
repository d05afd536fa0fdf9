"""`v`: the rule's verdict in full — every health gate and metric with its numbers, and the reasons."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.core.safe_text import visible
from widgets.styles import ACTION_STYLE, GATE_STYLE, METRIC_STYLE, VERDICT_STYLE, eta_style

if TYPE_CHECKING:
    from console.core.rules import DecisionRule
    from console.core.stats.spec import Decision



class VerdictScreen(ModalScreen):
    DEFAULT_CSS = """
    VerdictScreen { align: center middle; }
    VerdictScreen > VerticalScroll { width: 100%; height: 100%; border: round $primary; background: $surface;
        padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,v", "dismiss", "Close")]

    def __init__(self, rule: "DecisionRule", decision: "Decision") -> None:
        super().__init__()
        self.rule = rule
        self.decision = decision

    def compose(self) -> ComposeResult:
        d = self.decision
        style = VERDICT_STYLE[d.verdict.value]
        head = Text.assemble((f"{visible(self.rule.flag_key)} · stage {visible(d.stage)} · ", "bold"),
                             (f"verdict {d.verdict.value}", style),
                             f" · units {d.units_candidate} candidate / {d.units_baseline} baseline · "
                             f"rule {visible(self.rule.path)}")
        gates = Table(box=None, show_header=True, header_style="bold", padding=(0, 1))
        for col in ("health gate", "status", "detail", "on failure"):
            gates.add_column(col)
        for g in d.health:
            gates.add_row(Text(visible(g.name)), Text(g.status.value, GATE_STYLE.get(g.status.value, "")),
                          Text(visible(g.detail)), g.action.value)
        metrics = Table(box=None, show_header=True, header_style="bold", padding=(0, 1))
        for col in ("metric", "candidate − baseline, interval, margin, n", "verdict", "on harm"):
            metrics.add_column(col)
        for m in d.metrics:
            label = m.name + (" (critical)" if m.critical else "")
            does = "signal" if m.signal else m.action
            metrics.add_row(Text(visible(label)), Text(visible(m.line.split(None, 1)[1] if " " in m.line else m.line)),
                            Text(m.verdict.value, METRIC_STYLE.get(m.verdict.value, "")),
                            Text(does, ACTION_STYLE.get(does, "")))
        reasons = Text("\n").join(Text(f"• {visible(r)}") for r in d.reasons)
        mapped = Text("\n").join(Text(f"{visible(m.source)}: “{visible(m.text)}” → {visible(m.became)}", "dim")
                                 for m in self.rule.mappings)
        extra = Text()
        if d.verdict.value != "ADVANCE":
            from console.core.stats.engine import eta_sentence

            extra.append(visible(eta_sentence(d)), eta_style(d))
        if d.alpha is not None:
            extra.append(("\n" if extra.plain else "") + f"α: {visible(d.alpha.statement)}", "dim")
        with VerticalScroll():
            yield Static(head)
            if extra.plain:
                yield Static(extra)
            yield Static(gates)
            yield Static(metrics)
            yield Static(Text.assemble(("why\n", "bold"), reasons))
            if self.rule.mappings:
                yield Static(Text.assemble(("the rule's free-text lines\n", "bold"), mapped))
            if d.request_level:
                yield Static(Text("the metrics source counts requests, not units: intervals ignore clustering", "yellow"))
            yield Static(Text("esc closes · the verdict refreshes every few seconds on the dashboard", "dim"))
