"""Dashboard cost beside a minimal Textual app, both measured in this run, from outside the process.

Prints a Markdown table: time to first paint, routes on screen, CPU share of one core over N seconds
of live updates at 1 Hz, peak RSS of the whole process tree, the rollback from the key press (to the
flag file, and to the confirmation on screen) beside the same core operation called directly and the
disk's fsync, `routedeck rollback` beside `python -c "import httpx"`, and (unless --no-setup) the set-up
of a fresh clone by `make demo` until the routes are on screen, beside a fresh venv with Textual alone
running the minimal app.

    .venv/bin/python benchmarks/dashboard.py [--seconds 60] [--repeats 9] [--no-setup]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import tree_rss_mb  # noqa: E402
from terminal import PtyProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: the routes are on screen with their figures: the header says so once the metrics source's first read (the
#: simulator's warm-up) is drawn, in the same redraw as the route table. A route's name alone is not it: the
#: header names the flag's routes as soon as the flags are read, before any figure exists.
ROUTES_SHOWN = b"data live"
BIN = Path(sys.executable).parent
FLAG = "support-answer-route"


def _paints(proc: PtyProcess, first: bytes, useful: bytes) -> tuple[float, float]:
    """Seconds from the start to the first frame (``first`` on screen) and to the useful one."""
    first_paint = proc.wait_for(first, timeout=60)
    useful_paint = proc.wait_for(useful, timeout=60)
    if first_paint is None or useful_paint is None:
        raise SystemExit(f"{proc.argv[0]}: screen never showed {first!r}/{useful!r}; tail: {bytes(proc.output[-400:])!r}")
    return first_paint, first_paint + useful_paint


def startup(argv: list[str], first: bytes, useful: bytes) -> tuple[float, float]:
    """One launch: seconds to the first frame and to the useful one."""
    proc = PtyProcess(argv, cols=100, rows=30)
    proc.start()
    try:
        return _paints(proc, first, useful)
    finally:
        proc.stop()


def measure(argv: list[str], first: bytes, useful: bytes, seconds: float) -> dict:
    proc = PtyProcess(argv, cols=100, rows=30)
    proc.start()
    try:
        first_paint, useful_paint = _paints(proc, first, useful)
        peak = tree_rss_mb(proc.pid)
        settle_until = time.perf_counter() + 3  # let start-up work settle before measuring steady state
        while time.perf_counter() < settle_until:
            proc.pump(0.2)
            peak = max(peak, tree_rss_mb(proc.pid))
        cpu0, t0 = proc.cpu_seconds(), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            proc.pump(0.5)
            peak = max(peak, tree_rss_mb(proc.pid))
        cpu = (proc.cpu_seconds() - cpu0) / (time.perf_counter() - t0)
        return {"proc": proc, "first_paint_s": first_paint, "useful_s": useful_paint, "cpu_share": cpu, "rss_mb": peak}
    except BaseException:
        proc.stop()
        raise


def candidate_share_bp(path: Path) -> int | None:
    try:
        flag = json.loads(path.read_text())["flags"][FLAG]
    except (OSError, ValueError, KeyError):
        return None
    text = json.dumps(flag.get("targeting") or {})
    if "fractional" not in text:
        return 0
    frac = _find_fractional(flag["targeting"])
    return frac[0][1] if frac else None


def _find_fractional(node):
    if isinstance(node, dict):
        if "fractional" in node:
            return node["fractional"]
        for v in node.values():
            found = _find_fractional(v)
            if found:
                return found
    if isinstance(node, list):
        for v in node:
            found = _find_fractional(v)
            if found:
                return found
    return None


def rollback_times(proc: PtyProcess, flags_file: Path, repeats: int) -> tuple[list[float], list[float], list[float]]:
    """Press R: time until the file shows 0% candidate, until the journal holds the rollback's confirmed
    outcome (read back), and until the screen says so. The rollout is re-armed from outside between tries."""
    to_file, to_confirmed, to_screen = [], [], []
    journal = flags_file.parent / "journal.jsonl"
    pristine = json.loads(flags_file.read_text())
    for _ in range(repeats):
        doc = json.loads(flags_file.read_text())
        doc["flags"][FLAG] = pristine["flags"][FLAG]
        tmp = flags_file.with_suffix(".bench")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(flags_file)
        proc.pump(6)  # let the console read the re-armed rollout and the last notices go
        mark = len(proc.output)
        outcomes = _confirmed_rollbacks(journal)
        start = time.perf_counter()
        proc.send(b"R")
        file_at = confirmed_at = screen_at = None
        while time.perf_counter() - start < 10 and None in (file_at, confirmed_at, screen_at):
            if file_at is None and candidate_share_bp(flags_file) == 0:
                file_at = time.perf_counter() - start
            if confirmed_at is None and _confirmed_rollbacks(journal) > outcomes:
                confirmed_at = time.perf_counter() - start
            if screen_at is None and b"Rolled back" in proc.output[mark:]:
                screen_at = time.perf_counter() - start
            proc.pump(0.001)
        for found, into in ((file_at, to_file), (confirmed_at, to_confirmed), (screen_at, to_screen)):
            into.append(found if found is not None else float("nan"))
    return to_file, to_confirmed, to_screen


def _confirmed_rollbacks(journal: Path) -> int:
    """Rollback outcomes the journal holds as confirmed (each written once the read-back showed it)."""
    try:
        lines = journal.read_text().splitlines()
    except OSError:
        return 0
    return sum(1 for line in lines if '"action":"rollback"' in line and '"status":"confirmed"' in line)


def direct_rollback_times(state: Path, repeats: int) -> list[float]:
    """The same rollback (journalled, confirmed by read-back) called in-process, no UI around it."""
    from adapters.flags.flagd_file import FlagdFilePlatform
    from console.commands.demo import prepare_state_dir
    from console.core import operations
    from console.core.journal import Journal, journal_path

    path = prepare_state_dir(state)
    pristine = path.read_text()
    platform, journal, times = FlagdFilePlatform(path), Journal(journal_path(state)), []
    for _ in range(repeats):
        path.write_text(pristine)
        started = time.perf_counter()
        operations.rollback(platform, FLAG, journal, reason="benchmark")
        times.append(time.perf_counter() - started)
    return times


def fsync_times(where: Path, repeats: int) -> list[float]:
    times = []
    for i in range(repeats):
        path = where / f"fsync-{i}"
        started = time.perf_counter()
        with open(path, "wb") as fh:
            fh.write(b"x" * 512)
            fh.flush()
            os.fsync(fh.fileno())
        times.append(time.perf_counter() - started)
        path.unlink()
    return times


def command_times(state: Path, repeats: int) -> tuple[list[float], list[float]]:
    """Wall time of `routedeck rollback` on the demo's flag file, and of `python -c "import httpx"`,
    interleaved so both meet the same load."""
    from console.commands.demo import prepare_state_dir

    path = prepare_state_dir(state)
    pristine = path.read_text()
    cli, baseline = [], []
    argv = [str(BIN / "routedeck"), "rollback", "--flag", FLAG, "--flags", f"flagd:{path}", "--state-dir", str(state)]
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import httpx"], check=True)
        baseline.append(time.perf_counter() - started)
        path.write_text(pristine)
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        cli.append(time.perf_counter() - started)
    return cli, baseline


def fresh_setup(work: Path) -> tuple[float, float]:
    """A fresh clone set up by `make demo` until its routes are on screen, and a fresh venv with Textual
    alone until the minimal app's table is on screen (the same package index for both)."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    state = work / "state"
    started = time.perf_counter()
    proc = PtyProcess(["make", "-C", str(clone), "demo", f"ARGS=--state-dir {state}"], cols=100, rows=30)
    proc.start()
    try:
        if proc.wait_for(ROUTES_SHOWN, timeout=900) is None:
            raise SystemExit(f"make demo never showed the routes; tail: {bytes(proc.output[-600:])!r}")
        ours = time.perf_counter() - started
    finally:
        proc.stop()
    venv = work / "minimal-venv"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "-c", str(ROOT / "constraints.txt"), "textual"],
                   check=True)
    proc = PtyProcess([str(venv / "bin" / "python"), str(ROOT / "benchmarks" / "minimal_app.py")], cols=100, rows=30)
    proc.start()
    try:
        if proc.wait_for(b"row 19", timeout=300) is None:
            raise SystemExit("the minimal app never showed its table in its fresh venv")
        minimal = time.perf_counter() - started
    finally:
        proc.stop()
    return minimal, ours


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--launches", type=int, default=7, help="launches of each app for the start-up medians")
    parser.add_argument("--no-setup", action="store_true", help="skip the fresh-clone `make demo` set-up (minutes)")
    args = parser.parse_args()
    # the project's own bytecode, as `make demo` writes it and pip does for every package it installs (the
    # minimal app's Textual has its own): an editable install has none, and under PYTHONDONTWRITEBYTECODE
    # each launch would compile the console's modules from source again
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(ROOT / d) for d in ("console", "adapters", "widgets"))],
                   check=True)

    # start-up: each app launched in turn, several times, on a fresh state dir: the medians are compared
    launches: dict[str, list[tuple[float, float]]] = {"minimal": [], "rd": []}
    for i in range(args.launches):
        launches["minimal"].append(startup([sys.executable, str(ROOT / "benchmarks" / "minimal_app.py")],
                                           b"row 19", b"row 19"))
        fresh = Path(tempfile.mkdtemp(prefix="routedeck-start-"))
        try:
            launches["rd"].append(startup([str(BIN / "routedeck"), "demo", "--state-dir", str(fresh), "--seed", "7"],
                                          b"routedeck", ROUTES_SHOWN))
        finally:
            shutil.rmtree(fresh, ignore_errors=True)

    minimal = measure([sys.executable, str(ROOT / "benchmarks" / "minimal_app.py")], b"row 19", b"row 19", args.seconds)
    minimal["proc"].stop()

    work = Path(tempfile.mkdtemp(prefix="routedeck-bench-"))
    try:
        state = work / "console"
        rd = measure([str(BIN / "routedeck"), "demo", "--state-dir", str(state), "--seed", "7"],
                     b"routedeck", ROUTES_SHOWN, args.seconds)
        to_file, to_confirmed, to_screen = rollback_times(rd["proc"], state / "flags.json", args.repeats)
        rd["proc"].stop()
        direct = direct_rollback_times(work / "direct", args.repeats)
        fsync = fsync_times(work, args.repeats)
        cli, httpx = command_times(work / "cli", args.repeats)
        setup = None if args.no_setup else fresh_setup(work / "setup")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def ratio(ours: float, theirs: float) -> str:
        return f"{ours / theirs:.2f}×" if theirs else "—"

    n = args.repeats
    for who in ("minimal", "rd"):
        target = minimal if who == "minimal" else rd
        target["first_paint_s"] = statistics.median(f for f, _ in launches[who])
        target["useful_s"] = statistics.median(u for _, u in launches[who])
    print(f"Dashboard benchmark — {args.seconds:.0f} s of live updates at 1 Hz, 100×30 pty, this machine; "
          f"start-up: medians of {args.launches} launches each\n")
    print("| measure | minimal Textual app | routedeck demo | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| time to first paint | {minimal['first_paint_s']*1000:.0f} ms | {rd['first_paint_s']*1000:.0f} ms | "
          f"{ratio(rd['first_paint_s'], minimal['first_paint_s'])} | ≤ 1.2× |")
    print(f"| CPU, share of one core | {minimal['cpu_share']*100:.1f}% | {rd['cpu_share']*100:.1f}% | "
          f"{ratio(rd['cpu_share'], minimal['cpu_share'])} | ≤ 1.5× |")
    print(f"| routes on screen (simulator warm-up done) | {minimal['useful_s']*1000:.0f} ms | {rd['useful_s']*1000:.0f} ms | "
          f"{ratio(rd['useful_s'], minimal['first_paint_s'])} | ≤ 2× the minimal app's first paint |")
    print(f"| peak RSS (whole process tree) | {minimal['rss_mb']:.0f} MB | {rd['rss_mb']:.0f} MB | "
          f"{ratio(rd['rss_mb'], minimal['rss_mb'])} | ≤ 2× |")
    print(f"| rollback, key press → 0% candidate in the flag file (median of {n}) | — | "
          f"{median_ms(to_file):.1f} ms | — | < 20 ms |")
    print(f"| rollback, key press → confirmed by read-back, outcome journalled (median of {n}) | "
          f"{median_ms(direct):.1f} ms (the core operation called directly) | {median_ms(to_confirmed):.1f} ms | "
          f"{ratio(median_ms(to_confirmed), median_ms(direct))} | < 20 ms |")
    print(f"| rollback, key press → the confirmation on screen (median of {n}) | — | "
          f"{median_ms(to_screen):.1f} ms | — | — |")
    print(f"| fsync of a 512-byte file on this disk (median of {n}; a journalled rollback makes 4) | — | "
          f"{median_ms(fsync):.1f} ms | — | — |")
    print(f"| `routedeck rollback` on the flag file, wall (median of {n}) | "
          f"{median_ms(httpx):.0f} ms (`python -c \"import httpx\"`) | {median_ms(cli):.0f} ms | "
          f"{ratio(median_ms(cli), median_ms(httpx))} | ≤ 2× |")
    if setup is not None:
        print(f"| fresh clone → routes on screen (`make demo`; baseline: fresh venv + Textual + the minimal app) | "
              f"{setup[0]:.0f} s | {setup[1]:.0f} s | {ratio(setup[1], setup[0])} | ≤ 90 s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
