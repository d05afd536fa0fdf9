"""Telemetry aggregates a metrics source hands to the core.

Counters are additive (two windows sum into their union), so a source can return
per-bucket counters and the core can total them for any window without a second query.
Latency and time to first token travel as histograms over fixed bounds; a bound sits at
every default SLO threshold so SLO attainment is exact rather than interpolated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from .errors import BadInput

#: Upper bounds (ms) of the latency histogram buckets; the last bucket is open-ended.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1600,
    1800, 2000, 2250, 2500, 2750, 3000, 3500, 4000, 4500, 5000, 6000, 7000, 8000, 9000,
    10000, 12000, 15000, 20000, 30000, 60000,
)
#: Upper bounds (ms) of the time-to-first-token histogram buckets.
TTFT_BOUNDS_MS: tuple[float, ...] = (
    25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1250, 1500, 2000,
    2500, 3000, 4000, 5000, 7500, 10000, 20000,
)


#: The latency SLO (ms) a metrics source counts in-SLO requests at unless its SPEC says ``slo_ms=N``, and a
#: decision rule's ``latency_slo_ms`` unless it says otherwise.
DEFAULT_SLO_MS = 2500.0


def slo_option(options: dict[str, str], spec: str) -> float:
    """The ``slo_ms=N`` option of a metrics SPEC's query (``DEFAULT_SLO_MS`` without one); ``spec`` as it may be
    shown (no secret in it), for the error."""
    text = options.get("slo_ms")
    if text is None:
        return DEFAULT_SLO_MS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise BadInput(f"--metrics {spec!r}: slo_ms={text!r} must be a number of milliseconds above 0 — e.g. slo_ms=2000")
    return value


class Arm(str, Enum):
    """Which side of a rollout a request was assigned to."""

    CANDIDATE = "candidate"
    BASELINE = "baseline"
    #: A flag with no rollout in progress, or a variation that is neither.
    OTHER = "other"


class ErrorKind(str, Enum):
    ERROR = "error"
    RATE_LIMITED = "429"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"
    POLICY_BLOCK = "policy_block"


@dataclass(frozen=True, order=True)
class RouteKey:
    """Traffic assigned to one route of one flag, on one arm.

    ``route`` is the route the flag assigned; a request that fell back is counted here
    (cost included) and also appears in ``MetricsSnapshot.fallback_served`` under the
    route it fell to.
    """

    flag: str
    route: str
    arm: Arm = Arm.OTHER


def _zeros(n: int) -> list[int]:
    return [0] * n


@dataclass
class RouteCounters:
    """Additive counters for one RouteKey over some window."""

    new_units: int = 0
    requests: int = 0
    successes: int = 0  # requests that returned a usable answer
    exposures: int = 0  # requests that recorded an exposure (flag, route, unit)
    outcomes: int = 0  # outcomes joined to an exposure by unit id
    resolved: int = 0  # outcome: resolved without escalation
    escalated: int = 0
    corrected: int = 0
    complaints: int = 0
    errors: int = 0  # every failed request, whatever the kind
    rate_limited: int = 0
    timeouts: int = 0
    malformed: int = 0
    policy_blocks: int = 0
    fallbacks: int = 0
    slo_met: int = 0  # successful and under the latency SLO
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    #: Σ of each request's cost squared (request-level sources; 0 when unknown): the spread of cost per request
    cost_sq_usd: float = 0.0
    latency_hist: list[int] = field(default_factory=lambda: _zeros(len(LATENCY_BOUNDS_MS) + 1))
    ttft_hist: list[int] = field(default_factory=lambda: _zeros(len(TTFT_BOUNDS_MS) + 1))
    #: failed requests by (provider, model, kind)
    provider_errors: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: requests by (provider, model)
    provider_requests: dict[tuple[str, str], int] = field(default_factory=dict)
    #: fallbacks by the (provider, model) whose failed call triggered them (empty when a source cannot tell)
    provider_fallbacks: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, other: "RouteCounters") -> None:
        for name in _SCALARS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for i, v in enumerate(other.latency_hist):
            self.latency_hist[i] += v
        for i, v in enumerate(other.ttft_hist):
            self.ttft_hist[i] += v
        for k, v in other.provider_errors.items():
            self.provider_errors[k] = self.provider_errors.get(k, 0) + v
        for k, v in other.provider_requests.items():
            self.provider_requests[k] = self.provider_requests.get(k, 0) + v
        for k, v in other.provider_fallbacks.items():
            self.provider_fallbacks[k] = self.provider_fallbacks.get(k, 0) + v

    def copy(self) -> "RouteCounters":
        c = RouteCounters()
        c.add(self)
        return c


_SCALARS = tuple(
    name
    for name, f in RouteCounters.__dataclass_fields__.items()
    if f.type in ("int", "float")
)


def histogram_quantile(hist: list[int], bounds: tuple[float, ...], q: float) -> float | None:
    """Quantile by linear interpolation inside the bucket (as Prometheus does); None if empty.

    A quantile landing in the open last bucket returns the last finite bound: an
    under-estimate, which callers show as "≥ bound".
    """
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    cumulative = 0
    lower = 0.0
    for i, count in enumerate(hist):
        upper = bounds[i] if i < len(bounds) else math.inf
        if count and cumulative + count >= rank:
            if math.isinf(upper):
                return bounds[-1]
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
        lower = upper if not math.isinf(upper) else lower
    return bounds[-1]


def bucket_index(value_ms: float, bounds: tuple[float, ...]) -> int:
    """Index of the histogram bucket holding ``value_ms`` (bounds are inclusive upper edges)."""
    lo, hi = 0, len(bounds)
    while lo < hi:
        mid = (lo + hi) // 2
        if value_ms <= bounds[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass
class UnitRecord:
    """One randomisation unit's totals since a point in time (for unit-level statistics)."""

    unit_id: str
    flag: str
    arm: Arm
    route: str
    segment: dict[str, str]
    first_seen: float  # simulated/epoch seconds
    requests: int = 0
    successes: int = 0
    exposures: int = 0
    outcomes: int = 0
    resolved: int = 0
    escalated: int = 0
    corrected: int = 0
    complaints: int = 0
    errors: int = 0
    rate_limited: int = 0
    timeouts: int = 0
    fallbacks: int = 0
    slo_met: int = 0
    cost_usd: float = 0.0
    #: exposures older than the maturation window, and outcomes joined to those
    mature_exposures: int = 0
    mature_outcomes: int = 0
    #: the unit was seen on both arms of the flag (crossover)
    crossed: bool = False
    #: the unit's requests per latency / time-to-first-token bucket (None: the source does not say)
    latency_hist: list[int] | None = None
    ttft_hist: list[int] | None = None


