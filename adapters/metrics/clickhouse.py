"""Route telemetry from routedeck's event records in a ClickHouse table (``clickhouse:http://HOST:PORT?database=D&table=T``).

The table holds the records in normalised columns (``TABLE_COLUMNS``; docs/backends.md gives the
DDL, for one server or a ``Distributed`` table over a cluster sharded by unit). Every look is one
query over HTTP that the server aggregates (``events_sql``, the same shape DuckDB runs): only the
few per-arm rows travel back, however many events the cluster holds. Credentials come from the
keyring or ``ROUTEDECK_CLICKHOUSE_USER`` / ``ROUTEDECK_CLICKHOUSE_PASSWORD``, sent as HTTP basic
auth and never shown.

``ClickHouseWriter`` inserts records into the same table (``routedeck simulate --events clickhouse:…``).
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from console.core import event_format as ef
from console.core.credentials import read_token
from console.core.errors import BackendError, BadInput
from console.core.ports import MetricsSource
from console.core.redact import redact
from console.core.stats.summary import GroupSummary
from console.core.telemetry import DEFAULT_SLO_MS, MetricsSnapshot, SourceCapabilities, TimeBucket, UnitRecord, slo_option

from ..http import JsonHttp, RetryPolicy, make_client, redact_url
from ..spec import parse_http_spec
from . import events_sql as q
from . import events_window
from .events import unit_record

USER_ENV = "ROUTEDECK_CLICKHOUSE_USER"
#: a look's aggregate spills its GROUP BYs to disk past these sizes rather than fail at the memory limit
SPILL_SETTINGS = {"max_bytes_before_external_group_by": "800000000", "max_bytes_before_external_sort": "800000000"}
_MEMORY_LIMIT = re.compile(r"Code: 241\b|Memory limit \(for query\) exceeded")
_READONLY = re.compile(r"readonly|Cannot modify|Cannot override", re.I)
PASSWORD_ENV = "ROUTEDECK_CLICKHOUSE_PASSWORD"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: the table's columns (ClickHouse types; 18.16 and later): the normalised record, as DuckDB holds it
TABLE_COLUMNS = """
    kind UInt8, t Float64, flag String, unit String, variant Nullable(String), rid Nullable(String),
    route Nullable(String), provider Nullable(String), model Nullable(String), tin Nullable(Float64),
    tout Nullable(Float64), dur Nullable(Float64), ttfc Nullable(Float64), err Nullable(String),
    cost Nullable(Float64), fb_route Nullable(String), fb_err Nullable(String), resolved Nullable(UInt8),
    corrected Nullable(UInt8), complaint Nullable(UInt8), context Nested(name String, value String)"""
#: a MergeTree table of events (one server, or each shard's local table under a Distributed one)
LOCAL_DDL = ("CREATE TABLE IF NOT EXISTS {table} ({columns}) ENGINE = MergeTree() "
             "PARTITION BY toYYYYMMDD(toDateTime(t)) ORDER BY (flag, unit, t)")
#: a Distributed table over ``cluster``'s shards, sharded by unit so a unit's records stay together
DISTRIBUTED_DDL = ("CREATE TABLE IF NOT EXISTS {table} ({columns}) ENGINE = Distributed({cluster}, '', {local}, "
                   "cityHash64(unit))")


def row_of(record: dict[str, Any]) -> dict[str, Any]:
    """One event record (docs/events.md) as a row of ``TABLE_COLUMNS``."""
    context = sorted((k[len(ef.CONTEXT_PREFIX):], str(v)) for k, v in record.items()
                     if k.startswith(ef.CONTEXT_PREFIX) and v is not None)

    def flag(name: str) -> int | None:
        value = record.get(name)
        return None if value is None else int(bool(value))

    return {
        "kind": {ef.EXPOSURE: 0, ef.CALL: 1, ef.OUTCOME: 2}[record[ef.EVENT]], "t": ef.parse_time(record[ef.TIME]),
        "flag": record[ef.FLAG], "unit": record[ef.UNIT], "variant": record.get(ef.VARIANT),
        "rid": record.get(ef.REQUEST_ID), "route": record.get(ef.ROUTE), "provider": record.get(ef.GEN_AI_PROVIDER),
        "model": record.get(ef.GEN_AI_MODEL), "tin": record.get(ef.INPUT_TOKENS), "tout": record.get(ef.OUTPUT_TOKENS),
        "dur": record.get(ef.DURATION_MS), "ttfc": record.get(ef.TTFC_MS), "err": record.get(ef.ERROR_TYPE),
        "cost": record.get(ef.COST_USD), "fb_route": record.get(ef.FALLBACK_ROUTE),
        "fb_err": record.get(ef.FALLBACK_ERROR), "resolved": flag(ef.RESOLVED), "corrected": flag(ef.CORRECTED),
        "complaint": flag(ef.COMPLAINT),
        "context.name": [k for k, _ in context], "context.value": [v for _, v in context],
    }


class _Http:
    """ClickHouse's HTTP interface: a query in the body, credentials as basic auth, one-line errors."""

    def __init__(self, base_url: str, user: str | None, password: str | None, timeout_s: float,
                 transport: httpx.BaseTransport | None) -> None:
        headers = {}
        if user or password:
            pair = f"{user or 'default'}:{password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self.http = JsonHttp(make_client(base_url, headers=headers, timeout_s=timeout_s, transport=transport),
                             "ClickHouse", retry=RetryPolicy(attempts=2, backoff_s=0.2))
        self.password = password
        #: whether the user may set the spill settings (found out on the first heavy query)
        self.spill = True

    def post(self, sql: str, body: bytes | None = None, settings: dict[str, str] | None = None) -> str:
        params = {"query": sql} if body is not None else {}
        params.update(settings or {})
        response = self.http.request("POST", "/", params=params, content=body if body is not None else sql.encode())
        if response.status_code != 200:
            text = response.text
            if self.password:
                text = text.replace(self.password, "***")
            where = self.http.where("/")
            if re.search(r"Code: (192|193|516)\b|password|Authentication failed", text, re.I):
                raise self.http.error(f"ClickHouse at {where} refused the credentials (HTTP {response.status_code}) — "
                                      f"set {USER_ENV} and {PASSWORD_ENV} (or store them with routedeck login)")
            first = next((line for line in text.splitlines() if line.strip()), "")
            detail = re.sub(r"\s+", " ", first)[:200]
            raise self.http.error(f"ClickHouse at {where}: query failed (HTTP {response.status_code}: {redact(detail)})")
        return response.text

    def rows(self, sql: str, heavy: bool = False) -> list[dict[str, Any]]:
        """The rows of ``sql``. A ``heavy`` query (a look's aggregate) lets its GROUP BYs spill to disk past
        ``SPILL_SETTINGS`` instead of failing at the server's memory limit, where the user may set them."""
        settings = SPILL_SETTINGS if heavy and self.spill else None
        try:
            text = self.post(sql + " FORMAT JSON", settings=settings)
        except BackendError as exc:
            if settings is not None and _READONLY.search(str(exc)):
                self.spill = False  # a read-only user: the server's own limits then
                return self.rows(sql)
            if _MEMORY_LIMIT.search(str(exc)):
                raise self.http.error(
                    f"ClickHouse at {self.http.where('/')}: a look needs more memory than the server allows one "
                    "query (Code 241) — raise max_memory_usage for routedeck's user, or let it set "
                    "max_bytes_before_external_group_by") from None
            raise
        try:
            return json.loads(text)["data"]
        except (ValueError, KeyError, TypeError):
            raise self.http.error(f"ClickHouse at {self.http.where('/')}: the answer is not ClickHouse JSON — "
                                  "is this a ClickHouse HTTP port?") from None

    def close(self) -> None:
        self.http.close()


