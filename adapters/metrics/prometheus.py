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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from string import Template
from typing import Any

import httpx

from console.core.credentials import read_token
from console.core.errors import BackendError, BadInput
from console.core.models import RouteProfile
from console.core.ports import MetricsSource
from console.core.pricing import PricingTable
from console.core.telemetry import (
    DEFAULT_SLO_MS,
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
    slo_option,
)

from ..http import JsonHttp, RetryPolicy, error_detail, make_client, redact_url
from ..spec import parse_http_spec
from . import prom_contract as c

TOKEN_ENV = "ROUTEDECK_PROMETHEUS_TOKEN"

#: a family's extra grouping labels beyond the flag and variant (contract names; a profile may map them)
EXTRA_LABELS: dict[str, tuple[str, ...]] = {
    "units": (c.STAGE,) + c.UNIT_ATTRIBUTE_LABELS,
    "crossed": (c.STAGE,) + c.UNIT_ATTRIBUTE_LABELS,
    "exposures": (),
    "requests": (c.PROVIDER, c.MODEL, c.ERROR_TYPE),
    "fallbacks": ("served_route",),
    "outcomes": ("kind",),
    "cost": (),
    "cost_squared": (),
    "tokens": (c.TOKEN_TYPE, c.MODEL),
    "latency": ("le", c.ERROR_TYPE),
    "ttft": ("le",),
}


def default_templates(names: Mapping[str, str] | None = None) -> dict[str, str]:
    """Per family: the PromQL template, with the contract's names mapped by ``names`` (a profile's
    ``prometheus_names``). ``$by`` is the flag and variant labels, ``$match`` extra label matchers (may be
    empty), ``$at`` an ``@ <time>`` modifier or nothing. Templates must keep the extra labels in their ``by``.

    Requests come from routedeck's requests counter where the application exports it, and otherwise
    (``or on`` the flag label) from the OpenTelemetry duration histogram's count: an application that
    exports only the GenAI metrics is read without a custom query."""
    n = _namer(names)

    def by(family: str) -> str:
        return ", ".join(["$by", *(n(x) for x in EXTRA_LABELS[family])])

    def total(family: str, metric: str) -> str:
        return f"sum by ({by(family)}) ({metric}{{$match}} $at)"

    return {
        "units": total("units", n(c.UNITS)),
        "crossed": total("crossed", n(c.CROSSED_UNITS)),
        "exposures": total("exposures", n(c.EXPOSURES)),
        "requests": f"{total('requests', n(c.REQUESTS))} or on ({n(c.FLAG)}) "
                    f"{total('requests', n(c.DURATION) + '_count')}",
        "fallbacks": total("fallbacks", n(c.FALLBACKS)),
        "outcomes": total("outcomes", n(c.JOINED_OUTCOMES)),
        "cost": total("cost", n(c.COST)),
        "cost_squared": total("cost_squared", n(c.COST_SQUARED)),
        "tokens": total("tokens", n(c.TOKEN_USAGE) + "_sum"),
        "latency": total("latency", n(c.DURATION) + "_bucket"),
        "ttft": total("ttft", n(c.TTFT) + "_bucket"),
    }


def _namer(names: Mapping[str, str] | None):
    names = dict(names or {})
    return lambda name: names.get(name, name)


#: the families with their default templates (contract names)
DEFAULT_TEMPLATES: dict[str, str] = default_templates()
#: the newest sample time, for the header's data age ($metric: the duration histogram's count)
AS_OF_TEMPLATE = "max(timestamp($metric{$match}))"
#: Prometheus refuses a range query with more points than this per series
MAX_POINTS = 10_000
#: a template's counter selector: the metric name right before ``{$match} $at``
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{\$match\}\s*\$at")
#: counter resets inside the window (an application restarted), read on the duration histogram's count,
#: which every application exports, and on routedeck's requests counter where there is one
RESETS_TEMPLATE = ("(sum(resets($metric{$match}[$range] @ $end)) or vector(0)) + "
                   "(sum(resets($requests{$match}[$range] @ $end)) or vector(0))")
#: said on every read that has unit counts: they come from per-process memory
UNITS_PER_PROCESS = ("unit counts are counted by each application process on its own: with several replicas a unit "
                     "is counted once per replica it reached and a unit served both arms by two replicas is missed, "
                     "so sample ratio and crossover are approximate and intervals are request-level — an event store "
                     "(events:, clickhouse:) counts units right")

