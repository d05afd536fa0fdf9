"""Route telemetry from a Prometheus server, read over its HTTP API.

One ``read`` issues a fixed number of grouped queries whatever the number of flags, routes and
segments: per metric family, one ``query_range`` of counter values (bucket counts are the
differences between consecutive points) and one instant query of the value at the end minus
the value at ``start`` (``@`` modifiers), which gives the totals without extrapolating
``increase()``. Queries are templates that a profile may override.

Nothing unreadable becomes a zero: NaN, +Inf, families with no series and rejected queries
become ``MetricsSnapshot.gaps`` entries; an unreachable server or one that answers no query
raises ``BackendError`` naming the redacted URL.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from string import Template
from typing import Any
from urllib.parse import urlsplit

import httpx

from console.core.credentials import read_token
from console.core.errors import BackendError, BadInput
from console.core.models import RouteProfile
from console.core.ports import MetricsSource
from console.core.pricing import PricingTable
from console.core.redact import redact
from console.core.telemetry import (
    LATENCY_BOUNDS_MS,
    TTFT_BOUNDS_MS,
    Arm,
    MetricsSnapshot,
    RouteCounters,
    RouteKey,
    SourceCapabilities,
    SegmentRequests,
    TimeBucket,
    UnitGroup,
)

from ..http import JsonHttp, RetryPolicy, error_detail, make_client, redact_url
from . import prom_contract as c

TOKEN_ENV = "ROUTEDECK_PROMETHEUS_TOKEN"
DEFAULT_SLO_MS = 2500.0

#: per family: the PromQL template and the labels it groups by beyond flag, route, arm.
#: ``$by`` is "flag, route, arm", ``$match`` extra label matchers (may be empty), ``$at`` an
#: ``@ <time>`` modifier or nothing. Templates must keep the extra labels in their ``by``.
DEFAULT_TEMPLATES: dict[str, str] = {
    "units": f"sum by ($by, stage, {', '.join(c.UNIT_ATTRIBUTE_LABELS)}) ({c.UNITS}{{$match}} $at)",
    "crossed": f"sum by ($by, stage, {', '.join(c.UNIT_ATTRIBUTE_LABELS)}) ({c.CROSSED_UNITS}{{$match}} $at)",
    "exposures": f"sum by ($by) ({c.EXPOSURES}{{$match}} $at)",
    "requests": f"sum by ($by, provider, model, status) ({c.REQUESTS}{{$match}} $at)",
    "fallbacks": f"sum by ($by, served_route) ({c.FALLBACKS}{{$match}} $at)",
    "outcomes": f"sum by ($by, kind) ({c.JOINED_OUTCOMES}{{$match}} $at)",
    "cost": f"sum by ($by) ({c.COST}{{$match}} $at)",
    "cost_squared": f"sum by ($by) ({c.COST_SQUARED}{{$match}} $at)",
    "tokens": f"sum by ($by, {c.TOKEN_TYPE}, {c.MODEL}) ({c.TOKEN_USAGE}_sum{{$match}} $at)",
    "latency": f"sum by ($by, le, {c.ERROR_TYPE}) ({c.DURATION}_bucket{{$match}} $at)",
    "ttft": f"sum by ($by, le) ({c.TTFT}_bucket{{$match}} $at)",
}
#: the newest sample time, for the header's data age
AS_OF_TEMPLATE = f"max(timestamp({c.REQUESTS}{{$match}}))"
EXTRA_LABELS: dict[str, tuple[str, ...]] = {
    "units": ("stage",) + c.UNIT_ATTRIBUTE_LABELS,
    "crossed": ("stage",) + c.UNIT_ATTRIBUTE_LABELS,
    "exposures": (),
    "requests": ("provider", "model", "status"),
    "fallbacks": ("served_route",),
    "outcomes": ("kind",),
    "cost": (),
    "cost_squared": (),
    "tokens": (c.TOKEN_TYPE, c.MODEL),
    "latency": ("le", c.ERROR_TYPE),
    "ttft": ("le",),
}
#: Prometheus refuses a range query with more points than this per series
MAX_POINTS = 10_000
#: a template's counter selector: the metric name right before ``{$match} $at``
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{\$match\}\s*\$at")
#: counter resets of the requests family inside the window (an application restarted)
RESETS_TEMPLATE = "sum(resets($metric{$match}[$range] @ $end))"

Series = dict[tuple[str, ...], list[float | None]]


@dataclass
class _Family:
    """One family's counter values: per series (group labels + extras), aligned to the grid."""

    range_values: Series
    totals: dict[tuple[str, ...], float]


