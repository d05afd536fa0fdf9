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

from console.core.telemetry import LATENCY_BOUNDS_MS

#: the per-unit columns (the names of ``UnitRecord``'s counters)
UNIT_COLUMNS = ("requests", "successes", "exposures", "outcomes", "resolved", "escalated", "corrected",
                "complaints", "errors", "rate_limited", "timeouts", "fallbacks", "slo_met", "cost_usd",
                "mature_exposures", "mature_outcomes")
#: pairs whose per-unit products the unit-level ratios need (numerator, denominator of the registry)
PRODUCTS = (("resolved", "outcomes"), ("corrected", "outcomes"), ("complaints", "outcomes"),
            ("fallbacks", "requests"), ("errors", "requests"), ("rate_limited", "requests"),
            ("timeouts", "requests"), ("slo_met", "requests"), ("cost_usd", "requests"),
            ("cost_usd", "resolved"), ("outcomes", "exposures"), ("mature_outcomes", "mature_exposures"))
ARM_CODES = {"baseline": 0, "candidate": 1, "other": 2}


@dataclass(frozen=True)
class Dialect:
    name: str
    arg_min: str  # argMin(value, by)
    attr: str  # how to read attribute {name} of the attribute column {col}
    left_join: str  # a left join keeping one match per key

    def attribute(self, column: str, name: str) -> str:
        return self.attr.format(col=column, name=self.quote(name))

    def quote(self, text: str) -> str:
        """A string literal: quotes doubled; ClickHouse also reads backslash escapes, so those are doubled there."""
        if self.name == "clickhouse":
            text = text.replace("\\", "\\\\")
        return "'" + text.replace("'", "''") + "'"


DUCKDB = Dialect("duckdb", "arg_min({v}, {by})", "coalesce({col}[{name}], '')", "LEFT JOIN")
#: ClickHouse 18.16 has no Map: attributes are parallel arrays context.name / context.value
CLICKHOUSE = Dialect("clickhouse", "argMin({v}, {by})", "{col}.value[indexOf({col}.name, {name})]", "ANY LEFT JOIN")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _number(x: float) -> str:
    return repr(float(x))


def arms_values(d: Dialect, arms: dict[str, str]) -> str:
    """A CASE mapping a variant name to its arm code (``arms``: variant → "baseline"/"candidate")."""
    if not arms:
        return "2"
    whens = " ".join(f"WHEN {d.quote(v)} THEN {ARM_CODES[a]}" for v, a in sorted(arms.items()))
    return f"(CASE variant {whens} ELSE 2 END)"


