"""The queries written for the ClickHouse 18.16 server also run on today's ClickHouse engine (chDB, in process)."""

from __future__ import annotations

import json

import pytest

from adapters.metrics import events_sql as q
from adapters.metrics.clickhouse import LOCAL_DDL, TABLE_COLUMNS, row_of

from console.core.stats.summary import group_units

from .helpers import FLAG, assert_same_summaries, rollout

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
    finally:
        db.close()
    source = r.events()
    try:
        want = source.read_unit_summaries(FLAG, since, 120, ("scope",))
    finally:
        source.close()
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
