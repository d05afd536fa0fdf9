"""The on-call view of an incident: which provider is failing, and which routes and segments it hurts.

Providers are ranked from the same counters the dashboard totals (``MetricsSnapshot.totals``).
A provider call counts once per attempt: the assigned route's call, and the fallback's call
when there was one. A rate whose denominator is zero is ``None`` (shown "—"), never 0; a
fallback ratio the source cannot attribute to a provider is ``None`` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .telemetry import ErrorKind, MetricsSnapshot, RouteKey, SegmentRequests, UnitRecord

#: what the ranking can be sorted by: (key, heading)
SORTS: tuple[tuple[str, str], ...] = (
    ("failure_rate", "all failures"),
    ("error_rate", "errors"),
    ("rate_limit_rate", "429s"),
    ("timeout_rate", "timeouts"),
    ("fallback_ratio", "fallback ratio"),
)
SEGMENT_ATTRIBUTES = ("plan", "region", "workflow")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass
class RouteHurt:
    """One route's calls to one provider, and how many failed."""

    key: RouteKey
    calls: int
    failed: int

    @property
    def failure_rate(self) -> float | None:
        return _ratio(self.failed, self.calls)


@dataclass
class ProviderHealth:
    provider: str
    model: str
    calls: int = 0
    errors: int = 0
    rate_limited: int = 0
    timeouts: int = 0
    other_failures: int = 0
    #: fallbacks this provider's failed calls triggered; None when the source cannot attribute them
    fallbacks: int | None = 0
    #: the primary calls the fallbacks are a share of (calls made as the assigned route's call)
    primary_calls: int = 0
    routes: list[RouteHurt] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.model if self.model.startswith(self.provider) else f"{self.provider}/{self.model}"

    @property
    def failed(self) -> int:
        return self.errors + self.rate_limited + self.timeouts + self.other_failures

    @property
    def failure_rate(self) -> float | None:
        return _ratio(self.failed, self.calls)

    @property
    def error_rate(self) -> float | None:
        return _ratio(self.errors, self.calls)

    @property
    def rate_limit_rate(self) -> float | None:
        return _ratio(self.rate_limited, self.calls)

    @property
    def timeout_rate(self) -> float | None:
        return _ratio(self.timeouts, self.calls)

    @property
    def fallback_ratio(self) -> float | None:
        # a provider only ever called as a fallback has no fallback ratio of its own: "—", not 0
        return None if self.fallbacks is None else _ratio(self.fallbacks, self.primary_calls)

    def hurt_routes(self) -> list[RouteHurt]:
        """Routes with failed calls to this provider, most failures first."""
        return sorted((r for r in self.routes if r.failed), key=lambda r: (-r.failed, r.key))


def provider_health(snapshot: MetricsSnapshot, sort: str = "failure_rate") -> list[ProviderHealth]:
    """Every provider/model called in the window, worst first by ``sort`` (see ``SORTS``)."""
    found: dict[tuple[str, str], ProviderHealth] = {}
    attributable = True
    for key, c in snapshot.totals.items():
        if c.fallbacks and not c.provider_fallbacks:
            attributable = False
        for pm, n in c.provider_requests.items():
            ph = found.setdefault(pm, ProviderHealth(*pm))
            ph.calls += n
            failed = 0
            for (p, m, kind), v in c.provider_errors.items():
                if (p, m) != pm:
                    continue
                failed += v
                if kind == ErrorKind.ERROR.value:
                    ph.errors += v
                elif kind == ErrorKind.RATE_LIMITED.value:
                    ph.rate_limited += v
                elif kind == ErrorKind.TIMEOUT.value:
                    ph.timeouts += v
                else:
                    ph.other_failures += v
            ph.routes.append(RouteHurt(key, n, failed))
        for pm, n in c.provider_fallbacks.items():
            ph = found.setdefault(pm, ProviderHealth(*pm))
            ph.fallbacks = (ph.fallbacks or 0) + n
    _primary_calls(snapshot, found)
    if not attributable:
        for ph in found.values():
            ph.fallbacks = None
    return rank(list(found.values()), sort)


