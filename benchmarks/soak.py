"""Memory of a console left open for a day: the demo at high speed beside the minimal Textual app, both
measured from outside in the same run.

Prints the resident memory (RSS) of each whole process tree every simulated hour, from the moment
the longest window the demo holds has filled — the simulator keeps 4 h of request detail (the
console's own longest window, 1 h, fits in it) — for ``--hours`` simulated hours, and the largest
growth over the value at that moment. The target: within 10%.

    .venv/bin/python benchmarks/soak.py [--speed 240] [--hours 24]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from terminal import PtyProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: the longest window the demo holds (the simulator's request detail, TrafficSimulator.keep_s): memory is
#: judged once it has filled; before, it grows with the data as it should
LONGEST_WINDOW_S = 4 * 3600.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=240.0, help="simulated seconds per real second")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours to watch after the window filled")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="routedeck-soak-"))
    minimal = PtyProcess([sys.executable, str(ROOT / "benchmarks" / "minimal_app.py")], cols=100, rows=30)
    demo = PtyProcess([str(BIN / "routedeck"), "demo", "--state-dir", str(state), "--speed", f"{args.speed:g}"],
                      cols=100, rows=30)
    curve: list[tuple[float, float, float]] = []
    try:
        minimal.start()
        started = demo.start()
        if demo.wait_for(b"fast_default_v1", timeout=60) is None:
            raise SystemExit(f"the demo never showed its routes; tail: {bytes(demo.output[-400:])!r}")
        fill_at = LONGEST_WINDOW_S / args.speed
        end_at = fill_at + args.hours * 3600 / args.speed
        next_mark = fill_at
        while True:
            elapsed = time.perf_counter() - started
            if elapsed >= next_mark:
                curve.append(((elapsed - fill_at) * args.speed / 3600, tree_rss_mb(demo.pid), tree_rss_mb(minimal.pid)))
                next_mark += 3600 / args.speed
                if elapsed >= end_at:
                    break
            demo.pump(0.05)
            minimal.pump(0.0)
    finally:
        demo.stop()
        minimal.stop()
        shutil.rmtree(state, ignore_errors=True)

    base_rd, base_min = curve[0][1], curve[0][2]
    print(f"Soak benchmark — the demo at --speed {args.speed:g} for {args.hours:g} simulated hours after its "
          f"longest window ({LONGEST_WINDOW_S / 3600:g} h of simulated requests) filled, RSS of each whole process "
          "tree, this machine\n")
    print("| simulated hours after the window filled | minimal Textual app | routedeck demo | routedeck vs its start |")
    print("|---|---|---|---|")
    for hours, rd, mini in curve:
        print(f"| {hours:.0f} | {mini:.0f} MB | {rd:.0f} MB | {(rd / base_rd - 1) * 100:+.1f}% |")
    growth_rd = max(rd for _, rd, _ in curve) / base_rd - 1
    growth_min = max(m for _, _, m in curve) / base_min - 1
    # a sample can fall in the middle of a look over a long stage (large temporaries, handed back after it):
    # the level the memory settles at is told apart from those peaks
    tail = curve[-6:]
    settled_rd = sorted(rd for _, rd, _ in tail)[len(tail) // 2] / base_rd - 1
    settled_min = sorted(m for _, _, m in tail)[len(tail) // 2] / base_min - 1
    print("\n| measure | minimal Textual app | routedeck demo | target |")
    print("|---|---|---|---|")
    print(f"| largest growth over the value when the window filled (any sample) | {growth_min * 100:+.1f}% | "
          f"{growth_rd * 100:+.1f}% | ≤ +10% |")
    print(f"| where it settled: the median of the last {len(tail)} samples | {settled_min * 100:+.1f}% | "
          f"{settled_rd * 100:+.1f}% | — |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