@dataclass
class TimeBucket:
    start: float
    end: float
    counters: dict[RouteKey, RouteCounters] = field(default_factory=dict)


@dataclass
class SegmentRequests:
    """Requests of one route of a flag from units with the same segment attributes (request-level sources)."""

    flag: str
    route: str
    segment: dict[str, str]
    requests: int = 0
    errors: int = 0
    fallbacks: int = 0


@dataclass
class UnitGroup:
    """New units of one route key that share the same attributes, from a source without per-unit records.

    ``segment`` holds the attributes the source splits units by (segment and targeting attributes),
    so the rule's comparable-unit predicate applies to a group as it does to a unit. ``crossed`` is
    None when the source does not count units seen on more than one arm.
    """

    key: RouteKey
    segment: dict[str, str]
    units: int
    crossed: int | None = None
    #: the rollout stage the application saw when it counted these units ("" when not labelled)
    stage: str = ""


@dataclass
class MetricsSnapshot:
    """What a metrics source returns for one window.

    ``buckets`` are consecutive and cover the window; ``totals`` is their sum.
    ``as_of`` is the time of the newest data (the header shows its age).
    """

    start: float
    end: float
    as_of: float
    buckets: list[TimeBucket]
    totals: dict[RouteKey, RouteCounters]
    #: requests served by a route because another route fell back to it: (flag, route) -> n
    fallback_served: dict[tuple[str, str], int] = field(default_factory=dict)
    #: what the source could not provide, in words (shown, never treated as zero)
    gaps: list[str] = field(default_factory=list)
    #: the window's new units split by attributes (request-level sources; None when not available)
    unit_groups: list[UnitGroup] | None = None

    @staticmethod
    def total_of(buckets: list[TimeBucket]) -> dict[RouteKey, RouteCounters]:
        totals: dict[RouteKey, RouteCounters] = {}
        for b in buckets:
            for key, c in b.counters.items():
                totals.setdefault(key, RouteCounters()).add(c)
        return totals


@dataclass(frozen=True)
class SourceCapabilities:
    """What a metrics source can give; the verdict says when it works at request level."""

    unit_level: bool
    segments: tuple[str, ...] = ()
    provider_breakdown: bool = True
    #: attributes a request-level source splits unit counts by (``MetricsSnapshot.unit_groups``)
    unit_attributes: tuple[str, ...] = ()
    #: requests, failures and fallbacks per segment without unit records (``read_segment_requests``)
    segment_requests: bool = False


def utc_from_ts(ts: float) -> datetime:
    from datetime import timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc)
