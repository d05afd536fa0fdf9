"""record_action: an intent before the platform call, an outcome after it, whatever happens."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.core.errors import WriteNotConfirmed
from console.core.journal import Journal, JournalUnavailable, read_entries, record_action, verify
from console.core.models import Allocation, RouteFlag, RouteProfile
from console.core.ports import WriteResult


def flag(bp: int, revision: str) -> RouteFlag:
    return RouteFlag(
        key="support",
        variations={"base": RouteProfile(route="fast_default_v1"), "cand": RouteProfile(route="balanced_core_v2")},
        baseline="base", candidate="cand",
        allocation=Allocation(eligible_scope="english_chat", candidate_bp=bp),
        revision=revision,
    )


BEFORE = Allocation(eligible_scope="english_chat", candidate_bp=500)
PLANNED = Allocation(eligible_scope="english_chat", candidate_bp=2000)


def test_success_writes_intent_then_confirmed_outcome_with_read_back(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, operator_name="ana")
    calls = []

    def call() -> WriteResult:
        calls.append(len(list(read_entries(path))))  # the intent is on disk before the call
        return WriteResult(before=flag(500, "r1"), after=flag(2000, "r2"), elapsed_s=0.25)

    done = record_action(journal, "advance", call=call, flag="support", before=BEFORE, planned=PLANNED,
                         reason="gates pass", rule_hash="cd" * 32, verdict={"decision": "ADVANCE"})
    assert calls == [1]
    intent, outcome = list(read_entries(path))
    assert (intent.kind, intent.action, intent.after, intent.verdict) == ("intent", "advance", PLANNED.model_dump(mode="json"), {"decision": "ADVANCE"})
    assert outcome.kind == "outcome" and outcome.status == "confirmed" and outcome.intent_seq == intent.seq
    assert outcome.after == flag(2000, "r2").allocation.model_dump(mode="json")
    assert outcome.detail is not None and outcome.detail["revision"] == "r2"
    assert done.result.after.revision == "r2" and done.intent == intent and done.outcome == outcome
    assert done.warning is None
    assert verify(path).ok


def test_failure_writes_a_failed_outcome_and_re_raises(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)

    def call() -> WriteResult:
        raise WriteNotConfirmed("write to flag support on flagd not confirmed by read-back: now 5% of english_chat")

    with pytest.raises(WriteNotConfirmed):
        record_action(journal, "advance", call=call, flag="support", before=BEFORE, planned=PLANNED)
    intent, outcome = list(read_entries(path))
    assert intent.kind == "intent"
    assert outcome.status == "failed" and outcome.intent_seq == intent.seq
    assert outcome.error is not None and "not confirmed by read-back" in outcome.error
    assert outcome.detail == {"error_type": "WriteNotConfirmed"}
    assert verify(path).ok


def test_a_required_action_is_not_made_when_the_journal_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    path.unlink()
    path.mkdir()  # the journal can no longer be written
    calls = []
    with pytest.raises(JournalUnavailable):
        record_action(journal, "advance", call=lambda: calls.append(1), required=True)
    assert calls == []


def test_a_rollback_goes_ahead_and_warns_when_the_journal_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    path.unlink()
    path.mkdir()
    done = record_action(journal, "rollback", call=lambda: "rolled back", required=False)
    assert done.result == "rolled back"
    assert done.intent is None and done.outcome is None
    assert done.warning is not None and str(path) in done.warning and "went ahead" in done.warning