class PrometheusSource(MetricsSource):
    """A ``MetricsSource`` over Prometheus' HTTP API (``prometheus:http://HOST:PORT``)."""

    kind = "prometheus"

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        templates: Mapping[str, str] | None = None,
        match: str = "",
        pricing: PricingTable | None = None,
        slo_ms: float = DEFAULT_SLO_MS,
        timeout_s: float | None = None,
        retry: RetryPolicy = RetryPolicy(attempts=2, backoff_s=0.2),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``match`` adds label matchers to every query (e.g. ``job="support"``); ``templates``
        overrides some of ``DEFAULT_TEMPLATES`` by family name."""
        self.base_url = base_url.rstrip("/")
        unknown = sorted(set(templates or {}) - set(DEFAULT_TEMPLATES))
        if unknown:
            raise BadInput(
                f"prometheus query template {unknown[0]!r}: unknown family — use one of {', '.join(DEFAULT_TEMPLATES)}"
            )
        self.templates = {**DEFAULT_TEMPLATES, **(templates or {})}
        for name, text in self.templates.items():
            if "$at" not in text or "$match" not in text:
                raise BadInput(
                    f"prometheus query template {name!r}: must contain $match (label matchers) and $at "
                    "(after the selector) — routedeck reads counter values at the window's start with it"
                )
            _render(name, text, match="", at="")  # fail now on a broken template, not mid-refresh
        self.match = match
        self.pricing = pricing if pricing is not None else PricingTable.defaults()
        self.slo_ms = slo_ms
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = make_client(self.base_url, headers=headers, timeout_s=timeout_s, transport=transport)
        self.http = JsonHttp(client, "Prometheus", retry=retry)
        #: queries sent by the last ``read`` (bounded: 2 per family + 2)
        self.last_query_count = 0

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> "PrometheusSource":
        """``prometheus:http://HOST:PORT``; the bearer token, if any, comes from ROUTEDECK_PROMETHEUS_TOKEN."""
        kind, _, url = spec.partition(":")
        parts = urlsplit(url)
        if kind != "prometheus" or parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadInput(f"--metrics {redact(spec)!r}: expected prometheus:http://HOST:PORT")
        if parts.username or parts.password or parts.query:
            raise BadInput(
                f"--metrics {redact_url(url)!r}: put no credentials or options in the URL — "
                f"set {TOKEN_ENV} for a bearer token"
            )
        options.setdefault("token", read_token(TOKEN_ENV))
        return cls(url, **options)

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(unit_level=False, segments=c.SEGMENT_LABELS, provider_breakdown=True,
                                  unit_attributes=c.UNIT_ATTRIBUTE_LABELS, segment_requests=True)

    def describe(self) -> str:
        return f"prometheus:{redact_url(self.base_url)}"

    def now(self) -> float:
        return time.time()

    def close(self) -> None:
        self.http.close()

    # ---- reading ------------------------------------------------------------------------

    def read(self, start: float, end: float, step: float) -> MetricsSnapshot:
        """Counters per route for [start, end) in buckets of ``step`` s, from grouped queries."""
        end = min(end, self.now())
        step = max(1.0, float(step))
        if end <= start:
            return MetricsSnapshot(start, start, start, [], {}, gaps=["empty window: nothing to read"])
        nb = max(1, math.ceil((end - start) / step))
        if nb > MAX_POINTS:
            step = (end - start) / MAX_POINTS
            nb = MAX_POINTS
        grid = [start + k * step for k in range(nb + 1)]
        gaps: list[str] = []
        families: dict[str, _Family] = {}
        failures: list[str] = []
        self.last_query_count = 0
        restarted = self._restarts(start, end, gaps)
        for name in self.templates:
            fam = self._read_family(name, grid, end, gaps, failures, restarted)
            if fam is not None:
                families[name] = fam
        if not families and failures:
            raise BackendError(failures[0])
        as_of = self._as_of(end, gaps)
        buckets = [TimeBucket(grid[b], min(end, grid[b + 1])) for b in range(nb)]
        for b, bucket in enumerate(buckets):
            bucket.counters = self._counters(families, b, gaps if b == 0 else [])
        totals = self._counters(families, None, gaps)
        served: dict[tuple[str, str], int] = {}
        if "fallbacks" in families:
            for labels, value in families["fallbacks"].totals.items():
                k = (labels[0], labels[3])
                served[k] = served.get(k, 0) + round(value)
        if not any(c.requests for c in totals.values()) and not failures:
            gaps.append(f"no requests recorded in this window on {self.describe()}")
        return MetricsSnapshot(
            start=start, end=end, as_of=as_of if as_of is not None else start, buckets=buckets,
            totals=totals, fallback_served=served, gaps=_dedupe(gaps), unit_groups=_unit_groups(families),
        )

    def _read_family(
        self, name: str, grid: list[float], end: float, gaps: list[str], failures: list[str], restarted: bool = False
    ) -> _Family | None:
        labels = c.GROUP_LABELS + EXTRA_LABELS[name]
        now_q = _render(name, self.templates[name], self.match, f"@ {end:.3f}")
        then_q = _render(name, self.templates[name], self.match, f"@ {grid[0]:.3f}")
        plain = _render(name, self.templates[name], self.match, "")
        totals_q = f"{now_q} - {then_q} or {now_q}"
        if restarted:
            # a counter that restarted makes "now − then" wrong (short, or negative): increase() follows every
            # series across its resets, at the price of extrapolating to the window's edges (said in a gap)
            across = _across_resets(self.templates[name])
            if across is None:
                gaps.append(f"{name}: its template has no plain counter selector, so it cannot be read across "
                            "the restart — figures that need it show as unknown")
                return None
            totals_q = _render(name, across, self.match, f"@ {end:.3f}", f"{max(1, math.ceil(end - grid[0]))}s")
        try:
            matrix = self._query("query_range", {"query": plain, "start": f"{grid[0]:.3f}",
                                                 "end": f"{grid[-1]:.3f}", "step": f"{grid[1] - grid[0]:.3f}"})
            vector = self._query("query", {"query": totals_q, "time": f"{end:.3f}"})
        except _QueryRejected as exc:
            gaps.append(f"{name}: {exc}")
            failures.append(f"{self.describe()}: {name}: {exc}")
            return None
        range_values: Series = {}
        bad: set[str] = set()
        for item in matrix:
            key = _key(item.get("metric", {}), labels)
            values: list[float | None] = [None] * len(grid)
            for ts, raw in item.get("values", []):
                i = round((float(ts) - grid[0]) / (grid[1] - grid[0]))
                if 0 <= i < len(grid):
                    v = _number(raw)
                    if v is None:
                        bad.add(str(raw))
                    values[i] = v
            range_values[key] = values
        totals: dict[tuple[str, ...], float] = {}
        for item in vector:
            key = _key(item.get("metric", {}), labels)
            v = _number(item.get("value", [0, "NaN"])[1])
            if v is None:
                bad.add(str(item.get("value", [0, "?"])[1]))
                continue
            # a counter reset inside the window makes the difference negative: fall back to the buckets
            totals[key] = v if v >= 0 else _increase(range_values.get(key, []))
        if bad:
            gaps.append(f"{name}: Prometheus returned {', '.join(sorted(bad))} for some series — those values are left out")
        if not range_values and not totals:
            if name == "cost":
                return _Family({}, {})  # derived from tokens × prices below, said in a gap there
            if name == "cost_squared":
                # without it the cost guardrails have no interval at request level, and say so themselves
                return _Family({}, {})
            if name == "fallbacks":
                # applications create this series on the first fallback: none means no fallback yet
                return _Family({}, {})
            gaps.append(f"{name}: no series on {self.describe()} — {_missing_hint(name)}")
            return None
        return _Family(range_values, totals)

    def _query(self, endpoint: str, params: dict[str, str]) -> list[dict[str, Any]]:
        self.last_query_count += 1
        path = f"/api/v1/{endpoint}"
        # a query sent as a form is a read: sending it twice is harmless
        response = self.http.request("POST", path, data=params, idempotent=True)
        if response.status_code != 200:
            raise _QueryRejected(f"query rejected (HTTP {response.status_code}{error_detail(response)})")
        try:
            body = response.json()
        except (ValueError, RecursionError):
            raise BackendError(f"Prometheus at {self.http.where(path)}: the answer is not JSON — is this Prometheus?") from None
        if not isinstance(body, dict):
            raise BackendError(f"Prometheus at {self.http.where(path)}: the answer is not a query result — is this Prometheus?")
        if body.get("status") != "success" or not isinstance(body.get("data"), dict):
            raise _QueryRejected(f"query failed ({body.get('errorType', '?')}: {body.get('error', '')})")
        result = body["data"].get("result")
        return result if isinstance(result, list) else []

    def read_segment_requests(self, flag: str, start: float, end: float) -> list[SegmentRequests]:
        """Requests, failed requests and fallbacks of each route of ``flag`` per segment over [start, end):
        the requests and fallbacks families grouped by the segment labels too — three queries whatever the
        number of segments, read the same way as the totals (across a restart when there was one)."""
        end = min(end, self.now())
        if end <= start:
            return []
        self.last_query_count = 0
        match = ", ".join(part for part in (self.match, f"flag={json.dumps(flag)}") if part)
        by = c.GROUP_LABELS + c.SEGMENT_LABELS
        restarted = self._restarts(start, end, [])
        cells: dict[tuple[str, ...], SegmentRequests] = {}
        for name in ("requests", "fallbacks"):
            template = self.templates[name]
            if restarted and _across_resets(template) is not None:
                query = _render(name, _across_resets(template), match, f"@ {end:.3f}",
                                f"{max(1, math.ceil(end - start))}s", by)
            else:
                now_q = _render(name, template, match, f"@ {end:.3f}", by=by)
                query = f"{now_q} - {_render(name, template, match, f'@ {start:.3f}', by=by)} or {now_q}"
            try:
                result = self._query("query", {"query": query, "time": f"{end:.3f}"})
            except _QueryRejected as exc:
                raise BackendError(f"{self.describe()}: {name} by segment: {exc}") from None
            labels = by + EXTRA_LABELS[name]
            for item in result:
                key = _key(item.get("metric", {}), labels)
                value = _number(item.get("value", [0, "NaN"])[1])
                if value is None or value <= 0:
                    continue  # unreadable, or a restart the check above missed: left out, never negative
                segment = dict(zip(c.SEGMENT_LABELS, key[3:3 + len(c.SEGMENT_LABELS)]))
                cell = cells.setdefault((key[1], *segment.values()), SegmentRequests(flag, key[1], segment))
                n = round(value)
                if name == "fallbacks":
                    cell.fallbacks += n
                else:
                    cell.requests += n
                    if key[-1] != c.STATUS_OK:
                        cell.errors += n
        return [cells[k] for k in sorted(cells)]

    def _restarts(self, start: float, end: float, gaps: list[str]) -> bool:
        """Whether a requests counter restarted inside the window (an application process restarted)."""
        found = _SELECTOR.search(self.templates["requests"])
        query = Template(RESETS_TEMPLATE).substitute(
            metric=found.group(1) if found else c.REQUESTS, match=self.match,
            range=f"{max(1, math.ceil(end - start))}s", end=f"{end:.3f}")
        resets = round(sum(self._values(query, end, gaps, "restarts") or [0.0]))
        if resets:
            gaps.append(f"the application's counters restarted in this window ({resets} reset{'s' if resets > 1 else ''}): "
                        "totals are Prometheus' increase() across the restart, extrapolated to the window's edges, "
                        "not exact counter differences")
        return resets > 0

    def _as_of(self, end: float, gaps: list[str]) -> float | None:
        values = self._values(Template(AS_OF_TEMPLATE).substitute(match=self.match), end, gaps, "data age")
        return min(end, max(values)) if values else None

    def _values(self, query: str, end: float, gaps: list[str], what: str) -> list[float] | None:
        """The finite sample values of an instant query at ``end``; None (and a gap) when it is rejected."""
        try:
            result = self._query("query", {"query": query, "time": f"{end:.3f}"})
        except _QueryRejected as exc:
            gaps.append(f"{what}: {exc}")
            return None
        values = [_number(r.get("value", [0, "NaN"])[1]) for r in result]
        return [v for v in values if v is not None]

    # ---- families → counters -------------------------------------------------------------

    def _counters(
        self, families: dict[str, _Family], bucket: int | None, gaps: list[str]
    ) -> dict[RouteKey, RouteCounters]:
        """RouteCounters per route key for one bucket, or for the whole window when ``bucket`` is None."""

        def amounts(name: str) -> dict[tuple[str, ...], float]:
            fam = families.get(name)
            if fam is None:
                return {}
            if bucket is None:
                return fam.totals
            return {k: _delta(v, bucket) for k, v in fam.range_values.items()}

        out: dict[RouteKey, RouteCounters] = {}

        def at(labels: tuple[str, ...]) -> RouteCounters:
            key = RouteKey(labels[0], labels[1], _arm(labels[2]))
            return out.setdefault(key, RouteCounters())

        for labels, v in amounts("units").items():
            at(labels).new_units += round(v)
        for labels, v in amounts("exposures").items():
            at(labels).exposures += round(v)
        for (flag, route, arm, provider, model, status), v in amounts("requests").items():
            n = round(v)
            rc = at((flag, route, arm))
            rc.requests += n
            rc.provider_requests[(provider, model)] = rc.provider_requests.get((provider, model), 0) + n
            if status != c.STATUS_OK:
                rc.errors += n
                k3 = (provider, model, status)
                rc.provider_errors[k3] = rc.provider_errors.get(k3, 0) + n
                if status == c.STATUS_RATE_LIMITED:
                    rc.rate_limited += n
                elif status == c.STATUS_TIMEOUT:
                    rc.timeouts += n
                elif status == c.STATUS_MALFORMED:
                    rc.malformed += n
                elif status == c.STATUS_POLICY_BLOCK:
                    rc.policy_blocks += n
        for (flag, route, arm, _served), v in amounts("fallbacks").items():
            at((flag, route, arm)).fallbacks += round(v)
        for (flag, route, arm, kind), v in amounts("outcomes").items():
            rc, n = at((flag, route, arm)), round(v)
            if kind == "resolved":
                rc.resolved += n
                rc.outcomes += n
            elif kind == "escalated":
                rc.escalated += n
                rc.outcomes += n
            elif kind == "corrected":
                rc.corrected += n
            elif kind == "complaint":
                rc.complaints += n
        tokens_by_model: dict[tuple[str, str, str, str], list[int]] = {}
        for (flag, route, arm, token_type, model), v in amounts("tokens").items():
            rc = at((flag, route, arm))
            pair = tokens_by_model.setdefault((flag, route, arm, model), [0, 0])
            if token_type == "input":
                rc.tokens_in += round(v)
                pair[0] += round(v)
            elif token_type == "output":
                rc.tokens_out += round(v)
                pair[1] += round(v)
        cost = amounts("cost")
        if cost:
            for labels, v in cost.items():
                at(labels).cost_usd += v
            for labels, v in amounts("cost_squared").items():
                at(labels).cost_sq_usd += v
        elif "cost" in families and families["cost"].range_values == {} and families["cost"].totals == {}:
            self._derive_cost(tokens_by_model, out, gaps)
        self._histograms(amounts("latency"), out, at, "latency", gaps)
        self._histograms(amounts("ttft"), out, at, "ttft", gaps)
        return out

    def _derive_cost(
        self, tokens: dict[tuple[str, str, str, str], list[int]], out: dict[RouteKey, RouteCounters], gaps: list[str]
    ) -> None:
        if not tokens:
            return
        gaps.append(f"cost: no {c.COST} series — derived from token usage × the pricing table")
        unpriced = set()
        for (flag, route, arm, model), (tin, tout) in tokens.items():
            usd = self.pricing.cost(RouteProfile(route=route, model=model or None), tin, tout)
            if usd is None:
                unpriced.add(model or route)
                continue
            out.setdefault(RouteKey(flag, route, _arm(arm)), RouteCounters()).cost_usd += usd
        if unpriced:
            gaps.append(f"cost: no price for {', '.join(sorted(unpriced))} — add it to pricing.toml; cost is incomplete")

    def _histograms(self, series: dict[tuple[str, ...], float], out, at, which: str, gaps: list[str]) -> None:
        """Cumulative ``le`` counts → RouteCounters' fixed-bound histograms (+ successes, slo_met)."""
        bounds = LATENCY_BOUNDS_MS if which == "latency" else TTFT_BOUNDS_MS
        # (flag, route, arm) -> {le_ms: count}, all requests; and successes only (latency)
        cum: dict[tuple[str, str, str], dict[float, float]] = {}
        ok: dict[tuple[str, str, str], dict[float, float]] = {}
        for labels, v in series.items():
            route_key, le = labels[:3], labels[3]
            try:
                le_ms = c.le_to_ms(le)
            except ValueError:
                continue
            cell = cum.setdefault(route_key, {})
            cell[le_ms] = cell.get(le_ms, 0.0) + v
            if which == "latency" and labels[4] == "":
                cell = ok.setdefault(route_key, {})
                cell[le_ms] = cell.get(le_ms, 0.0) + v
        missing: set[float] = set()
        for route_key, counts in cum.items():
            hist, lacking = _rebin(counts, bounds)
            missing |= lacking
            rc = at(route_key)
            if which == "latency":
                rc.latency_hist = hist
                good = ok.get(route_key, {})
                rc.successes += round(good.get(math.inf, 0.0))
                met, exact = _at_or_below(good, self.slo_ms)
                rc.slo_met += round(met)
                if good and not exact:
                    gaps.append(
                        f"latency: no histogram bucket at the {self.slo_ms:g} ms SLO — "
                        f"attainment counted under the next lower bucket (add a bucket at {self.slo_ms / 1000:g} s)"
                    )
            else:
                rc.ttft_hist = hist
        if missing:
            shown = ", ".join(f"{m:g}" for m in sorted(missing)[:4])
            gaps.append(f"{which}: histogram lacks buckets at {shown}{'…' if len(missing) > 4 else ''} ms — quantiles are coarser")


