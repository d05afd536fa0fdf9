"""The demo on events: a simulated application process writes its events live, the events source reads them back."""

from __future__ import annotations

import time

from console.commands.demo import prepare_state_dir
from console.backends import open_metrics
from console.commands.simulate import start_event_writer

FLAG = "support-answer-route"


def test_a_live_writer_is_read_as_it_writes(tmp_path):
    flags = prepare_state_dir(tmp_path / "state")
    events = tmp_path / "events"
    started = time.time()
    proc, stop = start_event_writer(flags, events, scenario="steady", seed=5, speed=30.0, replicas=2, history_minutes=1)
    source = None
    try:
        deadline = time.monotonic() + 60
        while not len(list(events.glob("*.jsonl"))) == 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        source = open_metrics(f"events:{events}?clock=data", f"flagd:{flags}")
        seen = []
        while time.monotonic() < deadline and (len(seen) < 3 or seen[-1] <= seen[0] + 60):
            now = source.now()
            snap = source.read(now - 600, now + 1, 60)
            seen.append(now)
            time.sleep(1.0)
        # the clock follows the writer (30 simulated seconds per second), and the history came first
        assert seen[-1] > seen[0] + 60, seen
        calls = sum(c.requests for k, c in snap.totals.items() if k.flag == FLAG)
        assert calls > 1000
        earliest = source.db.execute("SELECT min(t) FROM ev").fetchone()[0]
        assert earliest < started - 50  # the minute of history was written first
        assert proc.poll() is None  # still writing until stopped
    finally:
        if source is not None:
            source.close()
        said = stop()
    assert proc.returncode == 0 and said == ""
