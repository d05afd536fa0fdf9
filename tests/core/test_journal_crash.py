"""Crashes and concurrency, for real: SIGKILLed writers and several processes appending at once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

from console.core.journal import Journal, read_entries, verify

WRITER = """
import sys
from console.core.journal import Journal
journal = Journal(sys.argv[1], operator_name=sys.argv[2])
padding = "x" * 20000  # long lines make a kill during the write more likely
while True:
    entry = journal.append(kind="event", action="hold", reason=padding)
    print(entry.seq, flush=True)  # printed only once append has returned: acknowledged
"""


def run_and_kill(path: Path, name: str, acknowledged_before_kill: int) -> list[int]:
    """Start a writer, SIGKILL it after some appends; return every seq it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.stdout is not None
    acked = []
    try:
        while len(acked) < acknowledged_before_kill:
            line = proc.stdout.readline()
            assert line, f"writer died early: {proc.stderr.read() if proc.stderr else ''}"
            acked.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)
        acked += [int(x) for x in proc.stdout.read().split()]
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return acked


def test_a_killed_writer_leaves_a_verifiable_prefix_holding_every_acknowledged_entry(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    acked: list[int] = []
    for round_no in range(3):
        acked += run_and_kill(path, f"writer{round_no}", acknowledged_before_kill=15 + 7 * round_no)
        report = verify(path)
        assert report.ok, report.summary()
        assert report.first_bad is None
        stored = {e.seq for e in read_entries(path)}
        assert set(acked) <= stored  # an acknowledged entry is never lost
        assert stored == set(range(1, report.entries + 1))
    # A restarted writer continues the chain after whatever the kills left.
    before = verify(path).entries
    entry = Journal(path).append(kind="event", action="hold")
    assert entry.seq == before + 1 > max(acked)
    after = verify(path)
    assert after.ok and after.torn is None and after.entries == before + 1


def _append_many(path: str, worker: int, count: int) -> None:
    journal = Journal(path, operator_name=f"w{worker}")
    for i in range(count):
        journal.append(kind="event", action="hold", flag=f"flag{worker}", detail={"worker": worker, "i": i})


def test_concurrent_writers_never_interleave_and_the_chain_verifies(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    workers, each = 4, 30
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, each)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    report = verify(path)
    assert report.ok and report.torn is None, report.summary()
    assert report.entries == workers * each
    entries = list(read_entries(path))
    for w in range(workers):
        mine = [e.detail["i"] for e in entries if e.detail and e.detail["worker"] == w]
        assert mine == list(range(each))  # each writer's entries, complete and in its order