def _primary_calls(snapshot: MetricsSnapshot, found: dict[tuple[str, str], ProviderHealth]) -> None:
    """A route's primary calls go to its own provider: requests minus the calls its fallbacks made.

    With one provider per route (how route profiles work), the provider whose calls on a route
    exceed that route's fallbacks is the primary one."""
    for ph in found.values():
        ph.primary_calls = 0
    for key, c in snapshot.totals.items():
        if not c.provider_requests:
            continue
        # the primary provider of the route: most calls on it (fallbacks are a minority of requests)
        primary = max(c.provider_requests, key=lambda pm: c.provider_requests[pm])
        found[primary].primary_calls += c.requests


def rank(rows: list[ProviderHealth], sort: str = "failure_rate") -> list[ProviderHealth]:
    """Worst first; a provider whose rate is unknown sorts after every known one."""
    if sort not in dict(SORTS):
        raise ValueError(f"unknown sort {sort!r}")

    def key(ph: ProviderHealth):
        value = getattr(ph, sort)
        return (value is None, -(value or 0.0), -ph.failed, ph.label)

    return sorted(rows, key=key)


@dataclass
class SegmentHurt:
    """One segment value (e.g. plan=enterprise) on one route: its requests and failed requests."""

    attribute: str
    value: str
    requests: int
    failed: int
    fallbacks: int
    route_rate: float | None  # the route's failure rate over all its segments, for comparison

    @property
    def failure_rate(self) -> float | None:
        return _ratio(self.failed, self.requests)

    @property
    def label(self) -> str:
        return f"{self.attribute}={self.value}"


def segments_hurt(units: list[UnitRecord], route: str, attributes: tuple[str, ...] = SEGMENT_ATTRIBUTES,
                  limit: int = 6) -> list[SegmentHurt]:
    """Segment values of ``route``'s units, most failed requests first (units from ``read_units``)."""
    return _rank([(u.segment, u.requests, _failed(u), u.fallbacks) for u in units if u.route == route],
                 attributes, limit)


def segments_hurt_from_requests(rows: list[SegmentRequests], route: str,
                                attributes: tuple[str, ...] = SEGMENT_ATTRIBUTES, limit: int = 6) -> list[SegmentHurt]:
    """The same ranking from per-segment request counts (``read_segment_requests``) of a request-level source."""
    return _rank([(r.segment, r.requests, r.errors, r.fallbacks) for r in rows if r.route == route], attributes, limit)


def _rank(cells_in: list[tuple[dict[str, str], int, int, int]], attributes: tuple[str, ...],
          limit: int) -> list[SegmentHurt]:
    """(segment, requests, failed, fallbacks) cells → the segment values with failures, most failed first."""
    route_rate = _ratio(sum(c[2] for c in cells_in), sum(c[1] for c in cells_in))
    cells: dict[tuple[str, str], list[int]] = {}
    for segment, requests, failed, fallbacks in cells_in:
        for attr in attributes:
            value = segment.get(attr)
            if not value:  # a unit without this attribute, or a series without the label
                continue
            cell = cells.setdefault((attr, value), [0, 0, 0])
            cell[0] += requests
            cell[1] += failed
            cell[2] += fallbacks
    rows = [SegmentHurt(a, v, n, f, fb, route_rate) for (a, v), (n, f, fb) in cells.items() if f]
    rows.sort(key=lambda s: (-s.failed, -(s.failure_rate or 0.0), s.label))
    return rows[:limit]


def _failed(u: UnitRecord) -> int:
    """Failed requests of a unit: errors of every kind (UnitRecord.errors counts them all)."""
    return u.errors


def safe_routes(variations: dict, candidate: str | None) -> list[str]:
    """Variations a flag may switch everyone to: any but the candidate, the portfolio's emergency route first."""
    names = [n for n in variations if n != candidate]
    return sorted(names, key=lambda n: (not str(getattr(variations[n], "route", n)).startswith("fallback_baseline"), n))
