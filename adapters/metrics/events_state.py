"""Per-unit totals of one flag's stage window, kept inside DuckDB between looks (the events source's look).

A look's figures are sums over requests: each request adds to its unit's columns (``events_sql.unit_terms``)
what its call and (once it arrived) its outcome say, and whether it has matured. So the window's unit
totals can be kept and brought up to date with what changed since the last look, instead of read again:

- records taken in since the last look (a later ingest batch), and records taken in before whose time
  was still ahead of the last look's "now": their requests are merged into the per-request table
  (``rq``: a request's call and outcome, every merge a max, so a duplicate counts once) and each unit
  gains (new contribution − old contribution) of those requests;
- requests made between the last look's maturation cut and this one's: their exposure has matured now.

The unit table (``un``) also keeps each unit's first call (its arm and route), the arms it was seen on
(crossover) and its first exposure's attributes. A look then aggregates the unit table into a few rows
per arm and attribute group (``events_sql.summary_of_units``). The result equals ``events_sql.unit_query``
run over everything (tests/events hold them to it); a different window, join window, SLO or arm mapping
starts a new state from nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from . import events_sql as q

#: a cut no request is at or before (the first update: nothing had matured)
_NEVER = -1e300


@dataclass(frozen=True)
class WindowKey:
    flag: str
    since: float
    maturation_s: float
    slo_ms: float
    arms: tuple[tuple[str, str], ...]


@dataclass
class UnitState:
    """The unit totals of one window (``key``) as of the last look (``now``; records up to batch ``seq``)."""

    key: WindowKey
    name: str
    now: float = _NEVER
    seq: int = -1
    _sql: dict[str, str] = field(default_factory=dict)

    @property
    def rq(self) -> str:
        return f"rq_{self.name}"

    @property
    def un(self) -> str:
        return f"un_{self.name}"

    @property
    def cut(self) -> float:
        return self.now - self.key.maturation_s if self.now > _NEVER else _NEVER

    # ---- bringing the totals up to date -------------------------------------------------------

    def update(self, db: duckdb.DuckDBPyConnection, table: str, now: float, seq: int) -> None:
        """Take in the records of ``table`` up to batch ``seq`` with a time up to ``now``."""
        if now < self.now:
            raise ValueError("a look earlier than the last one")  # the caller starts a new state
        k = self.key
        fields = q.request_fields(k.slo_ms)
        flag = q.DUCKDB.quote(k.flag)
        since = q._number(k.since)
        parts = [f"SELECT * FROM {table} WHERE flag = {flag} AND t >= {since} AND t <= {q._number(now)} "
                 f"AND seq > {int(self.seq)}"]
        if self.seq >= 0:
            # taken in earlier, but ahead of the last look's clock then
            parts.append(f"SELECT * FROM {table} WHERE flag = {flag} AND t > {q._number(max(self.now, k.since))} "
                         f"AND t <= {q._number(now)} AND seq <= {int(self.seq)}")
        new_rows = " UNION ALL ".join(parts)
        first = self.seq < 0
        if first:
            self._create(db, fields)
        x = db.execute
        merged = ", ".join(f"{expr} AS {name}" for name, expr in fields)
        x(f"CREATE OR REPLACE TEMP TABLE dr_ AS SELECT rid, {merged} FROM ({new_rows}) AS n "
          "WHERE kind IN (1, 2) GROUP BY rid")
        x(f"CREATE OR REPLACE TEMP TABLE o_ AS SELECT * FROM {self.rq} WHERE rid IN (SELECT rid FROM dr_)")
        names = [name for name, _ in fields]
        greatest = ", ".join(f"greatest(o.{n}, d.{n}) AS {n}" for n in names)
        x(f"CREATE OR REPLACE TEMP TABLE n_ AS SELECT d.rid, {greatest} FROM dr_ AS d LEFT JOIN o_ AS o USING (rid)")
        cut, old_cut = now - k.maturation_s, self.cut
        x(f"""CREATE OR REPLACE TEMP TABLE m_ AS SELECT * FROM {self.rq}
              WHERE has_call = 1 AND t_call > {q._number(old_cut)} AND t_call <= {q._number(cut)}
              AND rid NOT IN (SELECT rid FROM dr_)""")
        terms_now, terms_then = q.unit_terms(cut), q.unit_terms(old_cut)

        def signed(source: str, sign: int, terms: list[tuple[str, str]]) -> str:
            cols = ", ".join(f"{sign} * ({expr}) AS {name}" for name, expr in terms)
            return f"SELECT unit, {cols} FROM {source} WHERE has_call = 1"

        changes = " UNION ALL ".join([signed("n_", 1, terms_now), signed("o_", -1, terms_then),
                                      signed("m_", 1, terms_now), signed("m_", -1, terms_then)])
        cols = [name for name, _ in terms_now]
        arm = q.arms_values(q.DUCKDB, dict(k.arms))
        x(f"CREATE OR REPLACE TEMP TABLE du_ AS SELECT unit, {', '.join(f'sum({c}) AS {c}' for c in cols)} "
          f"FROM ({changes}) AS c GROUP BY unit")
        x(f"""CREATE OR REPLACE TEMP TABLE df_ AS SELECT unit, min(t_call) AS first_seen,
              arg_min({arm}, t_call) AS arm, arg_min(route, t_call) AS route,
              max(CASE WHEN {arm} = 0 THEN 1 ELSE 0 END) AS on_base, max(CASE WHEN {arm} = 1 THEN 1 ELSE 0 END) AS on_cand
              FROM n_ WHERE has_call = 1 GROUP BY unit""")
        x(f"""CREATE OR REPLACE TEMP TABLE dx_ AS SELECT unit, min(t) AS x_t, arg_min(ctx, t) AS ctx
              FROM ({new_rows}) AS n WHERE kind = 0 GROUP BY unit""")
        x("CREATE OR REPLACE TEMP TABLE k_ AS SELECT unit FROM du_ UNION SELECT unit FROM df_ UNION SELECT unit FROM dx_")
        sums = ", ".join(f"coalesce(u.{c}, 0) + coalesce(s.{c}, 0) AS {c}" for c in cols)
        earlier_call = "f.first_seen IS NOT NULL AND (u.first_seen IS NULL OR f.first_seen < u.first_seen)"
        earlier_exposure = "x.x_t IS NOT NULL AND (u.x_t IS NULL OR x.x_t < u.x_t)"
        x(f"""CREATE OR REPLACE TEMP TABLE nu_ AS SELECT k.unit,
              CASE WHEN {earlier_call} THEN f.arm ELSE u.arm END AS arm,
              CASE WHEN {earlier_call} THEN f.route ELSE u.route END AS route,
              least(u.first_seen, f.first_seen) AS first_seen,
              greatest(u.on_base, f.on_base) AS on_base, greatest(u.on_cand, f.on_cand) AS on_cand,
              CASE WHEN {earlier_exposure} THEN x.ctx ELSE u.ctx END AS ctx,
              least(u.x_t, x.x_t) AS x_t, {sums}
              FROM k_ AS k LEFT JOIN {self.un} AS u USING (unit) LEFT JOIN du_ AS s USING (unit)
              LEFT JOIN df_ AS f USING (unit) LEFT JOIN dx_ AS x USING (unit)""")
        if not first:
            x(f"DELETE FROM {self.rq} WHERE rid IN (SELECT rid FROM o_)")
            x(f"DELETE FROM {self.un} WHERE unit IN (SELECT unit FROM k_)")
        x(f"INSERT INTO {self.rq} SELECT * FROM n_")
        x(f"INSERT INTO {self.un} SELECT * FROM nu_")
        for temp in ("dr_", "o_", "n_", "m_", "du_", "df_", "dx_", "k_", "nu_"):
            x(f"DROP TABLE {temp}")
        self.now, self.seq = now, seq  # (the caller rolls the transaction back, and drops this state, on failure)

    def _create(self, db: duckdb.DuckDBPyConnection, fields: list[tuple[str, str]]) -> None:
        cols = ", ".join(f"CAST(NULL AS {'DOUBLE' if name == 'cost_usd' else 'BIGINT'}) AS {name}"
                         for name, _ in q.unit_terms(0.0))
        db.execute(f"DROP TABLE IF EXISTS {self.rq}")
        db.execute(f"DROP TABLE IF EXISTS {self.un}")
        # the shapes of the per-request and per-unit tables, from the queries that fill them
        db.execute(f"CREATE TABLE {self.rq} AS SELECT rid, {', '.join(f'{e} AS {n}' for n, e in fields)} "
                   "FROM ev WHERE false GROUP BY rid")
        db.execute(f"""CREATE TABLE {self.un} AS SELECT CAST(NULL AS VARCHAR) AS unit, CAST(NULL AS INTEGER) AS arm,
                       CAST(NULL AS VARCHAR) AS route, CAST(NULL AS DOUBLE) AS first_seen,
                       CAST(NULL AS INTEGER) AS on_base, CAST(NULL AS INTEGER) AS on_cand,
                       CAST(NULL AS MAP(VARCHAR, VARCHAR)) AS ctx, CAST(NULL AS DOUBLE) AS x_t, {cols} WHERE false""")

    def drop(self, db: duckdb.DuckDBPyConnection) -> None:
        db.execute(f"DROP TABLE IF EXISTS {self.rq}")
        db.execute(f"DROP TABLE IF EXISTS {self.un}")

    # ---- reading it ----------------------------------------------------------------------------

    def units_sql(self, attributes: tuple[str, ...] | None) -> str:
        """The units with a call in the window: arm, route, first_seen, crossed, the unit columns, and
        either the attributes as ``a_<i>`` or the whole attribute map as ``ctx``."""
        if attributes is None:
            picked = "ctx"
        else:
            picked = ", ".join(f"{q.DUCKDB.attribute('ctx', a)} AS a_{i}" for i, a in enumerate(attributes)) or "1 AS _"
        cols = ", ".join(name for name, _ in q.unit_terms(0.0))
        return (f"SELECT unit, arm, route, first_seen, on_base * on_cand AS crossed, {picked}, {cols} "
                f"FROM {self.un} WHERE requests > 0")

    def summary_sql(self, attributes: tuple[str, ...]) -> str:
        return q.summary_of_units(self.units_sql(attributes), len(attributes))


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
            db.begin()
            state.update(db, table, now, seq)
            db.commit()
        except BaseException:
            # a half-applied change is never kept: the next look starts this window again from nothing
            db.rollback()
            self._states.pop(key, None)
            state.drop(db)
            raise
        return state

    def clear(self, db: duckdb.DuckDBPyConnection) -> None:
        for state in self._states.values():
            state.drop(db)
        self._states.clear()


def rows_of(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
