"""Per-route figures for the dashboard, computed from additive counters.

Every figure is ``None`` when its denominator is zero: the screen shows "—", never 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from .registry import lookup
from .telemetry import (
    LATENCY_BOUNDS_MS,
    TTFT_BOUNDS_MS,
    Arm,
    MetricsSnapshot,
    RouteCounters,
    RouteKey,
    TimeBucket,
    histogram_quantile,
)

if TYPE_CHECKING:
    from .models import RouteFlag


class Roles(Protocol):
    """The routes a flag names now (a ``RouteFlag`` has them)."""

    baseline: str
    candidate: str | None

#: the columns of the route table, in order: (registry metric name, short label)
PANEL_METRICS: tuple[tuple[str, str], ...] = (
    ("share", "share"),
    ("p50_latency", "p50"),
    ("p95_latency", "p95"),
    ("p95_ttft", "ttft95"),
    ("cost_per_request", "$/req"),
    ("cost_per_resolved_case", "$/resolved"),
    ("resolved_without_escalation", "resolved"),
    ("fallback_rate", "fallback"),
    ("error_rate", "errors"),
)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass
class RouteFigures:
    key: RouteKey
    requests: int
    share: float | None  # of the flag's requests in the window
    values: dict[str, float | None]
    worst_provider: str | None = None
    worst_provider_rate: float | None = None
    via_fallback: int = 0  # requests this route served for other routes' fallbacks
    #: metric name -> "warn" when beyond the registry's default warning line
    marks: dict[str, str] = field(default_factory=dict)
    #: the flag names this route, but it served no request in the window (its figures are "—")
    idle: bool = False

    @property
    def label(self) -> str:
        return self.key.route


#: each figure from one route's counters and its flag's requests (the trend computes only the one it shows)
FIGURES: dict[str, Callable[[RouteCounters, int], "float | None"]] = {
    "share": lambda c, flag_requests: _ratio(c.requests, flag_requests),
    "p50_latency": lambda c, _: histogram_quantile(c.latency_hist, LATENCY_BOUNDS_MS, 0.5),
    "p95_latency": lambda c, _: histogram_quantile(c.latency_hist, LATENCY_BOUNDS_MS, 0.95),
    "p95_ttft": lambda c, _: histogram_quantile(c.ttft_hist, TTFT_BOUNDS_MS, 0.95),
    "cost_per_request": lambda c, _: _ratio(c.cost_usd, c.requests),
    # cost is booked when requests happen, resolutions when outcomes arrive: a bucket needs both
    "cost_per_resolved_case": lambda c, _: _ratio(c.cost_usd, c.resolved) if c.outcomes and c.requests else None,
    "resolved_without_escalation": lambda c, _: _ratio(c.resolved, c.outcomes),
    "fallback_rate": lambda c, _: _ratio(c.fallbacks, c.requests),
    "error_rate": lambda c, _: _ratio(c.errors, c.requests),
    "slo_attainment": lambda c, _: _ratio(c.slo_met, c.requests),
    "join_coverage": lambda c, _: _ratio(c.outcomes, c.exposures),
    "timeout_rate": lambda c, _: _ratio(c.timeouts, c.requests),
    "rate_limit_rate": lambda c, _: _ratio(c.rate_limited, c.requests),
    "correction_rate": lambda c, _: _ratio(c.corrected, c.outcomes),
    "complaint_rate": lambda c, _: _ratio(c.complaints, c.outcomes),
}


def figures_from_counters(key: RouteKey, c: RouteCounters, flag_requests: int, marks: bool = True) -> RouteFigures:
    values: dict[str, float | None] = {name: figure(c, flag_requests) for name, figure in FIGURES.items()}
    worst, worst_rate = None, None
    for (provider, model), n in c.provider_requests.items():
        failed = sum(v for (p, m, _k), v in c.provider_errors.items() if (p, m) == (provider, model))
        rate = failed / n if n else None
        if rate is not None and failed and (worst_rate is None or rate > worst_rate):
            worst, worst_rate = f"{provider}/{model.split('/')[-1]}" if model and not model.startswith(provider) else model or provider, rate
    found: dict[str, str] = {}
    for name, value in values.items() if marks else ():
        metric = lookup(name)
        if metric is None or value is None:
            continue
        if metric.warn_above is not None and value > metric.warn_above:
            found[name] = "warn"
        if metric.warn_below is not None and value < metric.warn_below:
            found[name] = "warn"
    return RouteFigures(
        key=key, requests=c.requests, share=values["share"], values=values,
        worst_provider=worst, worst_provider_rate=worst_rate, marks=found,
    )


#: traffic share is a "now" figure: it is read over the newest buckets, not the whole window
SHARE_RECENT_S = 10.0


def recent_shares(snapshot: MetricsSnapshot, recent_s: float = SHARE_RECENT_S) -> dict[RouteKey, float | None]:
    """Each route key's share of its flag's requests over the newest ``recent_s`` seconds."""
    per_key: dict[RouteKey, int] = {}
    per_flag: dict[str, int] = {}
    for b in snapshot.buckets:
        if b.end <= snapshot.end - recent_s:
            continue
        for key, c in b.counters.items():
            per_key[key] = per_key.get(key, 0) + c.requests
            per_flag[key.flag] = per_flag.get(key.flag, 0) + c.requests
    return {key: _ratio(n, per_flag.get(key.flag, 0)) for key, n in per_key.items()}


def route_figures(snapshot: MetricsSnapshot, flags: Mapping[str, Roles] | None = None) -> list[RouteFigures]:
    """One row per (flag, assigned route, arm) that served traffic, plus routes reached only by fallback.

    Every figure covers the snapshot's window, except ``share``, which covers its newest
    ``SHARE_RECENT_S`` seconds. With ``flags``, routes are under the roles the flags give them now
    (``by_current_roles``).
    """
    if flags:
        snapshot = by_current_roles(snapshot, flags)
    shares = recent_shares(snapshot)
    per_flag: dict[str, int] = {}
    for key, c in snapshot.totals.items():
        per_flag[key.flag] = per_flag.get(key.flag, 0) + c.requests
    rows = []
    assigned = set()
    for key, c in snapshot.totals.items():
        if c.requests == 0 and c.outcomes == 0:
            continue
        fig = figures_from_counters(key, c, per_flag.get(key.flag, 0))
        fig.share = fig.values["share"] = shares.get(key, 0.0 if any(k.flag == key.flag for k in shares) else None)
        fig.via_fallback = snapshot.fallback_served.get((key.flag, key.route), 0)
        rows.append(fig)
        assigned.add((key.flag, key.route))
    for (flag, route), n in snapshot.fallback_served.items():
        if (flag, route) not in assigned and n:
            key = RouteKey(flag, route, Arm.OTHER)
            rows.append(RouteFigures(key=key, requests=0, share=0.0, values={}, via_fallback=n))
    serving = {r.key.flag for r in rows if r.key.arm is Arm.CANDIDATE}
    return _ordered(rows, lambda flag: 0 if flag in serving else 1)


def _ordered(rows: list[RouteFigures], rank: Callable[[str], int]) -> list[RouteFigures]:
    """Flags by ``rank`` (a rollout's first), then by key; within a flag the routes that served, baseline before
    candidate."""
    return sorted(rows, key=lambda r: (rank(r.key.flag), r.key.flag, r.requests == 0, _arm_order(r.key.arm),
                                       r.key.route))


def with_flag_routes(figures: list[RouteFigures], flags: Mapping[str, "RouteFlag"]) -> list[RouteFigures]:
    """``figures`` plus a row for every route a flag names now (baseline, candidate, switch route) that has none:
    with no data, or with the application not sending a route its share, the operator still sees each flag's
    routes and what the flag allocates them. Such a row's share is 0 when its flag served requests lately
    (measured: none of them went here), "—" when nothing is known; its other figures are "—"."""
    have = {(f.key.flag, f.key.route) for f in figures}
    recent = {f.key.flag for f in figures if f.share is not None}
    added = []
    for key, flag in flags.items():
        for route in dict.fromkeys((flag.baseline, flag.candidate, flag.allocation.serve_all)):
            if route is None or (key, route) in have:
                continue
            share = 0.0 if key in recent else None
            added.append(RouteFigures(key=RouteKey(key, route, _arm_now(flag, route, Arm.OTHER)), requests=0,
                                      share=share, values={"share": share}, idle=True))
    if not added:
        return figures
    # a rollout whose candidate is served first (as without this), then one whose flag allocates its candidate
    # traffic the data does not show (yet), then the others
    serving = {r.key.flag for r in figures if r.key.arm is Arm.CANDIDATE}
    allocating = {key for key, flag in flags.items() if flag.candidate is not None and flag.allocation.serve_all is None
                  and (flag.allocation.candidate_bp > 0 or flag.allocation.internal_enabled)}
    return _ordered(figures + added, lambda flag: 0 if flag in serving else 1 if flag in allocating else 2)


def _arm_now(roles: Roles | None, route: str, arm: Arm) -> Arm:
    if roles is None:
        return arm
    if route == roles.baseline:
        return Arm.BASELINE
    return Arm.CANDIDATE if route == roles.candidate else Arm.OTHER


def _rekeyed(counters: Mapping[RouteKey, RouteCounters], flags: Mapping[str, Roles]) -> dict[RouteKey, RouteCounters]:
    groups: dict[RouteKey, list[RouteCounters]] = {}
    for key, c in counters.items():
        groups.setdefault(RouteKey(key.flag, key.route, _arm_now(flags.get(key.flag), key.route, key.arm)), []).append(c)
    out: dict[RouteKey, RouteCounters] = {}
    for key, parts in groups.items():
        if len(parts) == 1:
            out[key] = parts[0]  # counters are never changed in place here: sharing one is safe
            continue
        merged = RouteCounters()
        for c in parts:
            merged.add(c)
        out[key] = merged
    return out


def by_current_roles(snapshot: MetricsSnapshot, flags: Mapping[str, Roles]) -> MetricsSnapshot:
    """The snapshot with each route under the role its flag gives it now, one row per route.

    Requests carry the arm they were served under; after a promote the window holds the new
    baseline twice (as the old candidate and as the baseline) and the old baseline as a
    "baseline" that gets nothing. The screens show the flag as it stands: one row per route.
    """
    if not any(_arm_now(flags.get(k.flag), k.route, k.arm) != k.arm for k in snapshot.totals):
        return snapshot
    buckets = [TimeBucket(b.start, b.end, _rekeyed(b.counters, flags)) for b in snapshot.buckets]
    return replace(snapshot, buckets=buckets, totals=_rekeyed(snapshot.totals, flags))


def _arm_order(arm: Arm) -> int:
    return {Arm.BASELINE: 0, Arm.CANDIDATE: 1, Arm.OTHER: 2}[arm]


def trend(snapshot: MetricsSnapshot, key: RouteKey, metric: str) -> list[float | None]:
    """The metric per bucket for one route (None where a bucket has no data)."""
    per_flag = []
    for b in snapshot.buckets:
        per_flag.append(sum(c.requests for k, c in b.counters.items() if k.flag == key.flag))
    out: list[float | None] = []
    for b, flag_requests in zip(snapshot.buckets, per_flag):
        c = b.counters.get(key)
        if c is None:
            out.append(0.0 if metric == "share" and flag_requests else None)
            continue
        figure = FIGURES.get(metric)  # the one figure shown: the same function the route table's figures use
        out.append(figure(c, flag_requests) if figure is not None else None)
    return out


def format_value(metric: str, value: float | None) -> str:
    """Compact text for a table cell."""
    if value is None:
        return "—"
    if metric in ("p50_latency", "p95_latency", "p95_ttft"):
        return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"
    if metric in ("cost_per_request", "cost_per_resolved_case"):
        return f"${value:.4f}" if value < 0.1 else f"${value:.3f}"
    if metric == "share" or lookup(metric) is not None and lookup(metric).unit == "share":
        return f"{value * 100:.1f}%"
    return f"{value:.3g}"
