"""What a look costs over an event store, as the events grow: DuckDB (``events:DIR``), a ClickHouse server
(``clickhouse:``) and, as the comparator, the same aggregate computed by streaming the rows in Python.

A look is what the engine asks a unit-level source for at every refresh: the stage's per-arm summaries
grouped by the rule's attributes (``read_summaries(flag, since, 120, ("audience", "scope"))``). Each size
gets a fresh synthetic dataset (``events_data``: Parquet files, one per hour over six hours; the seed is
drawn anew unless ``--seed`` is given). For every engine, in a process of its own:

- first look: everything so far, from a cold start (DuckDB includes checking the files and building its
  per-request and per-unit state; ClickHouse has the rows loaded beforehand, the load is not timed);
- later looks: one more minute of events arrives (a new Parquet file, or rows inserted), then a look;
- peak RSS of the process that looks (for ClickHouse the client's: the server's memory is its own);
- rows returned by the look's query.

The three engines' summaries must be equal (units, every sum, square, product and histogram to 1e-9),
or the benchmark fails: the figures are only comparable if the aggregate is the same.

    .venv/bin/python benchmarks/events.py [--sizes 1000000,10000000] [--looks 4] [--seed N]
                                          [--engines duckdb,clickhouse,python] [--json FILE] [--data DIR]

``--data DIR`` keeps each dataset (per size and seed) and reuses it on a later run with the same ``--seed``.

Targets (issue #14): first look over 10M events ≤ 5 s; each later look ≤ 1 s; peak RSS ≤ 500 MB; rows
returned independent of the event count. The table says which are met; the machine's load average is
printed with it, because wall times on a shared machine are not its idle speed (CPU seconds are given too).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

#: the synthetic data's flag and arms, handed to each engine's process in its spec: the DuckDB process then never
#: loads the generator (numpy and pyarrow, about 40 MB the events source itself does not use)
def _data():
    import events_data

    return events_data

GROUP_BY = ("audience", "scope")
MATURATION_S = 120.0
TARGET_FIRST_S, TARGET_LATER_S, TARGET_RSS_MB = 5.0, 1.0, 500.0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> float:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, it does not carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the engines (each runs in a child process) ------------------------------------------------


class DuckDBEngine:
    def __init__(self, spec: dict) -> None:
        from adapters.metrics.events import EventsSource

        self.clock = spec["t_end"]
        self.dir = Path(spec["dir"])
        self.flag, arms = spec["flag"], spec["arms"]
        self.source = EventsSource(self.dir, arms_of=lambda f: arms, clock=lambda: self.clock)

    def arrive(self, later: Path, t_end: float) -> None:
        shutil.copy(later, self.dir / later.name)
        self.clock = t_end

    def look(self, t0: float):
        groups = self.source.read_summaries(self.flag, t0, MATURATION_S, GROUP_BY)
        return groups, self.source.last_rows


class ClickHouseEngine:
    def __init__(self, spec: dict) -> None:
        from adapters.metrics.clickhouse import ClickHouseSource

        self.clock = spec["t_end"]
        self.url, self.table = spec["clickhouse"], spec["table"]
        self.flag, arms = spec["flag"], spec["arms"]
        self.source = ClickHouseSource(self.url, "bench", spec["table"], arms_of=lambda f: arms,
                                       clock=lambda: self.clock, timeout_s=600)

    def arrive(self, later: Path, t_end: float) -> None:
        load_clickhouse(self.url, self.table, [later])
        self.clock = t_end

    def look(self, t0: float):
        groups = self.source.read_summaries(self.flag, t0, MATURATION_S, GROUP_BY)
        return groups, self.source.last_rows


class PythonEngine:
    """The comparator: every row streamed through Python once, per-request state kept between looks; a look
    builds each unit's record from the requests and summarises them with the reference (``summarise_units``)."""

    def __init__(self, spec: dict) -> None:
        from console.core.telemetry import LATENCY_BOUNDS_MS, TTFT_BOUNDS_MS

        self.clock = spec["t_end"]
        self.files = sorted(Path(spec["dir"]).glob("*.parquet"))
        self.lat, self.ttf = LATENCY_BOUNDS_MS, TTFT_BOUNDS_MS
        self.slo = 2500.0
        #: rid -> [unit, t_call, arm, ok, failed, limited, timeout, fell_back, in_slo, cost, lat_b, ttf_b,
        #:         has_call, has_out, res, corr, compl]
        self.req: dict[str, list] = {}
        self.exposure: dict[str, tuple[float, str, str]] = {}
        self.ahead: list[dict] = []  # records after the clock: taken once it passes them
        self.since: float | None = None

    def arrive(self, later: Path, t_end: float) -> None:
        self.files.append(later)
        self.clock = t_end

    def _take(self, r: dict) -> None:
        from console.core import event_format as ef

        data = _data()
        t = r["t"]
        if t < self.since:
            return
        if t > self.clock:
            self.ahead.append(r)
            return
        kind, rid = r[ef.EVENT], r[ef.REQUEST_ID]
        if kind == ef.EXPOSURE:
            unit = r[ef.UNIT]
            seen = self.exposure.get(unit)
            if seen is None or t < seen[0]:
                self.exposure[unit] = (t, r["context.audience"] or "", r["context.scope"] or "")
            return
        q = self.req.get(rid)
        if q is None:
            q = self.req[rid] = [None, None, None, 0, 0, 0, 0, 0, 0, 0.0, 0, 0, 0, 0, 0, 0, 0]
        if kind == ef.CALL:
            err, fb, dur = r[ef.ERROR_TYPE], r[ef.FALLBACK_ROUTE], r[ef.DURATION_MS]
            ok = err is None or (fb is not None and r.get(ef.FALLBACK_ERROR) is None)
            ttf = r[ef.TTFC_MS] if r[ef.TTFC_MS] is not None else dur
            new = [r[ef.UNIT], t, 1 if r[ef.VARIANT] == data.CANDIDATE else 0 if r[ef.VARIANT] == data.BASELINE else 2,
                   int(ok), int(err is not None), int(err == "429"), int(err == "timeout"), int(fb is not None),
                   int(ok and dur <= self.slo), r[ef.COST_USD] or 0.0, bisect.bisect_left(self.lat, dur),
                   bisect.bisect_left(self.ttf, ttf), 1]
            for i, v in enumerate(new):  # a duplicate counts once: every field a max
                q[i] = v if q[i] is None else max(q[i], v)
        else:
            q[13] = 1
            q[14] |= int(bool(r[ef.RESOLVED]))
            q[15] |= int(bool(r[ef.CORRECTED]))
            q[16] |= int(bool(r[ef.COMPLAINT]))

    def _stream(self, files: list[Path]) -> None:
        import pyarrow.parquet as pq

        from console.core import event_format as ef

        data = _data()
        cols = [ef.TIME, ef.EVENT, ef.FLAG, ef.UNIT, ef.VARIANT, ef.REQUEST_ID, ef.DURATION_MS, ef.TTFC_MS, ef.ERROR_TYPE,
                ef.COST_USD, ef.FALLBACK_ROUTE, ef.RESOLVED, ef.CORRECTED, ef.COMPLAINT, "context.scope", "context.audience"]
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=65536, columns=cols):
                table = batch.to_pydict()
                times = table.pop(ef.TIME)
                names = list(table)
                for i, row in enumerate(zip(*table.values())):
                    r = dict(zip(names, row))
                    if r[ef.FLAG] != data.FLAG:
                        continue
                    r["t"] = times[i].timestamp()
                    self._take(r)

    def look(self, t0: float):
        from console.core.stats.summary import group_units
        from console.core.telemetry import Arm, UnitRecord

        data = _data()
        if self.since is None:
            self.since = t0
        waiting, self.ahead = self.ahead, []
        for r in waiting:
            self._take(r)
        self._stream(self.files)
        self.files = []
        cut = self.clock - MATURATION_S
        units: dict[str, UnitRecord] = {}
        first: dict[str, float] = {}
        arms: dict[str, set] = {}
        nl, nt = len(self.lat) + 1, len(self.ttf) + 1
        for q in self.req.values():
            if not q[12]:
                continue
            unit, t_call, arm = q[0], q[1], q[2]
            u = units.get(unit)
            if u is None:
                seen = self.exposure.get(unit)
                segment = {k: v for k, v in zip(GROUP_BY, seen[1:]) if v} if seen else {}
                u = units[unit] = UnitRecord(unit_id=unit, flag=data.FLAG, arm=Arm.OTHER, route="", segment=segment,
                                             first_seen=t_call, latency_hist=[0] * nl, ttft_hist=[0] * nt)
                first[unit] = float("inf")
            if t_call < first[unit]:
                first[unit] = t_call
                u.arm = [Arm.BASELINE, Arm.CANDIDATE, Arm.OTHER][arm]
            arms.setdefault(unit, set()).add(arm)
            has_out, mature = q[13], t_call <= cut
            u.requests += 1
            u.exposures += 1
            u.successes += q[3]
            u.errors += q[4]
            u.rate_limited += q[5]
            u.timeouts += q[6]
            u.fallbacks += q[7]
            u.slo_met += q[8]
            u.cost_usd += q[9]
            u.outcomes += has_out
            u.resolved += q[14]
            u.escalated += has_out - q[14]
            u.corrected += q[15]
            u.complaints += q[16]
            u.mature_exposures += int(mature)
            u.mature_outcomes += int(mature) * has_out
            u.latency_hist[q[10]] += 1
            u.ttft_hist[q[11]] += 1
        for unit, u in units.items():
            u.crossed = {0, 1} <= arms[unit]
        groups = group_units(list(units.values()), GROUP_BY)
        return groups, len(units)  # the records a Python look holds: one per unit


