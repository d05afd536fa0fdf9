"""The events on a real ClickHouse server, in a Distributed table over two shards: the same verdict as the simulator."""

from __future__ import annotations

import json

import pytest

from adapters.metrics.clickhouse import DISTRIBUTED_DDL, LOCAL_DDL, TABLE_COLUMNS, ClickHouseSource, ClickHouseWriter
from console.backends import arms_from_flags, open_metrics
from console.core import operations as ops
from console.core.errors import BackendError

from console.core.stats.summary import group_units

from ..events.helpers import FLAG, assert_same_snapshots, assert_same_summaries, rollout
from .servers import CLICKHOUSE_CLUSTER

pytestmark = pytest.mark.servers


def _distributed_table(ch, name: str) -> None:
    """``routedeck.<name>`` over ``shard1.<name>_local`` and ``shard2.<name>_local``, sharded by unit."""
    for db in ("shard1", "shard2", "routedeck"):
        ch.query(f"CREATE DATABASE IF NOT EXISTS {db}")
    for db in ("shard1", "shard2"):
        ch.query(LOCAL_DDL.format(table=f"{db}.{name}_local", columns=TABLE_COLUMNS))
    ch.query(DISTRIBUTED_DDL.format(table=f"routedeck.{name}", columns=TABLE_COLUMNS, cluster=CLICKHOUSE_CLUSTER,
                                    local=f"{name}_local"))


def _load(ch, r, table: str) -> int:
    writer = ClickHouseWriter(ch.url, "routedeck", table)
    count = 0
    try:
        for path in sorted(r.events_dir.glob("*.jsonl")):
            records = [json.loads(line) for line in path.read_text().splitlines()]
            writer(records)
            count += len(records)
    finally:
        writer.close()
    return count


@pytest.mark.parametrize("scenario", ["steady", "join-break"])
def test_same_verdict_on_the_cluster_as_on_the_simulator(clickhouse, tmp_path, scenario):
    r = rollout(tmp_path, scenario)
    table = "events_" + scenario.replace("-", "_")
    _distributed_table(clickhouse, table)
    written = _load(clickhouse, r, table)
    on_shards = [int(clickhouse.query(f"SELECT count() FROM {db}.{table}_local")) for db in ("shard1", "shard2")]
    assert sum(on_shards) == written and min(on_shards) > written * 0.3  # both shards hold a share

    on_sim = ops.look(r.rule, r.platform, r.sim).decision
    source = open_metrics(f"clickhouse:{clickhouse.url}?database=routedeck&table={table}", f"flagd:{r.flags_path}",
                          clock=r.sim.now)
    try:
        assert isinstance(source, ClickHouseSource)
        on_cluster = ops.look(r.rule, r.platform, source).decision
        since = r.platform.read_flag(FLAG).rollout.stage_started_at.timestamp()
        summaries = source.read_unit_summaries(FLAG, since, 120, ("scope",))
        # the server's aggregate is the reference summary of the simulator's unit records
        assert_same_summaries(source.read_summaries(FLAG, since, 120, ("audience", "scope")),
                              group_units(r.sim.read_units(FLAG, since, 120), ("audience", "scope")))
        # and the dashboard's time buckets (requests, outcomes, new units, histograms) are DuckDB's
        now = r.sim.now()
        on_cluster_trend = source.read(now - 600, now, 60)
    finally:
        source.close()
    duck = r.events()
    try:
        assert_same_snapshots(on_cluster_trend, duck.read(now - 600, now, 60))
    finally:
        duck.close()
    assert len(on_cluster_trend.buckets) == 10 and sum(c.outcomes for c in on_cluster_trend.totals.values()) > 100
    assert on_cluster.verdict == on_sim.verdict
    assert [(g.name, g.status, g.detail) for g in on_cluster.health] == [(g.name, g.status, g.detail) for g in on_sim.health]
    assert [(m.name, m.verdict, m.n_candidate, m.n_baseline) for m in on_cluster.metrics] == \
        [(m.name, m.verdict, m.n_candidate, m.n_baseline) for m in on_sim.metrics]
    # a few rows travel back: one per arm and scope value, whatever the traffic
    assert 2 <= len(summaries) <= 6


def test_a_refused_password_is_one_line_naming_the_url(clickhouse, monkeypatch):
    monkeypatch.setenv("ROUTEDECK_CLICKHOUSE_USER", "routedeck")
    monkeypatch.setenv("ROUTEDECK_CLICKHOUSE_PASSWORD", "not-" + clickhouse.password)
    source = open_metrics(f"clickhouse:{clickhouse.url}?database=system&table=one", None, arms_of=lambda f: {})
    try:
        with pytest.raises(BackendError) as caught:
            source.read_units(FLAG, 0.0)
    finally:
        source.close()
    message = str(caught.value)
    assert "refused the credentials" in message and clickhouse.url in message
    assert clickhouse.password not in message and "\n" not in message


def test_a_server_that_is_down_is_one_line(tmp_path):
    from .servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    source = open_metrics(f"clickhouse:{url}?database=d&table=t", None, arms_of=lambda f: {})
    try:
        with pytest.raises(BackendError) as caught:
            source.read_units(FLAG, 0.0)
    finally:
        source.close()
    assert url in str(caught.value) and "cannot connect" in str(caught.value)


def test_arms_come_from_the_flag_platform(tmp_path):
    r = rollout(tmp_path, "steady", minutes=1)
    arms = arms_from_flags(f"flagd:{r.flags_path}")(FLAG)
    flag = r.platform.read_flag(FLAG)
    assert arms == {flag.baseline: "baseline", flag.candidate: "candidate"}
