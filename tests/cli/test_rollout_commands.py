"""A full rollout driven from the shell: init, advance, check, ack, promote, rollback — on a flag file and the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from console.cli import main
from console.core.journal import read_entries, verify

SEED_RULE = Path(__file__).resolve().parents[2] / "examples" / "decision-rule-seed.yaml"
RULE = """
llm_route_decision:
  flag_key: support-answer-route
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  first_audience: internal_support_team
  eligible_scope: english_support_chat
  primary_metric: resolved_without_escalation
  guardrails:
    - p95_latency
    - {metric: cost_per_resolved_case, margin: 35%, severity: normal}
    - correction_rate
    # absolute margins on the rare events: judged within the hour even at full with a 5% holdback
    - {metric: fallback_rate, margin: 0.02}
    - {metric: error_rate, margin: 0.02}
  rollback_when:
    - provider errors or fallback rate breach the incident threshold
    - telemetry cannot join exposure to outcome
  stages:
    - {name: internal, share: 0%, min_units: 10, min_dwell: 2m}
    - {name: 5%, share: 5%, min_units: 100, min_dwell: 5m}
    - {name: 20%, share: 20%, min_units: 300, min_dwell: 5m}
    - {name: full, share: 95%, min_units: 300, min_dwell: 5m}
"""
FLAG = "support-answer-route"


@pytest.fixture
def env(tmp_path):
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE)
    flags = f"flagd:{tmp_path / 'flags.json'}"
    common = ["--flags", flags, "--state-dir", str(tmp_path)]
    return rule, common, tmp_path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_seed_rule_drives_init_and_first_advance(tmp_path, capsys):
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)]
    assert run(capsys, "init", "--rule", SEED_RULE, *common)[0] == 0
    code, out, _ = run(capsys, "advance", "--rule", SEED_RULE, *common, "--metrics", "sim:steady?minutes=5")
    assert code == 0 and "stage: baseline → internal" in out


def test_full_rollout_from_the_shell(env, capsys):
    rule, common, tmp = env
    code, out, _ = run(capsys, "init", "--rule", rule, *common)
    assert code == 0 and "created support-answer-route" in out
    code, out, _ = run(capsys, "init", "--rule", rule, *common)
    assert code == 0 and "nothing changed" in out

    code, out, _ = run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:steady?minutes=5", "--dry-run")
    assert code == 0 and "DRY RUN" in out
    assert FlagdFilePlatform(tmp / "flags.json").read_flag(FLAG).rollout.stage.value == "baseline"

    stages = []
    for _ in range(4):  # baseline → internal → 5% → 20% → full
        code, out, err = run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:steady?minutes=60&seed=3")
        assert code == 0, out + err
        stages.append(FlagdFilePlatform(tmp / "flags.json").read_flag(FLAG).allocation.candidate_bp)
    assert stages == [0, 500, 2000, 9500]
    assert "confirmed by read-back: support-answer-route now at stage full, " in out

    code, out, _ = run(capsys, "check", "--rule", rule, *common, "--metrics", "sim:steady?minutes=60&seed=3", "--json")
    verdict = json.loads(out)
    assert code == 0 and verdict["verdict"] == "ADVANCE" and verdict["stage"] == "full"
    assert {"name", "status", "detail"} <= set(verdict["health"][0])
    assert {"name", "candidate", "baseline", "interval", "threshold", "n", "verdict"} <= set(verdict["metrics"][0])

    code, out, err = run(capsys, "promote", "--rule", rule, *common, "--metrics", "sim:steady?minutes=60&seed=3",
                         "--override")
    assert code == 2 and "--override needs --reason TEXT" in err
    code, out, _ = run(capsys, "promote", "--rule", rule, *common, "--metrics", "sim:steady?minutes=60&seed=3")
    assert code == 0 and "confirmed by read-back: support-answer-route serves 100% balanced_core_v2" in out
    flag = FlagdFilePlatform(tmp / "flags.json").read_flag(FLAG)
    assert flag.baseline == "balanced_core_v2" and flag.candidate is None and "fast_default_v1" in flag.variations

    journal = tmp / "journal.jsonl"
    entries = list(read_entries(journal))
    actions = [(e.kind, e.action) for e in entries]
    assert actions.count(("intent", "advance")) == 4 and actions.count(("outcome", "advance")) == 4
    assert ("outcome", "promote") in actions and verify(journal).ok
    advance_outcome = next(e for e in entries if e.kind == "outcome" and e.action == "advance")
    assert advance_outcome.status == "confirmed"


@pytest.mark.parametrize("scenario", ["provider-outage", "join-break"])
def test_regression_ends_in_rollback_with_reasons(env, capsys, scenario):
    rule, common, tmp = env
    run(capsys, "init", "--rule", rule, *common)
    for _ in range(3):  # → internal → 5% → 20% on healthy traffic
        assert run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:steady?minutes=60&seed=3")[0] == 0
    code, out, _ = run(capsys, "check", "--rule", rule, *common, "--metrics", f"sim:{scenario}?minutes=20&seed=3")
    assert code == 4, out
    assert "verdict ROLLBACK" in out and "- rollback:" in out
    # advancing is refused on a ROLLBACK verdict, unless overridden with a reason
    code, _, err = run(capsys, "advance", "--rule", rule, *common, "--metrics", f"sim:{scenario}?minutes=20&seed=3")
    assert code == 4 and "advance refused: verdict ROLLBACK" in err  # the verdict's own code, as check gives it
    code, out, _ = run(capsys, "rollback", "--flag", FLAG, *common, "--reason", "regression")
    assert code == 0 and "serves 100% fast_default_v1" in out
    flag = FlagdFilePlatform(tmp / "flags.json").read_flag(FLAG)
    assert flag.allocation.candidate_bp == 0 and not flag.allocation.internal_enabled
    assert flag.rollout.stage.value == "rolled_back"


def test_override_needs_a_reason_and_is_recorded(env, capsys):
    rule, common, tmp = env
    run(capsys, "init", "--rule", rule, *common)
    run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:steady?minutes=40")
    code, _, err = run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:steady?minutes=0", "--override")
    assert code == 2 and "--reason" in err
    code, out, err = run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:steady?minutes=0",
                         "--override", "--reason", "staff sign-off")
    assert code == 0, err
    flag = FlagdFilePlatform(tmp / "flags.json").read_flag(FLAG)
    assert flag.rollout.overrides and flag.rollout.overrides[-1].reason == "staff sign-off"
    assert any(e.action == "override" for e in read_entries(tmp / "journal.jsonl"))


def test_check_exit_codes_for_bad_input(env, capsys, tmp_path):
    rule, common, tmp = env
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm_route_decision:\n  flag_key: x\n  candidate_route: a\n  baseline_route: b\n  primary_metric: nope\n")
    code, _, err = run(capsys, "check", "--rule", bad, *common, "--metrics", "sim:steady")
    assert code == 2 and "bad.yaml:5" in err and "unknown metric 'nope'" in err and err.count("\n") == 1
    code, _, err = run(capsys, "check", "--rule", rule, *common, "--metrics", "nosuch:thing")
    assert code == 2 and "--metrics" in err
    # the flag file does not exist yet: a one-line error naming it
    code, _, err = run(capsys, "check", "--rule", rule, *common, "--metrics", "sim:steady")
    assert code == 2 and "flags.json" in err


def test_an_unexpected_error_is_one_line_without_a_traceback(tmp_path, capsys, monkeypatch):
    from console.commands import check

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(check, "run", broken)
    code, out, err = run(capsys, "check", "--rule", tmp_path / "r.yaml", "--metrics", "sim:steady")
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1
    assert "unexpected error (ZeroDivisionError: division by zero)" in err


def test_a_rolled_back_rollout_restarts_only_when_asked_and_only_once_it_has_ended(env, capsys):
    rule, common, tmp = env
    assert run(capsys, "init", "--rule", rule, *common)[0] == 0
    code, out, err = run(capsys, "init", "--rule", rule, *common, "--restart")
    assert code == 2 and "starts only after the last one ended" in err  # at baseline: nothing ended yet
    assert run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:steady?minutes=5")[0] == 0
    assert run(capsys, "rollback", "--flag", FLAG, *common, "--reason", "regression")[0] == 0
    code, out, _ = run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:steady?minutes=5")
    assert code == 2  # a rolled-back rollout does not advance
    code, out, err = run(capsys, "init", "--rule", rule, *common, "--restart")
    assert code == 2 and "choose the new rollout's cohort" in err and "--cohort new" in err  # asked, never guessed
    code, out, err = run(capsys, "init", "--rule", rule, *common, "--restart", "--cohort", "reuse")
    assert code == 0 and "restarted support-answer-route" in out, out + err
    assert "the previous rollout's cohort" in out
    flag = FlagdFilePlatform(tmp / "flags.json").read_flag(FLAG)
    assert flag.rollout.stage.value == "baseline" and flag.allocation.candidate_bp == 0
    assert flag.candidate == "balanced_core_v2"
    code, out, err = run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:steady?minutes=5")
    assert code == 0 and "stage: baseline → internal" in out, out + err
    assert [e.action for e in read_entries(tmp / "journal.jsonl") if e.kind == "intent"].count("restart") == 1