ENGINES = {"duckdb": DuckDBEngine, "clickhouse": ClickHouseEngine, "python": PythonEngine}


def child(spec: dict) -> dict:
    """Run one engine's looks in this process and report times, rows, peak RSS and the summaries."""
    engine = ENGINES[spec["engine"]](spec)
    out = {"looks": []}
    for i in range(spec["looks"]):
        if i:
            later = Path(spec["later"][i - 1])
            engine.arrive(later, spec["t_end"] + 60.0 * i)
        wall, cpu = time.perf_counter(), _cpu()
        groups, rows = engine.look(spec["t0"])
        out["looks"].append({"wall_s": time.perf_counter() - wall, "cpu_s": _cpu() - cpu, "rows": rows})
    out["rss_mb"] = _rss_mb()
    out["summary"] = digest(groups)
    return out


def digest(groups) -> dict:
    out = {}
    for g in groups:
        s = g.summary
        key = f"{g.arm.value}|{json.dumps(g.attributes, sort_keys=True)}"
        out[key] = {"units": s.units, "crossed": s.crossed, "sums": s.sums, "squares": s.squares,
                    "products": {f"{a}*{b}": v for (a, b), v in s.products.items()}, "hist": s.hist,
                    "hist_squares": s.hist_squares, "hist_products": s.hist_products}
    return out


