"""The audit screen with a journal of 100,000 entries, beside the same screen with 100 (the baseline).

Each size runs in its own process (so peak memory is that size's own) on a journal built in a
temporary directory: realistic entries (intents with a verdict snapshot of six metrics, outcomes
with the read-back, rule and foreign-change events) sealed into one valid hash chain, and a flag
platform whose history holds the newest 1,000 of those writes per flag (to be paired with the
journal). Measured in a headless 120×40 terminal, from the key (or the screen being pushed) to the
first frame that shows its effect:

- open → first paint (``loading…``), → rows on screen, → the whole chain verified (background);
- `k` while the chain is being verified; `j`; `G`/`g` — and the UI thread's own work for `j` and `G`;
- search: `enter` on `/rollback` until the filtered list is drawn; and the core filter alone;
- peak RSS of the process.

    .venv/bin/python benchmarks/audit_screen.py [--sizes 100,100000] [--keys 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPERATORS = ("ana", "bo", "chen", "dara", "eli")
FLAGS = ("support-answer-route", "hard-case-route", "classify-route", "summarise-route")
METRICS = ("resolved_without_escalation", "cost_per_resolved_case", "correction_rate", "complaint_rate",
           "p95_latency", "fallback_rate")


def make_journal(path: Path, n: int, seed: int = 1) -> list:
    """``n`` entries in one valid chain, written at once (appending one by one would fsync each);
    returns the platform's history of the writes they journal (``ChangeEvent``s).

    Entries are sealed here the way the journal seals them (canonical JSON, sha256 chain); the
    first ones are checked against ``seal`` and the screen verifies the whole chain.
    """
    from console.core.audit.entry import FORMAT_VERSION, GENESIS, Operator, canonical_json, entry_hash, format_time, seal
    from console.core.audit.writer import make_fields

    rng = random.Random(seed)
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    prev, seq = GENESIS, 0
    empty = make_fields(kind="event", action="x").model_dump(mode="json")
    del empty["operator"]
    operators = {name: {"name": name, "os_user": name, "host": "ops-1"} for name in OPERATORS}
    from collections import deque

    from console.core.models import ChangeEvent

    history = {flag: deque(maxlen=1000) for flag in FLAGS}  # what a platform keeps and history() returns
    with open(path, "w", encoding="ascii") as out:
        while seq < n:
            flag = rng.choice(FLAGS)
            who = rng.choice(OPERATORS)
            bp = rng.choice((0, 500, 2000, 9500))
            before = {"internal_audience": "internal_support_team", "internal_enabled": True,
                      "eligible_scope": "english_support_chat", "candidate_bp": bp}
            if rng.random() < 0.08:
                action = rng.choice(("rule_loaded", "foreign_change"))
                batch = [dict(kind="event", action=action, flag=flag, reason="console loaded the decision rule",
                              rule_hash="9f2c4e1a7b3d5c60", detail={"path": "rule.yaml", "by": "console"})]
            else:
                action = rng.choice(("advance", "advance", "rollback", "hold", "override", "acknowledge"))
                after = dict(before, candidate_bp=0 if action == "rollback" else min(10000, bp + 1500))
                verdict = {
                    "verdict": rng.choice(("ADVANCE", "HOLD", "ROLLBACK")), "stage": "5%", "request_level": False,
                    "health": [{"name": "sample ratio", "status": "pass", "detail": "p=0.41"}],
                    "metrics": [{"name": m, "candidate": rng.random(), "baseline": rng.random(),
                                 "interval": [rng.uniform(-0.1, 0), rng.uniform(0, 0.1)], "threshold": 0.05,
                                 "n": [rng.randint(100, 5000), rng.randint(1000, 50000)],
                                 "verdict": "non-inferior", "critical": m == "fallback_rate"} for m in METRICS],
                    "reasons": ["every guardrail is non-inferior"],
                }
                batch = [dict(kind="intent", action=action, flag=flag, before=before, after=after,
                              reason=f"{action} by {who}: verdict {verdict['verdict']}",
                              rule_hash="9f2c4e1a7b3d5c60", verdict=verdict),
                         dict(kind="outcome", action=action, flag=flag, status="confirmed", before=before,
                              after=after, rule_hash="9f2c4e1a7b3d5c60", detail={"revision": "", "elapsed_s": 0.012})]
            intent_seq = None
            for fields in batch:
                if seq >= n:
                    break
                seq += 1
                moment += timedelta(seconds=rng.randint(1, 90))
                if fields["kind"] == "outcome":
                    fields = dict(fields, intent_seq=intent_seq, detail={"revision": f"{seq:016x}", "elapsed_s": 0.012})
                    history[flag].append((moment - timedelta(seconds=0.5), who, flag, fields["before"], fields["after"]))
                body = {**empty, **fields, "v": FORMAT_VERSION, "seq": seq, "prev": prev, "time": format_time(moment),
                        "operator": operators[who]}
                body["hash"] = entry_hash(body)
                if seq <= 3:  # the same bytes the journal itself would write
                    sealed = seal(make_fields(fields), seq=seq, prev=prev, time=body["time"], operator=Operator(**operators[who]))
                    assert sealed.to_line() == canonical_json(body) + "\n"
                if fields["kind"] == "intent":
                    intent_seq = seq
                out.write(canonical_json(body) + "\n")
                prev = body["hash"]
    return [ChangeEvent(at=at, actor=who, flag=flag, action="write", before={"allocation": before},
                        after={"allocation": after})
            for events in history.values() for at, who, flag, before, after in events]


def _platform(events: list):
    """A flag platform whose history holds the journal's writes (the newest ``limit`` per flag)."""
    from console.core.ports import FlagPlatform

    class Empty(FlagPlatform):
        kind = "empty"

        def describe(self) -> str:
            return "empty:"

        def list_flags(self) -> list[str]:
            return list(FLAGS)

        def read_flag(self, key):
            from console.core.errors import BackendError

            raise BackendError(f"empty: no flag {key} (this platform only has a history)")

        def _write_flag(self, flag, expected_revision) -> None:
            raise NotImplementedError

        def history(self, key, limit=100):
            return [e for e in reversed(events) if e.flag == key][:limit]

    return Empty()


