"""A scatter of routes by cost per resolved task against resolved rate, with the frontier line.

Frontier routes are drawn ``●`` and joined by the frontier line; dominated routes are ``○``.
Each point carries its label (route and p95 latency). The plot is rebuilt only when
``show`` is given different points: plotext redraws everything on each render.
"""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot

from console.core.frontier import FrontierPoint, frontier_line
from console.core.safe_text import visible


def _money(v: float) -> str:
    return f"${v:.4f}" if v < 0.1 else f"${v:.3f}"


class FrontierPlot(PlotextPlot):
    DEFAULT_CSS = """
    FrontierPlot { height: 1fr; min-height: 8; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._shown: tuple | None = None

    def show(self, points: list[FrontierPoint], title: str) -> None:
        """Draw ``points`` (from ``frontier_points``); a no-op when nothing changed."""
        ident = (title, tuple((p.label, p.cost_per_resolved, p.resolved_rate, p.on_frontier, p.p95_latency_ms)
                              for p in points))
        if ident == self._shown:
            return
        self._shown = ident
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        shown = [p for p in points if p.has_data]
        if not shown:
            plt.xlabel("no route has a cost per resolved task and a resolved rate in this window")
            self.refresh()
            return
        costs = [p.cost_per_resolved for p in shown]
        log_x = min(costs) > 0 and max(costs) / min(costs) > 20

        def x_of(cost: float) -> float:
            return math.log10(cost) if log_x else cost

        line = frontier_line(shown)
        if len(line) > 1:
            plt.plot([x_of(p.cost_per_resolved) for p in line], [p.resolved_rate * 100 for p in line],
                     color="green", marker="braille")
        front = [p for p in shown if p.on_frontier]
        dominated = [p for p in shown if not p.on_frontier]
        if front:
            plt.scatter([x_of(p.cost_per_resolved) for p in front], [p.resolved_rate * 100 for p in front],
                        marker="●", color="green")
        if dominated:
            plt.scatter([x_of(p.cost_per_resolved) for p in dominated], [p.resolved_rate * 100 for p in dominated],
                        marker="○", color="gray")
        lo, hi = min(x_of(c) for c in costs), max(x_of(c) for c in costs)
        pad = (hi - lo) * 0.1 or (abs(hi) * 0.1 if hi else 0.1)
        for p in shown:
            # the label starts just right of its point, so the marker stays visible
            plt.text(visible(p.plot_label()), x_of(p.cost_per_resolved) + pad * 0.25, p.resolved_rate * 100,
                     color="green" if p.on_frontier else "gray", background="default", alignment="left")
        # room on the right for the labels
        plt.xlim(lo - pad, hi + (hi - lo) * 0.9 + pad)
        rates = [p.resolved_rate * 100 for p in shown]
        ypad = (max(rates) - min(rates)) * 0.15 or 1.0
        plt.ylim(min(rates) - ypad, max(rates) + ypad)
        ticks = [lo + (hi - lo) * i / 3 for i in range(4)] if hi > lo else [lo]
        plt.xticks(ticks, [_money(10 ** t if log_x else t) for t in ticks])
        plt.xlabel("● frontier  ○ dominated  ·  x: cost per resolved task" + (" (log)" if log_x else "")
                   + "  ·  y: resolved %")
        self.refresh()