def same(a: dict, b: dict) -> str | None:
    """Why two digests differ (None when equal to 1e-9)."""
    if set(a) != set(b):
        return f"groups {sorted(set(a) ^ set(b))}"

    def close(x, y, where) -> str | None:
        if isinstance(x, dict):
            if set(x) != set(y):
                return f"{where}: keys {sorted(set(x) ^ set(y))}"
            return next((w for k in x if (w := close(x[k], y[k], f"{where}.{k}"))), None)
        if isinstance(x, list):
            if len(x) != len(y):
                return f"{where}: length"
            return next((w for i, (p, q) in enumerate(zip(x, y)) if (w := close(p, q, f"{where}[{i}]"))), None)
        if x is None or y is None:
            return None if x is y else f"{where}: {x} vs {y}"
        return None if abs(float(x) - float(y)) <= 1e-9 * max(1.0, abs(float(x)), abs(float(y))) else f"{where}: {x} vs {y}"

    return next((w for k in a if (w := close(a[k], b[k], k))), None)


# ---- ClickHouse: a server of the benchmark's own, its table loaded (untimed) -------------------


def load_clickhouse(url: str, table: str, files: list[Path]) -> int:
    """Insert Parquet event files into ``bench.<table>`` as tab-separated rows (18.16 reads no Parquet)."""
    import httpx
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from console.core import event_format as ef

    def text(arr) -> pa.Array:
        return pc.fill_null(pc.cast(arr, pa.string()), "\\N")

    rows = 0
    for path in files:
        parquet = pq.read_table(path)
        n = parquet.num_rows

        def col(name: str) -> pa.Array:
            return parquet.column(name).combine_chunks()

        event = col(ef.EVENT)
        kind = pc.if_else(pc.equal(event, ef.EXPOSURE), 0, pc.if_else(pc.equal(event, ef.CALL), 1, 2))
        epoch = pc.divide(pc.cast(pc.cast(col(ef.TIME), pa.timestamp("ms")), pa.int64()).cast(pa.float64()), 1000.0)
        is_exposure = pc.equal(kind, 0)
        names = pc.if_else(is_exposure, "['audience','plan','scope']", "[]")
        values = pc.if_else(is_exposure, pc.binary_join_element_wise(
            "['", pc.fill_null(col("context.audience"), ""), "','", pc.fill_null(col("context.plan"), ""), "','",
            pc.fill_null(col("context.scope"), ""), "']", ""), "[]")

        def flag(name: str) -> pa.Array:
            return text(pc.cast(col(name), pa.int8()))

        cols = [pc.cast(kind, pa.string()), text(epoch), col(ef.FLAG), col(ef.UNIT), text(col(ef.VARIANT)),
                text(col(ef.REQUEST_ID)), text(col(ef.ROUTE)), text(col(ef.GEN_AI_PROVIDER)), text(col(ef.GEN_AI_MODEL)),
                text(col(ef.INPUT_TOKENS)), text(col(ef.OUTPUT_TOKENS)), text(col(ef.DURATION_MS)), text(col(ef.TTFC_MS)),
                text(col(ef.ERROR_TYPE)), text(col(ef.COST_USD)), text(col(ef.FALLBACK_ROUTE)),
                text(pa.nulls(n, pa.string())), flag(ef.RESOLVED), flag(ef.CORRECTED), flag(ef.COMPLAINT), names, values]
        body = pc.binary_join_element_wise(*cols, "\t")
        payload = ("\n".join(body.to_pylist()) + "\n").encode()
        r = httpx.post(url + "/", params={"query": f"INSERT INTO bench.{table} FORMAT TabSeparated"}, content=payload,
                       timeout=600)
        if r.status_code != 200:
            raise SystemExit(f"ClickHouse refused the insert of {path.name}: {r.text[:300]}")
        rows += n
    return rows


