"""What the command line says and returns, in terms a script can use (#15 item 9), a guard's lease respected
by the other writes (item 9), and a rollback whose journal cannot be written (item 6) — on the flag file and
the simulator, in process."""

from __future__ import annotations

import errno
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from console.cli import build_parser, main
from console.core.models import Lease

FLAG = "support-answer-route"
ITEM = "the on-call lead has signed off"
RULE = f"""llm_route_decision:
  flag_key: {FLAG}
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  first_audience: internal_support_team
  eligible_scope: english_support_chat
  primary_metric: resolved_without_escalation
  guardrails:
    - correction_rate
    - fallback_rate
  expand_when:
    - {ITEM}
  rollback_when:
    - provider errors or fallback rate breach the incident threshold
  stages:
    - {{name: internal, share: 0%, min_units: 10, min_dwell: 2m}}
    - {{name: 5%, share: 5%, min_units: 100, min_dwell: 5m}}
    - {{name: 20%, share: 20%, min_units: 300, min_dwell: 5m}}
    - {{name: full, share: 95%, min_units: 300, min_dwell: 5m}}
"""


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A rollout at 5% on healthy simulated traffic, built once for the module."""
    tmp = tmp_path_factory.mktemp("at5")
    (tmp / "rule.yaml").write_text(RULE)
    common = ["--flags", f"flagd:{tmp / 'flags.json'}", "--state-dir", str(tmp)]
    assert main(["init", "--rule", str(tmp / "rule.yaml"), *common]) == 0
    assert main(["ack", "--rule", str(tmp / "rule.yaml"), *common, "--item", ITEM]) == 0
    assert main(["advance", "--rule", str(tmp / "rule.yaml"), *common, "--metrics", "sim:steady?minutes=60&seed=3"]) == 0
    assert main(["ack", "--rule", str(tmp / "rule.yaml"), *common, "--item", ITEM]) == 0
    assert main(["advance", "--rule", str(tmp / "rule.yaml"), *common, "--metrics", "sim:steady?minutes=60&seed=3"]) == 0
    return tmp


@pytest.fixture
def at5(built, tmp_path, capsys):
    for name in ("rule.yaml", "flags.json", "flags.json.history.jsonl", "journal.jsonl"):
        if (built / name).exists():
            shutil.copy2(built / name, tmp_path / name)
    capsys.readouterr()
    return tmp_path / "rule.yaml", ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)], tmp_path


def hold_lease(tmp: Path, holder: str = "guard:elsewhere:42") -> None:
    platform = FlagdFilePlatform(tmp / "flags.json")
    flag = platform.read_flag(FLAG)
    lease = Lease(holder=holder, expires_at=datetime.now(UTC) + timedelta(minutes=5))
    platform.set_rollout_state(FLAG, flag.rollout.model_copy(update={"lease": lease}), flag.revision)


def stage(tmp: Path) -> str:
    flag = FlagdFilePlatform(tmp / "flags.json").read_flag(FLAG)
    return flag.rollout.stage_label or flag.rollout.stage.value


def journal(tmp: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp / "journal.jsonl").read_text().splitlines()]


def test_advance_and_promote_refused_by_the_verdict_exit_with_its_code(at5, capsys):
    rule, common, tmp = at5
    code, _, err = run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:aa?minutes=1&seed=3")
    assert code == 3 and "advance refused: verdict HOLD" in err, err
    code, _, err = run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:provider-outage?minutes=30&seed=3")
    assert code == 4 and "advance refused: verdict ROLLBACK" in err, err
    code, _, err = run(capsys, "promote", "--rule", rule, *common, "--metrics", "sim:provider-outage?minutes=30&seed=3")
    assert code == 4 and "promote refused: verdict ROLLBACK" in err, err
    assert stage(tmp) == "5%"
    code, _, err = run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:aa?minutes=1", "--override")
    assert code == 2 and "--reason" in err  # bad input stays 2


def test_writes_respect_a_live_guards_lease_and_take_it_over_only_with_a_reason(at5, capsys):
    rule, common, tmp = at5
    hold_lease(tmp)
    metrics = ["--metrics", "sim:steady?minutes=60&seed=3"]
    code, _, err = run(capsys, "advance", "--rule", rule, *common, *metrics, "--override", "--reason", "forced")
    assert code == 5 and "lease held by guard:elsewhere:42" in err and "--take-over-lease" in err, err
    code, _, err = run(capsys, "ack", "--rule", rule, *common, "--item", ITEM)
    assert code == 5, err
    assert stage(tmp) == "5%"
    code, _, err = run(capsys, "ack", "--rule", rule, *common, "--item", ITEM, "--take-over-lease")
    assert code == 2 and "--take-over-lease needs --reason" in err
    code, out, err = run(capsys, "advance", "--rule", rule, *common, *metrics, "--override", "--take-over-lease",
                         "--reason", "the guard host is being drained")
    assert code == 0 and "stage: 5% → 20%" in out, out + err
    entries = journal(tmp)
    taken = [e for e in entries if e["action"] == "lease_override"]
    assert len(taken) == 1 and taken[0]["detail"]["holder"] == "guard:elsewhere:42"
    assert taken[0]["reason"] == "the guard host is being drained"
    assert taken[0]["seq"] < next(e["seq"] for e in entries if e["action"] == "override" and e["kind"] == "intent")
    flag = FlagdFilePlatform(tmp / "flags.json").read_flag(FLAG)
    assert flag.rollout.lease.holder == "guard:elsewhere:42"  # the guard keeps its lease and goes on watching
    code, out, _ = run(capsys, "rollback", "--flag", FLAG, *common)  # a rollback is never refused
    assert code == 0 and "confirmed by read-back" in out


def test_every_help_that_can_return_a_code_says_it(capsys):
    helps = {}
    for name in ("advance", "promote", "segments", "check", "guard", "ack", "rollback"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([name, "--help"])
        helps[name] = " ".join(capsys.readouterr().out.split())
    for name in ("advance", "promote"):
        assert "3 refused by a HOLD verdict" in helps[name] and "4 refused by a ROLLBACK verdict" in helps[name]
        assert "5 a live lease" in helps[name] and "2 bad input" in helps[name]
    assert "3 when nothing could be compared" in helps["segments"] and "5 when --exclude" in helps["segments"]
    assert "1 a backend failed (the metrics source included" in helps["check"]
    assert "5 another live guard" in helps["guard"] and "--give-up-after" in helps["guard"]
    assert "5 a live lease" in helps["ack"] and "1 not confirmed" in helps["rollback"]


def test_audit_list_takes_a_duration_and_export_without_a_rule_writes_no_empty_block(at5, capsys):
    _, common, tmp = at5
    state = ["--state-dir", str(tmp)]
    code, out, err = run(capsys, "audit", "list", *state, "--since", "2h")
    assert code == 0 and out.count("\n") == len(journal(tmp)), out + err
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    assert run(capsys, "audit", "list", *state, "--since", two_hours_ago)[1] == out
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert run(capsys, "audit", "list", *state, "--since", later)[1] == ""
    code, _, err = run(capsys, "audit", "list", *state, "--since", "soon")
    assert code == 2 and "--since 'soon'" in err and "2h" in err
    code, out, _ = run(capsys, "audit", "export", *state, "--flag", FLAG)
    assert code == 0 and "```yaml\n\n```" not in out and "```yaml" not in out
    assert "not included" in out
    code, out, _ = run(capsys, "audit", "export", *state, "--flag", FLAG, "--rule", tmp / "rule.yaml")
    assert "```yaml\nllm_route_decision:" in out


def test_check_never_exits_0_with_the_metrics_source_unreachable(tmp_path, capsys):
    (tmp_path / "rule.yaml").write_text(RULE)
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)]
    assert run(capsys, "init", "--rule", tmp_path / "rule.yaml", *common)[0] == 0
    code, out, err = run(capsys, "check", "--rule", tmp_path / "rule.yaml", *common, "--metrics",
                         "prometheus:http://127.0.0.1:9")  # at stage baseline: nothing needs the metrics yet
    assert code == 1 and "Prometheus at http://127.0.0.1:9" in err, out + err


def test_a_bad_sim_spec_names_the_spec_and_a_second_ack_says_it_is_done(at5, capsys):
    rule, common, _ = at5
    code, _, err = run(capsys, "check", "--rule", rule, *common, "--metrics", "sim:nosuch")
    assert code == 2 and "--metrics 'sim:nosuch': unknown scenario 'nosuch'" in err and "--scenario" not in err
    code, out, err = run(capsys, "ack", "--rule", rule, *common, "--item", ITEM)
    assert code == 0 and out.startswith("acknowledged:"), out + err
    code, out, err = run(capsys, "ack", "--rule", rule, *common, "--item", ITEM)
    assert code == 0 and "already acknowledged at stage 5%" in out and "nothing changed" in out, out + err


def test_a_rollback_whose_journal_cannot_be_opened_says_it_rolled_back_and_why_it_was_not_journalled(at5, capsys):
    """Item 6: the flag is rolled back; the output says so first, then that it was not journalled and why."""
    _, common, tmp = at5
    (tmp / "journal.jsonl").unlink()
    (tmp / "journal.jsonl").mkdir()  # unwritable even for root: a directory where the file should be
    code, out, err = run(capsys, "rollback", "--flag", FLAG, *common)
    assert code == 0, out + err
    assert "confirmed by read-back: support-answer-route serves 100% fast_default_v1" in out
    assert "rolled back, but not journalled" in err and "journal.jsonl" in err and "unexpected" not in err, err
    assert FlagdFilePlatform(tmp / "flags.json").read_flag(FLAG).rollout.stage.value == "rolled_back"


def test_a_rollback_on_a_full_disk_rolls_back_and_says_the_outcome_is_not_recorded(at5, capsys, monkeypatch):
    """The journal fills up between the intent and the outcome (ENOSPC on its file): the rollback is made
    and confirmed, and the operator is told exactly which part of the record is missing."""
    _, common, tmp = at5
    path = str(tmp / "journal.jsonl")
    real_write = os.write
    writes = {"n": 0}

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target == path:
            writes["n"] += 1
            if writes["n"] > 1:  # the intent goes in, the disk is full for the outcome
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    code, out, err = run(capsys, "rollback", "--flag", FLAG, *common)
    monkeypatch.undo()
    assert code == 0 and "confirmed by read-back" in out, out + err
    assert "not journalled" in err and "outcome is not recorded" in err and "free space" in err, err
    assert journal(tmp)[-1]["kind"] == "intent" and journal(tmp)[-1]["action"] == "rollback"
    code, out, err = run(capsys, "audit", "verify", "--state-dir", tmp)
    assert code == 0, out + err  # an intent without its outcome is no break of the chain