def _parse(spec: str) -> tuple[str, str, str, str, float | None]:
    given = parse_http_spec(spec, "clickhouse", "expected clickhouse:http://HOST:PORT?database=D&table=T",
                            ("database", "table", "schema", "slo_ms"),
                            f"{USER_ENV} and {PASSWORD_ENV} (or store them with routedeck login)", flag="--metrics")
    opts, url = given.options, given.shown
    slo_ms = slo_option(opts, f"clickhouse:{url}") if "slo_ms" in opts else None
    schema = opts.get("schema", "routedeck")
    if schema not in SCHEMAS:
        raise BadInput(f"--metrics {url!r}: schema must be routedeck (the events table, docs/backends.md) "
                       "or otel (the OpenTelemetry collector's otel_traces table)")
    database = opts.get("database", "default")
    table = opts.get("table", "otel_traces" if schema == "otel" else "events")
    for what, name in (("database", database), ("table", table)):
        if not _NAME.match(name):
            raise BadInput(f"--metrics {url!r}: {what} {name!r} is not a plain name (letters, digits, _)")
    return given.origin, database, table, schema, slo_ms


class ClickHouseSource(MetricsSource):
    """A ``MetricsSource`` over an event table on a ClickHouse server or cluster."""

    kind = "clickhouse"

    def __init__(self, base_url: str, database: str, table: str, *, arms_of=None, user: str | None = None,
                 password: str | None = None, clock: Callable[[], float] | None = None, slo_ms: float = DEFAULT_SLO_MS,
                 timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None, schema: str = "routedeck") -> None:
        """``schema``: ``routedeck`` (the events table, ``TABLE_COLUMNS``, any server from 18.16) or ``otel`` (the
        OpenTelemetry collector's ``otel_traces`` table read in place; a server with Map columns)."""
        self.base_url = base_url.rstrip("/")
        self.database, self.table = database, table
        self.schema = schema
        self.dialect = q.CLICKHOUSE_MAP if schema == "otel" else q.CLICKHOUSE
        self.arms_of = arms_of or (lambda flag: {})
        self._clock = clock
        self.slo_ms = slo_ms
        self.http = _Http(self.base_url, user, password, timeout_s, transport)
        self.last_rows = 0

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> "ClickHouseSource":
        base, database, table, schema, slo_ms = _parse(spec)
        if slo_ms is not None:  # the SPEC's SLO wins over a caller's
            options["slo_ms"] = slo_ms
        options.pop("speed", None)
        options.pop("seed", None)
        options.setdefault("user", read_token(USER_ENV))
        options.setdefault("password", read_token(PASSWORD_ENV))
        return cls(base, database, table, schema=schema, **options)

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(unit_level=True, segments=("plan", "region", "workflow", "internal"))

    def describe(self) -> str:
        schema = "&schema=otel" if self.schema == "otel" else ""
        slo = f"&slo_ms={self.slo_ms:g}" if self.slo_ms != DEFAULT_SLO_MS else ""
        return f"clickhouse:{redact_url(self.base_url)}?database={self.database}&table={self.table}{schema}{slo}"

    def now(self) -> float:
        return self._clock() if self._clock is not None else time.time()

    def close(self) -> None:
        self.http.close()

    @property
    def _from(self) -> str:
        """What the queries read: the events table, or the normalised view of the collector's trace table."""
        table = f"{self.database}.{self.table}"
        return q.otel_traces_relation(table) if self.schema == "otel" else table

    def _arms(self, flag: str) -> dict[str, str]:
        try:
            return dict(self.arms_of(flag))
        except Exception as exc:
            raise BackendError(f"{self.describe()}: cannot tell the arms of {flag} — {exc}") from None

    def attributes(self, flag: str, since: float, now: float) -> tuple[str, ...]:
        """The attribute names the flag's exposures carry in the window."""
        names = "mapKeys(context)" if self.schema == "otel" else "context.name"
        rows = self.http.rows(
            f"SELECT DISTINCT arrayJoin({names}) AS name FROM {self._from} WHERE flag = {self.dialect.quote(flag)} "
            f"AND kind = 0 AND t >= {since!r} AND t <= {now!r} ORDER BY name")
        return tuple(r["name"] for r in rows)

    def read_units(self, flag: str, since: float, maturation_s: float = 120.0) -> list[UnitRecord]:
        now = self.now()
        names = self.attributes(flag, since, now)
        rows = self.http.rows(q.unit_query(self.dialect, self._from, flag, self._arms(flag), since, now, maturation_s,
                                           self.slo_ms, names), heavy=True)
        self.last_rows = len(rows)
        return [unit_record(r, flag, names) for r in rows]

    def read_summaries(self, flag: str, since: float, maturation_s: float = 120.0,
                       group_by: tuple[str, ...] = ()) -> list[GroupSummary]:
        """Per arm and values of ``group_by``: the unit-level summary, aggregated by the server (one query,
        a few rows back whatever the traffic)."""
        attributes = tuple(group_by)
        return [q.group_summary(r, attributes) for r in self.read_unit_summaries(flag, since, maturation_s, attributes)]

    def read_unit_summaries(self, flag: str, since: float, maturation_s: float,
                            attributes: tuple[str, ...]) -> list[dict[str, Any]]:
        rows = self.http.rows(q.summary_sql(self.dialect, self._from, flag, self._arms(flag), since, self.now(),
                                            maturation_s, self.slo_ms, attributes), heavy=True)
        self.last_rows = len(rows)
        # attribute values stay text ("1" is not 1.0); every other column is a number
        return [{k: (v if k.startswith("a_") else _number(v)) for k, v in r.items()} for r in rows]

    def read(self, start: float, end: float, step: float) -> MetricsSnapshot:
        """Counters per route key for [start, end) in buckets of ``step`` seconds — requests, outcomes, new units,
        histograms and provider breakdowns — aggregated by the server (``events_window``, as DuckDB does)."""
        end = min(end, self.now())
        step = max(1.0, float(step))
        if end <= start:
            return MetricsSnapshot(start, start, start, [], {}, gaps=["empty window: nothing to read"])
        nb = max(1, math.ceil((end - start) / step))
        probe = events_window.window_queries(self.dialect, self._from, start, end, step, {}, self.slo_ms)
        arms = {r["flag"]: self._arms(r["flag"]) for r in self.http.rows(probe["flags"])}
        queries = events_window.window_queries(self.dialect, self._from, start, end, step, arms, self.slo_ms)
        queries.pop("flags")
        rows = {name: self.http.rows(sql, heavy=True) for name, sql in queries.items()}
        cells, served = events_window.counters_of(rows, nb)
        buckets = [TimeBucket(start + b * step, min(end, start + (b + 1) * step)) for b in range(nb)]
        for (b, key), c in cells.items():
            buckets[b].counters[key] = c
        totals = MetricsSnapshot.total_of(buckets)
        newest = self.http.rows(f"SELECT max(t) AS newest FROM {self._from} WHERE t <= {end!r}")
        as_of = float(newest[0]["newest"]) if newest and newest[0]["newest"] else start
        gaps = [] if any(c.requests for c in totals.values()) else [f"no calls recorded in this window in {self.describe()}"]
        return MetricsSnapshot(start, end, min(as_of, end), buckets, totals, fallback_served=served, gaps=gaps)


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