# ---- the parent ---------------------------------------------------------------------------------


def run_child(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{spec['engine']} at {spec['size']:,} events failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000000,10000000")
    p.add_argument("--looks", type=int, default=4, help="the first look and this many less one later looks")
    p.add_argument("--seed", type=int, default=None, help="dataset seed (default: drawn anew each run)")
    p.add_argument("--engines", default="duckdb,clickhouse,python")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--data", type=Path, default=None,
                   help="keep each generated dataset here and reuse it on a later run with the same size and --seed")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    engines = args.engines.split(",")
    work = Path(tempfile.mkdtemp(prefix="routedeck-bench-events-"))
    server = None
    results = []
    load_before = os.getloadavg()
    try:
        if "clickhouse" in engines:
            sys.path.insert(0, str(ROOT / "tests" / "integration"))
            from servers import start_clickhouse  # the server the tests use, on 127.0.0.1

            server = start_clickhouse(work / "clickhouse")
            server.query("CREATE DATABASE IF NOT EXISTS bench")
        for size in (int(float(s)) for s in args.sizes.split(",")):
            made = time.perf_counter()
            ds, reused = dataset(args.data or work, size, seed, args.looks)
            print(f"{ds['events']:,} events {'reused from' if reused else 'written to'} {ds['dir']} in "
                  f"{time.perf_counter() - made:.0f} s (seed {seed})", file=sys.stderr)
            files = sorted(Path(ds["dir"]).glob("*.parquet"))
            spec = {"t0": ds["t0"], "t_end": ds["t_end"], "looks": args.looks, "size": ds["events"],
                    "later": ds["later"][: args.looks - 1], "flag": _data().FLAG, "arms": _data().ARMS}
            digests = {}
            for engine in engines:
                extra = {}
                if engine == "clickhouse":
                    table = f"events_{size}"
                    from adapters.metrics.clickhouse import LOCAL_DDL, TABLE_COLUMNS

                    server.query(LOCAL_DDL.format(table=f"bench.{table}", columns=TABLE_COLUMNS))
                    loaded = time.perf_counter()
                    load_clickhouse(server.url, table, files)
                    print(f"  ClickHouse loaded in {time.perf_counter() - loaded:.0f} s (not a look)", file=sys.stderr)
                    extra = {"clickhouse": server.url, "table": table}
                # each engine looks at a directory of its own (links to the dataset's files; later files are added
                # to it), so the dataset itself is never changed and can be reused
                run = work / f"run-{engine}-{size}"
                run.mkdir()
                for f in files:
                    try:
                        os.link(f, run / f.name)
                    except OSError:
                        shutil.copy(f, run / f.name)
                got = run_child({**spec, **extra, "dir": str(run), "engine": engine})
                shutil.rmtree(run, ignore_errors=True)
                digests[engine] = got.pop("summary")
                results.append({"engine": engine, "events": ds["events"], **got})
                print(f"  {engine}: first look {got['looks'][0]['wall_s']:.2f} s", file=sys.stderr)
            first = next(iter(digests))
            for engine, d in digests.items():
                why = same(digests[first], d)
                if why:
                    print(f"FAIL: {engine} and {first} disagree at {size:,} events: {why}", file=sys.stderr)
                    return 1
    finally:
        if server is not None:
            from servers import stop_pid

            stop_pid(server.pid)
        shutil.rmtree(work, ignore_errors=True)
    print_table(results, load_before, os.getloadavg(), seed)
    if args.json:
        args.json.write_text(json.dumps({"seed": seed, "results": results}, indent=2))
    return 0


