"""The journal under faults (items 8, 17, 18 and the journal cells of the matrix): two journals on one flag,
a problem said once, a torn outcome that an anchor shows was carried out, the anchors checked on every
platform the journal names, and a writer killed mid-append."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import main

from .helpers import ROOT, wait_for

FLAG = "support-answer-route"
RULE = f"""llm_route_decision:
  flag_key: {FLAG}
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  primary_metric: resolved_without_escalation
  stages:
    - {{name: 5%, share: 5%, internal: false, min_units: 10, min_dwell: 0s}}
    - {{name: 20%, share: 20%, internal: false, min_units: 10, min_dwell: 0s}}
"""


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def shared_flag(tmp_path, capsys):
    """One flag file, two operators with journals of their own (state dirs a/ and b/)."""
    (tmp_path / "rule.yaml").write_text(RULE)
    flags = ["--flags", f"flagd:{tmp_path / 'flags.json'}"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(capsys, "init", "--rule", tmp_path / "rule.yaml", *flags, "--state-dir", a)[0] == 0
    return tmp_path, flags, a, b


def advance(capsys, tmp: Path, flags, state: Path) -> None:
    code, out, err = run(capsys, "advance", "--rule", tmp / "rule.yaml", *flags, "--state-dir", state,
                         "--metrics", "sim:steady?minutes=5", "--override", "--reason", "test")
    assert code == 0, out + err


def test_another_operators_journal_is_reported_as_such_not_as_a_rewrite(shared_flag, capsys):
    """Item 8: b's advance leaves b's anchor on the flag; a's untouched journal is intact, and says whose
    anchor it saw — with --flags (as before) and by default."""
    tmp, flags, a, b = shared_flag
    advance(capsys, tmp, flags, a)
    advance(capsys, tmp, flags, b)
    for extra in (["--flags", flags[1]], []):
        code, out, err = run(capsys, "audit", "verify", "--state-dir", a, *extra)
        assert code == 0, out + err
        assert "rewritten" not in out and "was written by journal" in out, out
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", b, "--flags", flags[1])
    assert code == 0 and "1 anchor matched" in out, out


def test_a_problem_is_said_once(shared_flag, capsys):
    """Item 17: an edited entry is one line of output, not the summary and the same line again."""
    tmp, flags, a, _ = shared_flag
    advance(capsys, tmp, flags, a)
    journal = a / "journal.jsonl"
    lines = journal.read_text().splitlines()
    lines[1] = lines[1].replace('"reason":"', '"reason":"edited ')
    journal.write_text("\n".join(lines) + "\n")
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", a)
    assert code == 1
    problem = "line 2 (seq 2): hash does not match"
    assert sum(problem in line for line in out.splitlines()) == 1, out


def test_a_torn_outcome_of_a_write_the_platform_shows_was_made_is_not_ignored(shared_flag, capsys):
    """Item 17: the last line (the outcome of an advance) is cut; the flag's anchor names its intent and the
    platform holds the change: verify says the outcome is lost (exit 1), never "ignored"."""
    tmp, flags, a, _ = shared_flag
    advance(capsys, tmp, flags, a)
    journal = a / "journal.jsonl"
    journal.write_bytes(journal.read_bytes()[:-1])  # the outcome without its newline
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", a, "--flags", flags[1])
    assert code == 1 and "outcome of intent seq" in out and "ignored" not in out, out
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", a, "--offline")  # nothing says it was made
    assert code == 0 and "ignored" in out, out


def test_verify_checks_the_anchors_on_every_platform_the_journal_names(shared_flag, capsys):
    """Item 18: the journal is cut below the anchor kept on the flag; verify without --flags finds it, and
    names a platform it cannot reach."""
    tmp, flags, a, _ = shared_flag
    advance(capsys, tmp, flags, a)
    advance(capsys, tmp, flags, a)
    journal = a / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:3]))  # the last advance's intent and outcome are gone
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", a)
    assert code == 1 and "truncated below an anchor" in out and f"flag {FLAG} on flagd:" in out, out
    journal.write_bytes(b"".join(lines))
    (tmp / "flags.json").rename(tmp / "moved.json")
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", a)
    assert code == 1 and "NOT CHECKED: the anchors on flagd:" in out, out
    (tmp / "moved.json").rename(tmp / "flags.json")
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", a)
    assert code == 0 and "anchors read from flagd:" in out, out


APPENDER = """
import sys
from console.core.journal import Journal
journal = Journal(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    journal.append(kind="event", action="filler", reason="x" * 4000 + str(i))
    i += 1
"""


def test_a_writer_killed_mid_append_loses_nothing_acknowledged(shared_flag, capsys):
    """The journal killed mid-write: whatever the kill cut off is set aside, the chain goes on, a rollback
    is journalled, and verify passes."""
    tmp, flags, a, _ = shared_flag
    advance(capsys, tmp, flags, a)
    journal = a / "journal.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", APPENDER, str(journal)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        start = journal.stat().st_size
        wait_for(lambda: journal.stat().st_size > start + 200_000, 30, "the appender writing")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    code, out, err = run(capsys, "rollback", "--flag", FLAG, *flags, "--state-dir", a, "--reason", "after a crash")
    assert code == 0 and "not journalled" not in err, out + err
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e["action"] for e in entries[-2:]] == ["rollback", "rollback"]
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", a)
    assert code == 0, out
