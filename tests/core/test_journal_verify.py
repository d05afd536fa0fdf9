"""verify: every kind of tampering is found and named by line; a crash's torn tail is not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.core.audit.entry import EntryFields, Operator, seal
from console.core.journal import GENESIS, ChainHead, Journal, canonical_json, entry_hash, verify


def build(path: Path) -> list[str]:
    """A small journal with every kind of entry; returns its lines (with newlines)."""
    journal = Journal(path, operator_name="ana", profile="prod")
    intent = journal.append(
        kind="intent", action="advance", flag="support", reason="all gates pass",
        before={"candidate_bp": 500}, after={"candidate_bp": 2000}, rule_hash="ab" * 32,
        verdict={"p95_latency": {"value": 1.8, "upper": 2.1, "n": 4200}, "decision": "ADVANCE"},
    )
    journal.append(kind="outcome", action="advance", flag="support", status="confirmed",
                   intent_seq=intent.seq, after={"candidate_bp": 2000}, detail={"revision": "r7"})
    journal.append(kind="event", action="foreign_change", flag="support", detail={"what": "targeting edited"})
    failed = journal.append(kind="intent", action="rollback", flag="support", reason="p95 breach")
    journal.append(kind="outcome", action="rollback", flag="support", status="failed",
                   intent_seq=failed.seq, error="platform unreachable")
    journal.append(kind="event", action="acknowledge", flag="support", detail={"item": "on-call paged"})
    return path.read_text().splitlines(keepends=True)


def write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines))


def tampered(value: object) -> object:
    """A different value of a plausible type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2
    if isinstance(value, str):
        return value[:-1] + ("0" if value[-1:] != "0" else "1") if value else "x"
    if isinstance(value, dict):
        return {**value, "tampered": True}
    if value is None:
        return "x"
    raise AssertionError(value)


FIELDS = [
    "action", "after", "before", "detail", "error", "flag", "hash", "intent_seq", "kind", "operator",
    "prev", "profile", "reason", "rule_hash", "seq", "status", "time", "v", "verdict",
]


def test_the_field_list_covers_every_stored_field(tmp_path: Path) -> None:
    assert sorted(json.loads(build(tmp_path / "j.jsonl")[0])) == FIELDS