def unit_query(d: Dialect, table: str, flag: str, arms: dict[str, str], since: float, now: float,
               maturation_s: float, slo_ms: float, attributes: tuple[str, ...] | None) -> str:
    """One row per unit of ``flag`` with a call in [since, now]: its arm, first call, attributes and totals.

    ``attributes`` names the pre-exposure attributes to return as columns ``a_<i>``; None returns the
    whole attribute column as ``ctx`` (DuckDB only: a map)."""
    am = d.arg_min
    cut = now - maturation_s
    flag_q = d.quote(flag)
    success = "(err IS NULL OR (fb_route IS NOT NULL AND fb_err IS NULL))"
    req = f"""
    SELECT rid,
      max(CASE WHEN kind = 1 THEN unit END) AS unit,
      max(CASE WHEN kind = 1 THEN t END) AS t_call,
      max(CASE WHEN kind = 1 THEN variant END) AS variant,
      max(CASE WHEN kind = 1 THEN route END) AS route,
      max(CASE WHEN kind = 1 AND {success} THEN 1 ELSE 0 END) AS ok,
      max(CASE WHEN kind = 1 AND err IS NOT NULL THEN 1 ELSE 0 END) AS failed,
      max(CASE WHEN kind = 1 AND err = '429' THEN 1 ELSE 0 END) AS limited,
      max(CASE WHEN kind = 1 AND err = 'timeout' THEN 1 ELSE 0 END) AS timed_out,
      max(CASE WHEN kind = 1 AND fb_route IS NOT NULL THEN 1 ELSE 0 END) AS fell_back,
      max(CASE WHEN kind = 1 AND {success} AND dur <= {_number(slo_ms)} THEN 1 ELSE 0 END) AS in_slo,
      max(CASE WHEN kind = 1 THEN coalesce(cost, 0) ELSE 0 END) AS cost,
      max(CASE WHEN kind = 2 THEN 1 ELSE 0 END) AS has_out,
      max(CASE WHEN kind = 2 AND resolved THEN 1 ELSE 0 END) AS res,
      max(CASE WHEN kind = 2 AND corrected THEN 1 ELSE 0 END) AS corr,
      max(CASE WHEN kind = 2 AND complaint THEN 1 ELSE 0 END) AS compl
    FROM {table}
    WHERE flag = {flag_q} AND kind IN (1, 2) AND t >= {_number(since)} AND t <= {_number(now)}
    GROUP BY rid
    HAVING max(CASE WHEN kind = 1 THEN 1 ELSE 0 END) = 1"""
    arm = arms_values(d, arms)
    per_unit = f"""
    SELECT unit,
      {am.format(v=arm, by='t_call')} AS arm,
      {am.format(v='route', by='t_call')} AS route,
      min(t_call) AS first_seen,
      count(*) AS requests,
      sum(ok) AS successes,
      count(*) AS exposures,
      sum(has_out) AS outcomes,
      sum(has_out * res) AS resolved,
      sum(has_out * (1 - res)) AS escalated,
      sum(has_out * corr) AS corrected,
      sum(has_out * compl) AS complaints,
      sum(failed) AS errors,
      sum(limited) AS rate_limited,
      sum(timed_out) AS timeouts,
      sum(fell_back) AS fallbacks,
      sum(in_slo) AS slo_met,
      sum(cost) AS cost_usd,
      sum(CASE WHEN t_call <= {_number(cut)} THEN 1 ELSE 0 END) AS mature_exposures,
      sum(CASE WHEN t_call <= {_number(cut)} THEN has_out ELSE 0 END) AS mature_outcomes,
      max(CASE WHEN {arm} = 0 THEN 1 ELSE 0 END) * max(CASE WHEN {arm} = 1 THEN 1 ELSE 0 END) AS crossed
    FROM ({req}) AS r
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


def summary_sql(d: Dialect, table: str, flag: str, arms: dict[str, str], since: float, now: float,
                maturation_s: float, slo_ms: float, attributes: tuple[str, ...]) -> str:
    """Per (arm, attribute values): units, crossed units, and Σx, Σx², units with x > 0 for every unit
    column and Σx·y for ``PRODUCTS`` — the sufficient statistics of every unit-level metric."""
    units = unit_query(d, table, flag, arms, since, now, maturation_s, slo_ms, attributes)
    group = ["arm"] + [f"a_{i}" for i in range(len(attributes))]
    sums = []
    for col in UNIT_COLUMNS:
        sums.append(f"sum({col}) AS s_{col}")
        sums.append(f"sum({col} * {col}) AS q_{col}")
        sums.append(f"sum(CASE WHEN {col} > 0 THEN 1 ELSE 0 END) AS z_{col}")
    for a, b in PRODUCTS:
        sums.append(f"sum({a} * {b}) AS p_{a}__{b}")
    return f"""
    SELECT {', '.join(group)}, count(*) AS units, sum(crossed) AS crossed, {', '.join(sums)}
    FROM ({units}) AS units_
    GROUP BY {', '.join(group)}
    ORDER BY {', '.join(group)}"""


def latency_bucket(column: str) -> str:
    """The index of the latency histogram bucket holding ``column`` (bounds are inclusive upper edges)."""
    return " + ".join(f"(CASE WHEN {column} > {_number(b)} THEN 1 ELSE 0 END)" for b in LATENCY_BOUNDS_MS)
