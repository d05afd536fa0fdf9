"""Route telemetry from routedeck's event records in a directory (``events:DIR``), aggregated by DuckDB.

The directory holds ``.jsonl`` files (JSON Lines, appended to while the application runs) and
``.parquet`` files (written whole). Each look reads only what arrived since the last one: new
Parquet files, and the new complete lines of each JSON Lines file (a last line without its newline
is a write in progress, left for the next look). The records are checked, normalised and kept in
an embedded DuckDB database on disk (a temporary directory), and every figure is computed by DuckDB
(``events_sql``): a unit-level look returns one row per arm and attribute group, however many
events there are.

A record that is not valid stops the read with one line naming the file and line (or Parquet row)
and what is wrong with it — never the record's contents.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import duckdb

from console.core import event_format as ef
from console.core.errors import BackendError, BadInput
from console.core.ports import MetricsSource
from console.core.stats.summary import GroupSummary
from console.core.telemetry import (
    DEFAULT_SLO_MS,
    Arm,
    MetricsSnapshot,
    SourceCapabilities,
    TimeBucket,
    UnitRecord,
    slo_option,
)

from . import events_sql as q
from . import events_window
from .events_state import UnitStates, WindowKey, rows_of

#: arms of a flag: variant name → "baseline" / "candidate"
ArmsOf = Callable[[str], dict[str, str]]

KIND_CODES = {ef.EXPOSURE: 0, ef.CALL: 1, ef.OUTCOME: 2}
#: the normalised table every record lands in
#: JSON Lines records, normalised (Parquet files are read in place through the ``ev`` view)
TABLE_DDL = """CREATE TABLE IF NOT EXISTS ev_rows (
    kind UTINYINT, t DOUBLE, flag VARCHAR, unit VARCHAR, variant VARCHAR, rid VARCHAR, route VARCHAR,
    provider VARCHAR, model VARCHAR, tin DOUBLE, tout DOUBLE, dur DOUBLE, ttfc DOUBLE, err VARCHAR,
    cost DOUBLE, fb_route VARCHAR, fb_err VARCHAR, resolved BOOLEAN, corrected BOOLEAN, complaint BOOLEAN,
    ctx VARCHAR[], seq UINTEGER)"""
#: an exposure's evaluation attributes travel as one flat list, name and value in turn ([name1, value1, name2, …]):
#: far cheaper to build per record and to carry through a unit's first-exposure aggregate than a MAP or a list of
#: (name, value) structs (about 1 CPU-s at 10M events); a MAP is made only of each unit's first exposure
#: (``events_state.context_map``)
ENTRIES = "VARCHAR[]"
_STRING = ("VARCHAR",)
_NUMBER = ("DOUBLE", "FLOAT", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER", "USMALLINT",
           "UTINYINT", "HUGEINT", "DECIMAL")
#: field → (column, SQL type it lands as, JSON types accepted)
FIELDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    ef.FLAG: ("flag", "VARCHAR", ("VARCHAR",)),
    ef.UNIT: ("unit", "VARCHAR", ("VARCHAR",)),
    ef.VARIANT: ("variant", "VARCHAR", ("VARCHAR",)),
    ef.REQUEST_ID: ("rid", "VARCHAR", ("VARCHAR",)),
    ef.ROUTE: ("route", "VARCHAR", ("VARCHAR",)),
    ef.GEN_AI_PROVIDER: ("provider", "VARCHAR", ("VARCHAR",)),
    ef.GEN_AI_MODEL: ("model", "VARCHAR", ("VARCHAR",)),
    ef.INPUT_TOKENS: ("tin", "DOUBLE", ("UBIGINT", "BIGINT")),
    ef.OUTPUT_TOKENS: ("tout", "DOUBLE", ("UBIGINT", "BIGINT")),
    ef.DURATION_MS: ("dur", "DOUBLE", ("UBIGINT", "BIGINT", "DOUBLE")),
    ef.TTFC_MS: ("ttfc", "DOUBLE", ("UBIGINT", "BIGINT", "DOUBLE")),
    ef.ERROR_TYPE: ("err", "VARCHAR", ("VARCHAR",)),
    ef.COST_USD: ("cost", "DOUBLE", ("UBIGINT", "BIGINT", "DOUBLE")),
    ef.FALLBACK_ROUTE: ("fb_route", "VARCHAR", ("VARCHAR",)),
    ef.FALLBACK_ERROR: ("fb_err", "VARCHAR", ("VARCHAR",)),
    ef.RESOLVED: ("resolved", "BOOLEAN", ("BOOLEAN",)),
    ef.CORRECTED: ("corrected", "BOOLEAN", ("BOOLEAN",)),
    ef.COMPLAINT: ("complaint", "BOOLEAN", ("BOOLEAN",)),
}
#: a checkpoint threshold never reached (DuckDB's automatic checkpoint off)
NO_AUTOMATIC_CHECKPOINT = "1000TB"
#: JSON Lines rows taken in between two checkpoints of the database (DuckDB's own threshold was 16 MiB of changes:
#: a checkpoint compresses the rows taken in)
CHECKPOINT_ROWS = 200_000
_ZONED = r"(Z|z|[+-][0-9][0-9]:?[0-9][0-9])$"
SEGMENT_ATTRIBUTES = ("plan", "region", "workflow", "internal")


@dataclass
class _FileState:
    """How much of one file has been taken in: bytes and lines (JSON Lines), or its identity (Parquet)."""

    offset: int = 0
    lines: int = 0
    identity: tuple[int, int] | None = None


@dataclass
class _Catalogue:
    files: dict[str, _FileState] = field(default_factory=dict)


class EventsSource(MetricsSource):
    """A ``MetricsSource`` over a directory of event records (``events:DIR``)."""

    kind = "events"

    def __init__(self, directory: Path, *, arms_of: ArmsOf | None = None, clock: Callable[[], float] | None = None,
                 slo_ms: float = DEFAULT_SLO_MS, memory_limit: str = "360MB", threads: int | None = None) -> None:
        """``arms_of(flag)`` maps a flag's variants to arms (from the flag platform's rollout state);
        ``clock`` is the source's "now" (default: the wall clock; ``clock=data`` in the spec: the newest event)."""
        self.directory = Path(directory).expanduser()
        if not self.directory.is_dir():
            raise BadInput(f"--metrics events:{self.directory}: no such directory — create it, or point at the "
                           "directory the application writes its .jsonl/.parquet event files to")
        self.arms_of = arms_of or (lambda flag: {})
        self._clock = clock
        self.slo_ms = slo_ms
        self._scratch = Path(tempfile.mkdtemp(prefix="routedeck-events-"))
        # in memory, bounded: what does not fit spills to the scratch directory
        self.db = duckdb.connect(":memory:")
        self.db.execute(f"SET memory_limit = '{memory_limit}'")
        self.db.execute(f"SET temp_directory = '{self._scratch / 'spill'}'")
        self.db.execute("SET enable_progress_bar = false")  # never draw on the console's screen
        self.db.execute("SET preserve_insertion_order = false")
        # no automatic checkpoint: a later look replaces rows all over the kept unit table, and DuckDB's checkpoint
        # (after every 16 MiB of changes) rewrote that whole table inside a look (0.4–0.7 s at 10M events). The kept
        # tables are compacted by ``events_state.UnitState`` instead, and JSON Lines rows checkpointed below
        self.db.execute(f"SET checkpoint_threshold = '{NO_AUTOMATIC_CHECKPOINT}'")
        self._rows_since_checkpoint = 0
        if threads:
            self.db.execute(f"SET threads = {int(threads)}")
        self.db.execute(TABLE_DDL)
        self.db.execute("CREATE OR REPLACE VIEW ev AS SELECT *, t AS t_max FROM ev_rows")
        #: Parquet files read in place: (batch, normalising SELECT, files), and this refresh's new ones
        self._parquet: list[tuple[int, str, str, float]] = []
        self._pending: list[tuple[str, str, float]] = []
        self._catalogue = _Catalogue()
        self._lock = threading.RLock()
        self._newest: float | None = None
        #: ingest batches: every record carries the batch it came in, so a look can take in only what is new
        self._seq = 0
        self._states = UnitStates()
        #: rows the last unit-level aggregate returned (the benchmark reports it)
        self.last_rows = 0

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: str, *, arms_of: ArmsOf | None = None, **options: Any) -> "EventsSource":
        """``events:DIR`` or ``events:DIR?clock=data`` (the clock is the newest event's time: for a
        directory written by a simulator faster or slower than real time); ``slo_ms=N``: requests are counted
        in-SLO at N ms (default ``DEFAULT_SLO_MS``)."""
        body = spec.partition(":")[2]
        path, _, query = body.partition("?")
        opts = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        unknown = sorted(set(opts) - {"clock", "slo_ms"})
        if unknown:
            raise BadInput(f"--metrics {spec!r}: unknown option {unknown[0]!r} — use clock=data or slo_ms=N")
        if not path:
            raise BadInput("--metrics events: needs a directory after 'events:'")
        clock = opts.get("clock", "wall")
        if clock not in ("wall", "data"):
            raise BadInput(f"--metrics {spec!r}: clock must be wall or data")
        slo_ms = slo_option(opts, spec) if "slo_ms" in opts else options.pop("slo_ms", DEFAULT_SLO_MS)
        options.pop("speed", None)
        options.pop("seed", None)
        source = cls(Path(path), arms_of=arms_of, slo_ms=slo_ms, **options)
        if clock == "data":
            source._clock = source._data_clock
        return source

    def _data_clock(self) -> float:
        self.refresh()
        return self._newest if self._newest is not None else time.time()

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(unit_level=True, segments=SEGMENT_ATTRIBUTES, provider_breakdown=True)

    def describe(self) -> str:
        return f"events:{self.directory}" + (f"?slo_ms={self.slo_ms:g}" if self.slo_ms != DEFAULT_SLO_MS else "")

    def now(self) -> float:
        return self._clock() if self._clock is not None else time.time()

    def close(self) -> None:
        with self._lock:
            try:
                self.db.close()
            finally:
                shutil.rmtree(self._scratch, ignore_errors=True)

    # ---- taking in new records ------------------------------------------------------------

    def refresh(self) -> int:
        """Take in whatever arrived since the last call; returns the number of new records."""
        with self._lock:
            if not self.directory.is_dir():
                raise BackendError(f"events:{self.directory}: the directory is gone — was it moved or unmounted?")
            added = 0
            self._seq += 1
            # new Parquet files are described one by one, their rows checked together (one query per column set,
            # over all of its files at once: DuckDB reads them in parallel); errors still come in the files' order
            checks: list[tuple[Path, _FileState, tuple[int, int], str, str]] = []
            try:
                for path in sorted(self.directory.iterdir()):
                    if path.suffix == ".parquet":
                        found = self._describe_parquet(path)
                        if found is not None:
                            checks.append(found)
                        continue
                    added += self._check_parquet(checks)
                    if path.suffix == ".jsonl":
                        added += self._take_jsonl(path)
                    elif path.is_file() and not path.name.startswith("."):
                        raise BackendError(f"{path}: not a .jsonl or .parquet file — routedeck reads only event files "
                                           "(docs/events.md); move it out of the events directory")
            except BackendError:
                self._check_parquet(checks)  # an earlier file's bad row is named before a later file's problem
                raise
            added += self._check_parquet(checks)
            if self._pending:
                self._rebuild_view()
            return added

    def _take_jsonl(self, path: Path) -> int:
        state = self._catalogue.files.setdefault(str(path), _FileState())
        try:
            size = path.stat().st_size
            if size < state.offset:
                raise BackendError(f"{path}: the file shrank since it was read — event files may only be appended to")
            if size == state.offset:
                return 0
            with open(path, "rb") as fh:
                fh.seek(state.offset)
                chunk = fh.read(size - state.offset)
        except OSError as exc:
            raise BackendError(f"{path}: cannot read it ({exc.strerror}) — check its permissions") from None
        end = chunk.rfind(b"\n")
        if end < 0:
            return 0  # only a line being written: next time
        chunk = chunk[: end + 1]
        first_line = state.lines + 1
        staged = self._scratch / "chunk.jsonl"
        staged.write_bytes(chunk)
        added = self._load_lines(path, staged, first_line)
        state.offset += len(chunk)
        state.lines += chunk.count(b"\n")
        return added

    def _load_lines(self, path: Path, staged: Path, first_line: int) -> int:
        """Validate and normalise the complete lines in ``staged`` (line ``first_line`` of ``path`` onwards)."""
        db = self.db
        try:
            db.execute(
                "CREATE OR REPLACE TEMP TABLE lines AS SELECT (row_number() OVER ()) - 1 + ? AS line, j "
                "FROM read_csv(?, columns={'j': 'VARCHAR'}, delim=chr(31), quote='', escape='', header=false, "
                "auto_detect=false, strict_mode=false, null_padding=true)",
                [first_line, str(staged)])
        except duckdb.Error:
            return self._load_lines_slowly(path, staged, first_line)
        db.execute("DELETE FROM lines WHERE j IS NULL OR trim(j) = ''")
        paths = ", ".join(f"'$.\"{name}\"'" for name in _CHECKED)
        db.execute(f"""CREATE OR REPLACE TEMP TABLE recs AS SELECT line, r, json_type(r, [{paths}]) AS ty,
                       json_extract_string(r, [{paths}]) AS va
                       FROM (SELECT line, CASE WHEN json_valid(j) THEN j::JSON END AS r FROM lines)""")
        db.execute("DROP TABLE lines")
        problem = db.execute(f"SELECT line, {_PROBLEM_SQL} AS why FROM recs WHERE why IS NOT NULL "
                             "ORDER BY line LIMIT 1").fetchone()
        if problem is not None:
            raise BackendError(f"{path} line {problem[0]}: {problem[1]} — fix or remove that line (docs/events.md)")
        columns = ", ".join(f"try_cast(va[{_CHECKED.index(name) + 1}] AS {sql_type})"
                            for name, (column, sql_type, _) in FIELDS.items())
        count, newest = db.execute(f"SELECT count(*), max(epoch(CAST(va[{_CHECKED.index(ef.TIME) + 1}] AS TIMESTAMPTZ))) "
                                   "FROM recs").fetchone()
        if newest is not None:
            self._newest = max(self._newest or newest, float(newest))
        kind = f"va[{_CHECKED.index(ef.EVENT) + 1}]"
        db.execute(f"""
            INSERT INTO ev_rows SELECT
              CASE {kind} WHEN '{ef.EXPOSURE}' THEN 0 WHEN '{ef.CALL}' THEN 1 ELSE 2 END,
              epoch(CAST(va[{_CHECKED.index(ef.TIME) + 1}] AS TIMESTAMPTZ)),
              {columns},
              CASE WHEN {kind} = '{ef.EXPOSURE}' THEN flatten(list_transform(
                  list_filter(json_keys(r), lambda k: starts_with(k, '{ef.CONTEXT_PREFIX}')),
                  lambda k: [substr(k, {len(ef.CONTEXT_PREFIX) + 1}), r->>('$."' || k || '"')])) END,
              {self._seq}
            FROM recs""")
        db.execute("DROP TABLE recs")
        self._rows_since_checkpoint += int(count)
        if self._rows_since_checkpoint >= CHECKPOINT_ROWS:
            db.execute("CHECKPOINT")
            self._rows_since_checkpoint = 0
        return int(count)

    def _load_lines_slowly(self, path: Path, staged: Path, first_line: int) -> int:
        """The chunk DuckDB could not split into lines: find the first bad line in Python and name it."""
        import json

        with open(staged, "rb") as fh:
            for n, raw in enumerate(fh, start=first_line):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    raise BackendError(f"{path} line {n}: not a JSON object — fix or remove that line "
                                       "(docs/events.md)") from None
                why = ef.problem(record)
                if why:
                    raise BackendError(f"{path} line {n}: {why} — fix or remove that line (docs/events.md)")
        raise BackendError(f"{path}: the new lines from line {first_line} cannot be read as JSON Lines — "
                           "is it a JSON Lines file?")

    def _describe_parquet(self, path: Path) -> tuple[Path, _FileState, tuple[int, int], str, str] | None:
        """A Parquet file not taken in yet, its columns checked: (path, state, identity, normalising SELECT, the
        check of its rows); None when it was taken in already."""
        state = self._catalogue.files.setdefault(str(path), _FileState())
        try:
            st = path.stat()
        except OSError as exc:
            raise BackendError(f"{path}: cannot read it ({exc.strerror}) — check its permissions") from None
        identity = (st.st_size, st.st_mtime_ns)
        if state.identity == identity:
            return None
        if state.identity is not None:
            raise BackendError(f"{path}: the Parquet file changed after it was read — write Parquet files whole, "
                               "under a new name each time")
        db = self.db
        try:
            described = db.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        except duckdb.Error:
            raise BackendError(f"{path}: not a Parquet file routedeck can read — is it complete? "
                               "(write to a temporary name, then rename)") from None
        types = {row[0]: str(row[1]).upper() for row in described}
        for name in (ef.TIME, ef.EVENT, ef.FLAG, ef.UNIT):
            if name not in types:
                raise BackendError(f"{path}: no column {name!r} — every record needs it (docs/events.md)")
        for name, (column, sql_type, accepted) in FIELDS.items():
            if name in types and not _accepts(types[name], sql_type):
                raise BackendError(f"{path}: column {name!r} has type {types[name]} (expected "
                                   f"{'string' if sql_type == 'VARCHAR' else sql_type.lower()})")
        time_ok = types[ef.TIME].startswith("TIMESTAMP") or types[ef.TIME] == "VARCHAR"
        if not time_ok:
            raise BackendError(f"{path}: column {ef.TIME!r} has type {types[ef.TIME]} (expected an RFC 3339 string "
                               "or a timestamp with a zone)")
        select = _parquet_select(types)
        checks = [f"ev_ IS NULL OR ev_ NOT IN ({', '.join(repr(k) for k in ef.KINDS)})", "t IS NULL OR NOT isfinite(t)"]
        for kind, required in ef.REQUIRED.items():
            for name in required:
                if name in (ef.TIME, ef.EVENT):
                    continue
                column = {ef.FLAG: "flag", ef.UNIT: "unit"}.get(name) or FIELDS[name][0]
                checks.append(f"ev_ = '{kind}' AND {column} IS NULL")
        case = "CASE " + " ".join(f"WHEN {c} THEN {i}" for i, c in enumerate(checks)) + " END"
        return path, state, identity, select, case

    def _check_parquet(self, found: list[tuple[Path, _FileState, tuple[int, int], str, str]]) -> int:
        """Check the rows of the Parquet files ``found`` (and empty the list): one pass over each file, for how many
        records, the newest, and its first bad row. Files are taken in up to the first with a bad row (in order),
        which is named."""
        if not found:
            return 0
        files, found[:] = list(found), []
        groups: dict[tuple[str, str], list[str]] = {}
        for path, _, _, select, case in files:
            groups.setdefault((select, case), []).append(str(path))
        per_file: dict[str, tuple] = {}
        batches = [(select, case, paths[i:i + 64]) for (select, case), paths in groups.items()
                   for i in range(0, len(paths), 64)]  # a plan of at most 64 branches
        for select, case, paths in batches:
            # one branch per file with its number as a constant (cheaper than grouping by the file name column)
            union = " UNION ALL ".join(
                f"SELECT {i} AS file_, row_, t, {case} AS why "
                f"FROM ({select.format(files=q.DUCKDB.quote(path), extra=', file_row_number AS row_')})"
                for i, path in enumerate(paths))
            rows = self.db.execute(f"""
                SELECT file_, count(*), max(t), min(CASE WHEN why IS NOT NULL THEN row_ END),
                       arg_min(why, CASE WHEN why IS NOT NULL THEN row_ END)
                FROM ({union}) GROUP BY file_""").fetchall()
            for file_, *rest in rows:
                per_file[paths[int(file_)]] = tuple(rest)
        why = [f"field {ef.EVENT!r} missing or not one of {', '.join(ef.KINDS)}",
               f"field {ef.TIME!r} missing or not an RFC 3339 time with a zone"]
        for kind, required in ef.REQUIRED.items():
            why.extend(f"{kind} record without required field {name!r}" for name in required
                       if name not in (ef.TIME, ef.EVENT))
        added = 0
        for path, state, identity, select, _ in files:
            count, newest, bad_row, bad_why = per_file.get(str(path), (0, None, None, None))
            if bad_row is not None:
                raise BackendError(f"{path} row {int(bad_row) + 1}: {why[int(bad_why)]} — fix the file (docs/events.md)")
            self._pending.append((select, str(path), float(newest) if newest is not None else 0.0))
            if newest is not None:
                self._newest = max(self._newest or newest, float(newest))
            state.identity = identity
            added += int(count)
        return added

    def _rebuild_view(self) -> None:
        """``ev``: the JSON Lines records and every Parquet file taken in, each group at the batch it came in (a
        constant, so a look that wants only newer batches skips the older files without reading them)."""
        for select, path, newest in self._pending:
            self._parquet.append((self._seq, select, path, newest))
        self._pending = []
        # per file, two constants: the batch it came in (seq) and its newest time (t_max), so a look asking only
        # for newer batches or for records after its last "now" skips the other files without reading them
        parts = ["SELECT *, t AS t_max FROM ev_rows"]
        for seq, select, path, newest in self._parquet:
            parts.append(f"SELECT {_NORMALISED}, CAST({seq} AS UINTEGER) AS seq, CAST({q._number(newest)} AS DOUBLE) "
                         f"AS t_max FROM ({select.format(files=q.DUCKDB.quote(path), extra='')})")
        self.db.execute("CREATE OR REPLACE VIEW ev AS " + " UNION ALL ".join(parts))

    # ---- unit level -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _engine(self):
        """A DuckDB failure during a read as one line naming the directory (never a traceback)."""
        try:
            yield
        except duckdb.IOException as exc:
            first = str(exc).splitlines()[0][:200]
            raise BackendError(f"events:{self.directory}: an event file taken in can no longer be read ({first}) — "
                               "keep event files in place while a stage runs, or restart routedeck") from None
        except duckdb.OutOfMemoryException:
            raise BackendError(f"events:{self.directory}: the look needs more memory than routedeck's limit "
                               "for DuckDB allows — free disk space for its spill directory, or use clickhouse:") from None
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0][:200]
            raise BackendError(f"events:{self.directory}: the query engine failed ({first})") from None

    def _arms(self, flag: str) -> dict[str, str]:
        try:
            return dict(self.arms_of(flag))
        except Exception as exc:  # the flag platform failed: no arms means no comparison, said in the error
            raise BackendError(f"events:{self.directory}: cannot tell the arms of {flag} — {exc}") from None

    def _window(self, flag: str, since: float, maturation_s: float):
        """The unit totals of ``flag`` since ``since``, brought up to date with what arrived since the last look."""
        self.refresh()
        now = self.now()
        key = WindowKey(flag, float(since), float(maturation_s), float(self.slo_ms), tuple(sorted(self._arms(flag).items())))
        return self._states.current(self.db, "ev", key, now, self._seq)

    def read_units(self, flag: str, since: float, maturation_s: float = 120.0) -> list[UnitRecord]:
        """One record per unit of ``flag`` with a call since ``since`` (each computed by DuckDB)."""
        with self._lock, self._engine():
            state = self._window(flag, since, maturation_s)
            rows = rows_of(self.db.execute(state.units_sql(None) + " ORDER BY unit"))
        self.last_rows = len(rows)
        return [unit_record(r, flag) for r in rows]

    def read_summaries(self, flag: str, since: float, maturation_s: float = 120.0,
                       group_by: tuple[str, ...] = ()) -> list[GroupSummary]:
        """Per arm and values of ``group_by``: the unit-level summary, aggregated by DuckDB from the unit
        totals kept between looks — a few rows whatever the traffic."""
        attributes = tuple(group_by)
        return [q.group_summary(r, attributes) for r in self.read_unit_summaries(flag, since, maturation_s, attributes)]

    def read_unit_summaries(self, flag: str, since: float, maturation_s: float,
                            attributes: tuple[str, ...]) -> list[dict[str, Any]]:
        """Per arm and values of ``attributes``: the unit-level sufficient statistics (``events_sql.summary_of_units``)."""
        with self._lock, self._engine():
            state = self._window(flag, since, maturation_s)
            rows = state.summary(self.db, tuple(attributes))
        self.last_rows = len(rows)
        return rows

    # ---- request level: the dashboard's counters ---------------------------------------------

    def read(self, start: float, end: float, step: float) -> MetricsSnapshot:
        """Counters per route key for [start, end) in buckets of ``step`` seconds, every one counted by DuckDB
        (``events_window``, the queries ClickHouse runs too)."""
        with self._lock, self._engine():
            self.refresh()
            end = min(end, self.now())
            step = max(1.0, float(step))
            if end <= start:
                return MetricsSnapshot(start, start, start, [], {}, gaps=["empty window: nothing to read"])
            nb = max(1, math.ceil((end - start) / step))
            queries = events_window.window_queries(q.DUCKDB, "ev", start, end, step, {}, self.slo_ms)
            flags = [r["flag"] for r in rows_of(self.db.execute(queries.pop("flags")))]
            arms = {f: self._arms(f) for f in flags}
            queries = events_window.window_queries(q.DUCKDB, "ev", start, end, step, arms, self.slo_ms)
            queries.pop("flags")
            rows = {name: rows_of(self.db.execute(sql)) for name, sql in queries.items()}
        cells, served = events_window.counters_of(rows, nb)
        buckets = [TimeBucket(start + b * step, min(end, start + (b + 1) * step)) for b in range(nb)]
        for (b, key), c in cells.items():
            buckets[b].counters[key] = c
        totals = MetricsSnapshot.total_of(buckets)
        gaps = []
        if not any(c.requests for c in totals.values()):
            gaps.append(f"no calls recorded in this window in {self.describe()}")
        as_of = min(end, self._newest) if self._newest is not None else start
        return MetricsSnapshot(start, end, as_of, buckets, totals, fallback_served=served, gaps=gaps)


