"""How soon a change made in FeatBit reaches routedeck: over the stream, beside the one-second flag
poll every platform gets (the baseline), in the same run against the local FeatBit fake.

For each of N changes made by "someone else" through FeatBit's Open API, two watchers time how long
it takes them to learn of it:

- stream: ``FeatBitPlatform.watch_changes`` — the callback fires when FeatBit pushes the patch;
- poll (baseline): a loop reading the flag every 1 s, as the console does without a stream.

A third row times FeatBit's official Python SDK (``fb-python-sdk``) seeing a routedeck rollback
(the evaluation of a candidate unit turning to the baseline). Changes are spaced at random so the
poll's phase is not fixed.

    .venv/bin/python benchmarks/featbit_stream.py [--changes 20]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()

    import httpx
    from fbclient.client import FBClient
    from fbclient.config import Config
    from fbclient.event_processor import NullEventProcessor

    from adapters.flags.featbit import FeatBitPlatform
    from tests.contract.implementations import BASELINE, CANDIDATE, FLAG, seed_flag
    from tests.fakes.featbit_server import FakeFeatBit

    logging.getLogger("fbclient").setLevel(logging.ERROR)
    fake = FakeFeatBit().start()
    platform = FeatBitPlatform(fake.url, fake.token, fake.env_id, stream_url=fake.stream_url, secret=fake.secret)
    platform.create_flag(seed_flag())
    someone = httpx.Client(base_url=f"{fake.url}/api/v1/envs/{fake.env_id}/feature-flags",
                           headers={"Authorization": fake.add_token("someone-else")}, timeout=5)

    pushed: dict[str, float] = {}
    arrived = threading.Event()

    def on_change(keys: list[str]) -> None:
        pushed["at"] = time.perf_counter()
        arrived.set()

    stream = platform.watch_changes(on_change)
    assert stream is not None and stream.synced.wait(5)

    seen_revision = {"rev": platform.read_flag(FLAG).revision}
    polled: dict[str, float] = {}
    poll_stop = threading.Event()
    poller_platform = FeatBitPlatform(fake.url, fake.token, fake.env_id)

    def poller() -> None:
        while not poll_stop.wait(1.0):
            rev = poller_platform.read_flag(FLAG).revision
            if rev != seen_revision["rev"]:
                seen_revision["rev"] = rev
                polled["at"] = time.perf_counter()

    threading.Thread(target=poller, daemon=True).start()

    stream_ms, poll_ms = [], []
    for i in range(args.changes):
        time.sleep(random.uniform(0.1, 1.0))
        arrived.clear()
        polled.pop("at", None)
        description = fake.raw(FLAG)["description"] + f"\nnote {i}"
        started = time.perf_counter()
        assert someone.put(f"/{FLAG}/description", json={"description": description}).json()["success"]
        arrived.wait(5)
        stream_ms.append((pushed["at"] - started) * 1000)
        deadline = time.perf_counter() + 3
        while "at" not in polled and time.perf_counter() < deadline:
            time.sleep(0.002)
        poll_ms.append((polled["at"] - started) * 1000)
    poll_stop.set()

    client = FBClient(Config(fake.secret, fake.url, fake.stream_url, event_processor_imp=NullEventProcessor),
                      start_wait=5)
    sdk_ms = []
    try:
        for _ in range(max(3, args.changes // 4)):
            flag = platform.read_flag(FLAG)
            platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 10_000}), flag.revision)
            probe = {"key": "probe-unit", "name": "probe", "scope": "english_support_chat"}
            while client.variation(FLAG, probe, None)["route"] != CANDIDATE:
                time.sleep(0.001)
            started = time.perf_counter()
            platform.rollback_to_baseline(FLAG)
            while client.variation(FLAG, probe, None)["route"] != BASELINE:
                time.sleep(0.001)
            sdk_ms.append((time.perf_counter() - started) * 1000)
    finally:
        fake.stream_enabled = False
        fake.drop_streams(1001)
        client.stop()
        platform.close()
        poller_platform.close()
        someone.close()
        fake.stop()

    def row(name: str, values: list[float]) -> str:
        values = sorted(values)
        p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
        return f"| {name} | {len(values)} | {statistics.median(values):.1f} ms | {p95:.1f} ms | {max(values):.1f} ms |"

    print("| a change made in FeatBit reaches… | n | median | p95 | max |")
    print("|---|---|---|---|---|")
    print(row("the console, 1 s flag poll (baseline)", poll_ms))
    print(row("the console, FeatBit stream", stream_ms))
    print(row("fb-python-sdk: routedeck rollback → baseline served (incl. the write and read-back)", sdk_ms))
    print(f"\nstream vs poll, median: {statistics.median(poll_ms) / statistics.median(stream_ms):.0f}× sooner")


if __name__ == "__main__":
    main()
