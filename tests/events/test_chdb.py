"""The queries written for the ClickHouse 18.16 server also run on today's ClickHouse engine (chDB, in process),
which also reads the OpenTelemetry collector's ClickHouse trace schema (``otel_traces``, Map attributes)."""

from __future__ import annotations

import json
import zlib

import pytest

from adapters.metrics import events_sql as q
from adapters.metrics.clickhouse import LOCAL_DDL, TABLE_COLUMNS, row_of
from console.core import event_format as ef

from console.core.stats.summary import group_units

from adapters.metrics import events_window
from console.core.telemetry import MetricsSnapshot, TimeBucket

from .helpers import FLAG, assert_same_snapshots, assert_same_summaries, rollout

chdb = pytest.importorskip("chdb", reason="chdb is a test dependency (pyproject [test])")


def test_chdb_gives_the_duckdb_summaries(tmp_path):
    from chdb import session

    r = rollout(tmp_path, "steady", minutes=8)
    since = r.platform.read_flag(FLAG).rollout.stage_started_at.timestamp()
    now = r.sim.now()
    flag = r.platform.read_flag(FLAG)
    arms = {flag.baseline: "baseline", flag.candidate: "candidate"}
    rows = [row_of(json.loads(line)) for path in sorted(r.events_dir.glob("*.jsonl"))
            for line in path.read_text().splitlines()]
    db = session.Session(str(tmp_path / "chdb"))
    try:
        db.query("CREATE DATABASE IF NOT EXISTS rd")
        db.query(LOCAL_DDL.format(table="rd.events", columns=TABLE_COLUMNS))
        (tmp_path / "rows.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
        db.query(f"INSERT INTO rd.events SELECT * FROM file('{tmp_path / 'rows.jsonl'}', JSONEachRow)")
        sql = q.summary_sql(q.CLICKHOUSE, "rd.events", FLAG, arms, since, now, 120, 2500.0, ("scope",))
        got = json.loads(str(db.query(sql, "JSON")))["data"]
        # the dashboard's time buckets: the same queries DuckDB runs
        start, step = now - 600, 60.0
        queries = events_window.window_queries(q.CLICKHOUSE, "rd.events", start, now, step, {FLAG: arms}, 2500.0)
        rows = {name: json.loads(str(db.query(sql, "JSON")))["data"] for name, sql in queries.items()}
    finally:
        db.close()
    source = r.events(arms_of=lambda f: arms if f == FLAG else {})
    try:
        want = source.read_unit_summaries(FLAG, since, 120, ("scope",))
        on_duckdb = source.read(start, now, step)
    finally:
        source.close()
    cells, served = events_window.counters_of(rows, 10)
    buckets = [TimeBucket(start + b * step, start + (b + 1) * step) for b in range(10)]
    for (b, key), c in cells.items():
        buckets[b].counters[key] = c
    on_chdb = MetricsSnapshot(start, now, now, buckets, MetricsSnapshot.total_of(buckets), fallback_served=served)
    assert_same_snapshots(on_chdb, on_duckdb)
    assert sum(c.outcomes for c in on_chdb.totals.values()) > 100 and len({k for b in buckets for k in b.counters}) >= 2
    assert len(got) == len(want) >= 2
    for g, w in zip(got, want):
        for key, value in w.items():
            if isinstance(value, (int, float)):
                assert float(g[key]) == pytest.approx(float(value), rel=1e-9, abs=1e-12), key
            else:
                assert g[key] == value, key
    # and both are the reference summary of the simulator's own unit records
    reference = group_units(r.sim.read_units(FLAG, since, 120), ("scope",))
    assert_same_summaries([q.group_summary(row, ("scope",)) for row in got], reference)


#: the OpenTelemetry collector's ClickHouse exporter creates its trace table in this shape (codecs and
#: indexes left out: they change nothing a query sees)
OTEL_TRACES_DDL = """CREATE TABLE IF NOT EXISTS otel.otel_traces (
    Timestamp DateTime64(9), TraceId String, SpanId String, ParentSpanId String, TraceState String,
    SpanName LowCardinality(String), SpanKind LowCardinality(String), ServiceName LowCardinality(String),
    ResourceAttributes Map(LowCardinality(String), String), ScopeName String, ScopeVersion String,
    SpanAttributes Map(LowCardinality(String), String), Duration UInt64, StatusCode LowCardinality(String),
    StatusMessage String,
    Events Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes Map(LowCardinality(String), String)),
    Links Nested (TraceId String, SpanId String, TraceState String, Attributes Map(LowCardinality(String), String))
) ENGINE = MergeTree PARTITION BY toDate(Timestamp) ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))"""


def _attributes(record: dict, drop: tuple[str, ...] = (ef.TIME, ef.EVENT)) -> dict[str, str]:
    """A record's fields as OpenTelemetry attributes reach ClickHouse: every value as text."""
    out = {}
    for key, value in record.items():
        if key in drop or value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _span(name: str, at: str, attributes: dict, duration_ns: int = 0, events: list[tuple[str, str, dict]] = ()) -> dict:
    span_id = f"{zlib.crc32((name + at + json.dumps(attributes, sort_keys=True)).encode()):08x}"
    return {"Timestamp": at, "TraceId": span_id * 4, "SpanId": span_id, "ParentSpanId": "", "TraceState": "",
            "SpanName": name, "SpanKind": "Client", "ServiceName": "support-app", "ResourceAttributes": {},
            "ScopeName": "app", "ScopeVersion": "", "SpanAttributes": attributes, "Duration": duration_ns,
            "StatusCode": "Unset", "StatusMessage": "", "Events.Timestamp": [e[1] for e in events],
            "Events.Name": [e[0] for e in events], "Events.Attributes": [e[2] for e in events],
            "Links.TraceId": [], "Links.SpanId": [], "Links.TraceState": [], "Links.Attributes": []}


def otel_spans(records: list[dict]) -> list[dict]:
    """The event records as an OpenTelemetry-instrumented application's spans: each call a request span carrying
    the GenAI and feature-flag attributes with its exposure as OpenFeature's span event; each outcome either a
    span of its own or an event on a feedback span (both shapes occur)."""
    exposures = {r[ef.REQUEST_ID]: r for r in records if r[ef.EVENT] == ef.EXPOSURE}
    spans = []
    for r in records:
        if r[ef.EVENT] == ef.CALL:
            seen = exposures[r[ef.REQUEST_ID]]
            event = (ef.EXPOSURE, seen[ef.TIME], _attributes(seen))
            attrs = _attributes(r, (ef.TIME, ef.EVENT, ef.DURATION_MS, ef.TTFC_MS))
            attrs["gen_ai.response.time_to_first_chunk"] = repr(r[ef.TTFC_MS] / 1000)
            spans.append(_span("chat balanced", r[ef.TIME], attrs, round(r[ef.DURATION_MS] * 1e6), [event]))
        elif r[ef.EVENT] == ef.OUTCOME:
            if zlib.crc32(r[ef.REQUEST_ID].encode()) % 2:
                spans.append(_span(ef.OUTCOME, r[ef.TIME], _attributes(r)))
            else:
                spans.append(_span("feedback", r[ef.TIME], {}, 0, [(ef.OUTCOME, r[ef.TIME], _attributes(r))]))
    return spans


def test_chdb_reads_the_opentelemetry_collector_trace_table(tmp_path):
    from chdb import session

    r = rollout(tmp_path, "latency-regression", minutes=8)
    since = r.platform.read_flag(FLAG).rollout.stage_started_at.timestamp()
    now = r.sim.now()
    flag = r.platform.read_flag(FLAG)
    arms = {flag.baseline: "baseline", flag.candidate: "candidate"}
    records = [json.loads(line) for path in sorted(r.events_dir.glob("*.jsonl")) for line in path.read_text().splitlines()]
    spans = otel_spans(records)
    (tmp_path / "spans.jsonl").write_text("".join(json.dumps(x) + "\n" for x in spans))
    db = session.Session(str(tmp_path / "chdb-otel"))
    try:
        db.query("CREATE DATABASE IF NOT EXISTS otel")
        db.query(OTEL_TRACES_DDL)
        db.query(f"INSERT INTO otel.otel_traces SELECT * FROM file('{tmp_path / 'spans.jsonl'}', JSONEachRow) "
                 "SETTINGS date_time_input_format = 'best_effort'")
        assert int(str(db.query("SELECT count() FROM otel.otel_traces", "CSV")).strip()) == len(spans)
        relation = q.otel_traces_relation("otel.otel_traces")
        group_by = ("audience", "scope")
        sql = q.summary_sql(q.CLICKHOUSE_MAP, relation, FLAG, arms, since, now, 120, 2500.0, group_by)
        got = [q.group_summary(row, group_by) for row in json.loads(str(db.query(sql, "JSON")))["data"]]
    finally:
        db.close()
    assert_same_summaries(got, group_units(r.sim.read_units(FLAG, since, 120), group_by))
