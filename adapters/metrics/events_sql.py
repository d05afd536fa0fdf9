"""The unit-level aggregate over routedeck's event records, written once for DuckDB and ClickHouse.

Both engines see the records as one relation of normalised columns (``kind`` 0 exposure, 1 call,
2 outcome; ``t`` epoch seconds; …). A look is three GROUP BYs and no join of large tables:

1. per request id: its call and its outcome merged (an outcome counts once it arrived, ``t <= now``,
   and only for a call made in the window; duplicates of a record count once);
2. per unit: the unit's totals, its arm (the arm of its first call in the window), whether it was
   seen on both arms, and its pre-exposure attributes (from its first exposure record);
3. per arm and attribute group (``summary_sql``): units, Σx, Σx², Σx·y and units with x > 0 for
   every unit column — a few rows whatever the traffic — or the unit rows themselves (``units_sql``).

Only the functions that differ between the dialects (argMin, boolean sums, attribute lookup) are
chosen per dialect; the shape is the same, so the ClickHouse server, chDB and DuckDB answer alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import Any

from console.core import event_format as ef
from console.core.stats.summary import COLUMNS, HISTOGRAMS, PAIRS, ArmSummary, GroupSummary
from console.core.telemetry import LATENCY_BOUNDS_MS, TTFT_BOUNDS_MS, Arm

#: the per-unit columns (the names of ``UnitRecord``'s counters, the summary's columns)
UNIT_COLUMNS: tuple[str, ...] = COLUMNS
#: pairs whose per-unit products the unit-level ratios need (numerator, denominator of the registry)
PRODUCTS: tuple[tuple[str, str], ...] = PAIRS
#: per-unit cumulative histogram columns: ``lc_i`` = the unit's requests with duration ≤ the i-th latency
#: bound (the last: all of them), ``tc_i`` the same for time to first chunk
HIST_COLUMNS: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "latency_hist": ("lc", "lat", LATENCY_BOUNDS_MS),
    "ttft_hist": ("tc", "ttf", TTFT_BOUNDS_MS),
}
assert {k: v[2] for k, v in HIST_COLUMNS.items()} == HISTOGRAMS
ARM_CODES = {"baseline": 0, "candidate": 1, "other": 2}


@dataclass(frozen=True)
class Dialect:
    name: str
    arg_min: str  # argMin(value, by)
    attr: str  # how to read attribute {name} of the attribute column {col}
    left_join: str  # a left join keeping one match per key
    inner_join: str = "JOIN"  # an inner join on a key unique on the right

    def attribute(self, column: str, name: str) -> str:
        return self.attr.format(col=column, name=self.quote(name))

    def quote(self, text: str) -> str:
        """A string literal: quotes doubled; ClickHouse also reads backslash escapes, so those are doubled there."""
        if self.name == "clickhouse":
            text = text.replace("\\", "\\\\")
        return "'" + text.replace("'", "''") + "'"


DUCKDB = Dialect("duckdb", "arg_min({v}, {by})", "coalesce({col}[{name}], '')", "LEFT JOIN")
#: ClickHouse 18.16 has no Map: attributes are parallel arrays context.name / context.value
CLICKHOUSE = Dialect("clickhouse", "argMin({v}, {by})", "{col}.value[indexOf({col}.name, {name})]", "ANY LEFT JOIN",
                     "ANY INNER JOIN")


#: today's ClickHouse (and chDB) with attributes in a Map column: the OpenTelemetry collector's schema
CLICKHOUSE_MAP = Dialect("clickhouse", "argMin({v}, {by})", "{col}[{name}]", "ANY LEFT JOIN", "ANY INNER JOIN")

#: the span event and span name routedeck reads in the OpenTelemetry collector's ``otel_traces`` table
OTEL_EXPOSURE_EVENT = ef.EXPOSURE  # OpenFeature's tracing hook records each evaluation as this span event
OTEL_OUTCOME = ef.OUTCOME  # a span, or a span event, with the outcome's attributes


def otel_traces_relation(table: str) -> str:
    """The OpenTelemetry collector's ClickHouse trace table (``otel_traces``: ``SpanAttributes`` and
    ``Events.Attributes`` are Maps) as the normalised relation the queries read, without copying it:

    - a **call** is a span carrying ``feature_flag.key`` and ``routedeck.request.id`` (the request span the
      application marks; ``Duration`` is its duration, ``gen_ai.*`` and ``error.type`` its GenAI attributes,
      ``gen_ai.response.time_to_first_chunk`` in seconds or ``routedeck.time_to_first_chunk_ms``);
    - an **exposure** is a span event named ``feature_flag.evaluation`` (what OpenFeature's tracing hook
      records), its ``context.<name>`` attributes the unit's evaluation attributes;
    - an **outcome** is a span or a span event named ``routedeck.outcome``.

    Attribute names are those of docs/events.md; a Map lookup of a missing key gives "", read as absent.
    Needs ClickHouse with Map (21.1 or later) or chDB; the 18.16 server reads the routedeck table instead."""

    def text(m: str, key: str) -> str:
        return f"CAST(nullIf({m}[{CLICKHOUSE_MAP.quote(key)}], '') AS Nullable(String))"

    def number(m: str, key: str) -> str:
        return f"CAST(toFloat64OrNull({m}[{CLICKHOUSE_MAP.quote(key)}]) AS Nullable(Float64))"

    def flag(m: str, key: str) -> str:
        k = CLICKHOUSE_MAP.quote(key)
        return f"CAST(multiIf({m}[{k}] = 'true', 1, {m}[{k}] = 'false', 0, NULL) AS Nullable(UInt8))"

    def common(m: str, t: str, kind: int) -> str:
        return (f"CAST({kind} AS UInt8) AS kind, toUnixTimestamp64Nano({t}) / 1e9 AS t, "
                f"toString({m}[{CLICKHOUSE_MAP.quote(ef.FLAG)}]) AS flag, "
                f"toString({m}[{CLICKHOUSE_MAP.quote(ef.UNIT)}]) AS unit, {text(m, ef.VARIANT)} AS variant, "
                f"{text(m, ef.REQUEST_ID)} AS rid")

    none_s = "CAST(NULL AS Nullable(String))"
    none_f = "CAST(NULL AS Nullable(Float64))"
    none_b = "CAST(NULL AS Nullable(UInt8))"
    no_context = "CAST(map() AS Map(String, String))"
    prefix = CLICKHOUSE_MAP.quote(ef.CONTEXT_PREFIX)
    context = (f"CAST(mapApply((k, v) -> (substring(k, {len(ef.CONTEXT_PREFIX) + 1}), v), "
               f"mapFilter((k, v) -> startsWith(k, {prefix}), ea)) AS Map(String, String))")
    s = "SpanAttributes"
    ttfc = (f"coalesce({number(s, 'gen_ai.response.time_to_first_chunk')} * 1000, {number(s, ef.TTFC_MS)})")
    calls = f"""
      SELECT {common(s, 'Timestamp', 1)}, {text(s, ef.ROUTE)} AS route, {text(s, ef.GEN_AI_PROVIDER)} AS provider,
        {text(s, ef.GEN_AI_MODEL)} AS model, {number(s, ef.INPUT_TOKENS)} AS tin, {number(s, ef.OUTPUT_TOKENS)} AS tout,
        CAST(Duration / 1e6 AS Nullable(Float64)) AS dur, {ttfc} AS ttfc, {text(s, ef.ERROR_TYPE)} AS err,
        {number(s, ef.COST_USD)} AS cost, {text(s, ef.FALLBACK_ROUTE)} AS fb_route,
        {text(s, ef.FALLBACK_ERROR)} AS fb_err, {none_b} AS resolved, {none_b} AS corrected, {none_b} AS complaint,
        {no_context} AS context
      FROM {table}
      WHERE SpanName != {CLICKHOUSE_MAP.quote(OTEL_OUTCOME)} AND {s}[{CLICKHOUSE_MAP.quote(ef.FLAG)}] != ''
        AND {s}[{CLICKHOUSE_MAP.quote(ef.REQUEST_ID)}] != ''"""

    def outcome(m: str, t: str) -> str:
        return (f"{common(m, t, 2)}, {none_s} AS route, {none_s} AS provider, {none_s} AS model, {none_f} AS tin, "
                f"{none_f} AS tout, {none_f} AS dur, {none_f} AS ttfc, {none_s} AS err, {none_f} AS cost, "
                f"{none_s} AS fb_route, {none_s} AS fb_err, {flag(m, ef.RESOLVED)} AS resolved, "
                f"{flag(m, ef.CORRECTED)} AS corrected, {flag(m, ef.COMPLAINT)} AS complaint, {no_context} AS context")

    events = f"{table} ARRAY JOIN Events.Timestamp AS et, Events.Name AS en, Events.Attributes AS ea"
    exposures = f"""
      SELECT {common('ea', 'et', 0)}, {none_s} AS route, {none_s} AS provider, {none_s} AS model, {none_f} AS tin,
        {none_f} AS tout, {none_f} AS dur, {none_f} AS ttfc, {none_s} AS err, {none_f} AS cost, {none_s} AS fb_route,
        {none_s} AS fb_err, {none_b} AS resolved, {none_b} AS corrected, {none_b} AS complaint, {context} AS context
      FROM {events} WHERE en = {CLICKHOUSE_MAP.quote(OTEL_EXPOSURE_EVENT)}"""
    outcome_spans = f"""
      SELECT {outcome(s, 'Timestamp')} FROM {table} WHERE SpanName = {CLICKHOUSE_MAP.quote(OTEL_OUTCOME)}"""
    outcome_events = f"""
      SELECT {outcome('ea', 'et')} FROM {events} WHERE en = {CLICKHOUSE_MAP.quote(OTEL_OUTCOME)}"""
    return f"({' UNION ALL '.join([calls, exposures, outcome_spans, outcome_events])}) AS otel_events"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _number(x: float) -> str:
    return repr(float(x))


def arms_values(d: Dialect, arms: dict[str, str], column: str = "variant") -> str:
    """A CASE mapping a variant name to its arm code (``arms``: variant → "baseline"/"candidate")."""
    if not arms:
        return "2"
    whens = " ".join(f"WHEN {d.quote(v)} THEN {ARM_CODES[a]}" for v, a in sorted(arms.items()))
    return f"(CASE {column} {whens} ELSE 2 END)"


SUCCESS = "(err IS NULL OR (fb_route IS NOT NULL AND fb_err IS NULL))"


def request_fields(slo_ms: float) -> list[tuple[str, str]]:
    """A request's columns merged over its records (``GROUP BY rid``): its call's fields and its outcome's.

    A duplicate of a record counts once (every merge is a max)."""
    return [
        ("unit", "max(CASE WHEN kind = 1 THEN unit END)"),
        ("t_call", "max(CASE WHEN kind = 1 THEN t END)"),
        ("variant", "max(CASE WHEN kind = 1 THEN variant END)"),
        ("route", "max(CASE WHEN kind = 1 THEN route END)"),
        ("has_call", "max(CASE WHEN kind = 1 THEN 1 ELSE 0 END)"),
        ("ok", f"max(CASE WHEN kind = 1 AND {SUCCESS} THEN 1 ELSE 0 END)"),
        ("failed", "max(CASE WHEN kind = 1 AND err IS NOT NULL THEN 1 ELSE 0 END)"),
        ("limited", "max(CASE WHEN kind = 1 AND err = '429' THEN 1 ELSE 0 END)"),
        ("timed_out", "max(CASE WHEN kind = 1 AND err = 'timeout' THEN 1 ELSE 0 END)"),
        ("fell_back", "max(CASE WHEN kind = 1 AND fb_route IS NOT NULL THEN 1 ELSE 0 END)"),
        ("in_slo", f"max(CASE WHEN kind = 1 AND {SUCCESS} AND dur <= {_number(slo_ms)} THEN 1 ELSE 0 END)"),
        ("cost", "max(CASE WHEN kind = 1 THEN coalesce(cost, 0) ELSE 0 END)"),
        ("lat", "max(CASE WHEN kind = 1 THEN dur END)"),
        ("ttf", "max(CASE WHEN kind = 1 THEN coalesce(ttfc, dur) END)"),
        ("has_out", "max(CASE WHEN kind = 2 THEN 1 ELSE 0 END)"),
        ("res", "max(CASE WHEN kind = 2 AND resolved THEN 1 ELSE 0 END)"),
        ("corr", "max(CASE WHEN kind = 2 AND corrected THEN 1 ELSE 0 END)"),
        ("compl", "max(CASE WHEN kind = 2 AND complaint THEN 1 ELSE 0 END)"),
    ]


def hist_columns() -> list[tuple[str, str]]:
    """(column, expression over a request) for every per-unit cumulative histogram column."""
    out = []
    for prefix, value, bounds in HIST_COLUMNS.values():
        for i, bound in enumerate(bounds):
            out.append((f"{prefix}_{i}", f"(CASE WHEN {value} <= {_number(bound)} THEN 1 ELSE 0 END)"))
        out.append((f"{prefix}_{len(bounds)}", "1"))
    return out


def unit_terms(cut: float) -> list[tuple[str, str]]:
    """(unit column, what one request with a call adds to it) — the unit's totals are their sums.

    ``cut``: a request made at or before it is matured (its exposure has had the join window)."""
    mature = f"(CASE WHEN t_call <= {_number(cut)} THEN 1 ELSE 0 END)"
    terms = [
        ("requests", "1"), ("successes", "ok"), ("exposures", "1"), ("outcomes", "has_out"),
        ("resolved", "has_out * res"), ("escalated", "has_out * (1 - res)"), ("corrected", "has_out * corr"),
        ("complaints", "has_out * compl"), ("errors", "failed"), ("rate_limited", "limited"),
        ("timeouts", "timed_out"), ("fallbacks", "fell_back"), ("slo_met", "in_slo"), ("cost_usd", "cost"),
        ("mature_exposures", mature), ("mature_outcomes", f"{mature} * has_out"),
    ]
    assert tuple(name for name, _ in terms) == UNIT_COLUMNS
    return terms + hist_columns()


def requests_sql(table: str, flag: str, since: float, now: float, slo_ms: float, d: Dialect) -> str:
    """One row per request of ``flag`` with a call in [since, now]: ``request_fields``."""
    fields = ",\n      ".join(f"{expr} AS {name}" for name, expr in request_fields(slo_ms))
    return f"""
    SELECT rid,
      {fields}
    FROM {table}
    WHERE flag = {d.quote(flag)} AND kind IN (1, 2) AND t >= {_number(since)} AND t <= {_number(now)}
    GROUP BY rid
    HAVING max(CASE WHEN kind = 1 THEN 1 ELSE 0 END) = 1"""


def unit_query(d: Dialect, table: str, flag: str, arms: dict[str, str], since: float, now: float,
               maturation_s: float, slo_ms: float, attributes: tuple[str, ...] | None) -> str:
    """One row per unit of ``flag`` with a call in [since, now]: its arm, first call, attributes and totals.

    ``attributes`` names the pre-exposure attributes to return as columns ``a_<i>``; None returns the
    whole attribute column as ``ctx`` (DuckDB only: a map)."""
    am = d.arg_min
    flag_q = d.quote(flag)
    arm = arms_values(d, arms)
    sums = ",\n      ".join(f"sum({expr}) AS {name}" for name, expr in unit_terms(now - maturation_s))
    per_unit = f"""
    SELECT unit,
      {am.format(v=arm, by='t_call')} AS arm,
      {am.format(v='route', by='t_call')} AS route,
      min(t_call) AS first_seen,
      {sums},
      max(CASE WHEN {arm} = 0 THEN 1 ELSE 0 END) * max(CASE WHEN {arm} = 1 THEN 1 ELSE 0 END) AS crossed
    FROM ({requests_sql(table, flag, since, now, slo_ms, d)}) AS r
    GROUP BY unit"""
    if attributes is None:
        ctx_pick = f"{am.format(v='ctx', by='t')} AS ctx"
    else:
        ctx_pick = ", ".join(
            f"{am.format(v=d.attribute('ctx' if d is DUCKDB else 'context', name), by='t')} AS a_{i}"
            for i, name in enumerate(attributes)) or "1 AS no_attributes"
    exposures = f"""
    SELECT unit, {ctx_pick}
    FROM {table}
    WHERE flag = {flag_q} AND kind = 0 AND t >= {_number(since)} AND t <= {_number(now)}
    GROUP BY unit"""
    return f"""
    SELECT *
    FROM ({per_unit}) AS u
    {d.left_join} ({exposures}) AS x USING (unit)"""


def summary_aggregates() -> list[str]:
    """The aggregates over unit rows that make a summary (see ``group_summary``)."""
    out = ["count(*) AS units", "sum(crossed) AS crossed"]
    for col in UNIT_COLUMNS:
        out.append(f"sum({col}) AS s_{col}")
        out.append(f"sum({col} * {col}) AS q_{col}")
        out.append(f"sum(CASE WHEN {col} > 0 THEN 1 ELSE 0 END) AS z_{col}")
    for a, b in PRODUCTS:
        out.append(f"sum({a} * {b}) AS p_{a}__{b}")
    for prefix, _, bounds in HIST_COLUMNS.values():
        last = f"{prefix}_{len(bounds)}"
        for i in range(len(bounds) + 1):
            c = f"{prefix}_{i}"
            out.append(f"sum({c}) AS h_{c}")
            out.append(f"sum({c} * {c}) AS hq_{c}")
            out.append(f"sum({c} * {last}) AS hp_{c}")
    return out


def summary_of_units(units_sql: str, n_attributes: int) -> str:
    """Per (arm, attribute values) over the unit rows of ``units_sql`` (columns arm, a_0…, the unit columns)."""
    attrs = [f"coalesce(a_{i}, '') AS a_{i}" for i in range(n_attributes)]
    group = ["arm"] + [f"a_{i}" for i in range(n_attributes)]
    return f"""
    SELECT {', '.join(group)}, {', '.join(summary_aggregates())}
    FROM (SELECT arm, {', '.join(attrs + [c for c, _ in unit_terms(0)] + ['crossed'])} FROM ({units_sql}) AS w) AS units_
    GROUP BY {', '.join(group)}
    ORDER BY {', '.join(group)}"""


def summary_sql(d: Dialect, table: str, flag: str, arms: dict[str, str], since: float, now: float,
                maturation_s: float, slo_ms: float, attributes: tuple[str, ...]) -> str:
    """Per (arm, attribute values): units, crossed units, and Σx, Σx², units with x > 0 for every unit
    column, Σx·y for ``PRODUCTS`` and the per-unit histogram sums — the sufficient statistics of every
    unit-level metric, a few rows whatever the traffic."""
    return summary_of_units(unit_query(d, table, flag, arms, since, now, maturation_s, slo_ms, attributes),
                            len(attributes))


_ARMS = {code: Arm(name) for name, code in ARM_CODES.items()}


def group_summary(row: dict[str, Any], attributes: tuple[str, ...]) -> GroupSummary:
    """One row of ``summary_sql`` as the statistics engine's per-arm summary (attributes with an empty
    value are left out, as ``group_units`` does)."""

    def num(key: str) -> float:
        value = row.get(key)
        return float(value) if value is not None else 0.0

    s = ArmSummary(units=int(num("units")), crossed=int(num("crossed")))
    for col in UNIT_COLUMNS:
        s.sums[col] = num(f"s_{col}")
        s.squares[col] = num(f"q_{col}")
        s.nonzero[col] = int(num(f"z_{col}"))
    for a, b in PRODUCTS:
        s.products[(a, b)] = num(f"p_{a}__{b}")
    for name, (prefix, _, bounds) in HIST_COLUMNS.items():
        cum = [num(f"h_{prefix}_{i}") for i in range(len(bounds) + 1)]
        s.hist[name] = [int(round(c - (cum[i - 1] if i else 0.0))) for i, c in enumerate(cum)]
        s.hist_squares[name] = [num(f"hq_{prefix}_{i}") for i in range(len(bounds) + 1)]
        s.hist_products[name] = [num(f"hp_{prefix}_{i}") for i in range(len(bounds) + 1)]
    values = [row.get(f"a_{i}") for i in range(len(attributes))]
    attrs = {a: str(v) for a, v in zip(attributes, values) if v not in (None, "")}
    return GroupSummary(_ARMS[int(num("arm"))], attrs, "", s)


def latency_bucket(column: str) -> str:
    """The index of the latency histogram bucket holding ``column`` (bounds are inclusive upper edges)."""
    return " + ".join(f"(CASE WHEN {column} > {_number(b)} THEN 1 ELSE 0 END)" for b in LATENCY_BOUNDS_MS)
