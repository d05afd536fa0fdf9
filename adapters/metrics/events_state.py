"""Per-unit totals of one flag's stage window, kept inside DuckDB between looks (the events source's look).

A look's figures are sums over requests: each request adds to its unit's columns (``unit_terms``) what its
call and (once it arrived) its outcome say, and whether it has matured. So the window's unit totals can be
kept and brought up to date with what changed since the last look, instead of read again:

- records taken in since the last look (a later ingest batch), and records taken in before whose time was
  still ahead of the last look's "now": their requests are merged into the per-request table (``rq``: a
  request's call and outcome as one row of flags, every merge a max or a bitwise or, so a duplicate counts
  once) and each unit gains (new contribution − old contribution) of those requests;
- requests made between the last look's maturation cut and this one's: their exposure has matured now.

The unit table (``un``) also keeps each unit's first call (its arm and route), the arms it was seen on
(crossover) and its first exposure's attributes. A look then aggregates the unit table into a few rows per
arm and attribute group (``events_sql.summary_of_units``). The result equals ``events_sql.unit_query`` run
over everything (tests/events hold them to it); a different window, join window, SLO or arm mapping starts
a new state, built in one pass.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import duckdb

from console.core.errors import BackendError
from console.core.telemetry import TTFT_BOUNDS_MS

from . import events_sql as q

#: requests per slice of the units when the first look aggregates them (see ``UnitState._build``)
HIST_SLICE_REQUESTS = 2_000_000
#: a cut no request is at or before (the first update: nothing had matured)
_NEVER = -1e300
#: salts tried for the unit key before a look gives up (each further one only after a collision)
MAX_SALTS = 4
#: a kept table is copied anew (its deleted rows left behind) once it holds this many deleted rows per live one
#: (see ``UnitState._compact``)
COMPACT_AT = 0.25


def context_map(entries: str) -> str:
    """The MAP of the evaluation attributes in a record's ``ctx`` list (names and values in turn: see
    ``events.ENTRIES``); NULL stays NULL, a name given twice is an error."""
    return f"map(list_slice({entries}, 1, -1, 2), list_slice({entries}, 2, -1, 2))"


def unit_key(salt: int, column: str = "unit") -> str:
    """The 64-bit integer the per-request and per-unit tables key a unit by (``uh``): DuckDB's hash of the unit key,
    of the key behind a salt character after a collision. Grouping and joining by it costs less than by the string
    (whatever its length: pseudonymised keys are 64 hex digits). Two unit keys with one hash would merge: every look
    checks the units it sees for that (``_collisions``) and the window is built again under the next salt."""
    return f"hash({column})" if salt == 0 else f"hash({q.DUCKDB.quote(chr(salt))} || {column})"


class UnitKeyCollision(Exception):
    """Two unit keys of a window share their ``unit_key`` hash (the window is built again under another salt)."""

#: a request's yes/no facts, one bit each in ``bits`` (merging two records of a request is a bitwise or)
BITS = {"has_call": 0, "ok": 1, "failed": 2, "limited": 3, "timed_out": 4, "fell_back": 5, "in_slo": 6,
        "has_out": 7, "res": 8, "corr": 9, "compl": 10}


def _bit(name: str, column: str = "bits") -> str:
    return f"(({column} >> {BITS[name]}) & 1)"


def request_sql(slo_ms: float, arms: dict[str, str], salt: int = 0) -> list[tuple[str, str]]:
    """(column, aggregate over a request's records): the per-request row ``rq`` keeps — as narrow as it can be
    (the unit's route is read from the calls apart): millions of requests must fit the memory limit."""
    n = q._number
    call = "kind = 1"
    facts = {
        "has_call": call, "ok": f"{call} AND {q.SUCCESS}", "failed": f"{call} AND err IS NOT NULL",
        "limited": f"{call} AND err = '429'", "timed_out": f"{call} AND err = 'timeout'",
        "fell_back": f"{call} AND fb_route IS NOT NULL", "in_slo": f"{call} AND {q.SUCCESS} AND dur <= {n(slo_ms)}",
        "has_out": "kind = 2", "res": "kind = 2 AND resolved", "corr": "kind = 2 AND corrected",
        "compl": "kind = 2 AND complaint",
    }
    bits = " | ".join(f"(CASE WHEN {cond} THEN {1 << BITS[name]} ELSE 0 END)" for name, cond in facts.items())
    ttf_b = q.bucket_index("coalesce(ttfc, dur)", TTFT_BOUNDS_MS)
    return [
        ("uh", f"max(CASE WHEN {call} THEN {unit_key(salt)} END)"),
        ("t_call", f"max(CASE WHEN {call} THEN t END)"),
        ("arm", f"CAST(max(CASE WHEN {call} THEN {q.arms_values(q.DUCKDB, arms)} END) AS UTINYINT)"),
        ("bits", f"CAST(bit_or({bits}) AS USMALLINT)"),
        ("cost", f"max(CASE WHEN {call} THEN coalesce(cost, 0) ELSE 0 END)"),
        ("lat_b", f"CAST(max(CASE WHEN {call} THEN {q.latency_bucket('dur')} END) AS UTINYINT)"),
        ("ttf_b", f"CAST(max(CASE WHEN {call} THEN {ttf_b} END) AS UTINYINT)"),
    ]


def unit_terms(cut: float) -> list[tuple[str, str]]:
    """(unit column, what one request row of ``rq`` adds to it): ``events_sql.unit_terms`` on packed flags."""
    mature = f"(CASE WHEN t_call <= {q._number(cut)} THEN 1 ELSE 0 END)"
    terms = [
        ("requests", "1"), ("successes", _bit("ok")), ("exposures", "1"), ("outcomes", _bit("has_out")),
        ("resolved", _bit("res")), ("escalated", f"{_bit('has_out')} - {_bit('res')}"), ("corrected", _bit("corr")),
        ("complaints", _bit("compl")), ("errors", _bit("failed")), ("rate_limited", _bit("limited")),
        ("timeouts", _bit("timed_out")), ("fallbacks", _bit("fell_back")), ("slo_met", _bit("in_slo")),
        ("cost_usd", "cost"), ("mature_exposures", mature), ("mature_outcomes", f"{mature} * {_bit('has_out')}"),
    ]
    assert tuple(name for name, _ in terms) == q.UNIT_COLUMNS
    for prefix, column in (("lc", "lat_b"), ("tc", "ttf_b")):
        bounds = q.HIST_COLUMNS["latency_hist" if prefix == "lc" else "ttft_hist"][2]
        for i in range(len(bounds) + 1):
            terms.append((f"{prefix}_{i}", f"(CASE WHEN {column} <= {i} THEN 1 ELSE 0 END)"))
    return terms


@dataclass(frozen=True)
class WindowKey:
    flag: str
    since: float
    maturation_s: float
    slo_ms: float
    arms: tuple[tuple[str, str], ...]


class UnitState:
    """The unit totals of one window (``key``) as of the last look (``now``; records up to batch ``seq``).

    Requests are keyed by their id, units by ``unit_key(salt)`` (``uh``); the unit table keeps the unit key too."""

    def __init__(self, key: WindowKey, name: str, salt: int = 0) -> None:
        self.key = key
        self.salt = salt
        self.rq, self.un = f"rq_{name}", f"un_{name}"
        #: the first look's unit keys (dropped once the unit table is built)
        self.ux, self.ur = f"ux_{name}", f"ur_{name}"
        self.now = _NEVER
        self.seq = -1
        #: live and deleted rows of the kept tables (a later look deletes the rows it replaces; see ``_compact``)
        self.rows = {self.rq: 0, self.un: 0}
        self.dead = {self.rq: 0, self.un: 0}
        #: times each kept table was copied anew (tests read it)
        self.compactions = {self.rq: 0, self.un: 0}
        self._copied_last: str | None = None
        #: the summary rows already computed, per attribute tuple (kept up to date by each later look)
        self._summaries: dict[tuple[str, ...], dict[tuple, dict[str, Any]]] = {}

    @property
    def cut(self) -> float:
        return self.now - self.key.maturation_s if self.now > _NEVER else _NEVER

    def _new_rows(self, table: str, now: float, kinds: str) -> str:
        """The records of the window not taken in yet (``kinds``: a condition on ``kind``)."""
        k = self.key
        n = q._number
        where = f"flag = {q.DUCKDB.quote(k.flag)} AND {kinds} AND t >= {n(k.since)} AND t <= {n(now)}"
        parts = [f"SELECT * FROM {table} WHERE {where} AND seq > {int(self.seq)}"]
        if self.seq >= 0:
            # taken in earlier, but ahead of the last look's clock then
            parts.append(f"SELECT * FROM {table} WHERE {where} AND t_max > {n(self.now)} AND t > {n(self.now)} "
                         f"AND seq <= {int(self.seq)}")
        return " UNION ALL ".join(parts)

    def _exposures(self, table: str, now: float) -> str:
        """Each unit's first new exposure: its time and its attributes (a map made once per unit)."""
        return (f"SELECT unit, {unit_key(self.salt)} AS uh, min(t) AS x_t, {context_map('arg_min(ctx, t)')} AS ctx "
                f"FROM ({self._new_rows(table, now, 'kind = 0')}) AS n GROUP BY unit")

    def _first_routes(self, table: str, now: float) -> str:
        """Each unit's route: the route of its first new call (the same call whose arm is the unit's)."""
        return (f"SELECT unit, {unit_key(self.salt)} AS uh, arg_min(route, t) AS route, min(t) AS t_route "
                f"FROM ({self._new_rows(table, now, 'kind = 1')}) AS n GROUP BY unit")

    @staticmethod
    def _collisions(db: duckdb.DuckDBPyConnection, seen: str, kept: str | None = None) -> None:
        """Raise ``UnitKeyCollision`` if two unit keys among ``seen`` (a query of unit, uh), or one of them and one of
        the unit table ``kept``, share a ``uh``."""
        twice = f"SELECT uh FROM (SELECT DISTINCT unit, uh FROM ({seen}) AS s) AS d GROUP BY uh HAVING count(*) > 1"
        found = db.execute(f"SELECT count(*) FROM ({twice}) AS c").fetchone()[0]
        if not found and kept is not None:
            found = db.execute(f"SELECT count(*) FROM ({seen}) AS s JOIN {kept} AS k USING (uh) "
                               "WHERE s.unit <> k.unit").fetchone()[0]
        if found:
            raise UnitKeyCollision()

    def update(self, db: duckdb.DuckDBPyConnection, table: str, now: float, seq: int) -> None:
        """Take in the records of ``table`` up to batch ``seq`` with a time up to ``now``."""
        if now < self.now:
            raise ValueError("a look earlier than the last one")  # the caller starts a new state
        if self.seq < 0:
            self._build(db, table, now)
        else:
            self._advance(db, table, now)
        self.now, self.seq = now, seq

    def _build(self, db: duckdb.DuckDBPyConnection, table: str, now: float) -> None:
        """The first look at the window: every request and unit in one pass each."""
        k = self.key
        fields = ", ".join(f"{expr} AS {name}" for name, expr in request_sql(k.slo_ms, dict(k.arms), self.salt))
        x = db.execute
        ux, ur = self.ux, self.ur
        for t in (self.rq, self.un, ux, ur):
            x(f"DROP TABLE IF EXISTS {t}")
        x(f"CREATE TABLE {self.rq} AS SELECT rid, {fields} FROM ({self._new_rows(table, now, 'kind IN (1, 2)')}) "
          "AS n GROUP BY rid")
        # the unit keys — every unit with an exposure (and its attributes), every unit with a call (and its route) —
        # aggregated at once, the first on a second connection: each statement alone keeps the cores busy only part
        # of the time (a Parquet file is read by one thread per row group)
        side = _Beside(db, [f"CREATE TABLE {ux} AS {self._exposures(table, now)}"])
        try:
            x(f"CREATE TABLE {ur} AS {self._first_routes(table, now)}")
        except BaseException:
            side.cancel()  # the look has failed: its error is said now, not after the other statement's seconds
            raise
        side.join()
        self._collisions(db, f"SELECT unit, uh FROM {ur} UNION ALL SELECT unit, uh FROM {ux}")
        terms = unit_terms(now - k.maturation_s)
        core = [(name, expr) for name, expr in terms if not name.startswith(("lc_", "tc_"))]
        hist = [(name, expr) for name, expr in terms if name.startswith(("lc_", "tc_"))]
        stored = ", ".join(f'{_stored(name, f"coalesce(u.{name}, 0)")} AS {name}' for name, _ in terms)
        # the unit rows in slices of the units (by uh): each slice one aggregate of all 77 columns over its requests,
        # joined at once to its units' exposures and routes. One hash table over every unit outgrows the memory
        # limit at millions of requests and spills; aggregating the counters and the histograms apart and joining
        # them cost more (about 4 CPU-s against 3 at 10M events)
        parts = 1 + int(x(f"SELECT count(*) FROM {self.rq}").fetchone()[0]) // HIST_SLICE_REQUESTS
        for p in range(parts):
            sliced = f"uh % {parts} = {p}" if parts > 1 else "true"
            x(f"""{f'CREATE TABLE {self.un} AS' if p == 0 else f'INSERT INTO {self.un}'}
                  SELECT coalesce(r.unit, e.unit) AS unit, coalesce(u.uh, e.uh) AS uh, u.arm, r.route, u.first_seen,
                  u.on_base, u.on_cand, e.ctx, e.x_t, {stored}
                  FROM (SELECT uh, CAST(arg_min(arm, t_call) AS INTEGER) AS arm, min(t_call) AS first_seen,
                          CAST(max(CASE WHEN arm = 0 THEN 1 ELSE 0 END) AS INTEGER) AS on_base,
                          CAST(max(CASE WHEN arm = 1 THEN 1 ELSE 0 END) AS INTEGER) AS on_cand,
                          {_counts(core)}, {_counts(hist)}
                        FROM {self.rq} WHERE {_bit('has_call')} = 1 AND {sliced} GROUP BY uh) AS u
                  FULL JOIN (SELECT * FROM {ux} WHERE {sliced}) AS e USING (uh)
                  LEFT JOIN (SELECT * FROM {ur} WHERE {sliced}) AS r USING (uh)""")
        for t in (ux, ur):
            x(f"DROP TABLE {t}")
        for t in (self.rq, self.un):
            self.rows[t], self.dead[t] = int(x(f"SELECT count(*) FROM {t}").fetchone()[0]), 0

    def _advance(self, db: duckdb.DuckDBPyConnection, table: str, now: float) -> None:
        """A later look: merge the new records' requests, and mature the requests that crossed the cut."""
        k = self.key
        x = db.execute
        fields = request_sql(k.slo_ms, dict(k.arms), self.salt)
        merged = ", ".join(f"{expr} AS {name}" for name, expr in fields)
        x(f"CREATE OR REPLACE TEMP TABLE dr_ AS SELECT rid, {merged} "
          f"FROM ({self._new_rows(table, now, 'kind IN (1, 2)')}) AS n GROUP BY rid")
        x(f"CREATE OR REPLACE TEMP TABLE o_ AS SELECT * FROM {self.rq} WHERE rid IN (SELECT rid FROM dr_)")
        combine = ", ".join(
            "coalesce(o.bits, 0) | coalesce(d.bits, 0) AS bits" if name == "bits" else f"greatest(o.{name}, d.{name}) AS {name}"
            for name, _ in fields)
        x(f"CREATE OR REPLACE TEMP TABLE n_ AS SELECT d.rid, {combine} FROM dr_ AS d LEFT JOIN o_ AS o USING (rid)")
        cut, old_cut = now - k.maturation_s, self.cut
        x(f"""CREATE OR REPLACE TEMP TABLE m_ AS SELECT uh, bits FROM {self.rq}
              WHERE {_bit('has_call')} = 1 AND t_call > {q._number(old_cut)} AND t_call <= {q._number(cut)}
              AND rid NOT IN (SELECT rid FROM dr_)""")
        x("DROP TABLE dr_")  # every temporary table is dropped after its last use: the kept tables fill the memory
        terms_now, terms_then = unit_terms(cut), unit_terms(old_cut)

        def signed(source: str, sign: int, terms: list[tuple[str, str]]) -> str:
            cols = ", ".join(f"{sign} * ({expr}) AS {name}" for name, expr in terms)
            return f"SELECT uh, {cols} FROM {source} WHERE {_bit('has_call')} = 1"

        # a request that only matured (in m_) changes its unit's two maturity counts, by one exposure and its
        # outcome: every other term is the same before and after the cut
        matured = {"mature_exposures": "1", "mature_outcomes": _bit("has_out")}
        ripe = ", ".join(f"{matured.get(name, '0')} AS {name}" for name, _ in terms_now)
        changes = " UNION ALL ".join([signed("n_", 1, terms_now), signed("o_", -1, terms_then),
                                      f"SELECT uh, {ripe} FROM m_"])
        cols = [name for name, _ in terms_now]
        # a change of a unit count fits its 4-byte column: summed as such (a sum of integers is a 16-byte one)
        deltas = ", ".join(f"{_stored(c, f'sum({c})')} AS {c}" for c in cols)
        x(f"CREATE OR REPLACE TEMP TABLE du_ AS SELECT uh, {deltas} FROM ({changes}) AS c GROUP BY uh")
        x("DROP TABLE m_")
        # calls new to the window (a request whose call was already in only gained its outcome)
        x(f"""CREATE OR REPLACE TEMP TABLE df_ AS SELECT c.*, r.unit, r.route FROM (
                SELECT n.uh AS uh, min(n.t_call) AS first_seen, CAST(arg_min(n.arm, n.t_call) AS INTEGER) AS arm,
                  CAST(max(CASE WHEN n.arm = 0 THEN 1 ELSE 0 END) AS INTEGER) AS on_base,
                  CAST(max(CASE WHEN n.arm = 1 THEN 1 ELSE 0 END) AS INTEGER) AS on_cand
                FROM n_ AS n LEFT JOIN o_ AS o USING (rid)
                WHERE {_bit('has_call', 'n.bits')} = 1 AND coalesce({_bit('has_call', 'o.bits')}, 0) = 0
                GROUP BY n.uh) AS c
              LEFT JOIN ({self._first_routes(table, now)}) AS r USING (uh)""")
        # the merged requests replace their old rows (no transaction: a failure from here on drops the whole state)
        self._replace(db, self.rq, "rid IN (SELECT rid FROM o_)", "n_")
        for temp in ("o_", "n_"):
            x(f"DROP TABLE {temp}")
        x(f"CREATE OR REPLACE TEMP TABLE dx_ AS {self._exposures(table, now)}")
        # a new unit key whose hash is another unit's: the caller builds the window again under the next salt
        self._collisions(db, "SELECT unit, uh FROM df_ WHERE unit IS NOT NULL UNION ALL SELECT unit, uh FROM dx_",
                         self.un)
        x("CREATE OR REPLACE TEMP TABLE k_ AS SELECT uh FROM du_ UNION SELECT uh FROM df_ UNION SELECT uh FROM dx_")
        # the changed units' rows as they were (found by a semi-join: the unit table is not read whole)
        x(f"CREATE OR REPLACE TEMP TABLE ou_ AS SELECT * FROM {self.un} WHERE uh IN (SELECT uh FROM k_)")
        sums = ", ".join(f"{_stored(c, f'coalesce(u.{c}, 0) + coalesce(s.{c}, 0)')} AS {c}" for c in cols)
        earlier_call = "f.first_seen IS NOT NULL AND (u.first_seen IS NULL OR f.first_seen < u.first_seen)"
        earlier_exposure = "x.x_t IS NOT NULL AND (u.x_t IS NULL OR x.x_t < u.x_t)"
        # the changed units' rows are replaced (a DuckDB UPDATE of 77 columns costs more than this)
        x(f"""CREATE OR REPLACE TEMP TABLE nu_ AS SELECT coalesce(u.unit, f.unit, x.unit) AS unit, k.uh,
              CASE WHEN {earlier_call} THEN f.arm ELSE u.arm END AS arm,
              CASE WHEN {earlier_call} THEN f.route ELSE u.route END AS route,
              least(u.first_seen, f.first_seen) AS first_seen,
              greatest(u.on_base, f.on_base) AS on_base, greatest(u.on_cand, f.on_cand) AS on_cand,
              CASE WHEN {earlier_exposure} THEN x.ctx ELSE u.ctx END AS ctx,
              least(u.x_t, x.x_t) AS x_t, {sums}
              FROM k_ AS k LEFT JOIN ou_ AS u USING (uh) LEFT JOIN du_ AS s USING (uh)
              LEFT JOIN df_ AS f USING (uh) LEFT JOIN dx_ AS x USING (uh)""")
        for temp in ("du_", "df_", "dx_"):
            x(f"DROP TABLE {temp}")
        # the kept summaries change by the changed units' new rows less their old ones (every aggregate is a sum)
        for attributes, kept in self._summaries.items():
            _add_rows(kept, rows_of(db.execute(q.summary_of_units(self.units_sql(attributes, "nu_"), len(attributes)))), 1)
            _add_rows(kept, rows_of(db.execute(q.summary_of_units(self.units_sql(attributes, "ou_"), len(attributes)))), -1)
        x("DROP TABLE ou_")
        self._replace(db, self.un, "uh IN (SELECT uh FROM k_)", "nu_")
        for temp in ("k_", "nu_"):
            x(f"DROP TABLE {temp}")
        self._compact(db)

    def _replace(self, db: duckdb.DuckDBPyConnection, table: str, old: str, new: str) -> None:
        """Delete ``table``'s rows matching ``old`` and append the rows of table ``new`` (counted for ``_compact``)."""
        gone = int(db.execute(f"DELETE FROM {table} WHERE {old}").fetchone()[0])
        added = int(db.execute(f"INSERT INTO {table} SELECT * FROM {new}").fetchone()[0])
        self.rows[table] += added - gone
        self.dead[table] += gone

    def _compact(self, db: duckdb.DuckDBPyConnection) -> None:
        """Copy a kept table anew once its deleted rows reach ``COMPACT_AT`` of its live ones.

        DuckDB keeps a deleted row until a checkpoint rewrites its row group, and every later look deletes rows all
        over the unit table (the changed units') and the request table (requests whose outcome came). Its automatic
        checkpoint is off (``events.EventsSource``): at 10M events it rewrote the whole unit table, 0.4–0.7 s inside
        a look, every look or two. A copy of the live rows costs less (the unit table at 10M events: 0.12–0.35 s, every
        third look, as a look changes about 22k of its 258k units; the request table, 0.26 s, every ~130th look) and
        keeps the deleted rows near a quarter of the live ones. One table a look at most (when both are due, the one
        not copied last; the other waits a look): two copies would make that look twice as long."""
        due = [t for t in (self.un, self.rq) if self.dead[t] > 0 and self.dead[t] >= COMPACT_AT * max(self.rows[t], 1)]
        if due:
            table = next(t for t in due if t != self._copied_last) if len(due) > 1 else due[0]
            db.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {table}")
            self.dead[table] = 0
            self.compactions[table] += 1
            self._copied_last = table

    def drop(self, db: duckdb.DuckDBPyConnection) -> None:
        for t in (self.rq, self.un, self.ux, self.ur):
            db.execute(f"DROP TABLE IF EXISTS {t}")

    # ---- reading it ----------------------------------------------------------------------------

    def units_sql(self, attributes: tuple[str, ...] | None, table: str | None = None) -> str:
        """The units with a call in the window: arm, route, first_seen, crossed, the unit columns, and
        either the attributes as ``a_<i>`` or the whole attribute map as ``ctx`` (``table``: another table of
        unit rows, such as a look's changed units)."""
        if attributes is None:
            picked = "ctx"
        else:
            picked = ", ".join(f"{q.DUCKDB.attribute('ctx', a)} AS a_{i}" for i, a in enumerate(attributes)) or "1 AS _"
        # kept as 4-byte integers; read as 8-byte ones, so their squares cannot overflow
        cols = ", ".join(name if name == "cost_usd" else f"CAST({name} AS BIGINT) AS {name}" for name, _ in unit_terms(0.0))
        return (f"SELECT unit, arm, route, first_seen, on_base * on_cand AS crossed, {picked}, {cols} "
                f"FROM {table or self.un} WHERE requests > 0")

    def summary(self, db: duckdb.DuckDBPyConnection, attributes: tuple[str, ...]) -> list[dict[str, Any]]:
        """The summary rows per arm and attribute values: computed over every unit once per attribute tuple,
        then kept up to date by each later look from the units it changed."""
        kept = self._summaries.get(attributes)
        if kept is None:
            kept = {}
            _add_rows(kept, rows_of(db.execute(q.summary_of_units(self.units_sql(attributes), len(attributes)))), 1)
            self._summaries[attributes] = kept
        return [dict(row) for key, row in sorted(kept.items(), key=lambda kv: tuple(str(v) for v in kv[0]))
                if row["units"] > 0]


class _Beside:
    """Statements run in order on a second connection to ``db``, in a thread, while the caller runs its own;
    ``join`` waits for them and raises the first one's failure (a ``duckdb.Error`` as from the caller's)."""

    def __init__(self, db: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
        self._cursor = db.cursor()
        self._failure: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, args=(statements,), name="events-beside", daemon=True)
        self._thread.start()

    def _run(self, statements: list[str]) -> None:
        try:
            for sql in statements:
                if self._cancelled:
                    return
                self._cursor.execute(sql)
        except BaseException as exc:  # handed to the caller by join
            self._failure = exc

    def join(self) -> None:
        self._thread.join()
        self._cursor.close()
        if self._failure is not None:
            raise self._failure

    def cancel(self) -> None:
        """Interrupt the statements (their tables are not made) and wait for the thread; raises nothing."""
        self._cancelled = True
        while self._thread.is_alive():  # again until it stops: a statement may start just after an interrupt
            self._cursor.interrupt()
            self._thread.join(0.05)
        self._cursor.close()


def _add_rows(kept: dict[tuple, dict[str, Any]], rows: list[dict[str, Any]], sign: int) -> None:
    """Add (``sign`` 1) or take away (−1) summary rows, by their arm and attribute values."""
    for row in rows:
        key = tuple(v for k, v in row.items() if k == "arm" or k.startswith("a_"))
        have = kept.get(key)
        if have is None:
            have = kept[key] = {k: (v if k == "arm" or k.startswith("a_") else 0) for k, v in row.items()}
        for k, v in row.items():
            if not (k == "arm" or k.startswith("a_")):
                have[k] += sign * (v or 0)


def _stored(column: str, expr: str) -> str:
    """A unit column as the unit table keeps it: counts as 4-byte integers (a unit's requests stay far below
    2^31), cost as a double."""
    return expr if column == "cost_usd" else f"CAST({expr} AS INTEGER)"


def _counts(terms: list[tuple[str, str]]) -> str:
    """Per-unit aggregates of request terms. Every term but cost is 0 or 1: counting keeps 8 bytes a unit per
    column (a sum of integers keeps 16)."""
    def count(name: str, expr: str) -> str:
        if name == "cost_usd":
            return "sum(cost) AS cost_usd"
        if expr == "1":
            return f"count(*) AS {name}"
        if name.startswith(("lc_", "tc_")):  # a cumulative histogram counter: one comparison, no CASE
            column = "lat_b" if name.startswith("lc_") else "ttf_b"
            return f"count_if({column} <= {int(name.split('_')[1])}) AS {name}"
        return f"count_if(({expr}) = 1) AS {name}"

    return ", ".join(count(name, expr) for name, expr in terms)


class UnitStates:
    """The few windows looked at lately (a look, the segments view, the budgets view), each kept up to date."""

    def __init__(self, keep: int = 3) -> None:
        self.keep = keep
        self._states: dict[WindowKey, UnitState] = {}
        self._made = 0

    def current(self, db: duckdb.DuckDBPyConnection, table: str, key: WindowKey, now: float, seq: int) -> UnitState:
        state = self._states.pop(key, None)
        if state is not None and now < state.now:
            state.drop(db)
            state = None
        if state is None:
            self._made += 1
            state = UnitState(key, f"w{self._made}")
        self._states[key] = state  # most recent last
        while len(self._states) > self.keep:
            oldest = next(iter(self._states))
            self._states.pop(oldest).drop(db)
        try:
            while True:
                try:
                    state.update(db, table, now, seq)
                    break
                except UnitKeyCollision:
                    # two unit keys share a hash (odds about 3 in 10^8 at a million units): this window is built
                    # again from the records under the next salt, so no two units are ever merged
                    if state.salt + 1 >= MAX_SALTS:
                        raise BackendError(f"{key.flag}: unit keys whose hashes collide under {MAX_SALTS} salts "
                                           "— report this, with the unit keys' format") from None
                    state.drop(db)
                    self._made += 1
                    state = UnitState(key, f"w{self._made}", state.salt + 1)
                    self._states[key] = state
        except BaseException:
            # a half-applied change is never kept: the state is dropped and the next look builds this window
            # again from the records (no transaction around the update: its commit cost more than the update)
            self._states.pop(key, None)
            try:
                state.drop(db)
            except duckdb.Error:
                pass
            raise
        return state

    def clear(self, db: duckdb.DuckDBPyConnection) -> None:
        for state in self._states.values():
            state.drop(db)
        self._states.clear()


def rows_of(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
