"""Cost-performance frontier: routes by cost per resolved task against resolved rate.

A route is dominated when another route resolves at least as many tasks for at most the
same cost per resolved task, and is strictly better on one of the two. The routes nobody
dominates form the Pareto frontier. Every number is taken from the dashboard's per-route
figures (``route_figures``), so the two views cannot disagree; a route without a cost or
a resolved rate in the window is listed as "no data" and is never on the frontier.
"""

from __future__ import annotations

from dataclasses import dataclass

from .figures import RouteFigures, format_value
from .telemetry import Arm

ARM_MARK = {Arm.CANDIDATE: "◆", Arm.BASELINE: "●", Arm.OTHER: ""}


@dataclass(frozen=True)
class FrontierPoint:
    """One route of one flag on one arm, placed by its figures."""

    flag: str
    route: str
    arm: Arm
    requests: int
    cost_per_resolved: float | None
    resolved_rate: float | None
    p95_latency_ms: float | None
    label: str
    on_frontier: bool = False
    #: the label of a route that dominates this one (None when on the frontier or without data)
    dominated_by: str | None = None

    @property
    def has_data(self) -> bool:
        return self.cost_per_resolved is not None and self.resolved_rate is not None

    @property
    def status(self) -> str:
        if not self.has_data:
            return "no data"
        return "frontier" if self.on_frontier else f"dominated by {self.dominated_by}"

    def plot_label(self) -> str:
        """The label drawn beside the point: route and p95 latency."""
        return f"{self.label} p95 {format_value('p95_latency', self.p95_latency_ms)}"


def dominates(a: FrontierPoint, b: FrontierPoint) -> bool:
    """True when ``a`` is at least as cheap per resolved task and resolves at least as often, better on one."""
    if not (a.has_data and b.has_data):
        return False
    no_worse = a.cost_per_resolved <= b.cost_per_resolved and a.resolved_rate >= b.resolved_rate
    better = a.cost_per_resolved < b.cost_per_resolved or a.resolved_rate > b.resolved_rate
    return no_worse and better


def _labels(rows: list[RouteFigures]) -> dict[int, str]:
    """Route names, with the flag added where the same route serves several flags."""
    count: dict[str, int] = {}
    for r in rows:
        count[r.key.route] = count.get(r.key.route, 0) + 1
    out = {}
    for i, r in enumerate(rows):
        label = r.key.route if count[r.key.route] == 1 else f"{r.key.route}@{r.key.flag}"
        out[i] = label + ARM_MARK[r.key.arm]
    return out


def frontier_points(figures: list[RouteFigures], flag: str | None = None) -> list[FrontierPoint]:
    """Every route that served requests in the window (of ``flag`` only, when given), marked on or off the frontier.

    Ordered frontier first (cheapest first), then dominated routes, then routes without data.
    """
    rows = [f for f in figures if f.requests > 0 and (flag is None or f.key.flag == flag)]
    labels = _labels(rows)
    points = [
        FrontierPoint(
            flag=r.key.flag, route=r.key.route, arm=r.key.arm, requests=r.requests,
            cost_per_resolved=r.values.get("cost_per_resolved_case"),
            resolved_rate=r.values.get("resolved_without_escalation"),
            p95_latency_ms=r.values.get("p95_latency"), label=labels[i],
        )
        for i, r in enumerate(rows)
    ]
    marked = []
    for p in points:
        if not p.has_data:
            marked.append(p)
            continue
        # the strongest dominator: the cheapest among those resolving the most
        better = [q for q in points if q is not p and dominates(q, p)]
        if better:
            best = min(better, key=lambda q: (-q.resolved_rate, q.cost_per_resolved))
            marked.append(_with(p, on_frontier=False, dominated_by=best.label))
        else:
            marked.append(_with(p, on_frontier=True))
    marked.sort(key=lambda p: (not p.has_data, not p.on_frontier,
                               p.cost_per_resolved if p.cost_per_resolved is not None else 0.0, p.label))
    return marked


def frontier_line(points: list[FrontierPoint]) -> list[FrontierPoint]:
    """The frontier's points from cheapest to dearest (the line drawn through them)."""
    return sorted((p for p in points if p.on_frontier), key=lambda p: (p.cost_per_resolved, p.resolved_rate))


def _with(p: FrontierPoint, **update) -> FrontierPoint:
    from dataclasses import replace

    return replace(p, **update)
