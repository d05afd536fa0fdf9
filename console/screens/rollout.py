"""The rollout screen: where the rollout stands, the rule beside the live evidence, and what the candidate changes.

One flag at a time (``tab`` cycles through every flag with a candidate, a rollout or a rule). The
flag a decision rule names gets the full readout — each guardrail's interval drawn against its
margin, with its trend over the stage — and the rollout actions (A, P, H, K, O, N); other flags show
their ladder, allocation and live numbers. Everything that came from a file, a platform or an
operator is drawn as text (``visible``): control characters shown, markup never read.
"""

from __future__ import annotations

from datetime import timezone
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from console.core.availability import ended, next_rollout, restart_blocked, short_reason
from console.core.figures import format_value
from console.core.profile_diff import profile_diff
from console.core.registry import lookup
from console.core.safe_text import visible
from console.core.stats.engine import eta_sentence, fmt
from console.screens.base import SessionScreen
from widgets.rollout_parts import interval_bar, ladder, sparkline, wrap_name
from widgets.status_header import StatusHeader, ago, data_plane_line
from widgets.styles import ACTION_STYLE, GATE_STYLE, METRIC_STYLE, STALE, VERDICT_STYLE, eta_style
from widgets.notice_bar import NoticeBar
from widgets.footer import KeysFooter

if TYPE_CHECKING:
    from console.core.models import RouteFlag
    from console.core.rules import DecisionRule
    from console.core.stats.spec import Decision

DEFAULT_LADDER = ("internal", "5%", "20%", "full")
LIVE = ("share", "p95_latency", "cost_per_resolved_case", "resolved_without_escalation", "fallback_rate", "error_rate")
LIVE_LABELS = {"share": "share", "p95_latency": "p95", "cost_per_resolved_case": "$/resolved",
               "resolved_without_escalation": "resolved", "fallback_rate": "fallback", "error_rate": "errors"}
#: the dashboard's column names, where the long ones would leave no room for the figures
LIVE_SHORT = {**LIVE_LABELS, "cost_per_resolved_case": "$/res", "resolved_without_escalation": "res",
              "fallback_rate": "fb", "error_rate": "err"}
