"""The metric registry: every metric a decision rule or a panel may name.

Each metric is a ratio of two additive counters (``numerator`` / ``denominator``) that exist
both on ``RouteCounters`` (request level) and on ``UnitRecord`` (unit level), except the
quantiles, which are read from histograms. ``kind`` decides how a metric is tested — the engine
never guesses it from the values it sees.

The default margins (``default_margin`` / ``default_margin_kind``, with tighter or wider ones per
stage in ``stage_margins``) and the internal stage's absolute limits (``internal_limit``) are the
shipped defaults justified by the power table in docs/rules.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import BadInput


class MetricKind(str, Enum):
    PROPORTION = "proportion"  # events / requests (or outcomes)
    RATIO = "ratio"  # sum / sum, e.g. cost per resolved task (delta method)
    MEAN = "mean"  # per-request mean, e.g. cost per request
    QUANTILE = "quantile"  # from a histogram; a point estimate, never a decision on its own


class Direction(str, Enum):
    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    kind: MetricKind
    direction: Direction
    unit: str
    aliases: tuple[str, ...] = ()
    numerator: str | None = None
    denominator: str | None = None
    quantile: float | None = None
    histogram: str | None = None  # "latency_hist" or "ttft_hist"
    #: default guardrail: harm when worse than baseline by more than this (absolute, in `unit`)
    default_margin: float | None = None
    #: default panel warning line (absolute, in `unit`); None = no mark
    warn_above: float | None = None
    warn_below: float | None = None
    #: burn-in: expected events on each arm before a share can be judged non-inferior (0: the engine's default)
    min_events: int = 0
    description: str = ""
    #: "absolute" (in ``unit``) or "relative" (a fraction of the baseline's value)
    default_margin_kind: str = "absolute"
    #: the default margin at named stages (others use ``default_margin``)
    stage_margins: tuple[tuple[str, float], ...] = ()
    #: the absolute limit at the internal stage, where there is no concurrent control (None: compared with
    #: every eligible baseline unit instead)
    internal_limit: float | None = None
    #: what harm does by default: "rollback", "hold" or "warn"
    default_trigger: str = "rollback"

    @property
    def worse_is_higher(self) -> bool:
        return self.direction is Direction.LOWER_IS_BETTER


#: rare events (~1% rates): what an early stage can judge in its dwell is a wide margin; it tightens as the
#: candidate serves more (the power table in docs/rules.md)
RARE_EVENT_STAGES: tuple[tuple[str, float], ...] = (("5%", 3.0), ("20%", 1.5))
#: shares around 70–90% (resolution, SLO attainment, corrections): five points at 5%, three from 20% on
SHARE_STAGES: tuple[tuple[str, float], ...] = (("5%", 0.05),)


def _m(**kw) -> Metric:
    return Metric(**kw)


METRICS: tuple[Metric, ...] = (
    _m(name="resolved_without_escalation", label="resolved", kind=MetricKind.PROPORTION,
       direction=Direction.HIGHER_IS_BETTER, unit="share",
       aliases=("resolved_rate", "resolution_rate", "success_rate", "quality"),
       numerator="resolved", denominator="outcomes", default_margin=0.03, warn_below=0.6, internal_limit=0.5,
       stage_margins=SHARE_STAGES,
       description="outcomes resolved without a human escalation, per joined outcome"),
    _m(name="cost_per_resolved_case", label="$/resolved", kind=MetricKind.RATIO,
       direction=Direction.LOWER_IS_BETTER, unit="USD",
       aliases=("cost_per_resolved_task", "cost_per_successful_task", "cost_per_success"),
       numerator="cost_usd", denominator="resolved", default_margin=0.25, default_margin_kind="relative",
       default_trigger="hold", internal_limit=0.10,
       description="total cost (fallbacks included) divided by resolved outcomes"),
    _m(name="cost_per_request", label="$/req", kind=MetricKind.MEAN,
       direction=Direction.LOWER_IS_BETTER, unit="USD", aliases=("request_cost",),
       numerator="cost_usd", denominator="requests", default_margin=0.25, default_margin_kind="relative",
       default_trigger="hold", internal_limit=0.05, description="cost per request, fallbacks included"),
    _m(name="correction_rate", label="corrected", kind=MetricKind.PROPORTION,
       direction=Direction.LOWER_IS_BETTER, unit="share", aliases=("corrections",),
       numerator="corrected", denominator="outcomes", default_margin=0.03, warn_above=0.12, internal_limit=0.25,
       stage_margins=SHARE_STAGES,
       description="outcomes a person had to correct"),
    _m(name="complaint_rate", label="complaints", kind=MetricKind.PROPORTION,
       direction=Direction.LOWER_IS_BETTER, unit="share", aliases=("complaints",),
       numerator="complaints", denominator="outcomes", default_margin=1.0, warn_above=0.02,
       default_margin_kind="relative", stage_margins=RARE_EVENT_STAGES, internal_limit=0.1, description="outcomes followed by a complaint"),
    _m(name="fallback_rate", label="fallback", kind=MetricKind.PROPORTION,
       direction=Direction.LOWER_IS_BETTER, unit="share", aliases=("fallback_ratio", "fallbacks"),
       numerator="fallbacks", denominator="requests", default_margin=1.0, warn_above=0.05,
       default_margin_kind="relative", stage_margins=RARE_EVENT_STAGES, internal_limit=0.1,
       description="requests that fell back to the profile's fallback route"),
    _m(name="error_rate", label="errors", kind=MetricKind.PROPORTION,
       direction=Direction.LOWER_IS_BETTER, unit="share",
       aliases=("provider_error_rate", "provider_errors"),
       numerator="errors", denominator="requests", default_margin=1.0, warn_above=0.03,
       default_margin_kind="relative", stage_margins=RARE_EVENT_STAGES, internal_limit=0.1,
       description="requests that failed at the provider (errors, 429s, timeouts)"),
    _m(name="rate_limit_rate", label="429s", kind=MetricKind.PROPORTION,
       direction=Direction.LOWER_IS_BETTER, unit="share", aliases=("429_rate", "throttle_rate"),
       numerator="rate_limited", denominator="requests", default_margin=1.0, warn_above=0.02,
       default_margin_kind="relative", stage_margins=RARE_EVENT_STAGES, internal_limit=0.1, description="requests refused with HTTP 429"),
    _m(name="timeout_rate", label="timeouts", kind=MetricKind.PROPORTION,
       direction=Direction.LOWER_IS_BETTER, unit="share", aliases=("timeouts",),
       numerator="timeouts", denominator="requests", default_margin=1.0, warn_above=0.02,
       default_margin_kind="relative", stage_margins=RARE_EVENT_STAGES, internal_limit=0.1, description="requests that hit the profile's timeout"),
    _m(name="slo_attainment", label="in SLO", kind=MetricKind.PROPORTION,
       direction=Direction.HIGHER_IS_BETTER, unit="share",
       aliases=("latency_slo", "latency_slo_attainment"),
       numerator="slo_met", denominator="requests", default_margin=0.03, internal_limit=0.7,
       stage_margins=SHARE_STAGES,
       description="successful requests answered under the latency SLO (timeouts count as over)"),
    _m(name="join_coverage", label="joined", kind=MetricKind.PROPORTION,
       direction=Direction.HIGHER_IS_BETTER, unit="share", aliases=("outcome_join_rate",),
       numerator="outcomes", denominator="exposures",
       description="exposures whose outcome was joined by unit id"),
    _m(name="p95_latency", label="p95", kind=MetricKind.QUANTILE,
       direction=Direction.LOWER_IS_BETTER, unit="ms", aliases=("latency_p95", "p95"),
       quantile=0.95, histogram="latency_hist", default_margin=0.4, warn_above=4000,
       default_margin_kind="relative", default_trigger="hold",
       description="95th percentile request latency (time-uniform bounds from the histogram's buckets)"),
    _m(name="p50_latency", label="p50", kind=MetricKind.QUANTILE,
       direction=Direction.LOWER_IS_BETTER, unit="ms", aliases=("latency_p50", "median_latency"),
       quantile=0.5, histogram="latency_hist", warn_above=2000, default_margin=0.4, default_margin_kind="relative",
       default_trigger="hold",
       description="median request latency"),
    _m(name="p95_ttft", label="ttft95", kind=MetricKind.QUANTILE,
       direction=Direction.LOWER_IS_BETTER, unit="ms",
       aliases=("p95_time_to_first_token", "time_to_first_token"),
       quantile=0.95, histogram="ttft_hist", warn_above=1500, default_margin=0.4, default_margin_kind="relative",
       default_trigger="hold", internal_limit=1500,
       description="95th percentile time to first token"),
)

_BY_NAME: dict[str, Metric] = {}
for _metric in METRICS:
    for _n in (_metric.name, *_metric.aliases):
        _BY_NAME[_n.lower()] = _metric


def lookup(name: str) -> Metric | None:
    """The metric called ``name`` or one of its aliases (case-insensitive), else None."""
    return _BY_NAME.get(name.strip().lower())


def resolve(name: str, where: str = "") -> Metric:
    """Like ``lookup`` but raises a one-line BadInput naming ``where``."""
    metric = lookup(name)
    if metric is None:
        known = ", ".join(m.name for m in METRICS)
        prefix = f"{where}: " if where else ""
        raise BadInput(f"{prefix}unknown metric {name!r} — known metrics: {known}")
    return metric


def find_in_text(text: str) -> Metric | None:
    """The first registered metric named (by name or alias) inside free text, else None."""
    import re

    words = re.findall(r"[A-Za-z0-9_]+", text.lower())
    for word in words:
        metric = _BY_NAME.get(word)
        if metric is not None and ("_" in word or word == metric.name):
            return metric
    return None