def _work_ms(listing, act, times: int) -> float:
    """The UI thread's share of a key: the action, then drawing every line of the list's region."""
    height = listing.size.height
    t = time.perf_counter()
    for _ in range(times):
        act()
        for y in range(height):
            listing.render_line(y)
    return (time.perf_counter() - t) / times * 1000


class Frames:
    """Every frame the app puts out, with what the list showed then (set as the app's display hook)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, tuple]] = []
        self.state = lambda: ()

    def hook(self) -> None:
        self.seen.append((time.perf_counter(), self.state()))

    async def first(self, since: float, wanted, timeout_s: float = 20.0) -> float:
        """Seconds from ``since`` to the first frame after it whose state satisfies ``wanted``."""
        deadline = time.perf_counter() + timeout_s
        checked = 0
        while time.perf_counter() < deadline:
            frames = self.seen
            for ts, state in frames[checked:]:
                if ts >= since and wanted(state):
                    return ts - since
            checked = len(frames)
            await asyncio.sleep(0.0005)
        raise TimeoutError(f"no such frame (last state {self.seen[-1][1] if self.seen else None})")


def _send_key(app, key: str) -> float:
    """Hand a key to the app the way the terminal driver does; return when it was sent."""
    from textual import events

    char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    sent = time.perf_counter()
    app._driver.send_message(event)
    return sent


async def measure(n: int, keys: int) -> dict:
    from textual.app import App

    from console.core.audit.timeline import TimelineFilter, apply_filter
    from console.screens.audit import AuditScreen
    from widgets.audit_list import AuditList

    work = Path(tempfile.mkdtemp(prefix="routedeck-audit-bench-"))
    journal = work / "journal.jsonl"
    started = time.perf_counter()
    events = make_journal(journal, n)
    built_s = time.perf_counter() - started
    frames = Frames()

    class Host(App):
        def post_display_hook(self) -> None:
            frames.hook()

    out: dict = {"entries": n, "journal_mb": journal.stat().st_size / 1e6, "build_s": built_s}
    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        from console.core.session import Session

        platform = _platform(events)
        screen = AuditScreen(Session(platform=platform), journal, platform, list(FLAGS))

        def state() -> tuple:
            if app.screen is not screen or not screen.is_mounted:
                return (False, None, -1, False, -1)
            listing = screen.query_one(AuditList)
            timeline = screen.timeline
            return (True, timeline is not None, listing.cursor,
                    timeline is not None and timeline.report is not None, len(screen.shown))

        frames.state = state
        t0 = time.perf_counter()
        app.push_screen(screen)
        out["first_paint_s"] = await frames.first(t0, lambda st: st[0])
        out["rows_s"] = await frames.first(t0, lambda st: st[1] and st[4] > 0, timeout_s=300)
        listing = screen.query_one(AuditList)
        lags = []
        while screen.timeline.report is None and len(lags) < 40:  # keys while the chain is being checked
            before = listing.cursor
            sent = _send_key(app, "k")
            lags.append(await frames.first(sent, lambda st, b=before: st[2] != b or st[3]))
            await asyncio.sleep(0.02)
        out["k_verifying_ms"] = sum(lags) / len(lags) * 1000 if lags else 0.0
        out["k_verifying_max_ms"] = max(lags) * 1000 if lags else 0.0
        out["verified_s"] = await frames.first(t0, lambda st: st[3], timeout_s=900)
        out["chain_ok"] = screen.timeline.report.ok
        out["paired"] = sum(1 for r in screen.timeline.records if r.origin == "paired")
        listing.move_to(0)
        await pilot.pause()
        lags = []
        for _ in range(min(keys, n - 1)):
            before = listing.cursor
            sent = _send_key(app, "j")
            lags.append(await frames.first(sent, lambda st, b=before: st[2] != b))
        out["j_ms"] = sum(lags) / len(lags) * 1000
        out["j_max_ms"] = max(lags) * 1000
        listing.move_to(0)
        out["j_work_ms"] = _work_ms(listing, listing.action_cursor_down, min(keys, n - 1))
        listing.move_to(0)
        await pilot.pause()
        lags = []
        for i in range(20):
            before = listing.cursor
            sent = _send_key(app, "G" if i % 2 == 0 else "g")
            lags.append(await frames.first(sent, lambda st, b=before: st[2] != b))
        out["G_ms"] = sum(lags) / len(lags) * 1000
        out["G_work_ms"] = _work_ms(listing, lambda: (listing.action_last(), listing.action_first()), 10) / 2
        await pilot.press("slash", *"rollback")
        await pilot.pause()
        total = len(screen.shown)
        sent = _send_key(app, "enter")
        out["search_ms"] = await frames.first(sent, lambda st: st[4] != total) * 1000
        out["matches"] = len(screen.shown)
        t = time.perf_counter()
        for _ in range(5):
            apply_filter(screen.timeline.records, TimelineFilter(text="rollback"))
        out["filter_core_ms"] = (time.perf_counter() - t) / 5 * 1000
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    journal.unlink()
    work.rmdir()
    return out


ROWS = [
    ("journal size", "journal_mb", "{:.1f} MB"),
    ("open → first paint (loading…)", "first_paint_s", "ms"),
    ("open → rows on screen", "rows_s", "ms"),
    ("open → whole chain verified (background)", "verified_s", "ms"),
    ("one `k` while the chain is being verified: key → frame (mean)", "k_verifying_ms", "{:.1f} ms"),
    ("… the slowest of those", "k_verifying_max_ms", "{:.1f} ms"),
    ("one `j`: key → frame (mean)", "j_ms", "{:.1f} ms"),
    ("… the slowest", "j_max_ms", "{:.1f} ms"),
    ("one `j`: the UI thread's work (move + draw the list)", "j_work_ms", "{:.2f} ms"),
    ("one `G` / `g`: key → frame (mean)", "G_ms", "{:.1f} ms"),
    ("one `G` / `g`: the UI thread's work", "G_work_ms", "{:.2f} ms"),
    ("search: `enter` on /rollback → filtered list on screen", "search_ms", "{:.0f} ms"),
    ("search: the core filter alone", "filter_core_ms", "{:.1f} ms"),
    ("peak RSS", "peak_rss_mb", "{:.0f} MB"),
]


def _fmt(value: float, how: str) -> str:
    return f"{value * 1000:.0f} ms" if how == "ms" else how.format(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,100000", help="journal sizes; the first is the baseline")
    parser.add_argument("--keys", type=int, default=200, help="j presses to average over")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(asyncio.run(measure(args.child, args.keys))))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for n in sizes:
        done = subprocess.run([sys.executable, __file__, "--child", str(n), "--keys", str(args.keys)],
                              capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = results[0]
    head = ["measure"] + [f"{r['entries']:,} entries" + (" (baseline)" if i == 0 else "") for i, r in enumerate(results)]
    head += [f"ratio {results[-1]['entries']:,} / {base['entries']:,}"] if len(results) > 1 else []
    print(f"Audit screen benchmark — headless 120×40, {args.keys} `j` presses, platform history of up to "
          f"1,000 writes per flag, this machine")
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, key, how in ROWS:
        cells = [_fmt(r[key], how) for r in results]
        if len(results) > 1:
            cells.append(f"{results[-1][key] / base[key]:.2f}×" if base[key] else "—")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print("chain verified: " + ", ".join(f"{r['entries']:,}: {'yes' if r['chain_ok'] else 'NO'}" for r in results)
          + " · search matches: " + ", ".join(f"{r['matches']:,}" for r in results)
          + " · platform changes paired with the journal: " + ", ".join(f"{r['paired']:,}" for r in results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