SHORT_VERDICT = {"non-inferior": "non-inf", "inconclusive": "unsure", "superior": "better"}
#: what harm on a readout does, as a mark beside its name where the table has no room for the word
ACTION_MARK = {"rollback": " ‼", "hold": " !", "warn": " ~", "signal": " °"}
#: the rule's primary metric, marked before its name (a legend under the table says so)
PRIMARY_MARK = "★ "


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class RolloutScreen(SessionScreen):
    AUTO_FOCUS = "#body"
    DEFAULT_CSS = """
    RolloutScreen { layout: vertical; }
    RolloutScreen #body { height: 1fr; padding: 0 1; }
    RolloutScreen #body > Static { margin-bottom: 1; }
    RolloutScreen #ladder { margin-bottom: 0; }
    """
    #: ten keys need 84 columns: at 80 the footer leaves out a greyed-out one (``widgets.footer``)
    FOOTER = ("advance", "promote", "hold", "acknowledge", "override", "restart", "rollback", "back", "help", "quit")
    BINDINGS = [Binding("tab", "next_flag", "Next flag", show=False, tooltip="the next flag with a rollout")]

    def __init__(self, session, flag_key: str | None = None) -> None:
        super().__init__(session)
        self.flag_key = flag_key

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status", compact=True)
        with VerticalScroll(id="body"):
            for part in ("flagline", "ladder", "stage", "verdict", "guardrails", "live", "checklist", "diff", "rule"):
                yield Static(id=part)
        yield NoticeBar()
        yield KeysFooter(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        self.call_after_refresh(self.redraw)  # the screen counts as mounted only after this handler

    def on_resize(self) -> None:
        self.redraw()

    # ---- which flag ------------------------------------------------------------------

    def flags_here(self) -> list["RouteFlag"]:
        """Every flag with a candidate, a rollout or a rule; flags with a rule first."""
        ruled = self.session.rules
        found = [f for f in self.session.flags.values() if f.candidate or f.rollout is not None or f.key in ruled]
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
        return flag.key if flag else self.flag_key

    def action_next_flag(self) -> None:
        flags = self.flags_here()
        if len(flags) < 2:
            self.notify("only one flag has a rollout", timeout=3)
            return
        keys = [f.key for f in flags]
        i = keys.index(self.flag_key) if self.flag_key in keys else -1
        self.flag_key = keys[(i + 1) % len(keys)]
        self.tell_in_view()
        self.redraw()

    def _rule(self, flag: "RouteFlag | None") -> "DecisionRule | None":
        return self.session.rules.get(flag.key) if flag is not None else None

    # ---- drawing ----------------------------------------------------------------------

    def render_session(self) -> None:
        self.query_one(StatusHeader).show(self.session)
        flag = self.current_flag()
        rule = self._rule(flag)
        decision = self.session.decisions.get(flag.key) if flag is not None and rule is not None else None
        self._draw_flag(flag, rule)
        self._draw_stage(flag, rule, decision)
        self._draw_verdict(flag, rule, decision)
        self._draw_live(flag)
        self._draw_checklist(flag, rule)
        self._draw_diff(flag)
        self._draw_rule(flag, rule)

    def _set(self, wid: str, content) -> None:
        widget = self.query_one(f"#{wid}", Static)
        widget.display = content is not None
        if content is not None:
            widget.update(content)

    def _draw_flag(self, flag: "RouteFlag | None", rule: "DecisionRule | None") -> None:
        if flag is None:
            self._set("flagline", Text("No flag has a candidate route: nothing is rolling out.", "bold"))
            self._set("ladder", None)
            return
        count = len(self.flags_here())
        line = Text.assemble((visible(flag.key), "bold underline"), f"  baseline {visible(flag.baseline)} → candidate ",
                             (visible(flag.candidate or "none"), "bold"))
        over = ended(flag)
        if over == "promoted":
            line = Text.assemble((visible(flag.key), "bold underline"), "  promoted: ",
                                 (visible(flag.baseline), "bold green"), " is the baseline and serves everyone")
        if count > 1:
            line.append(f"   (flag {[f.key for f in self.flags_here()].index(flag.key) + 1} of {count}; tab: next)",
                        "dim")
        self._set("flagline", line)
        from console.core import rollout as ro

        stages = [s.name for s in rule.stages] if rule is not None else list(DEFAULT_LADDER)
        drawn = ladder(stages, ro.current_stage_name(flag), over)
        if over and rule is not None and restart_blocked(flag, rule) is None:
            drawn.append("   N starts a new rollout", "dim")  # else the verdict's place says why N is unavailable
        self._set("ladder", drawn)

    def _draw_stage(self, flag: "RouteFlag | None", rule: "DecisionRule | None", d: "Decision | None") -> None:
        if flag is None:
            self._set("stage", None)
            return
        from console.core import rollout as ro

        s = self.session
        text = Text()
        started = flag.rollout.stage_started_at if flag.rollout else None
        over = ended(flag)
        stage = ro.current_stage_name(flag)
        if over:
            # one clock: a finished rollout says when it ended (as stored), never a duration against another clock
            when = f" at {started.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z" if started is not None else ""
            text.append(f"{over}{when}", "bold")
        elif started is not None:
            # dwell on the metrics source's clock: the clock the verdict's dwell is measured on
            text.append(f"in stage {stage} for {duration(s.metrics_now() - started.timestamp())}")
        else:
            text.append(f"stage {stage}")
        spec = ro.stage_spec(rule, flag) if rule is not None and not over else None
        if spec is not None:
            text.append(f" (min dwell {duration(spec.min_dwell_s)})", "dim")
            units = d.units_candidate if d is not None and d.stage == spec.name else None
            met = units is not None and units >= spec.min_units
            text.append(" · candidate units ")
            text.append(f"{'…' if units is None else units}/{spec.min_units}", "green" if met else "yellow")
        text.append("\nallocation now (from the flag): ")
        if flag.foreign_targeting:
            text.append(f"targeting unrecognised ({visible(flag.foreign_targeting)})", "bold red")
        elif flag.candidate is None and flag.allocation.serve_all is None:
            # promoted (or never given a candidate): a share of nobody's route would read as if one existed
            text.append(f"everyone on {visible(flag.baseline)} (no candidate)", "green")
        else:
            text.append(visible(flag.allocation.describe()), "bold yellow" if flag.allocation.serves_candidate else "green")
        if s.flags_status.stale(s.now(), s.refresh_s):
            text.append(" — as last read: flag reads are failing", STALE)
        if s.busy_with(flag.key):
            text.append(f"\n{s.busy_with(flag.key)} in progress…", "bold")
        if flag.key in s.foreign:
            text.append(f"\nchanged outside this console: {visible(s.foreign[flag.key])}", "bold magenta")
        elif flag.key in s.by_routedeck:
            text.append(f"\nchanged by routedeck elsewhere: {visible(s.by_routedeck[flag.key])}", "cyan")
        watch = s.data_plane.get(flag.key)
        if watch is not None and not flag.allocation.serves_candidate:
            text.append("\n")
            text.append_text(data_plane_line(s, flag.key, watch))
        self._set("stage", text)

    def _draw_verdict(self, flag: "RouteFlag | None", rule: "DecisionRule | None", d: "Decision | None") -> None:
        if rule is None or flag is None:
            why = ("no decision rule for this flag: start the console with --rule FILE (one per flag) to judge "
                   "its rollout")
            self._set("verdict", Text(why, "dim"))
            self._set("guardrails", None)
            return
        s = self.session
        text = Text()
        over = ended(flag)
        error = s.verdict_errors.get(flag.key)
        if over:
            text.append(f"the rollout is {over}: nothing to decide", "bold")
            if restart_blocked(flag, rule) is not None:
                text.append(f"\n{next_rollout(flag, rule)}", "yellow")
            else:
                text.append(" — N starts a new rollout of this flag", "dim")
            self._set("verdict", text)
            self._set("guardrails", None)
            return
        if error:
            text.append(f"verdict unavailable: {visible(error)}", "bold red")
        elif d is None:
            text.append("judging… (the verdict refreshes every few seconds)", "dim")
        else:
            text.append(f"verdict {d.verdict.value}", VERDICT_STYLE[d.verdict.value])
            judged, at = s.judged_at.get(flag.key), s.judged_on_metrics_clock.get(flag.key)
            started = flag.rollout.stage_started_at if flag.rollout else None
            if judged is not None:
                # one clock: the reasons' dwell and counts are as of this look, said so beside them
                when = f" when the stage was {duration(at - started.timestamp())} old" if at and started else ""
                text.append(f" · judged{when}, {ago(s.now() - judged)} ago", "dim")
            if d.verdict.value != "ADVANCE":
                text.append("\n")
                text.append(visible(eta_sentence(d)), eta_style(d))
            reasons = Table(box=None, padding=(0, 0, 0, 1), show_header=False, expand=False)
            reasons.add_column(no_wrap=True)
            reasons.add_column(overflow="fold")
            for r in d.reasons:
                if d.request_level and "counts requests, not units" in r:
                    continue  # said once, in the line below
                if r == f"note: {eta_sentence(d)}":
                    continue  # said above, beside the verdict
                reasons.add_row("•", Text(visible(short_reason(r, d)), "dim" if r.startswith("note") else ""))
            if d.request_level:
                reasons.add_row("", Text("the metrics source counts requests, not units: intervals ignore clustering",
                                         "yellow"))
            self._set("verdict", Group(text, reasons))
            self._set("guardrails", self._guardrail_table(flag, d) if d.metrics or d.health else None)
            return
        self._set("verdict", text)
        self._set("guardrails", self._guardrail_table(flag, d) if d is not None and (d.metrics or d.health) else None)

    def _guardrail_table(self, flag: "RouteFlag", d: "Decision") -> Group:
        wide = self.size.width >= 110
        numbers = self.size.width >= 150  # the interval's bounds as numbers beside its bar
        # one space between columns: the room goes to the names, which wrap between words instead of being cut
        table = Table(box=None, padding=(0, 1), collapse_padding=True, pad_edge=False, header_style="bold",
                      expand=False)
        table.add_column("guardrail", no_wrap=True)
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
            table.add_column("on harm", no_wrap=True)
            table.add_column("trend", no_wrap=True)
        history = self.session.interval_history.get((flag.key, d.stage), [])
        rows: list[list] = []
        for m in d.metrics:
            metric = lookup(m.name)
            worse_high = metric.worse_is_higher if metric else True
            absolute = m.baseline is None and m.n_baseline == 0
            if m.interval is not None:
                bar = interval_bar(m.interval[0], m.interval[1], m.threshold, worse_high, 19 if wide else 11,
                                   absolute=absolute, harm=m.verdict.value in ("harm", "tripped"))
            else:
                bar = Text("no interval" if m.verdict.value != "tripped" else "point estimate", "dim")
            label = (PRIMARY_MARK if m.line.startswith("primary: ") else "") + visible(m.name)
            mark = "" if wide else ACTION_MARK.get("signal" if m.signal else m.action, "")
            row = [(label, mark), fmt(metric, m.candidate), fmt(metric, m.baseline) if not absolute else "—", bar]
            if numbers:
                row.append(f"[{fmt(metric, m.interval[0], not absolute)}, {fmt(metric, m.interval[1], not absolute)}]"
                           if m.interval else "—")
            if wide:
                limit = fmt(metric, m.threshold, not absolute) if m.threshold is not None else "—"
                row.append(("≤" if absolute else "±") + limit.lstrip("+"))
            word = m.verdict.value if wide else SHORT_VERDICT.get(m.verdict.value, m.verdict.value)
            row += [f"{m.n_candidate}/{m.n_baseline}", Text(word, METRIC_STYLE.get(m.verdict.value, ""))]
            if wide:
                does = "signal" if m.signal else m.action
                row.append(Text(does, ACTION_STYLE.get(does, "")))
                row.append(sparkline([self._harm_bound(iv.get(m.name), worse_high) for _, iv in history]))
            rows.append(row)
        # the name column gets what the other columns leave (the body's padding and scrollbar: 4 cells)
        others = sum(max([cell_len(c.header)] + [Text.from_markup(r[i]).cell_len if isinstance(r[i], str)
                                                  else r[i].cell_len for r in rows]) + 1
                     for i, c in enumerate(table.columns) if i > 0)
        room = max(self.size.width - 4 - others, 12)
        for row in rows:
            table.add_row(Text(wrap_name(*row[0], width=room)), *row[1:])
        gates = Table(box=None, padding=(0, 1), header_style="bold", expand=False)
        gates.add_column("health gate", no_wrap=True)
        gates.add_column("status", no_wrap=True)
        gates.add_column("detail", overflow="fold")
        gates.add_column("on failure", no_wrap=True)
        for g in d.health:
            gates.add_row(g.name, Text(g.status.value, GATE_STYLE.get(g.status.value, "")), Text(visible(g.detail)),
                          g.action.value)
        parts: list = [table] if d.metrics else []
        primary = any(m.line.startswith("primary: ") for m in d.metrics)
        if d.metrics and not wide:
            parts.append(Text(("★ primary · on harm ‼ rolls back, ! holds, ~ warns; ° signal (never blocks)" if primary
                               else "on harm: ‼ rolls back · ! holds · ~ warns · ° a signal (never blocks)"), "dim"))
        elif primary:
            parts.append(Text("★ primary metric", "dim"))
        if d.health:
            parts.append(gates)
        if d.alpha is not None:
            parts.append(Text(f"α: {visible(d.alpha.statement)}", "dim"))
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
        rows = [f for f in self.session.figures if f.key.flag == flag.key and f.requests]
        table = Table(box=None, padding=(0, 1), header_style="bold", title_justify="left",
                      title=f"live, last {self.session.window_label} (share: the newest seconds)", title_style="bold")
        narrow = self.size.width < 110
        # narrow: the route's name wraps (between words) so that no figure is ever cut
        table.add_column("route (arm)", no_wrap=not narrow, overflow="fold")
        for m in LIVE:
            table.add_column((LIVE_SHORT if narrow else LIVE_LABELS)[m], justify="right", no_wrap=True)
        for f in rows:
            table.add_row(Text(f"{visible(f.key.route)} ({f.key.arm.value})"),
                          *[Text(format_value(m, f.values.get(m)), "bold red" if f.marks.get(m) else "") for m in LIVE])
        if not rows:
            table.add_row("no traffic in the window", *[""] * len(LIVE))
        self._set("live", table)

    def _draw_checklist(self, flag: "RouteFlag | None", rule: "DecisionRule | None") -> None:
        if flag is None or rule is None or not rule.checklist or ended(flag):
            self._set("checklist", None)
            return
        from console.core import rollout as ro

        stage = ro.current_stage_name(flag)
        acks = {a.item: a for a in (flag.rollout.acknowledgements if flag.rollout else []) if a.stage == stage}
        text = Text("manual checklist for this stage (K acknowledges the next item)", "bold")
        for item in rule.checklist:
            ack = acks.get(item)
            if ack:
                text.append(f"\n ☑ {visible(item)}", "green")
                text.append(f"  — {visible(ack.by)}, {ack.at:%Y-%m-%d %H:%M}Z", "dim")
            else:
                text.append(f"\n ☐ {visible(item)}", "yellow")
        self._set("checklist", text)

    def _draw_diff(self, flag: "RouteFlag | None") -> None:
        if flag is None or not flag.candidate or flag.candidate not in flag.variations:
            self._set("diff", None)
            return
        changes = profile_diff(flag.variations[flag.baseline], flag.variations[flag.candidate])
        title = Text("the candidate's route profile against the baseline's", "bold")
        if self.size.width < 110:
            # narrow: a field per block, each value on its own line, so no value is broken inside a word
            text = title.copy()
            for c in changes:
                style = "bold" if c.changed else "dim"
                text.append(f"\n{visible(c.label)}", style)
                if not c.changed:
                    text.append(f": {_value(c.baseline)} (same)", "dim")
                    continue
                text.append(f"\n  baseline  {_value(c.baseline)}")
                text.append(f"\n  candidate {_value(c.candidate)}", "bold")
                if c.risk:
                    text.append(f"\n  ⚠ {c.risk}", "yellow")
            self._set("diff", text)
            return
        table = Table(box=None, padding=(0, 1), header_style="bold", title=title, title_justify="left")
        table.add_column("field", no_wrap=True)
        table.add_column("baseline")
        table.add_column("candidate")
        table.add_column("why it matters", style="yellow")
        for c in changes:
            style = "bold" if c.changed else "dim"
            table.add_row(Text(visible(c.label), style), Text(_value(c.baseline), style),
                          Text(_value(c.candidate), style), Text(("⚠ " + c.risk) if c.risk else ""))
        self._set("diff", table)

    def _draw_rule(self, flag: "RouteFlag | None", rule: "DecisionRule | None") -> None:
        if flag is None or rule is None:
            self._set("rule", None)
            return
        spec = rule.spec
        lines = Table(box=None, padding=(0, 0, 0, 1), show_header=False, expand=False)
        lines.add_column(overflow="fold")
        lines.add_row(Text(f"{visible(rule.path)} · hash {rule.rule_hash[:12]} · α {spec.alpha:g} · automatic rollback "
                           f"{'on' if spec.auto_rollback else 'off'}"))
        if spec.primary is not None:
            lines.add_row(Text(f"primary {visible(spec.primary.metric)}: {spec.primary.test.value.replace('_', '-')}, "
                               f"margin {spec.primary.margin:g}"
                               f"{' relative' if spec.primary.margin_kind.value == 'relative' else ''}"))
        plan = " → ".join(f"{visible(s.name)} ({s.candidate_bp / 100:g}%, ≥{s.min_units} units, ≥{duration(s.min_dwell_s)})"
                          for s in rule.stages)
        lines.add_row(Text(f"stages {plan}"))
        for m in rule.mappings:
            lines.add_row(Text(f"{visible(m.source)}: “{visible(m.text)}” → {visible(m.became)}", "dim"))
        if flag.rollout is not None and flag.rollout.rule_hash and flag.rollout.rule_hash != rule.rule_hash:
            lines.add_row(Text("the rule file changed since this rollout started (hash differs): review it", "bold red"))
        self._set("rule", Group(Text("the rule, written before traffic moved", "bold"), lines))


def _value(value) -> str:
    return "—" if value is None else visible(value)