#: a Parquet group's normalised columns, in ``ev_rows``' order (the seq is added by the view)
_NORMALISED = (f"CAST(CASE ev_ WHEN '{ef.EXPOSURE}' THEN 0 WHEN '{ef.CALL}' THEN 1 ELSE 2 END AS UTINYINT) AS kind, t, "
               + ", ".join(c for _, (c, _, _) in FIELDS.items()) + f", CASE WHEN ev_ = '{ef.EXPOSURE}' THEN ctx END AS ctx")


def _parquet_select(types: dict[str, str]) -> str:
    """The SELECT normalising Parquet files with these columns (``{files}``: one path or a list; ``{extra}``:
    more columns, such as the row number ``row_``)."""
    time_expr = (f"epoch({_ident(ef.TIME)})" if types[ef.TIME].startswith("TIMESTAMP")
                 else f"epoch(try_cast({_ident(ef.TIME)} AS TIMESTAMPTZ))")
    cols = []
    for name, (column, sql_type, _) in FIELDS.items():
        cols.append(f"CAST({_ident(name)} AS {sql_type}) AS {column}" if name in types
                    else f"CAST(NULL AS {sql_type}) AS {column}")
    context = sorted(n for n in types if n.startswith(ef.CONTEXT_PREFIX))
    ctx = ("[" + ", ".join(
        f"{q.DUCKDB.quote(n[len(ef.CONTEXT_PREFIX):])}, CAST({_ident(n)} AS VARCHAR)" for n in context)
           + "]" if context else f"CAST(NULL AS {ENTRIES})")
    # braces of the SQL doubled: the result is a str.format template
    body = (f"SELECT {_ident(ef.EVENT)} AS ev_, {time_expr} AS t, {', '.join(cols)}, {ctx} AS ctx"
            .replace("{", "{{").replace("}", "}}"))
    return body + "{extra} FROM read_parquet({files}, file_row_number = true)"


