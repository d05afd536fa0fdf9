"""The first look's statements run beside each other on a second connection (``events_state._Beside``): what they
make is seen by the look's own connection, and a failure there reaches the look as it would from its own."""

from __future__ import annotations

import duckdb
import pytest

from adapters.metrics.events_state import _Beside


def test_tables_made_beside_are_read_by_the_callers_connection():
    db = duckdb.connect(":memory:")
    side = _Beside(db, ["CREATE TABLE a_ AS SELECT range AS x FROM range(1000)",
                        "CREATE TABLE b_ AS SELECT sum(x) AS s FROM a_"])
    db.execute("CREATE TABLE c_ AS SELECT 1 AS y")
    side.join()
    assert db.execute("SELECT s FROM b_").fetchone()[0] == sum(range(1000))


def test_a_failure_beside_is_raised_by_join_and_stops_the_later_statements():
    db = duckdb.connect(":memory:")
    side = _Beside(db, ["SELECT * FROM no_such_table", "CREATE TABLE after_ AS SELECT 1"])
    with pytest.raises(duckdb.CatalogException):
        side.join()
    assert db.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'after_'").fetchone()[0] == 0
