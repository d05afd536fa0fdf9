"""`routedeck guard` journals the rule it loaded, a change of rule, and a change made by someone else."""

from __future__ import annotations

import pytest

from console.cli import main
from console.commands import guard as guard_cmd
from console.core.journal import read_entries, verify

from .test_guard import guard, platform, run
from .test_rollout_commands import FLAG, RULE


@pytest.fixture
def at_20(tmp_path, capsys):
    """A rollout moved to the 20% stage by overrides (the verdicts do not matter here)."""
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE)
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)]
    assert main(["init", "--rule", str(rule), *common]) == 0
    for _ in range(3):  # → internal → 5% → 20%
        assert main(["advance", "--rule", str(rule), *common, "--metrics", "sim:steady?minutes=1&seed=3",
                     "--override", "--reason", "set up the 20% stage"]) == 0
    capsys.readouterr()
    return rule, common, tmp_path


def test_guard_journals_the_rule_it_loaded(at_20, capsys):
    rule, common, tmp = at_20
    before = len(list(read_entries(tmp / "journal.jsonl")))
    code, out, err = run(capsys, *guard(rule, common, "aa", "--max-looks", "2"))
    assert code in (0, 3, 4), out + err
    new = list(read_entries(tmp / "journal.jsonl"))[before:]
    assert new and new[0].action == "rule_loaded"
    assert [e.action for e in new].count("rule_loaded") == 1 and "rule_changed" not in [e.action for e in new]
    assert new[0].kind == "event" and new[0].flag == FLAG and new[0].detail["by"] == "guard"
    assert new[0].rule_hash == platform(tmp).read_flag(FLAG).rollout.rule_hash
    assert verify(tmp / "journal.jsonl").ok


def test_guard_journals_a_rule_that_changed_since_the_stage_started(at_20, capsys):
    rule, common, tmp = at_20
    rule.write_text(rule.read_text().replace("min_dwell: 5m}", "min_dwell: 6m}"))
    code, out, err = run(capsys, *guard(rule, common, "aa", "--max-looks", "1"))
    assert code in (0, 3, 4), out + err
    changed = [e for e in read_entries(tmp / "journal.jsonl") if e.action == "rule_changed"]
    assert len(changed) == 1
    assert changed[0].detail["previous_rule_hash"] == platform(tmp).read_flag(FLAG).rollout.rule_hash
    assert changed[0].rule_hash != changed[0].detail["previous_rule_hash"]


def test_guard_notices_and_journals_a_change_made_by_someone_else(at_20, capsys, monkeypatch):
    rule, common, tmp = at_20
    real_pause = guard_cmd._pause
    edits = []

    def pause_and_edit(metrics, simulated, seconds):
        real_pause(metrics, simulated, seconds)
        if not edits:  # someone else moves the flag to 50% between the first two looks
            other = platform(tmp)
            current = other.read_flag(FLAG)
            other.write_flag(current.model_copy(update={
                "allocation": current.allocation.model_copy(update={"candidate_bp": 5000})}), current.revision)
            edits.append(True)

    monkeypatch.setattr(guard_cmd, "_pause", pause_and_edit)
    code, out, err = run(capsys, *guard(rule, common, "aa", "--max-looks", "3"))
    assert edits and code in (0, 3, 4), out + err
    assert "changed outside this guard: allocation" in out and "→" in out
    (seen,) = [e for e in read_entries(tmp / "journal.jsonl") if e.action == "foreign_change"]
    assert seen.before["candidate_bp"] == 2000 and seen.after["candidate_bp"] == 5000
    assert seen.detail["seen_by"] == "guard"


def test_guard_tells_an_operator_write_from_a_foreign_change(at_20, capsys, monkeypatch):
    from console.core.journal import Journal, record_action

    rule, common, tmp = at_20
    real_pause = guard_cmd._pause
    edits = []

    def pause_and_advance(metrics, simulated, seconds):
        real_pause(metrics, simulated, seconds)
        if not edits:  # an operator moves the flag with routedeck meanwhile: journalled with its read-back
            other = platform(tmp)
            current = other.read_flag(FLAG)
            record_action(Journal(tmp / "journal.jsonl", operator_name="carol"), "override", flag=FLAG, reason="r",
                          call=lambda: other.write_flag(current.model_copy(update={
                              "allocation": current.allocation.model_copy(update={"candidate_bp": 5000})}),
                              current.revision))
            edits.append(True)

    monkeypatch.setattr(guard_cmd, "_pause", pause_and_advance)
    code, out, err = run(capsys, *guard(rule, common, "aa", "--max-looks", "3"))
    assert edits and code in (0, 3, 4), out + err
    assert "changed by routedeck: allocation" in out and "override by carol" in out, out
    assert "changed outside this guard" not in out
    assert not [e for e in read_entries(tmp / "journal.jsonl") if e.action == "foreign_change"]
