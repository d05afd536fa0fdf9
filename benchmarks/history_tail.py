"""Writes that must not slow down as their records grow: a flag-file rollback beside a history sidecar of
5,000 entries, and the journal's head and next append after 100,000 entries — each beside the same
operation on a short record (the baseline), measured in the same run.

The comparator is the whole-file read each of them avoids: parsing the long sidecar, or reading the long
journal, once.
If the ratio long/short grows toward that comparator's, the tail read has regressed into a full read.

    .venv/bin/python benchmarks/history_tail.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.flags.flagd_file import FlagdFilePlatform  # noqa: E402
from console.core.journal import Journal, canonical_json, entry_hash, head  # noqa: E402
from console.core.simulator.portfolio import demo_flags  # noqa: E402

FLAG = "support-answer-route"


def median_ms(fn, repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def flag_file(directory: Path, history_lines: int) -> FlagdFilePlatform:
    platform = FlagdFilePlatform(directory / "flags.json")
    for flag in demo_flags():
        platform.create_flag(flag)
    sidecar = directory / "flags.json.history.jsonl"
    last = sidecar.read_text().splitlines()[-1]
    sidecar.write_text((last + "\n") * history_lines)
    return platform


def rollback_ms(platform: FlagdFilePlatform, repeat: int) -> float:
    elapsed = []
    for _ in range(repeat):
        flag = platform.read_flag(FLAG)
        platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 2000}), flag.revision)
        started = time.perf_counter()
        platform.rollback_to_baseline(FLAG)
        elapsed.append(time.perf_counter() - started)
    return statistics.median(elapsed) * 1000


def journal(path: Path, n: int) -> None:
    prev = "0" * 64
    lines = []
    for seq in range(1, n + 1):
        body = {"v": 1, "seq": seq, "time": f"2025-06-01T09:00:00.{seq % 1_000_000:06d}Z", "kind": "event",
                "action": "hold", "operator": "ana", "profile": None, "flag": FLAG, "before": None, "after": None,
                "reason": "", "rule_hash": None, "verdict": {"p95": {"value": 1.5, "n": seq}}, "status": None,
                "intent_seq": None, "error": None, "detail": None, "prev": prev}
        body["hash"] = prev = entry_hash(body)
        lines.append(canonical_json(body) + "\n")
    path.write_text("".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "short").mkdir()
        (tmp / "long").mkdir()
        short, long = flag_file(tmp / "short", 1), flag_file(tmp / "long", 5000)
        rows.append(("flag-file rollback", rollback_ms(short, args.repeat), rollback_ms(long, args.repeat),
                     median_ms(long._read_history, args.repeat), "1 vs 5,000 sidecar entries"))
        small, big = tmp / "small.jsonl", tmp / "big.jsonl"
        journal(small, 100)
        journal(big, 100_000)
        rows.append(("journal head", median_ms(lambda: head(small), args.repeat),
                     median_ms(lambda: head(big), args.repeat), median_ms(lambda: big.read_bytes(), args.repeat),
                     "100 vs 100,000 entries"))
        rows.append(("journal open + append", median_ms(lambda: Journal(small).append(kind="event", action="hold"),
                                                         args.repeat),
                     median_ms(lambda: Journal(big).append(kind="event", action="hold"), args.repeat),
                     median_ms(lambda: big.read_bytes(), args.repeat), "100 vs 100,000 entries (fsync included)"))
    print(f"{'operation':<24} {'short (baseline)':>17} {'long':>10} {'ratio':>7} {'whole-file read':>16}  sizes")
    for name, a, b, whole, sizes in rows:
        print(f"{name:<24} {a:>14.2f} ms {b:>7.2f} ms {b / a:>6.2f}× {whole:>13.2f} ms  {sizes}")


if __name__ == "__main__":
    main()
