"""Informational journal entries: rule loaded, rule changed, foreign change seen — and a journal
that cannot be written only warns."""

from __future__ import annotations

import errno

from console.core.audit import writer as writer_module
from console.core.audit.notes import note_foreign_change, note_rule_loaded
from console.core.journal import Journal, read_entries, record_event, verify
from console.core.models import Allocation, RolloutState, RouteFlag, RouteProfile, Stage
from console.core.rules import parse_rule

from ..cli.test_rollout_commands import FLAG, RULE


def flag(rule_hash: str | None, bp: int = 500, revision: str = "r1") -> RouteFlag:
    return RouteFlag(
        key=FLAG, variations={"fast_default_v1": RouteProfile(route="fast_default_v1"),
                              "balanced_core_v2": RouteProfile(route="balanced_core_v2")},
        baseline="fast_default_v1", candidate="balanced_core_v2",
        allocation=Allocation(eligible_scope="english_support_chat", candidate_bp=bp), revision=revision,
        rollout=RolloutState(stage=Stage.PCT5, rule_hash=rule_hash) if rule_hash is not None else None,
    )


def test_rule_loaded_records_the_hash_and_path(tmp_path):
    rule = parse_rule(RULE, "rule.yaml")
    journal = Journal(tmp_path / "j.jsonl", operator_name="ana")
    assert note_rule_loaded(journal, rule, flag(rule.rule_hash), by="console") == []
    (entry,) = read_entries(tmp_path / "j.jsonl")
    assert (entry.kind, entry.action, entry.flag, entry.rule_hash) == ("event", "rule_loaded", FLAG, rule.rule_hash)
    assert entry.detail == {"path": "rule.yaml", "by": "console"} and entry.operator.name == "ana"


def test_a_rule_that_differs_from_the_rollouts_is_recorded_as_a_change(tmp_path):
    rule = parse_rule(RULE, "rule.yaml")
    journal = Journal(tmp_path / "j.jsonl")
    note_rule_loaded(journal, rule, flag("0123456789abcdef"), by="guard")
    loaded, changed = read_entries(tmp_path / "j.jsonl")
    assert loaded.action == "rule_loaded"
    assert changed.action == "rule_changed" and changed.rule_hash == rule.rule_hash
    assert changed.detail["previous_rule_hash"] == "0123456789abcdef" and changed.detail["by"] == "guard"
    assert verify(tmp_path / "j.jsonl").ok


def test_no_change_is_recorded_before_a_rollout_has_a_rule(tmp_path):
    rule = parse_rule(RULE, "rule.yaml")
    journal = Journal(tmp_path / "j.jsonl")
    note_rule_loaded(journal, rule, flag(None), by="console")
    note_rule_loaded(journal, rule, None, by="console")
    assert [e.action for e in read_entries(tmp_path / "j.jsonl")] == ["rule_loaded", "rule_loaded"]


def test_foreign_change_records_before_after_and_what(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    old, new = flag("h", 500, "r1"), flag("h", 5000, "r2")
    assert note_foreign_change(journal, old, new, seen_by="console") is None
    (entry,) = read_entries(tmp_path / "j.jsonl")
    assert entry.kind == "event" and entry.action == "foreign_change" and entry.flag == FLAG
    assert entry.before["candidate_bp"] == 500 and entry.after["candidate_bp"] == 5000
    assert "allocation 5% of english_support_chat → 50% of english_support_chat" in entry.detail["what"]
    assert entry.detail["revision_before"] == "r1" and entry.detail["revision_after"] == "r2"


def test_an_unwritable_journal_only_warns(tmp_path, monkeypatch):
    rule = parse_rule(RULE, "rule.yaml")
    journal = Journal(tmp_path / "j.jsonl")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module.os, "write", full)
    warnings = note_rule_loaded(journal, rule, flag("0123456789abcdef"), by="console")
    assert len(warnings) == 2 and all("free space" in w and "not recorded" in w for w in warnings)
    warning = note_foreign_change(journal, flag("h"), flag("h", 2000), seen_by="console")
    assert warning and "foreign_change not recorded" in warning
    monkeypatch.undo()
    assert list(read_entries(tmp_path / "j.jsonl")) == []


def test_record_event_without_a_journal_warns():
    entry, warning = record_event(None, "rule_loaded")
    assert entry is None and "no audit journal" in warning


def test_a_revision_that_moved_with_nothing_changed_is_not_recorded(tmp_path):
    """A flag file's revision covers the whole file: an edit of one flag moves every flag's revision."""
    journal = Journal(tmp_path / "j.jsonl")
    assert note_foreign_change(journal, flag("h", 500, "r1"), flag("h", 500, "r2"), seen_by="console") is None
    assert list(read_entries(tmp_path / "j.jsonl")) == []