def unit_record(r: dict[str, Any], flag: str, attributes: tuple[str, ...] = ()) -> UnitRecord:
    """A unit row (``events_state.UnitState.units_sql`` or ``events_sql.unit_query``) as a ``UnitRecord``:
    its segment from the attribute map ``ctx``, or from the columns ``a_<i>`` named by ``attributes``."""
    arms = {v: k for k, v in q.ARM_CODES.items()}
    if "ctx" in r:
        segment = {str(k): str(v) for k, v in (r.get("ctx") or {}).items() if v is not None}
    else:
        segment = {name: str(r[f"a_{i}"]) for i, name in enumerate(attributes) if r.get(f"a_{i}")}
    rec = UnitRecord(unit_id=r["unit"], flag=flag, arm=Arm(arms[int(r["arm"])]), route=r["route"] or "",
                     segment=segment, first_seen=float(r["first_seen"]), crossed=bool(int(r["crossed"])))
    for name in q.UNIT_COLUMNS:
        value = r[name]
        setattr(rec, name, float(value or 0.0) if name == "cost_usd" else int(float(value or 0)))
    for name, (prefix, _, bounds) in q.HIST_COLUMNS.items():
        cum = [int(float(r[f"{prefix}_{i}"] or 0)) for i in range(len(bounds) + 1)]
        setattr(rec, name, [c - (cum[i - 1] if i else 0) for i, c in enumerate(cum)])
    return rec


