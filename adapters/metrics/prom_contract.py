"""The metric contract between an instrumented application and routedeck's Prometheus source.

One module holds the names, labels and bucket bounds, so the exporter (what an application
emits) and the source (what routedeck queries) cannot drift apart. Where OpenTelemetry's GenAI
semantic conventions define a metric, its name is used with Prometheus' mapping (dots become
underscores, the unit becomes a suffix); routedeck's own route-level counters fill the rest.
``docs/backends.md`` documents the same contract for people.
"""

from __future__ import annotations

from console.core.telemetry import LATENCY_BOUNDS_MS, TTFT_BOUNDS_MS

# ---- labels -------------------------------------------------------------------------------

#: OpenTelemetry's feature-flag attributes, Prometheus-spelled: the application adds them to its GenAI
#: metrics (the flag key and the variant the unit got); routedeck maps the variant to its route and arm
#: with the flag platform, so no routedeck-specific label is needed on the GenAI metrics
FLAG = "feature_flag_key"
VARIANT = "feature_flag_result_variant"
#: the labels the source groups every family by
GROUP_LABELS: tuple[str, ...] = (FLAG, VARIANT)
#: the rollout stage the application saw (routedeck's unit counters only)
STAGE = "stage"
#: segment attributes of the randomisation unit (optional everywhere; "" when absent)
SEGMENT_LABELS: tuple[str, ...] = ("plan", "region", "workflow")
#: the targeting attributes the application sent to the flag platform with the unit ("" when it sent
#: none): the default first audience is ``audience == NAME`` and the default eligible scope ``scope == NAME``
TARGETING_LABELS: tuple[str, ...] = ("audience", "scope")
#: the attributes unit counts are split by, so that a request-level source can still tell the units a
#: rule may compare (in the eligible scope, outside the first audience and any excluded segment)
UNIT_ATTRIBUTE_LABELS: tuple[str, ...] = SEGMENT_LABELS + TARGETING_LABELS
#: what the reference exporter puts on every series
ROUTE_LABELS: tuple[str, ...] = GROUP_LABELS + SEGMENT_LABELS

# OpenTelemetry GenAI attributes, Prometheus-spelled
OPERATION = "gen_ai_operation_name"
PROVIDER = "gen_ai_provider_name"
MODEL = "gen_ai_request_model"
TOKEN_TYPE = "gen_ai_token_type"  # "input" | "output"
ERROR_TYPE = "error_type"  # empty (absent) on success: OTel sets error.type only when the operation failed

# ---- OpenTelemetry GenAI client metrics, as the collector's Prometheus exporter names them -------

#: gen_ai.client.operation.duration (s), one observation per user-facing request
DURATION = "gen_ai_client_operation_duration_seconds"
DURATION_LABELS = ROUTE_LABELS + (OPERATION, PROVIDER, MODEL, ERROR_TYPE)
#: gen_ai.client.token.usage ({token}: a unit in braces gives no suffix), one observation per call and token type
TOKEN_USAGE = "gen_ai_client_token_usage"
TOKEN_USAGE_LABELS = ROUTE_LABELS + (OPERATION, PROVIDER, MODEL, TOKEN_TYPE)
#: gen_ai.client.operation.time_to_first_chunk (s): the application's own view of a streamed answer's first
#: chunk (gen_ai.server.time_to_first_token is a model server's metric, not the application's)
TTFT = "gen_ai_client_operation_time_to_first_chunk_seconds"
TTFT_LABELS = ROUTE_LABELS + (OPERATION, PROVIDER, MODEL)
#: OpenTelemetry's advisory bucket bounds for gen_ai.client.operation.duration (seconds): what an
#: application that sets no View gets. There is no bound at 2.5 s (1.28, then 2.56).
OTEL_DURATION_BUCKETS_S: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                                              20.48, 40.96, 81.92)

# ---- routedeck's counters: what OpenTelemetry has no convention for (the client adds _total) ------

UNITS = "routedeck_units_total"  # first request of a unit on (flag, variant) in a stage, in one process
#: a unit seen on a second variant of a flag in a stage, counted once on each variant it was seen on. Created
#: at zero beside every units series, so an absent series means "not exported", never "no crossover"
CROSSED_UNITS = "routedeck_crossed_units_total"
UNIT_LABELS = GROUP_LABELS + (STAGE,) + UNIT_ATTRIBUTE_LABELS
#: requests by the assigned call's result (more exact than the duration histogram's count, which counts a
#: request a fallback answered as a success); optional — without it the duration histogram's count is read
REQUESTS = "routedeck_requests_total"
REQUESTS_LABELS = ROUTE_LABELS + (PROVIDER, MODEL, ERROR_TYPE)
FALLBACKS = "routedeck_fallbacks_total"
FALLBACKS_LABELS = ROUTE_LABELS + ("served_route",)
#: every outcome the application recorded, by kind
OUTCOMES = "routedeck_outcomes_total"
#: outcomes joined to their exposure by unit id, by kind (the guardrails use these)
JOINED_OUTCOMES = "routedeck_joined_outcomes_total"
OUTCOME_LABELS = ROUTE_LABELS + ("kind",)
EXPOSURES = "routedeck_exposures_total"
COST = "routedeck_cost_usd_total"
#: the sum of each request's cost squared (USD²): with the cost counter it gives the spread of the cost of
#: a request, which the cost guardrails' intervals need when the source has no per-unit records
COST_SQUARED = "routedeck_cost_usd_squared_total"
PLAIN_LABELS = ROUTE_LABELS

#: values of ``error_type`` routedeck counts apart ("" is success; any other value is an error)
STATUS_OK = ""
STATUS_RATE_LIMITED = "429"
STATUS_TIMEOUT = "timeout"
STATUS_MALFORMED = "malformed"
STATUS_POLICY_BLOCK = "policy_block"
#: values of ``kind`` on the outcome counters; resolved and escalated are exclusive, the others flags
OUTCOME_KINDS: tuple[str, ...] = ("resolved", "escalated", "corrected", "complaint")

#: every name above a profile may map to its own (``prometheus_names``): metric names and label names
MAPPABLE_NAMES: tuple[str, ...] = (
    DURATION, TOKEN_USAGE, TTFT, UNITS, CROSSED_UNITS, REQUESTS, FALLBACKS, OUTCOMES, JOINED_OUTCOMES, EXPOSURES,
    COST, COST_SQUARED, FLAG, VARIANT, STAGE, *SEGMENT_LABELS, *TARGETING_LABELS, OPERATION, PROVIDER, MODEL,
    TOKEN_TYPE, ERROR_TYPE, "served_route", "kind",
)

# ---- histogram buckets (seconds) ----------------------------------------------------------

#: a bound at every latency SLO threshold routedeck offers, so attainment is exact
DURATION_BUCKETS_S: tuple[float, ...] = tuple(ms / 1000 for ms in LATENCY_BOUNDS_MS)
TTFT_BUCKETS_S: tuple[float, ...] = tuple(ms / 1000 for ms in TTFT_BOUNDS_MS)
#: token counts per call
TOKEN_BUCKETS: tuple[float, ...] = (16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


def le_to_ms(le: str) -> float:
    """A Prometheus ``le`` label (seconds, may be "+Inf") as milliseconds."""
    return float(le) * 1000.0
