"""Dashboard cost beside a minimal Textual app, both measured in this run, from outside the process.

Prints a Markdown table: time to first paint, CPU share of one core over N seconds of live
updates at 1 Hz, peak RSS, and (routedeck only) rollback time from the key press to the flag
file holding 0% candidate.

    .venv/bin/python benchmarks/dashboard.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from terminal import PtyProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FLAG = "support-answer-route"


def measure(argv: list[str], first: bytes, useful: bytes, seconds: float) -> dict:
    proc = PtyProcess(argv, cols=100, rows=30)
    proc.start()
    try:
        first_paint = proc.wait_for(first, timeout=30)
        useful_paint = proc.wait_for(useful, timeout=30)
        if first_paint is None or useful_paint is None:
            raise SystemExit(f"{argv[0]}: screen never showed {first!r}/{useful!r}; tail: {bytes(proc.output[-400:])!r}")
        useful_paint += first_paint
        proc.pump(3)  # let start-up work settle before measuring steady state
        cpu0, t0 = proc.cpu_seconds(), time.perf_counter()
        proc.pump(seconds)
        cpu = (proc.cpu_seconds() - cpu0) / (time.perf_counter() - t0)
        return {"proc": proc, "first_paint_s": first_paint, "useful_s": useful_paint, "cpu_share": cpu,
                "rss_mb": proc.peak_rss_mb()}
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


def rollback_times(proc: PtyProcess, flags_file: Path, repeats: int) -> list[float]:
    """Press R, time until the file shows 0% candidate; re-arm the rollout from outside between tries."""
    times = []
    pristine = json.loads(flags_file.read_text())
    for _ in range(repeats):
        doc = json.loads(flags_file.read_text())
        doc["flags"][FLAG] = pristine["flags"][FLAG]
        tmp = flags_file.with_suffix(".bench")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(flags_file)
        proc.pump(2.5)  # let the console notice the re-armed rollout
        start = time.perf_counter()
        proc.send(b"R")
        while time.perf_counter() - start < 10:
            if candidate_share_bp(flags_file) == 0:
                break
            proc.pump(0.001)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    minimal = measure([sys.executable, str(ROOT / "benchmarks" / "minimal_app.py")], b"row 19", b"row 19", args.seconds)
    minimal["proc"].stop()

    state = Path(tempfile.mkdtemp(prefix="routedeck-bench-"))
    try:
        rd = measure([str(BIN / "routedeck"), "demo", "--state-dir", str(state), "--seed", "7"],
                     b"routedeck", b"fast_default_v1", args.seconds)
        rb = rollback_times(rd["proc"], state / "flags.json", args.repeats)
        rd["proc"].stop()
    finally:
        shutil.rmtree(state, ignore_errors=True)

    ratio_cpu = rd["cpu_share"] / minimal["cpu_share"] if minimal["cpu_share"] else float("inf")
    ratio_paint = rd["first_paint_s"] / minimal["first_paint_s"]
    print(f"Dashboard benchmark — {args.seconds:.0f} s of live updates at 1 Hz, 100×30 pty, this machine\n")
    print("| measure | minimal Textual app | routedeck demo | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| time to first paint | {minimal['first_paint_s']*1000:.0f} ms | {rd['first_paint_s']*1000:.0f} ms | {ratio_paint:.2f}× | ≤ 1.5× |")
    print(f"| CPU, share of one core | {minimal['cpu_share']*100:.1f}% | {rd['cpu_share']*100:.1f}% | {ratio_cpu:.2f}× | ≤ 5% and ≤ 2× |")
    print(f"| routes on screen (simulator warm-up done) | {minimal['useful_s']*1000:.0f} ms | {rd['useful_s']*1000:.0f} ms | {rd['useful_s'] / minimal['useful_s']:.2f}× | — |")
    print(f"| peak RSS | {minimal['rss_mb']:.0f} MB | {rd['rss_mb']:.0f} MB | {rd['rss_mb']/minimal['rss_mb']:.2f}× | — |")
    print(f"| rollback, key press → 0% candidate in the flag file (median of {len(rb)}) | — | {statistics.median(rb)*1000:.1f} ms | — | < 50 ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
