"""routedeck's event format: the names of the fields an application writes, once, for every writer and reader.

Three kinds of record, told apart by ``event.name``, each one flat JSON object with dotted keys
(docs/events.md, docs/events.schema.json):

- an **exposure** (``feature_flag.evaluation``): a unit was evaluated for a flag and got a variant;
- a **call** (``routedeck.call``): one request the application answered (or failed to) on a route;
- an **outcome** (``routedeck.outcome``): the business result of one request, arriving later.

Names follow OpenTelemetry's semantic conventions where one exists (feature flags, GenAI, errors);
the rest carry a ``routedeck.`` prefix and are fixed here. The simulator writes these records, the
application helper writes them, the events source reads them: all three import this module.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

# ---- every record ----------------------------------------------------------------------------
TIME = "time"  # RFC 3339 with a zone, e.g. 2026-12-07T10:15:02.125Z
EVENT = "event.name"
FLAG = "feature_flag.key"
UNIT = "feature_flag.context.id"  # the randomisation unit (the targeting key), pseudonymised or not

EXPOSURE = "feature_flag.evaluation"
CALL = "routedeck.call"
OUTCOME = "routedeck.outcome"
KINDS = (EXPOSURE, CALL, OUTCOME)

# ---- exposure ----------------------------------------------------------------------------------
VARIANT = "feature_flag.result.variant"
PROVIDER_NAME = "feature_flag.provider.name"  # optional: which flag platform answered
#: evaluation attributes (targeting and segments) travel as ``context.<name>`` string fields
CONTEXT_PREFIX = "context."

# ---- call ----------------------------------------------------------------------------------------
REQUEST_ID = "routedeck.request.id"  # links a call to its outcome; unique per request
ROUTE = "routedeck.route"  # the route the variant assigned (cost is counted here)
GEN_AI_PROVIDER = "gen_ai.provider.name"
GEN_AI_MODEL = "gen_ai.request.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
DURATION_MS = "routedeck.duration_ms"  # the whole request as the user saw it, fallback included
TTFC_MS = "routedeck.time_to_first_chunk_ms"  # optional: streamed answers only
ERROR_TYPE = "error.type"  # absent (or null) when the assigned route's call succeeded
COST_USD = "routedeck.cost_usd"  # optional: the request's cost, fallback included
FALLBACK_ROUTE = "routedeck.fallback.route"  # absent when no fallback was taken
FALLBACK_ERROR = "routedeck.fallback.error.type"  # absent when the fallback answered

# ---- outcome -------------------------------------------------------------------------------------
RESOLVED = "routedeck.outcome.resolved"  # true: resolved without escalation; false: escalated
CORRECTED = "routedeck.outcome.corrected"  # optional, default false
COMPLAINT = "routedeck.outcome.complaint"  # optional, default false

#: required fields of each kind, with the JSON type each must have
REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    EXPOSURE: {TIME: str, EVENT: str, FLAG: str, UNIT: str, VARIANT: str},
    CALL: {TIME: str, EVENT: str, FLAG: str, UNIT: str, VARIANT: str, REQUEST_ID: str, ROUTE: str,
           DURATION_MS: (int, float)},
    OUTCOME: {TIME: str, EVENT: str, FLAG: str, UNIT: str, REQUEST_ID: str, RESOLVED: bool},
}
#: optional fields with their JSON type (null is always allowed for an optional field)
OPTIONAL: dict[str, type | tuple[type, ...]] = {
    REQUEST_ID: str, PROVIDER_NAME: str, GEN_AI_PROVIDER: str, GEN_AI_MODEL: str, INPUT_TOKENS: int, OUTPUT_TOKENS: int,
    TTFC_MS: (int, float), ERROR_TYPE: str, COST_USD: (int, float), FALLBACK_ROUTE: str, FALLBACK_ERROR: str,
    CORRECTED: bool, COMPLAINT: bool,
}
#: ``error.type`` values routedeck counts apart (any other non-empty value is a plain error)
ERROR_RATE_LIMITED = "429"
ERROR_TIMEOUT = "timeout"


def rfc3339(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds (``2026-12-07T10:15:02.125Z``)."""
    moment = datetime.fromtimestamp(round(ts, 3), tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> float:
    """RFC 3339 (``Z`` or an offset; a zone is required) → epoch seconds; ValueError otherwise."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment.timestamp()


def problem(record: Any) -> str | None:
    """Why ``record`` is not a valid event (naming the field, never its value), or None when it is."""
    if not isinstance(record, dict):
        return "not a JSON object"
    kind = record.get(EVENT)
    if kind not in REQUIRED:
        return f"field {EVENT!r} missing or not one of {', '.join(KINDS)}"
    for name, kinds in REQUIRED[kind].items():
        value = record.get(name)
        if value is None:
            return f"{kind} record without required field {name!r}"
        if not _is(value, kinds):
            return f"field {name!r} has the wrong type (expected {_type_name(kinds)})"
    for name, kinds in OPTIONAL.items():
        value = record.get(name)
        if value is not None and not _is(value, kinds):
            return f"field {name!r} has the wrong type (expected {_type_name(kinds)})"
    try:
        parse_time(record[TIME])
    except ValueError:
        return f"field {TIME!r} is not an RFC 3339 time with a zone"
    if kind == CALL and not math.isfinite(float(record[DURATION_MS])):
        return f"field {DURATION_MS!r} is not a finite number"
    return None


def _is(value: Any, kinds: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        return False  # JSON true is not a number here
    return isinstance(value, kinds)


def _type_name(kinds: type | tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    seq = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in seq))
