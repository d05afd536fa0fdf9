"""Rich renderables for one audit record: the before/after diff and the evidence behind a decision.

Plain values in, renderables out: the audit screen's detail view and any other screen that shows
a journalled decision can use them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from console.core.safe_text import visible


def diff_table(rows: Sequence[tuple[str, str, str, bool]], before_label: str = "before",
               after_label: str = "after") -> Table:
    """One row per field: name, before, after; changed fields in bold with a marker."""
    table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
    table.add_column("field")
    table.add_column(before_label)
    table.add_column(after_label)
    for name, before, after, changed in rows:
        name, before, after = visible(name), visible(before), visible(after)
        if changed:
            table.add_row(Text(f"▸ {name}", style="bold"), Text(before, style="red"), Text(after, style="bold green"))
        else:
            table.add_row(Text(f"  {name}", style="dim"), Text(before, style="dim"), Text(after, style="dim"))
    return table


def evidence_renderable(evidence: Any) -> RenderableType:
    """A verdict snapshot (``verdict``, ``stage``, ``health``, ``metrics``, ``reasons``) as tables;
    anything else as indented JSON."""
    if not isinstance(evidence, dict) or not ({"metrics", "health", "verdict"} & set(evidence)):
        return Text(visible(json.dumps(evidence, indent=2, sort_keys=True, default=str), keep_newlines=True))
    parts: list[RenderableType] = []
    head = Text.assemble("verdict ", (visible(evidence.get("verdict", "?")), _verdict_style(evidence.get("verdict"))))
    if evidence.get("stage"):
        head.append(f" at stage {visible(evidence['stage'])}")
    if evidence.get("request_level") is not None:
        head.append(f" · {'request-level' if evidence['request_level'] else 'unit-level'} data", "dim")
    parts.append(head)
    metrics = [m for m in evidence.get("metrics") or [] if isinstance(m, dict)]
    if metrics:
        parts.append(MetricEvidence(metrics))
        if any(m.get("critical") for m in metrics):
            parts.append(Text("* critical guardrail", style="dim"))
    health = evidence.get("health") or []
    if health:
        table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
        table.add_column("health gate")
        table.add_column("status")
        table.add_column("detail")
        for g in health:
            if isinstance(g, dict):
                table.add_row(Text(visible(g.get("name", "?"))),
                              Text(visible(g.get("status", "?")), style=_verdict_style(g.get("status"))),
                              Text(visible(g.get("detail", ""))))
        parts.append(table)
    reasons = evidence.get("reasons") or []
    if reasons:
        parts.append(Text("reasons:", style="bold"))
        parts.extend(Text(f"  • {visible(r)}") for r in reasons)
    return Group(*parts)


class MetricEvidence:
    """Each metric's candidate, baseline, interval, threshold, n and verdict: a table when there is
    room, two lines per metric in a narrow terminal (so no figure is cut off)."""

    WIDE = 96

    def __init__(self, metrics: Sequence[dict[str, Any]]) -> None:
        self.metrics = metrics

    def __rich_console__(self, console, options):
        if options.max_width >= self.WIDE:
            yield self._table()
            return
        for m in self.metrics:
            head = Text(_name(m), style="bold")
            head.append("  ")
            head.append(visible(m.get("verdict", "?")), _verdict_style(m.get("verdict")))
            head.append(f"  n {_n(m)}", "dim")
            yield head
            yield Text(f"   cand {_num(m.get('candidate'))} · base {_num(m.get('baseline'))} · "
                       f"interval {_interval(m.get('interval'))} · threshold {_num(m.get('threshold'))}")

    def _table(self) -> Table:
        table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
        table.add_column("metric")
        for col in ("candidate", "baseline", "interval", "threshold", "n cand/base"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        for m in self.metrics:
            table.add_row(Text(_name(m)), Text(_num(m.get("candidate"))), Text(_num(m.get("baseline"))),
                          Text(_interval(m.get("interval"))), Text(_num(m.get("threshold"))), Text(_n(m)),
                          Text(visible(m.get("verdict", "?")), style=_verdict_style(m.get("verdict"))))
        return table


def _name(metric: dict[str, Any]) -> str:
    return visible(metric.get("name", "?")) + (" *" if metric.get("critical") else "")


def _n(metric: dict[str, Any]) -> str:
    n = metric.get("n")
    if isinstance(n, (list, tuple)) and len(n) == 2:
        return f"{_num(n[0])}/{_num(n[1])}"
    return _num(n)


def _verdict_style(value: Any) -> str:
    text = str(value or "").lower()
    if text in ("rollback", "fail", "failed", "harm"):
        return "bold red"
    if text in ("hold", "inconclusive", "no data", "tripped", "wait"):
        return "bold yellow"
    if text in ("advance", "pass", "non-inferior", "superior", "confirmed"):
        return "bold green"
    return ""


def _num(value: Any) -> str:
    if value is None:
        return "—"  # missing is shown as missing, never as 0
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int,)):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return visible(value)


def _interval(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"[{_num(value[0])}, {_num(value[1])}]"
    return "—" if value is None else visible(value)