class _QueryRejected(Exception):
    """Prometheus answered but refused or failed one query (a gap, not a failed refresh)."""


def _render(name: str, template: str, match: str, at: str, range_: str = "",
            by: tuple[str, ...] = c.GROUP_LABELS) -> str:
    try:
        return Template(template).substitute(by=", ".join(by), match=match, at=at, range=range_)
    except (KeyError, ValueError) as exc:
        raise BadInput(
            f"prometheus query template {name!r}: bad placeholder {exc} — use $by, $match and $at"
        ) from None


def _across_resets(template: str) -> str | None:
    """The template with its one counter selector read as ``increase(selector[$range] $at)``, or None."""
    if len(_SELECTOR.findall(template)) != 1:
        return None
    return _SELECTOR.sub(lambda m: f"increase({m.group(1)}{{$match}}[$range] $at)", template)


def _key(metric: dict[str, str], labels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(metric.get(name, "") for name in labels)


def _number(raw: Any) -> float | None:
    """A sample value, or None for NaN and ±Inf (shown as a gap, never as a number)."""
    try:
        v = float(raw)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _delta(values: list[float | None], b: int) -> float:
    """The increase of a counter over grid interval ``b`` (a series absent before it started counts from 0)."""
    prev = None
    for v in values[: b + 1][::-1]:
        if v is not None:
            prev = v
            break
    cur = values[b + 1] if b + 1 < len(values) else None
    if cur is None:
        return 0.0
    if prev is None:
        # no earlier point at all: the series was created inside the window
        return cur if all(v is None for v in values[: b + 1]) else 0.0
    return cur - prev if cur >= prev else cur  # a drop is a counter reset


def _increase(values: list[float | None]) -> float:
    return sum(_delta(values, b) for b in range(max(0, len(values) - 1)))


def _rebin(cumulative: dict[float, float], bounds: tuple[float, ...]) -> tuple[list[int], set[float]]:
    """Counts per fixed bound from cumulative ``le`` counts; bounds missing from the data are reported.

    A missing bound takes the count of the nearest lower ``le`` present, so its observations
    move to a later bin rather than vanish.
    """
    les = sorted(cumulative)
    missing = {b for b in bounds if b not in cumulative}

    def at_or_below(x: float) -> float:
        best = 0.0
        for le in les:
            if le <= x:
                best = cumulative[le]
            else:
                break
        return best

    points = [at_or_below(b) for b in bounds] + [cumulative.get(math.inf, at_or_below(math.inf))]
    hist, prev = [], 0.0
    for p in points:
        hist.append(max(0, round(p - prev)))
        prev = max(prev, p)
    return hist, missing if les else set()


def _at_or_below(cumulative: dict[float, float], x: float) -> tuple[float, bool]:
    """Cumulative count at bound ``x`` and whether a bucket sits exactly there."""
    if x in cumulative:
        return cumulative[x], True
    lower = [le for le in cumulative if le <= x]
    return (cumulative[max(lower)] if lower else 0.0), False


def _arm(value: str) -> Arm:
    try:
        return Arm(value)
    except ValueError:
        return Arm.OTHER


def _missing_hint(name: str) -> str:
    metric = {
        "units": c.UNITS, "crossed": c.CROSSED_UNITS, "cost_squared": c.COST_SQUARED, "exposures": c.EXPOSURES, "requests": c.REQUESTS, "fallbacks": c.FALLBACKS,
        "outcomes": c.JOINED_OUTCOMES, "tokens": c.TOKEN_USAGE, "latency": c.DURATION, "ttft": c.TTFT,
    }.get(name, name)
    return f"is the application exporting {metric}? (figures that need it show as unknown)"


def _unit_groups(families: dict[str, _Family]) -> list[UnitGroup] | None:
    """The window's new units per route key and attributes, with the crossed ones when they are exported."""
    units = families.get("units")
    if units is None:
        return None
    crossed = families.get("crossed")
    labels = set(units.totals) | (set(crossed.totals) if crossed is not None else set())
    groups = []
    for key in sorted(labels):
        groups.append(UnitGroup(
            RouteKey(key[0], key[1], _arm(key[2])), dict(zip(c.UNIT_ATTRIBUTE_LABELS, key[4:])),
            round(units.totals.get(key, 0.0)), round(crossed.totals.get(key, 0.0)) if crossed is not None else None,
            stage=key[3],
        ))
    return groups


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
