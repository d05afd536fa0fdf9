"""The rollout screen: where the rollout stands, the rule beside the live evidence, and what the candidate changes.

One flag at a time (tab cycles through every flag with a candidate). The flag the decision rule
names gets the full readout — each guardrail's interval drawn against its margin, with its trend
over the stage — and the confirmed actions; other flags show their ladder, allocation and live numbers.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.actions import ACTIONS
from console.core.figures import format_value
from console.core.profile_diff import profile_diff
from console.core.registry import lookup
from console.core.stats.engine import fmt
from widgets.rollout_parts import interval_bar, ladder, sparkline
from widgets.status_header import StatusHeader

if TYPE_CHECKING:
    from console.app import RouteDeckApp
    from console.core.models import RouteFlag

DEFAULT_LADDER = ("internal", "5%", "20%", "full")
VERDICT_STYLE = {"ADVANCE": "bold green", "HOLD": "bold yellow", "ROLLBACK": "bold red"}
METRIC_STYLE = {"harm": "bold red", "non-inferior": "green", "superior": "bold green", "inconclusive": "yellow",
                "no data": "bold yellow", "tripped": "bold red"}
GATE_STYLE = {"pass": "green", "fail": "bold red", "wait": "yellow", "no data": "bold yellow"}
LIVE = ("share", "p95_latency", "cost_per_resolved_case", "resolved_without_escalation", "fallback_rate", "error_rate")
LIVE_LABELS = {"share": "share", "p95_latency": "p95", "cost_per_resolved_case": "$/resolved",
               "resolved_without_escalation": "resolved", "fallback_rate": "fallback", "error_rate": "errors"}
SHORT_VERDICT = {"non-inferior": "non-inf", "inconclusive": "unsure", "superior": "better"}
#: the rollout actions shown in this screen's footer, in the order an operator reaches for them
FOOTER_HERE = ("advance", "promote", "hold", "acknowledge", "override", "rollback", "verdict")


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class RolloutScreen(Screen):
    AUTO_FOCUS = "#body"
    #: the app's header shrinks to its first and last lines here: the screen itself says the rest
    COMPACT_HEADER = True
    DEFAULT_CSS = """
    RolloutScreen { layout: vertical; }
    RolloutScreen #body { height: 1fr; padding: 0 1; }
    RolloutScreen #body > Static { margin-bottom: 1; }
    RolloutScreen #ladder { margin-bottom: 0; }
    """
    BINDINGS = [
        Binding(a.key, f"app.{a.id}", a.label, show=a.id in FOOTER_HERE, id=a.id, priority=a.key in ("R", "space"))
        for a in ACTIONS if a.id not in ("details", "rollout")
    ] + [
        Binding("tab", "next_flag", "Next flag", show=True),
        Binding("escape", "app.pop_screen", "Back", show=True),
    ]

    def __init__(self, flag_key: str | None = None) -> None:
        super().__init__()
        self.flag_key = flag_key

    @property
    def rd(self) -> "RouteDeckApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        with VerticalScroll(id="body"):
            yield Static(id="flagline")
            yield Static(id="ladder")
            yield Static(id="stage")
            yield Static(id="verdict")
            yield Static(id="guardrails")
            yield Static(id="live")
            yield Static(id="checklist")
            yield Static(id="diff")
            yield Static(id="rule")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.call_after_refresh(self.refresh_view)  # the screen counts as mounted only after this handler

    # ---- which flag ------------------------------------------------------------------

    def flags_here(self) -> list["RouteFlag"]:
        """Every flag with a candidate, a rollout or a rule; flags with a rule first."""
        ruled = self.rd.rules
        found = [f for f in self.rd.flags.values() if f.candidate or f.rollout is not None or f.key in ruled]
        return sorted(found, key=lambda f: (f.key not in ruled, f.key))

    def current_flag(self) -> "RouteFlag | None":
        flags = self.flags_here()
        if not flags:
            return None
        for f in flags:
            if f.key == self.flag_key:
                return f
        self.flag_key = flags[0].key
        return flags[0]

    def highlighted_flag(self) -> str | None:
        flag = self.current_flag()
        return flag.key if flag else None

    def action_next_flag(self) -> None:
        flags = self.flags_here()
        if len(flags) < 2:
            self.notify("only one flag has a rollout", timeout=3)
            return
        keys = [f.key for f in flags]
        i = keys.index(self.flag_key) if self.flag_key in keys else -1
        self.flag_key = keys[(i + 1) % len(keys)]
        self.refresh_view()

    # ---- drawing ----------------------------------------------------------------------

    def tick(self) -> None:
        if self.is_mounted and self.app.screen is self:
            try:
                self._draw_stage(self.current_flag())
            except NoMatches:
                return  # the app is quitting

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        try:
            lines = self.rd.header_lines(self.size.width)
            self.query_one(StatusHeader).show([lines[0], lines[-1]])
            flag = self.current_flag()
            self._draw_flag(flag)
            self._draw_stage(flag)
            self._draw_verdict(flag)
            self._draw_live(flag)
            self._draw_checklist(flag)
            self._draw_diff(flag)
            self._draw_rule(flag)
        except NoMatches:
            return  # the app is quitting

    def _set(self, wid: str, content) -> None:
        widget = self.query_one(f"#{wid}", Static)
        widget.display = content is not None
        if content is not None:
            widget.update(content)

    def _ruled(self, flag: "RouteFlag | None") -> bool:
        """The flag has a decision rule (and so, being the flag in view, ``rd.rule`` and ``rd.decision`` are its)."""
        return bool(flag and flag.key in self.rd.rules and self.rd.rule is not None and self.rd.rule.flag_key == flag.key)

    def _draw_flag(self, flag: "RouteFlag | None") -> None:
        if flag is None:
            self._set("flagline", Text("No flag has a candidate route: nothing is rolling out.", "bold"))
            self._set("ladder", None)
            return
        count = len(self.flags_here())
        line = Text.assemble((flag.key, "bold underline"), f"  baseline {flag.baseline} → candidate ",
                             (flag.candidate or "—", "bold"))
        if count > 1:
            line.append(f"   (flag {[f.key for f in self.flags_here()].index(flag.key) + 1} of {count}; tab: next)",
                        "dim")
        self._set("flagline", line)
        from console.core import rollout as ro

        stages = [s.name for s in self.rd.rule.stages] if self._ruled(flag) else list(DEFAULT_LADDER)
        stage = ro.current_stage_name(flag)
        ended = None
        if flag.rollout is not None and flag.rollout.stage.value in ("promoted", "rolled_back"):
            ended = flag.rollout.stage.value.replace("_", " ")
        drawn = ladder(stages, stage, ended)
        if ended and self._ruled(flag):
            drawn.append("   N starts a new rollout", "dim")
        self._set("ladder", drawn)

    def _draw_stage(self, flag: "RouteFlag | None") -> None:
        if flag is None:
            self._set("stage", None)
            return
        from console.core import rollout as ro

        text = Text()
        started = flag.rollout.stage_started_at if flag.rollout else None
        if started is not None:
            now = self.rd.metrics.now() if self.rd.metrics is not None else datetime.now(timezone.utc).timestamp()
            text.append(f"in stage {ro.current_stage_name(flag)} for {duration(now - started.timestamp())}")
        else:
            text.append(f"stage {ro.current_stage_name(flag)}")
        spec = ro.stage_spec(self.rd.rule, flag) if self._ruled(flag) else None
        d = self.rd.decision if self._ruled(flag) else None
        if spec is not None:
            text.append(f" (min dwell {duration(spec.min_dwell_s)})", "dim")
            units = d.units_candidate if d is not None and d.stage == spec.name else None
            shown = "…" if units is None else str(units)
            met = units is not None and units >= spec.min_units
            text.append(" · candidate units ")
            text.append(f"{shown}/{spec.min_units}", "green" if met else "yellow")
        text.append("\nallocation: ")
        if flag.foreign_targeting:
            text.append(f"targeting unrecognised ({flag.foreign_targeting})", "bold red")
        else:
            text.append(flag.allocation.describe(), "bold yellow" if flag.allocation.serves_candidate else "green")
        if flag.key in self.rd.foreign:
            text.append(f"  · changed outside this console: {self.rd.foreign[flag.key]}", "bold magenta")
        elif flag.key in self.rd.by_routedeck:
            text.append(f"  · changed by routedeck elsewhere: {self.rd.by_routedeck[flag.key]}", "cyan")
        self._set("stage", text)

    def _draw_verdict(self, flag: "RouteFlag | None") -> None:
        if not self._ruled(flag):
            why = ("no decision rule for this flag: start the console with --rule FILE (one per flag) to judge "
                   "its rollout")
            self._set("verdict", Text(why, "dim"))
            self._set("guardrails", None)
            return
        rd = self.rd
        d = rd.decision
        text = Text()
        if rd.verdict_error:
            text.append(f"verdict unavailable: {rd.verdict_error}", "bold red")
        elif d is None:
            text.append("judging… (the verdict refreshes every few seconds)", "dim")
        else:
            text.append(f"verdict {d.verdict.value}", VERDICT_STYLE[d.verdict.value])
            if rd._rollout_busy:
                text.append(f"   · {rd._rollout_busy} in progress…", "bold")
            names = {m.name for m in d.metrics}
            for r in d.reasons:
                if d.request_level and "counts requests, not units" in r:
                    continue  # said once, in the line below
                text.append(f"\n • {self._short_reason(r, names)}", "dim" if r.startswith("note") else "")
            if d.request_level:
                text.append("\n the metrics source counts requests, not units: intervals ignore clustering", "yellow")
        self._set("verdict", text)
        self._set("guardrails", self._guardrail_table(flag) if d is not None and (d.metrics or d.health) else None)

    @staticmethod
    def _short_reason(reason: str, metric_names: set[str]) -> str:
        """A metric's reason without its numbers: the table below shows them (and `v` the full line)."""
        head, sep, tail = reason.partition(" — ")
        if sep and tail.split(" ", 1)[0] in metric_names | {"p95_latency"}:
            return head
        return reason

    def _guardrail_table(self, flag: "RouteFlag") -> Group:
        d = self.rd.decision
        wide = self.size.width >= 110
        numbers = self.size.width >= 150  # the interval's bounds as numbers beside its bar
        table = Table(box=None, padding=(0, 1), header_style="bold", expand=False)
        table.add_column("guardrail", no_wrap=True, overflow="ellipsis", max_width=24 if wide else 17)
        table.add_column("cand", justify="right", no_wrap=True)
        table.add_column("base", justify="right", no_wrap=True)
        table.add_column("Δ interval  ┃margin" if wide else "Δ  ┃margin", no_wrap=True)
        if numbers:
            table.add_column("Δ interval", no_wrap=True)
        if wide:
            table.add_column("margin", justify="right", no_wrap=True)
        table.add_column("n", justify="right", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        if wide:
            table.add_column("trend", no_wrap=True)
        history = self.rd.interval_history.get((flag.key, d.stage), [])
        for m in d.metrics:
            metric = lookup(m.name)
            worse_high = metric.worse_is_higher if metric else True
            absolute = m.baseline is None and m.n_baseline == 0
            if m.interval is not None:
                bar = interval_bar(m.interval[0], m.interval[1], m.threshold, worse_high, 19 if wide else 11,
                                   absolute=absolute, harm=m.verdict.value in ("harm", "tripped"))
            else:
                bar = Text("no interval" if m.verdict.value != "tripped" else "point estimate", "dim")
            label = ("primary: " if m.line.startswith("primary: ") else "") + m.name + (" ‼" if m.critical else "")
            row = [label, fmt(metric, m.candidate), fmt(metric, m.baseline) if not absolute else "—", bar]
            if numbers:
                row.append(f"[{fmt(metric, m.interval[0], not absolute)}, {fmt(metric, m.interval[1], not absolute)}]"
                           if m.interval else "—")
            if wide:
                limit = fmt(metric, m.threshold, not absolute) if m.threshold is not None else "—"
                row.append(("≤" if absolute else "±") + limit.lstrip("+"))
            word = m.verdict.value if wide else SHORT_VERDICT.get(m.verdict.value, m.verdict.value)
            row += [f"{m.n_candidate}/{m.n_baseline}", Text(word, METRIC_STYLE.get(m.verdict.value, ""))]
            if wide:
                row.append(sparkline([self._harm_bound(iv.get(m.name), worse_high) for _, iv in history]))
            table.add_row(*row)
        gates = Table(box=None, padding=(0, 1), header_style="bold", expand=False)
        gates.add_column("health gate", no_wrap=True)
        gates.add_column("status", no_wrap=True)
        gates.add_column("detail", overflow="fold")
        gates.add_column("on failure", no_wrap=True)
        for g in d.health:
            gates.add_row(g.name, Text(g.status.value, GATE_STYLE.get(g.status.value, "")), g.detail, g.action.value)
        parts = [t for t in (table if d.metrics else None, gates if d.health else None) if t is not None]
        return Group(*parts)

    @staticmethod
    def _harm_bound(interval, worse_high: bool) -> float | None:
        """The interval's bound on the harmful side: the one the margin is checked against."""
        if not interval:
            return None
        return interval[1] if worse_high else -interval[0]

    def _draw_live(self, flag: "RouteFlag | None") -> None:
        if flag is None:
            self._set("live", None)
            return
        rows = [f for f in self.rd.figures if f.key.flag == flag.key and f.requests]
        table = Table(box=None, padding=(0, 1), header_style="bold", title_justify="left",
                      title=f"live, last {self.rd.window_label}", title_style="bold")
        table.add_column("route (arm)", no_wrap=True)
        for m in LIVE:
            table.add_column(LIVE_LABELS[m], justify="right", no_wrap=True)
        for f in rows:
            table.add_row(f"{f.key.route} ({f.key.arm.value})",
                          *[Text(format_value(m, f.values.get(m)), "bold red" if f.marks.get(m) else "") for m in LIVE])
        if not rows:
            table.add_row("no traffic in the window", *[""] * len(LIVE))
        self._set("live", table)

    def _draw_checklist(self, flag: "RouteFlag | None") -> None:
        if not self._ruled(flag) or not self.rd.rule.checklist:
            self._set("checklist", None)
            return
        from console.core import rollout as ro

        stage = ro.current_stage_name(flag)
        acks = {a.item: a for a in (flag.rollout.acknowledgements if flag.rollout else []) if a.stage == stage}
        text = Text("manual checklist for this stage (K acknowledges the next item)", "bold")
        for item in self.rd.rule.checklist:
            ack = acks.get(item)
            if ack:
                text.append(f"\n ☑ {item}", "green")
                text.append(f"  — {ack.by}, {ack.at:%Y-%m-%d %H:%M}Z", "dim")
            else:
                text.append(f"\n ☐ {item}", "yellow")
        self._set("checklist", text)

    def _draw_diff(self, flag: "RouteFlag | None") -> None:
        if flag is None or not flag.candidate or flag.candidate not in flag.variations:
            self._set("diff", None)
            return
        changes = profile_diff(flag.variations[flag.baseline], flag.variations[flag.candidate])
        table = Table(box=None, padding=(0, 1), header_style="bold", title="the candidate's route profile against "
                      "the baseline's", title_justify="left", title_style="bold")
        table.add_column("field", no_wrap=True)
        table.add_column("baseline", overflow="fold")
        table.add_column("candidate", overflow="fold")
        table.add_column("why it matters", overflow="fold", style="yellow")
        for c in changes:
            style = "bold" if c.changed else "dim"
            table.add_row(Text(c.label, style), Text(str(c.baseline if c.baseline is not None else "—"), style),
                          Text(str(c.candidate if c.candidate is not None else "—"), style),
                          ("⚠ " + c.risk) if c.risk else "")
        self._set("diff", table)

    def _draw_rule(self, flag: "RouteFlag | None") -> None:
        if not self._ruled(flag):
            self._set("rule", None)
            return
        rule = self.rd.rule
        spec = rule.spec
        text = Text("the rule, written before traffic moved", "bold")
        text.append(f"\n {rule.path} · hash {rule.rule_hash[:12]} · α {spec.alpha:g} · automatic rollback "
                    f"{'on' if spec.auto_rollback else 'off'}")
        if spec.primary is not None:
            text.append(f"\n primary {spec.primary.metric}: {spec.primary.test.value.replace('_', '-')}, "
                        f"margin {spec.primary.margin:g}{' relative' if spec.primary.margin_kind.value == 'relative' else ''}")
        plan = " → ".join(f"{s.name} ({s.candidate_bp / 100:g}%, ≥{s.min_units} units, ≥{duration(s.min_dwell_s)})"
                          for s in rule.stages)
        text.append(f"\n stages {plan}")
        for m in rule.mappings:
            text.append(f"\n {m.source}: “{m.text}” → {m.became}", "dim")
        if flag.rollout is not None and flag.rollout.rule_hash and flag.rollout.rule_hash != rule.rule_hash:
            text.append("\n the rule file changed since this rollout started (hash differs): review it", "bold red")
        self._set("rule", text)
