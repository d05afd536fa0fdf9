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


def test_cancel_interrupts_the_statements_beside_and_raises_nothing():
    db = duckdb.connect(":memory:")
    # counting ten billion rows takes seconds: interrupted, neither table is made
    side = _Beside(db, ["CREATE TABLE slow_ AS SELECT count(*) AS n FROM range(10000000000)",
                        "CREATE TABLE after_ AS SELECT 1"])
    side.cancel()
    made = db.execute("SELECT table_name FROM information_schema.tables WHERE table_name IN ('slow_', 'after_')")
    assert made.fetchall() == []


def test_a_failed_first_look_interrupts_the_statement_beside_it(monkeypatch):
    """The first look's own statement fails while the first exposures are aggregated beside it: the look's error
    is raised at once, and the statement beside it is interrupted instead of waited for."""
    from types import SimpleNamespace

    import adapters.metrics.events_state as es

    class Watched(es._Beside):
        cancelled = False

        def cancel(self):
            Watched.cancelled = True
            super().cancel()

        def join(self):
            raise AssertionError("the failed look waited for the statement beside it")

    monkeypatch.setattr(es, "_Beside", Watched)
    monkeypatch.setattr(es, "request_sql", lambda slo_ms, arms, salt: [("x", "1")])
    state = es.UnitState.__new__(es.UnitState)
    state.key, state.salt = SimpleNamespace(slo_ms=2500.0, arms=()), 0
    state.rq, state.un, state.ux, state.ur = "rq_t", "un_t", "ux_t", "ur_t"
    monkeypatch.setattr(state, "_new_rows", lambda table, now, where: "SELECT 'r1' AS rid", raising=False)
    monkeypatch.setattr(state, "_exposures", lambda table, now: "SELECT count(*) AS n FROM range(10000000000)",
                        raising=False)
    monkeypatch.setattr(state, "_first_routes", lambda table, now: "SELECT * FROM no_such_table", raising=False)
    db = duckdb.connect(":memory:")
    with pytest.raises(duckdb.CatalogException):
        state._build(db, "events", 0.0)
    assert Watched.cancelled
    assert db.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'ux_t'").fetchone()[0] == 0
