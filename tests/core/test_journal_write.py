"""Appending to the journal: chain fields, continuation across opens, failures as one line."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from console.core.audit import writer as writer_module
from console.core.journal import (
    GENESIS,
    Journal,
    JournalUnavailable,
    canonical_json,
    entry_hash,
    head,
    journal_path,
    read_entries,
    verify,
)
from console.core.models import Allocation


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_entries_are_chained_hashed_and_canonical(tmp_path: Path) -> None:
    path = journal_path(tmp_path)
    journal = Journal(path, operator_name="ana", profile="prod")
    first = journal.append(kind="intent", action="advance", flag="support", reason="gate passed")
    second = journal.append(kind="outcome", action="advance", flag="support", status="confirmed", intent_seq=first.seq)

    stored = lines(path)
    assert [e["seq"] for e in stored] == [1, 2]
    assert stored[0]["prev"] == GENESIS
    assert stored[1]["prev"] == stored[0]["hash"] == first.hash
    for raw, entry in zip(path.read_text().splitlines(), stored):
        assert entry["hash"] == entry_hash(entry)
        assert raw == canonical_json(entry)
    assert stored[0]["operator"]["name"] == "ana" and stored[0]["operator"]["os_user"]
    assert stored[0]["profile"] == "prod"
    assert journal.head == (2, second.hash) == head(path)


def test_time_is_utc_iso_from_the_clock(tmp_path: Path) -> None:
    moment = datetime(2025, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    journal = Journal(tmp_path / "j.jsonl", clock=lambda: moment)
    entry = journal.append(kind="event", action="rule_loaded")
    assert entry.time == "2025-03-01T12:00:00.123456Z"
    assert entry.at == moment


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    last = None
    for _ in range(3):
        journal = Journal(path)
        if last is not None:
            assert journal.head == last.anchor
        last = journal.append(kind="event", action="foreign_change", flag="f")
    assert last is not None and last.seq == 3
    assert verify(path).ok


def test_two_open_journals_share_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    a, b = Journal(path, operator_name="a"), Journal(path, operator_name="b")
    for _ in range(3):
        a.append(kind="event", action="hold")
        b.append(kind="event", action="hold")
    report = verify(path)
    assert report.ok and report.entries == 6
    assert [e.operator.name for e in read_entries(path)] == ["a", "b"] * 3


def test_models_and_non_finite_numbers_become_json(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    alloc = Allocation(eligible_scope="english_chat", candidate_bp=500)
    entry = journal.append(
        kind="intent", action="advance", before=alloc,
        verdict={"p95": {"value": float("nan"), "upper": float("inf")}, 3: (1, 2)},
    )
    assert entry.before == alloc.model_dump(mode="json")
    assert entry.verdict == {"p95": {"value": "NaN", "upper": "Infinity"}, "3": [1, 2]}
    assert verify(tmp_path / "j.jsonl").ok


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "maybe", "action": "advance"},
        {"kind": "intent", "action": ""},
        {"kind": "intent", "action": "advance", "colour": "red"},
        {"kind": "outcome", "action": "advance", "status": "sort of"},
    ],
)
def test_invalid_fields_are_refused_before_writing(tmp_path: Path, fields: dict) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    with pytest.raises(ValueError):
        journal.append(fields)
    assert (tmp_path / "j.jsonl").read_bytes() == b""


def test_unwritable_location_raises_one_line_naming_path_and_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state dir should be")
    with pytest.raises(JournalUnavailable) as caught:
        Journal(blocker / "journal.jsonl")
    message = str(caught.value)
    assert "\n" not in message
    assert str(blocker / "journal.jsonl") in message
    assert "--state-dir" in message


def test_journal_replaced_by_a_directory_is_unavailable_on_append(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(JournalUnavailable, match="cannot be written"):
        journal.append(kind="event", action="hold")


def test_disk_full_is_reported_and_leaves_the_file_verifiable(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.append(kind="event", action="hold")

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module.os, "write", full)
    with pytest.raises(JournalUnavailable, match="free space"):
        journal.append(kind="event", action="hold")
    monkeypatch.undo()
    assert verify(path).entries == 1
    assert journal.append(kind="event", action="hold").seq == 2


def test_short_write_is_undone(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.append(kind="event", action="hold")
    real_write = os.write
    monkeypatch.setattr(writer_module.os, "write", lambda fd, data: real_write(fd, data[:10]))
    with pytest.raises(JournalUnavailable, match="short write"):
        journal.append(kind="event", action="hold")
    monkeypatch.undo()
    report = verify(path)
    assert report.ok and report.torn is None and report.entries == 1


def test_a_held_lock_times_out_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, lock_timeout_s=0.2)
    holder = os.open(journal.lock_path, os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(JournalUnavailable, match="locked by another process"):
            journal.append(kind="event", action="hold")
    finally:
        os.close(holder)
    assert journal.append(kind="event", action="hold").seq == 1


def test_a_torn_tail_is_moved_aside_and_the_chain_continues(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    kept = journal.append(kind="event", action="hold")
    with open(path, "ab") as fh:
        fh.write(b'{"action":"advance","af')  # what a crash mid-write leaves
    assert head(path) == kept.anchor
    nxt = Journal(path).append(kind="event", action="hold")
    assert nxt.seq == 2 and nxt.prev == kept.hash
    report = verify(path)
    assert report.ok and report.torn is None and report.entries == 2
    assert b'{"action":"advance","af' in journal.torn_path.read_bytes()


def test_an_unparseable_last_line_is_treated_as_torn(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.append(kind="event", action="hold")
    with open(path, "ab") as fh:
        fh.write(b"\x00\x00\x00\x00\n")  # zero-filled block after a power cut
    assert journal.append(kind="event", action="hold").seq == 2
    assert verify(path).ok


def test_two_bad_lines_at_the_end_stop_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.append(kind="event", action="hold")
    with open(path, "ab") as fh:
        fh.write(b"garbage\nmore garbage\n")
    with pytest.raises(JournalUnavailable, match="audit verify"):
        journal.append(kind="event", action="hold")
    assert path.read_bytes().endswith(b"more garbage\n")  # nothing cut, nothing added