Series = dict[tuple[str, ...], list[float | None]]
#: a flag's variants → (arm, route), as the flag platform holds the flag
VariantsOf = Callable[[str], dict[str, tuple[str, str]]]
_PLAIN_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")


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
        names: Mapping[str, str] | None = None,
        variants_of: VariantsOf | None = None,
        pricing: PricingTable | None = None,
        slo_ms: float = DEFAULT_SLO_MS,
        timeout_s: float | None = None,
        retry: RetryPolicy = RetryPolicy(attempts=2, backoff_s=0.2),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``match`` adds label matchers to every query (e.g. ``job="support"``); ``names`` maps the
        contract's metric and label names to the application's (``prom_contract.MAPPABLE_NAMES``);
        ``templates`` overrides some of the default templates by family name. ``variants_of(flag)``
        maps a flag's variants to (arm, route), from the flag platform."""
        self.base_url = base_url.rstrip("/")
        unknown = sorted(set(templates or {}) - set(DEFAULT_TEMPLATES))
        if unknown:
            raise BadInput(
                f"prometheus query template {unknown[0]!r}: unknown family — use one of {', '.join(DEFAULT_TEMPLATES)}"
            )
        strange = sorted(set(names or {}) - set(c.MAPPABLE_NAMES))
        if strange:
            raise BadInput(f"prometheus name {strange[0]!r}: not a name of routedeck's metric contract — map one of "
                           f"{', '.join(c.MAPPABLE_NAMES[:3])}, … (docs/backends.md)")
        for theirs in (names or {}).values():
            if not _PLAIN_NAME.match(str(theirs)):
                raise BadInput(f"prometheus name {theirs!r}: not a Prometheus metric or label name")
        self.names = dict(names or {})
        self._n = _namer(self.names)
        self.group_labels = tuple(self._n(x) for x in c.GROUP_LABELS)
        self.variants_of = variants_of or (lambda flag: {})
        self._variants: dict[str, dict[str, tuple[str, str]]] = {}
        self.templates = {**default_templates(self.names), **(templates or {})}
        for name, text in self.templates.items():
            if "$at" not in text or "$match" not in text:
                raise BadInput(
                    f"prometheus query template {name!r}: must contain $match (label matchers) and $at "
                    "(after the selector) — routedeck reads counter values at the window's start with it"
                )
            _render(name, text, match="", at="", by=self.group_labels)  # fail now on a broken template, not mid-refresh
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
        """``prometheus:http://HOST:PORT`` or ``…?slo_ms=N`` (in-SLO requests counted at N ms, from the duration
        histogram's bucket there); the bearer token, if any, comes from ROUTEDECK_PROMETHEUS_TOKEN."""
        given = parse_http_spec(spec, "prometheus", "expected prometheus:http://HOST:PORT[?slo_ms=N]", ("slo_ms",),
                                f"{TOKEN_ENV} for a bearer token", flag="--metrics")
        opts, base = given.options, given.base_url
        if "slo_ms" in opts:  # the SPEC's SLO wins over a caller's
            options["slo_ms"] = slo_option(opts, f"prometheus:{redact_url(base)}")
        options.setdefault("token", read_token(TOKEN_ENV))
        return cls(base, **options)

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(unit_level=False, segments=c.SEGMENT_LABELS, provider_breakdown=True,
                                  unit_attributes=c.UNIT_ATTRIBUTE_LABELS, segment_requests=True)

    def describe(self) -> str:
        slo = f"?slo_ms={self.slo_ms:g}" if self.slo_ms != DEFAULT_SLO_MS else ""
        return f"prometheus:{redact_url(self.base_url)}{slo}"

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
        self._variants = {}
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
                k = (labels[0], labels[2])
                served[k] = served.get(k, 0) + round(value)
        if "units" in families:
            gaps.append(UNITS_PER_PROCESS)
        if not any(c.requests for c in totals.values()) and not failures:
            gaps.append(f"no requests recorded in this window on {self.describe()}")
        return MetricsSnapshot(
            start=start, end=end, as_of=as_of if as_of is not None else start, buckets=buckets,
            totals=totals, fallback_served=served, gaps=_dedupe(gaps), unit_groups=self._unit_groups(families),
        )

    def _route_key(self, flag: str, variant: str) -> RouteKey:
        """The route and arm of ``variant`` of ``flag``, as the flag platform holds the flag (read once per read)."""
        found = self._variants.get(flag)
        if found is None:
            try:
                found = self._variants[flag] = dict(self.variants_of(flag))
            except Exception as exc:  # the flag platform failed: no arms means no comparison, said in the error
                raise BackendError(f"{self.describe()}: cannot tell the arms of {flag} — {exc}") from None
        arm, route = found.get(variant, ("other", variant))
        return RouteKey(flag, route, _arm(arm))

    def _read_family(
        self, name: str, grid: list[float], end: float, gaps: list[str], failures: list[str], restarted: bool = False
    ) -> _Family | None:
        labels = self.group_labels + tuple(self._n(x) for x in EXTRA_LABELS[name])
        by = self.group_labels
        now_q = _render(name, self.templates[name], self.match, f"@ {end:.3f}", by=by)
        then_q = _render(name, self.templates[name], self.match, f"@ {grid[0]:.3f}", by=by)
        plain = _render(name, self.templates[name], self.match, "", by=by)
        totals_q = f"({now_q}) - ({then_q}) or ({now_q})"
        if restarted:
            # a counter that restarted makes "now − then" wrong (short, or negative): increase() follows every
            # series across its resets, at the price of extrapolating to the window's edges (said in a gap)
            across = _across_resets(self.templates[name])
            if across is None:
                gaps.append(f"{name}: its template has no plain counter selector, so it cannot be read across "
                            "the restart — figures that need it show as unknown")
                return None
            totals_q = _render(name, across, self.match, f"@ {end:.3f}", f"{max(1, math.ceil(end - grid[0]))}s", by)
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
            if not key[0]:
                continue  # a series without the flag label belongs to no flag
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
            if not key[0]:
                continue
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
            gaps.append(f"{name}: no series on {self.describe()} — {self._missing_hint(name)}")
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
        self._variants = {}
        match = ", ".join(part for part in (self.match, f"{self._n(c.FLAG)}={json.dumps(flag)}") if part)
        by = self.group_labels + tuple(self._n(x) for x in c.SEGMENT_LABELS)
        restarted = self._restarts(start, end, [])
        cells: dict[tuple[str, ...], SegmentRequests] = {}
        for name in ("requests", "fallbacks"):
            template = self.templates[name]
            if restarted and _across_resets(template) is not None:
                query = _render(name, _across_resets(template), match, f"@ {end:.3f}",
                                f"{max(1, math.ceil(end - start))}s", by)
            else:
                now_q = _render(name, template, match, f"@ {end:.3f}", by=by)
                query = f"({now_q}) - ({_render(name, template, match, f'@ {start:.3f}', by=by)}) or ({now_q})"
            try:
                result = self._query("query", {"query": query, "time": f"{end:.3f}"})
            except _QueryRejected as exc:
                raise BackendError(f"{self.describe()}: {name} by segment: {exc}") from None
            labels = by + tuple(self._n(x) for x in EXTRA_LABELS[name])
            for item in result:
                key = _key(item.get("metric", {}), labels)
                value = _number(item.get("value", [0, "NaN"])[1])
                if value is None or value <= 0:
                    continue  # unreadable, or a restart the check above missed: left out, never negative
                route = self._route_key(key[0], key[1]).route
                segment = dict(zip(c.SEGMENT_LABELS, key[2:2 + len(c.SEGMENT_LABELS)]))
                cell = cells.setdefault((route, *segment.values()), SegmentRequests(flag, route, segment))
                n = round(value)
                if name == "fallbacks":
                    cell.fallbacks += n
                else:
                    cell.requests += n
                    if _failed(key[-1]):
                        cell.errors += n
        return [cells[k] for k in sorted(cells)]

    def _restarts(self, start: float, end: float, gaps: list[str]) -> bool:
        """Whether a requests counter restarted inside the window (an application process restarted)."""
        query = Template(RESETS_TEMPLATE).substitute(
            metric=self._n(c.DURATION) + "_count", requests=self._n(c.REQUESTS), match=self.match,
            range=f"{max(1, math.ceil(end - start))}s", end=f"{end:.3f}")
        resets = round(sum(self._values(query, end, gaps, "restarts") or [0.0]))
        if resets:
            gaps.append(f"the application's counters restarted in this window ({resets} reset{'s' if resets > 1 else ''}): "
                        "totals are Prometheus' increase() across the restart, extrapolated to the window's edges, "
                        "not exact counter differences")
        return resets > 0

    def _as_of(self, end: float, gaps: list[str]) -> float | None:
        query = Template(AS_OF_TEMPLATE).substitute(metric=self._n(c.DURATION) + "_count", match=self.match)
        values = self._values(query, end, gaps, "data age")
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
            return out.setdefault(self._route_key(labels[0], labels[1]), RouteCounters())

        for labels, v in amounts("units").items():
            at(labels).new_units += round(v)
        for labels, v in amounts("exposures").items():
            at(labels).exposures += round(v)
        for (flag, variant, provider, model, status), v in amounts("requests").items():
            n = round(v)
            rc = at((flag, variant))
            rc.requests += n
            rc.provider_requests[(provider, model)] = rc.provider_requests.get((provider, model), 0) + n
            if _failed(status):
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
        for (flag, variant, _served), v in amounts("fallbacks").items():
            at((flag, variant)).fallbacks += round(v)
        for (flag, variant, kind), v in amounts("outcomes").items():
            rc, n = at((flag, variant)), round(v)
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
        tokens_by_model: dict[tuple[RouteKey, str], list[int]] = {}
        for (flag, variant, token_type, model), v in amounts("tokens").items():
            rc = at((flag, variant))
            pair = tokens_by_model.setdefault((self._route_key(flag, variant), model), [0, 0])
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
        self, tokens: dict[tuple[RouteKey, str], list[int]], out: dict[RouteKey, RouteCounters], gaps: list[str]
    ) -> None:
        if not tokens:
            return
        gaps.append(f"cost: no {self._n(c.COST)} series — derived from token usage × the pricing table")
        unpriced = set()
        for (key, model), (tin, tout) in tokens.items():
            usd = self.pricing.cost(RouteProfile(route=key.route or model or "?", model=model or None), tin, tout)
            if usd is None:
                unpriced.add(model or key.route)
                continue
            out.setdefault(key, RouteCounters()).cost_usd += usd
        if unpriced:
            gaps.append(f"cost: no price for {', '.join(sorted(unpriced))} — add it to pricing.toml; cost is incomplete")

    def _histograms(self, series: dict[tuple[str, ...], float], out, at, which: str, gaps: list[str]) -> None:
        """Cumulative ``le`` counts → RouteCounters' fixed-bound histograms (+ successes, slo_met)."""
        bounds = LATENCY_BOUNDS_MS if which == "latency" else TTFT_BOUNDS_MS
        # (flag, route, arm) -> {le_ms: count}, all requests; and successes only (latency)
        cum: dict[tuple[str, str, str], dict[float, float]] = {}
        ok: dict[tuple[str, str, str], dict[float, float]] = {}
        for labels, v in series.items():
            route_key, le = labels[:2], labels[2]
            try:
                le_ms = c.le_to_ms(le)
            except ValueError:
                continue
            cell = cum.setdefault(route_key, {})
            cell[le_ms] = cell.get(le_ms, 0.0) + v
            if which == "latency" and not _failed(labels[3]):
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
                    gaps.append(_no_slo_bucket(self._n(c.DURATION), good, self.slo_ms))
            else:
                rc.ttft_hist = hist
        if missing:
            shown = ", ".join(f"{m:g}" for m in sorted(missing)[:4])
            gaps.append(f"{which}: histogram lacks buckets at {shown}{'…' if len(missing) > 4 else ''} ms — quantiles are coarser")


    def _missing_hint(self, name: str) -> str:
        metric = {
            "units": c.UNITS, "crossed": c.CROSSED_UNITS, "cost_squared": c.COST_SQUARED, "exposures": c.EXPOSURES,
            "requests": c.DURATION, "fallbacks": c.FALLBACKS, "outcomes": c.JOINED_OUTCOMES, "tokens": c.TOKEN_USAGE,
            "latency": c.DURATION, "ttft": c.TTFT,
        }.get(name, name)
        labels = " and ".join(self.group_labels)
        return (f"is the application exporting {self._n(metric)} with {labels} labels? "
                "(figures that need it show as unknown)")

    def _unit_groups(self, families: dict[str, _Family]) -> list[UnitGroup] | None:
        """The window's new units per route key and attributes, with the crossed ones when they are exported."""
        units = families.get("units")
        if units is None:
            return None
        crossed = families.get("crossed")
        labels = set(units.totals) | (set(crossed.totals) if crossed is not None else set())
        groups = []
        for key in sorted(labels):
            groups.append(UnitGroup(
                self._route_key(key[0], key[1]), dict(zip(c.UNIT_ATTRIBUTE_LABELS, key[3:])),
                round(units.totals.get(key, 0.0)), round(crossed.totals.get(key, 0.0)) if crossed is not None else None,
                stage=key[2],
            ))
        return groups


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
    """The template with each counter selector read as ``increase(selector[$range] $at)``, or None when it
    has none."""
    if not _SELECTOR.findall(template):
        return None
    return _SELECTOR.sub(lambda m: f"increase({m.group(1)}{{$match}}[$range] $at)", template)


def _failed(error_type: str) -> bool:
    """An ``error_type`` value that is a failure ("" is success; "ok" is accepted for older exporters)."""
    return error_type not in ("", "ok")


def _no_slo_bucket(metric: str, cumulative: dict[float, float], slo_ms: float) -> str:
    """Why SLO attainment is counted at a stricter threshold than the rule's, in one line."""
    finite = sorted(le for le in cumulative if math.isfinite(le))
    below = max((le for le in finite if le < slo_ms), default=None)
    above = min((le for le in finite if le > slo_ms), default=None)
    near = ", ".join(f"{x / 1000:g} s" for x in (below, above) if x is not None)
    counted = f"within {below / 1000:g} s" if below is not None else "as none"
    return (f"latency: {metric} has no bucket at the {slo_ms / 1000:g} s SLO (its bounds around it: {near}) — "
            f"SLO attainment is counted {counted}, a stricter threshold than the rule's, on both arms alike; "
            f"add a bucket at {slo_ms / 1000:g} s (an OpenTelemetry View) to judge the rule's own")


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


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
