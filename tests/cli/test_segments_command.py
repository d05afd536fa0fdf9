"""`routedeck segments`: the per-segment table, --json, --exclude with a reason, and --apply following the rule."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from console.cli import main
from console.core.journal import read_entries
from console.core.models import RolloutState, Stage

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
    - correction_rate
  segments: [region, plan]
"""
FLAG = "support-answer-route"
SIM = "sim:region-regression?minutes=45&seed=3"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def env(tmp_path, capsys):
    def make(extra: str = ""):
        rule = tmp_path / "rule.yaml"
        rule.write_text(RULE + extra)
        common = ["--rule", rule, "--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", tmp_path]
        assert run(capsys, "init", *common)[0] == 0
        platform = FlagdFilePlatform(tmp_path / "flags.json")
        flag = platform.read_flag(FLAG)
        platform.write_flag(flag.model_copy(update={
            "allocation": flag.allocation.model_copy(update={"candidate_bp": 2000, "internal_enabled": True}),
            "rollout": RolloutState(stage=Stage.PCT20, stage_started_at=datetime.now(timezone.utc))}), flag.revision)
        return common, platform

    return make


def test_table_flags_the_harmed_region_and_exits_4(env, capsys):
    common, _ = env()
    code, out, err = run(capsys, "segments", *common, "--metrics", SIM)
    assert code == 4, err
    # the segment family's share of the stage's α: 0.05 over 8 blocking tests
    assert "e-BH over 18 segment tests at α 0.00625; segment_harm: report" in out
    harm_lines = [line for line in out.splitlines() if line.startswith("  ! ")]
    assert harm_lines and all("region=eu" in line and line.endswith("harm") for line in harm_lines)
    assert "  - harm in region=eu: resolved_without_escalation" in out
    assert "report: harm in region=eu (the rule only reports segment harm)" in out
    # every segment value of both attributes has its rows, with numbers
    for seg in ("region=us", "region=apac", "plan=free", "plan=pro", "plan=enterprise"):
        assert seg in out


def test_exclude_needs_a_reason_and_a_well_formed_segment(env, capsys, tmp_path):
    common, _ = env()
    code, _, err = run(capsys, "segments", *common, "--metrics", SIM, "--exclude", "region=eu")
    assert code == 2 and err.strip() == ("routedeck: --exclude needs --reason TEXT: say why the segment leaves the "
                                         "candidate (it is journalled)")
    code, _, err = run(capsys, "segments", *common, "--metrics", SIM, "--exclude", "region", "--reason", "x")
    assert code == 2 and "expected ATTR=VALUE, e.g. --exclude region=eu" in err and err.count("\n") == 1
    code, _, err = run(capsys, "segments", *common, "--metrics", SIM, "--exclude", "language=en", "--reason", "x")
    assert code == 2 and "'language' is not a pre-registered segment attribute (region, plan)" in err


def test_exclude_writes_confirms_and_journals_then_json_shows_it(env, capsys, tmp_path):
    common, platform = env()
    code, out, err = run(capsys, "segments", *common, "--metrics", SIM, "--exclude", "region=eu",
                         "--reason", "eu resolves far less")
    assert "excluded from the candidate (always baseline): none → region=eu" in out
    assert "confirmed by read-back: support-answer-route now internal_support_team + 20% of english_support_chat " \
           "except region=eu" in out
    assert platform.read_flag(FLAG).allocation.excluded_segments == (("region", "eu"),)
    entries = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "exclude_segment"]
    assert [e.kind for e in entries] == ["intent", "outcome"]
    assert entries[0].reason == "eu resolves far less"
    evidence = entries[0].verdict
    assert evidence["segment"] == {"attribute": "region", "value": "eu"}
    assert any(m["name"] == "resolved_without_escalation" and m["verdict"] == "harm" for m in evidence["metrics"])

    code, out, _ = run(capsys, "segments", *common, "--metrics", SIM, "--json")
    doc = json.loads(out)
    assert doc["excluded"] == [{"attribute": "region", "value": "eu"}]
    eu = [r for r in doc["rows"] if (r["attribute"], r["value"]) == ("region", "eu")]
    assert eu and all(r["note"] == "excluded from the candidate" and r["verdict"] == "no data" for r in eu)
    assert {"attribute": "region", "value": "eu"} not in doc["harmed"]


def test_apply_follows_a_rule_that_excludes_harmed_segments(env, capsys, tmp_path):
    common, platform = env("  segment_harm: exclude\n")
    code, out, _ = run(capsys, "segments", *common, "--metrics", SIM, "--apply", "--dry-run")
    assert "DRY RUN" in out and platform.read_flag(FLAG).allocation.excluded_segments == ()
    code, out, _ = run(capsys, "segments", *common, "--metrics", SIM, "--apply")
    assert code == 4
    assert "exclude region=eu from the candidate (the rule says segment harm excludes the segment)" in out
    after = platform.read_flag(FLAG)
    assert after.allocation.excluded_segments == (("region", "eu"),) and after.allocation.candidate_bp == 2000
    intent = next(e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "exclude_segment")
    assert "the rule says segment harm excludes the segment" in intent.reason


def test_nothing_to_compare_is_exit_3_never_a_clean_exit_0(tmp_path, capsys):
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE)
    common = ["--rule", rule, "--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", tmp_path]
    assert run(capsys, "init", *common)[0] == 0  # 100% baseline: no candidate unit anywhere
    code, out, err = run(capsys, "segments", *common, "--metrics", "sim:steady?minutes=5")
    assert code == 3, out + err