#: the fields checked in every JSON record, in the order of the ``ty`` (JSON type) and ``va`` (text) lists
_CHECKED: tuple[str, ...] = (ef.EVENT, ef.TIME, *FIELDS)


def _problem_sql() -> str:
    """A CASE naming what is wrong with a record (NULL when it is valid), by field name only."""

    def ty(name: str) -> str:
        return f"ty[{_CHECKED.index(name) + 1}]"

    def va(name: str) -> str:
        return f"va[{_CHECKED.index(name) + 1}]"

    kinds = ", ".join(f"'{k}'" for k in ef.KINDS)
    whens = [
        "WHEN r IS NULL OR json_type(r) <> 'OBJECT' THEN 'not a JSON object'",
        f"WHEN coalesce({va(ef.EVENT)}, '') NOT IN ({kinds}) "
        f"THEN 'field ''{ef.EVENT}'' missing or not one of {', '.join(ef.KINDS)}'",
    ]
    for kind, required in ef.REQUIRED.items():
        for name in required:
            if name != ef.EVENT:
                whens.append(f"WHEN {va(ef.EVENT)} = '{kind}' AND coalesce({ty(name)}, 'NULL') = 'NULL' "
                             f"THEN '{kind} record without required field ''{name}'''")
    for name in (ef.TIME, *FIELDS):
        accepted = ("VARCHAR",) if name == ef.TIME else FIELDS[name][2]
        allowed = ", ".join(f"'{t}'" for t in accepted + ("NULL",))
        expected = {"VARCHAR": "string", "BOOLEAN": "boolean"}.get(accepted[0], "number")
        whens.append(f"WHEN coalesce({ty(name)}, 'NULL') NOT IN ({allowed}) "
                     f"THEN 'field ''{name}'' has the wrong type (expected {expected})'")
    whens.append(f"WHEN NOT regexp_matches({va(ef.TIME)}, '{_ZONED}') OR try_cast({va(ef.TIME)} AS TIMESTAMPTZ) IS NULL "
                 f"THEN 'field ''{ef.TIME}'' is not an RFC 3339 time with a zone'")
    whens.append(f"WHEN coalesce({ty(ef.DURATION_MS)}, 'NULL') <> 'NULL' AND "
                 f"NOT isfinite(try_cast({va(ef.DURATION_MS)} AS DOUBLE)) "
                 f"THEN 'field ''{ef.DURATION_MS}'' is not a finite number'")
    return "CASE " + " ".join(whens) + " END"


_PROBLEM_SQL = _problem_sql()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _accepts(actual: str, wanted: str) -> bool:
    if wanted == "VARCHAR":
        return actual == "VARCHAR"
    if wanted == "BOOLEAN":
        return actual == "BOOLEAN"
    return actual.split("(")[0] in _NUMBER