def test_an_untouched_journal_verifies(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    report = verify(path, anchors=[(len(lines), json.loads(lines[-1])["hash"])])
    assert report.ok and report.first_bad is None and report.torn is None
    assert report.entries == 6 and report.head.seq == 6
    assert "chain intact" in report.summary()


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("index", [0, 2, 5])
def test_tampering_any_field_of_any_entry_names_its_line(tmp_path: Path, field: str, index: int) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    entry = json.loads(lines[index])
    entry[field] = tampered(entry[field])
    lines[index] = canonical_json(entry) + "\n"  # a careful forger keeps the line canonical
    write(path, lines)
    report = verify(path)
    assert not report.ok
    assert report.first_bad is not None and report.first_bad.line == index + 1
    assert report.torn is None
    assert f"line {index + 1}" in report.summary()


def test_tampering_that_fixes_the_entry_hash_breaks_the_next_prev(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    entry = json.loads(lines[1])
    entry["status"] = "failed"
    entry["hash"] = entry_hash(entry)
    lines[1] = canonical_json(entry) + "\n"
    write(path, lines)
    report = verify(path)
    assert report.first_bad is not None and report.first_bad.line == 3
    assert "prev" in report.first_bad.reason


def test_a_whitespace_edit_is_found(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    lines[3] = lines[3].replace('","', '", "', 1)
    write(path, lines)
    report = verify(path)
    assert report.first_bad is not None and report.first_bad.line == 4
    assert "canonical" in report.first_bad.reason


@pytest.mark.parametrize("index", [0, 2, 4])
def test_deleting_an_entry_names_the_line_where_it_was(tmp_path: Path, index: int) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    del lines[index]
    write(path, lines)
    report = verify(path)
    assert report.first_bad is not None and report.first_bad.line == index + 1
    assert "seq" in report.first_bad.reason


def test_swapping_two_entries_is_found(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    lines[2], lines[3] = lines[3], lines[2]
    write(path, lines)
    assert verify(path).first_bad.line == 3  # type: ignore[union-attr]


def test_a_bad_line_in_the_middle_is_a_chain_failure_not_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    lines[2] = "{not json\n"
    write(path, lines)
    report = verify(path)
    assert report.first_bad is not None and report.first_bad.line == 3 and report.torn is None
    assert report.entries == 2


def test_truncation_is_found_only_against_an_anchor(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    anchor = ChainHead(6, json.loads(lines[-1])["hash"])
    write(path, lines[:4])
    assert verify(path).ok  # the chain alone cannot tell a short journal from a young one
    report = verify(path, anchors=[anchor])
    assert not report.ok
    (check,) = report.anchors
    assert check.status == "missing" and check.line == 5
    assert "line 5" in report.summary() and "truncated" in report.summary()


def test_a_deleted_journal_is_found_against_an_anchor(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    path.unlink()
    report = verify(path, anchors=[f"6:{json.loads(lines[-1])['hash']}"])
    assert not report.ok and not report.exists and report.anchors[0].status == "missing"


def test_a_wholly_rewritten_chain_is_found_against_an_anchor(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    anchor = ChainHead(4, json.loads(lines[3])["hash"])
    # Rewrite history: change a reason, then recompute every hash so the chain is self-consistent.
    prev, forged = GENESIS, []
    for line in lines:
        entry = json.loads(line)
        if entry["seq"] == 1:
            entry["reason"] = "nobody asked"
        entry["prev"] = prev
        entry["hash"] = entry_hash(entry)
        prev = entry["hash"]
        forged.append(canonical_json(entry) + "\n")
    write(path, forged)
    assert verify(path).ok
    report = verify(path, anchors=[anchor])
    assert not report.ok
    (check,) = report.anchors
    assert check.status == "mismatch" and check.line == 4
    assert "line 4" in report.summary() and "rewritten" in report.summary()


def test_anchors_beyond_a_break_are_reported_unreached(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    anchor = ChainHead(6, json.loads(lines[-1])["hash"])
    del lines[1]
    write(path, lines)
    report = verify(path, anchors=[anchor])
    assert report.anchors[0].status == "unreached"
    assert report.summary().startswith(f"journal {path} line 2")


@pytest.mark.parametrize("tail", [b'{"action":"adv', b"{not json}\n", b"\x00" * 40])
def test_a_torn_last_line_keeps_the_valid_prefix(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    with open(path, "ab") as fh:
        fh.write(tail)
    report = verify(path, anchors=[(6, json.loads(lines[-1])["hash"])])
    assert report.ok and report.first_bad is None
    assert report.torn is not None and report.torn.line == 7
    assert report.entries == 6 and report.head.seq == 6
    assert "ignored" in report.summary()


def test_a_complete_entry_missing_only_its_newline_is_torn(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = build(path)
    write(path, lines[:-1] + [lines[-1].rstrip("\n")])
    report = verify(path)
    assert report.torn is not None and report.torn.line == 6 and report.entries == 5


def test_an_outcome_must_point_at_an_earlier_intent(tmp_path: Path) -> None:
    op = Operator(os_user="u")
    first = seal(EntryFields(kind="event", action="hold"), seq=1, prev=GENESIS, time="2025-01-01T00:00:00.000000Z", operator=op)
    orphan = seal(EntryFields(kind="outcome", action="advance", status="confirmed", intent_seq=1),
                  seq=2, prev=first.hash, time="2025-01-01T00:00:01.000000Z", operator=op)
    path = tmp_path / "j.jsonl"
    write(path, [first.to_line(), orphan.to_line()])
    report = verify(path)
    assert report.first_bad is not None and report.first_bad.line == 2 and "intent_seq" in report.first_bad.reason


def test_an_anchor_must_be_seq_colon_hash() -> None:
    with pytest.raises(ValueError, match="<seq>:<64 hex digits>"):
        ChainHead.from_text("12-abc")
    good = ChainHead(3, "a" * 64)
    assert ChainHead.from_text(good.to_text()) == good