SCHEMAS = ("routedeck", "otel")


class ClickHouseWriter:
    """A sink inserting event records into a ClickHouse table (``JSONEachRow``), one request per batch."""

    def __init__(self, base_url: str, database: str, table: str, *, user: str | None = None,
                 password: str | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url, self.database, self.table = base_url, database, table
        self.http = _Http(base_url, user, password, 30.0, transport)

    @classmethod
    def from_spec(cls, spec: str) -> "ClickHouseWriter":
        base, database, table, schema, _ = _parse(spec)
        if schema != "routedeck":
            raise BadInput(f"--events {redact(spec)!r}: routedeck writes only its own events table (schema=routedeck)")
        return cls(base, database, table, user=read_token(USER_ENV), password=read_token(PASSWORD_ENV))

    def describe(self) -> str:
        return f"clickhouse:{redact_url(self.base_url)}?database={self.database}&table={self.table}"

    def __call__(self, records: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(row_of(r), separators=(",", ":")) + "\n" for r in records).encode()
        # on a Distributed table, the insert returns once every shard holds its rows: what was written can be read
        self.http.post(f"INSERT INTO {self.database}.{self.table} FORMAT JSONEachRow", body,
                       {"insert_distributed_sync": "1"})

    def close(self) -> None:
        self.http.close()