def dataset(base: Path, size: int, seed: int, looks: int) -> tuple[dict, bool]:
    """The dataset of ``size`` events and ``seed`` under ``base`` (its hourly files, the later minutes' files and
    meta.json), written unless a complete one is there; returns its description and whether it was reused."""
    where = base / f"events-{size}-seed{seed}"
    meta_path = where / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if len(meta["later"]) >= looks - 1:
            return meta, True
    shutil.rmtree(where, ignore_errors=True)
    data = _data()
    ds = data.write(where / "events", size, seed)
    later_dir = where / "later"
    later_dir.mkdir()
    later = [later_dir / f"events-later-{i}.parquet" for i in range(max(0, looks - 1))]
    hold = data.Dataset(later_dir, ds.t0, ds.t_end, 0, ds.next_rid, seed)
    hold._pop, hold._rng, hold._rate = ds._pop, ds._rng, ds._rate  # type: ignore[attr-defined]
    for path in later:
        data.append_minute(hold, path.name)
    meta = {"dir": str(ds.directory), "t0": ds.t0, "t_end": ds.t_end, "events": ds.events, "seed": seed,
            "later": [str(x) for x in later]}
    meta_path.write_text(json.dumps(meta))
    return meta, False


def print_table(results: list[dict], before, after, seed: int) -> None:
    print(f"looks over synthetic events (Parquet), seed {seed}; machine: {os.cpu_count()} cores, load average "
          f"{before[0]:.1f} before and {after[0]:.1f} after (wall times include waiting for other processes)")
    print("engine      events       first look (cpu)     later looks: median / max (cpu)  peak RSS   rows  "
          "targets")
    for r in results:
        first, later = r["looks"][0], r["looks"][1:]
        walls = sorted(x["wall_s"] for x in later)
        med = walls[len(walls) // 2] if walls else float("nan")
        worst = max(walls) if walls else float("nan")
        cpu_later = sorted(x["cpu_s"] for x in later)[len(later) // 2] if later else float("nan")
        rows = sorted({x["rows"] for x in r["looks"]})
        misses = []
        if r["events"] >= 9_000_000 and first["wall_s"] > TARGET_FIRST_S:
            misses.append(f"first +{first['wall_s'] - TARGET_FIRST_S:.1f}s")
        if later and worst > TARGET_LATER_S:
            misses.append(f"later +{worst - TARGET_LATER_S:.2f}s")
        if r["rss_mb"] > TARGET_RSS_MB:
            misses.append(f"RSS +{r['rss_mb'] - TARGET_RSS_MB:.0f}MB")
        print(f"{r['engine']:<11} {r['events']:>11,}  {first['wall_s']:>7.2f} s ({first['cpu_s']:6.2f})    "
              f"{med:>6.2f} / {worst:>6.2f} s ({cpu_later:5.2f})        {r['rss_mb']:>6.0f} MB  "
              f"{'/'.join(map(str, rows)):>5}  {'met' if not misses else 'missed: ' + ', '.join(misses)}")


if __name__ == "__main__":
    sys.exit(main())
