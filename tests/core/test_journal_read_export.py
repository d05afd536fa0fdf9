"""Reading (filtered, streamed, 100,000 entries), the head, and the decision-record exports."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from console.core.errors import BadInput
from console.core.journal import (
    EMPTY_HEAD,
    GENESIS,
    Journal,
    canonical_json,
    entry_hash,
    export_json,
    export_markdown,
    head,
    read_entries,
    verify,
)

START = datetime(2025, 6, 1, 9, 0, tzinfo=timezone.utc)


def ticking_clock():
    moments = (START + timedelta(minutes=i) for i in range(10_000))
    return lambda: next(moments)


def test_filters_by_flag_time_and_seq(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, clock=ticking_clock())
    for i in range(6):
        journal.append(kind="event", action="hold", flag="a" if i % 2 == 0 else "b")
    assert [e.seq for e in read_entries(path, flag="a")] == [1, 3, 5]
    assert [e.seq for e in read_entries(path, since=START + timedelta(minutes=4))] == [5, 6]
    assert [e.seq for e in read_entries(path, flag="b", since=4)] == [4, 6]
    assert list(read_entries(tmp_path / "missing.jsonl")) == []


def test_reading_streams_and_names_a_bad_line_when_it_gets_there(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    for _ in range(3):
        journal.append(kind="event", action="hold")
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = "garbage\n"
    path.write_text("".join(lines))
    entries = read_entries(path)
    assert next(entries).seq == 1  # yielded before the bad line was read
    with pytest.raises(BadInput, match="line 2"):
        next(entries)


def test_a_torn_last_line_is_skipped_by_readers(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    last = journal.append(kind="event", action="hold")
    with open(path, "ab") as fh:
        fh.write(b'{"seq":2,"ha')
    assert [e.seq for e in read_entries(path)] == [1]
    assert head(path) == last.anchor


def test_head_of_an_empty_or_missing_journal(tmp_path: Path) -> None:
    assert head(tmp_path / "missing.jsonl") == EMPTY_HEAD == (0, GENESIS)
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert head(tmp_path / "empty.jsonl") == EMPTY_HEAD


def fast_chain(path: Path, count: int) -> None:
    """Write a valid chain without one fsync per entry (the writer is tested elsewhere)."""
    prev, out = GENESIS, []
    op = {"name": "ana", "os_user": "ana", "host": "box"}
    for seq in range(1, count + 1):
        body = {
            "v": 1, "seq": seq, "time": f"2025-06-01T09:00:00.{seq % 1_000_000:06d}Z", "kind": "event",
            "action": "hold", "operator": op, "profile": None, "flag": f"flag{seq % 10}", "before": None,
            "after": None, "reason": "", "rule_hash": None, "verdict": {"p95": {"value": 1.5, "n": seq}},
            "status": None, "intent_seq": None, "error": None, "detail": None, "prev": prev,
        }
        body["hash"] = prev = entry_hash(body)
        out.append(canonical_json(body) + "\n")
    path.write_text("".join(out))


def test_one_hundred_thousand_entries_read_and_verify(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.jsonl"
    fast_chain(path, 100_000)
    mine = [e.seq for e in read_entries(path, flag="flag3")]
    assert len(mine) == 10_000 and mine[:2] == [3, 13]
    report = verify(path)
    assert report.ok and report.entries == 100_000
    # The head and the writer read the journal from its end, not the whole file (timings: benchmarks/).
    read_bytes: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, n, offset)
        read_bytes.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting_pread)
    assert head(path).seq == 100_000
    assert Journal(path).append(kind="event", action="hold").seq == 100_001
    assert 0 < sum(read_bytes) < 4 * 64 * 1024 < path.stat().st_size // 20  # a few blocks of the tail


def rollout(path: Path) -> Journal:
    journal = Journal(path, operator_name="ana", profile="prod", clock=ticking_clock())
    intent = journal.append(
        kind="intent", action="advance", flag="support", reason="internal stage clean for 2h",
        before={"eligible_scope": "english_chat", "internal_audience": "staff", "internal_enabled": True, "candidate_bp": 0},
        after={"eligible_scope": "english_chat", "candidate_bp": 500}, rule_hash="ab" * 32,
        verdict={"decision": "ADVANCE", "p95_latency": {"value": 1.8, "threshold": 2.5, "n": 4200},
                 "cost_per_resolved_case": {"value": 0.021, "threshold": 0.03, "n": 3900}},
    )
    journal.append(kind="outcome", action="advance", flag="support", status="confirmed", intent_seq=intent.seq,
                   after={"eligible_scope": "english_chat", "candidate_bp": 500})
    failed = journal.append(kind="intent", action="rollback", flag="support", reason="fallback | spike")
    journal.append(kind="outcome", action="rollback", flag="support", status="failed", intent_seq=failed.seq,
                   error="flagd file not writable")
    journal.append(kind="intent", action="rollback", flag="support", reason="retry")
    return journal


def test_markdown_export_is_the_decision_record(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = rollout(path)
    rule = "flag: support\nprimary: resolved_without_escalation\n"
    text = export_markdown(read_entries(path), rule, journal.head)
    assert rule.strip() in text
    assert "| 2025-06-01T09:01:00.000000Z | advance | support | 5% of english_chat | 2 |" in text
    assert "internal stage clean for 2h" in text and "ana (" in text and "profile prod" in text
    assert "| p95_latency | 1.8 | 2.5 | 4200 |" in text  # evidence beside its threshold
    assert "- decision: ADVANCE" in text
    assert "**failed**" in text and "flagd file not writable" in text
    assert "fallback \\| spike" in text  # table-safe
    assert "**none recorded**" in text  # the last intent never got an outcome
    assert journal.head.to_text() in text


def test_json_export_carries_the_same_record(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = rollout(path)
    record = json.loads(export_json(read_entries(path), "rule text", journal.head))
    assert record["chain_head"] == journal.head.to_text()
    assert record["rule"] == {"text": "rule text", "hashes": ["ab" * 32]}
    assert [s["described"] for s in record["stages"]] == ["5% of english_chat"]
    assert [d["action"] for d in record["decisions"]] == ["advance", "rollback", "rollback"]
    assert record["decisions"][0]["outcome"]["status"] == "confirmed"
    assert record["decisions"][1]["outcome"]["error"] == "flagd file not writable"
    assert record["decisions"][2]["outcome"] is None
    assert verify(path, [record["chain_head"]]).ok


def test_a_rule_containing_a_fence_cannot_break_out_of_it(tmp_path: Path) -> None:
    text = export_markdown([], "note: ```not code```\n", None)
    assert "````yaml\nnote: ```not code```\n````" in text
    assert "cannot be checked" in text
