"""The dashboard's request-level counters over event records, per route key and time bucket — one set of
queries for DuckDB and ClickHouse (``events_sql.Dialect`` picks the few spellings that differ).

Requests count in the bucket they were made; outcomes in the bucket they arrived, on the route key of
the call they belong to; a unit is new in the bucket of its first call on a route key. Every figure is
aggregated by the engine: a read returns rows per bucket and route key, however many events there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from console.core import event_format as ef
from console.core.telemetry import TTFT_BOUNDS_MS, Arm, RouteCounters, RouteKey

from . import events_sql as q

Rows = Callable[[str], list[dict[str, Any]]]


def _arm_case(d: q.Dialect, arms: dict[str, dict[str, str]], flag: str = "flag", variant: str = "variant") -> str:
    """A CASE giving the arm code of a record from its flag and variant (``arms``: flag → variant → arm)."""
    whens = " ".join(f"WHEN {flag} = {d.quote(f)} THEN {q.arms_values(d, a, variant)}" for f, a in sorted(arms.items()))
    return f"(CASE {whens} ELSE 2 END)" if whens else "2"


def window_queries(d: q.Dialect, table: str, start: float, end: float, step: float,
                   arms: dict[str, dict[str, str]], slo_ms: float) -> dict[str, str]:
    """name → SQL: the queries whose rows ``counters_of`` turns into per-bucket counters."""
    n = q._number
    bucket = f"CAST(floor((t - {n(start)}) / {n(step)}) AS Int64)"
    arm = _arm_case(d, arms)
    ok = q.SUCCESS
    ttft_b = " + ".join(f"(CASE WHEN coalesce(ttfc, dur) > {n(b)} THEN 1 ELSE 0 END)" for b in TTFT_BOUNDS_MS)
    # inner names end in "_": ClickHouse resolves a name to a same-named alias before the column
    calls = f"""SELECT {bucket} AS b_, flag AS flag_, coalesce(route, '') AS route_, {arm} AS arm_,
                  coalesce(provider, '') AS provider_, coalesce(model, '') AS model_, err AS err_,
                  fb_route AS fb_, (CASE WHEN {ok} THEN 1 ELSE 0 END) AS ok_, dur AS dur_,
                  {q.latency_bucket('dur')} AS lat_b_, {ttft_b} AS ttft_b_, coalesce(tin, 0) AS tin_,
                  coalesce(tout, 0) AS tout_, coalesce(cost, 0) AS cost_
                FROM {table} WHERE kind = 1 AND t >= {n(start)} AND t < {n(end)}"""
    keys = "b_ AS b, flag_ AS flag, route_ AS route, arm_ AS arm"
    by = "b_, flag_, route_, arm_"
    out = {
        "calls": f"""
            SELECT {keys}, count(*) AS n, sum(ok_) AS n_ok, sum(CASE WHEN err_ IS NOT NULL THEN 1 ELSE 0 END) AS n_errors,
              sum(CASE WHEN err_ = {d.quote(ef.ERROR_RATE_LIMITED)} THEN 1 ELSE 0 END) AS n_limited,
              sum(CASE WHEN err_ = {d.quote(ef.ERROR_TIMEOUT)} THEN 1 ELSE 0 END) AS n_timeouts,
              sum(CASE WHEN fb_ IS NOT NULL THEN 1 ELSE 0 END) AS n_fallbacks,
              sum(CASE WHEN ok_ = 1 AND dur_ <= {n(slo_ms)} THEN 1 ELSE 0 END) AS n_slo,
              sum(tin_) AS n_tin, sum(tout_) AS n_tout, sum(cost_) AS n_cost, sum(cost_ * cost_) AS n_cost_sq
            FROM ({calls}) AS c GROUP BY {by}""",
        "latency": f"SELECT {keys}, lat_b_ AS i, count(*) AS n FROM ({calls}) AS c GROUP BY {by}, lat_b_",
        "ttft": f"SELECT {keys}, ttft_b_ AS i, count(*) AS n FROM ({calls}) AS c GROUP BY {by}, ttft_b_",
        "providers": f"""
            SELECT {keys}, provider_ AS provider, model_ AS model, coalesce(err_, '') AS err_kind,
              sum(CASE WHEN err_ IS NOT NULL THEN 1 ELSE 0 END) AS n_failed,
              sum(CASE WHEN err_ IS NOT NULL AND fb_ IS NOT NULL THEN 1 ELSE 0 END) AS n_fell_back, count(*) AS n
            FROM ({calls}) AS c GROUP BY {by}, provider_, model_, coalesce(err_, '')""",
        # a unit is new on a route key in the bucket of its first call there
        "units": f"""
            SELECT CAST(floor((first_ - {n(start)}) / {n(step)}) AS Int64) AS b, flag_ AS flag, route_ AS route,
              arm_ AS arm, count(*) AS n FROM (
              SELECT flag AS flag_, coalesce(route, '') AS route_, {arm} AS arm_, unit AS unit_, min(t) AS first_
              FROM {table} WHERE kind = 1 AND t < {n(end)} GROUP BY flag, coalesce(route, ''), {arm}, unit) AS f
            WHERE first_ >= {n(start)} GROUP BY CAST(floor((first_ - {n(start)}) / {n(step)}) AS Int64), flag_, route_, arm_""",
        # outcomes in the bucket they arrived, on the route key of their call (each request's outcome once)
        "outcomes": f"""
            SELECT CAST(floor((t_out - {n(start)}) / {n(step)}) AS Int64) AS b, flag_ AS flag, route_ AS route,
              {_arm_case(d, arms, 'flag_', 'variant_')} AS arm, count(*) AS n, sum(res_) AS n_res,
              sum(corr_) AS n_corr, sum(compl_) AS n_compl
            FROM (SELECT rid, min(t) AS t_out, max(CASE WHEN resolved THEN 1 ELSE 0 END) AS res_,
                         max(CASE WHEN corrected THEN 1 ELSE 0 END) AS corr_,
                         max(CASE WHEN complaint THEN 1 ELSE 0 END) AS compl_
                  FROM {table} WHERE kind = 2 AND t >= {n(start)} AND t < {n(end)} GROUP BY rid) AS o
            {d.inner_join} (SELECT rid, max(flag) AS flag_, max(coalesce(route, '')) AS route_, max(variant) AS variant_
                  FROM {table} WHERE kind = 1 AND t < {n(end)} GROUP BY rid) AS c USING (rid)
            GROUP BY CAST(floor((t_out - {n(start)}) / {n(step)}) AS Int64), flag_, route_, variant_""",
        "served": f"""SELECT flag AS flag_, fb_route AS served_, count(*) AS n FROM {table}
                      WHERE kind = 1 AND fb_route IS NOT NULL AND t >= {n(start)} AND t < {n(end)}
                      GROUP BY flag, fb_route""",
        "flags": f"SELECT DISTINCT flag FROM {table} WHERE kind = 1 AND t >= {n(start)} AND t < {n(end)}",
    }
    return out


_ARMS = {code: Arm(name) for name, code in q.ARM_CODES.items()}


def _int(value: Any) -> int:
    return int(float(value or 0))


def counters_of(rows: dict[str, Iterable[dict[str, Any]]], nb: int
                ) -> tuple[dict[tuple[int, RouteKey], RouteCounters], dict[tuple[str, str], int]]:
    """(bucket, route key) → counters, and (flag, route) → requests served by a fallback to it."""
    cells: dict[tuple[int, RouteKey], RouteCounters] = {}

    def cell(r: dict[str, Any]) -> RouteCounters | None:
        b = _int(r["b"])
        if not 0 <= b < nb:
            return None
        return cells.setdefault((b, RouteKey(r["flag"], r["route"] or "", _ARMS[_int(r["arm"])])), RouteCounters())

    for r in rows["calls"]:
        c = cell(r)
        if c is None:
            continue
        c.requests += _int(r["n"])
        c.exposures += _int(r["n"])
        c.successes += _int(r["n_ok"])
        c.errors += _int(r["n_errors"])
        c.rate_limited += _int(r["n_limited"])
        c.timeouts += _int(r["n_timeouts"])
        c.fallbacks += _int(r["n_fallbacks"])
        c.slo_met += _int(r["n_slo"])
        c.tokens_in += _int(r["n_tin"])
        c.tokens_out += _int(r["n_tout"])
        c.cost_usd += float(r["n_cost"] or 0.0)
        c.cost_sq_usd += float(r["n_cost_sq"] or 0.0)
    for name, hist in (("latency", "latency_hist"), ("ttft", "ttft_hist")):
        for r in rows[name]:
            c = cell(r)
            if c is not None:
                getattr(c, hist)[_int(r["i"])] += _int(r["n"])
    for r in rows["providers"]:
        c = cell(r)
        if c is None:
            continue
        pm = (r["provider"], r["model"])
        c.provider_requests[pm] = c.provider_requests.get(pm, 0) + _int(r["n"])
        if _int(r["n_failed"]):
            err = r["err_kind"]
            kind = err if err in (ef.ERROR_RATE_LIMITED, ef.ERROR_TIMEOUT) else "error"
            k3 = (r["provider"], r["model"], kind)
            c.provider_errors[k3] = c.provider_errors.get(k3, 0) + _int(r["n_failed"])
        if _int(r["n_fell_back"]):
            c.provider_fallbacks[pm] = c.provider_fallbacks.get(pm, 0) + _int(r["n_fell_back"])
    for r in rows["units"]:
        c = cell(r)
        if c is not None:
            c.new_units += _int(r["n"])
    for r in rows["outcomes"]:
        c = cell(r)
        if c is None:
            continue
        n, res = _int(r["n"]), _int(r["n_res"])
        c.outcomes += n
        c.resolved += res
        c.escalated += n - res
        c.corrected += _int(r["n_corr"])
        c.complaints += _int(r["n_compl"])
    served = {}
    for r in rows["served"]:
        key = (r["flag_"], r["served_"])
        served[key] = served.get(key, 0) + _int(r["n"])
    return cells, served
