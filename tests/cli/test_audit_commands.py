"""`routedeck audit`: verify catches edits, deletions and truncation (with the anchor kept on the flag)."""

from __future__ import annotations

import json

from console.cli import main

from .test_rollout_commands import RULE


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def make_history(tmp_path, capsys):
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE)
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)]
    assert run(capsys, "init", "--rule", rule, *common)[0] == 0
    for _ in range(2):
        assert run(capsys, "advance", "--rule", rule, *common, "--metrics", "sim:steady?minutes=60&seed=3")[0] == 0
    return rule, common, tmp_path / "journal.jsonl"


def test_verify_list_export_and_tampering(tmp_path, capsys):
    rule, common, journal = make_history(tmp_path, capsys)
    flags = common[1]
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", tmp_path, "--flags", flags)
    assert code == 0 and "chain intact" in out

    code, out, _ = run(capsys, "audit", "list", "--state-dir", tmp_path, "--flag", "support-answer-route", "--json")
    entries = [json.loads(line) for line in out.splitlines()]
    assert [e["action"] for e in entries] == ["init", "init", "advance", "advance", "advance", "advance"]

    code, out, _ = run(capsys, "audit", "export", "--state-dir", tmp_path, "--flag", "support-answer-route",
                       "--format", "json", "--rule", rule)
    record = json.loads(out)
    assert code == 0 and record["chain_head"].startswith("6:") and "flag_key: support-answer-route" in record["rule"]["text"]

    lines = journal.read_text().splitlines(keepends=True)
    # an edited field
    edited = lines[:]
    edited[2] = edited[2].replace('"advance"', '"rollback"', 1)
    journal.write_text("".join(edited))
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", tmp_path)
    assert code == 1 and "line 3" in out
    # a deleted entry
    journal.write_text("".join(lines[:2] + lines[3:]))
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", tmp_path)
    assert code == 1 and "line 3" in out
    # truncated: the chain that is left is intact, but the anchor stored with the flag is gone — found by
    # default (the journal names its platform), or with --flags; only --offline reads the file alone
    journal.write_text("".join(lines[:2]))
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", tmp_path, "--offline")
    assert code == 0
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", tmp_path)
    assert code == 1 and "anchor" in out.lower()
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", tmp_path, "--flags", flags)
    assert code == 1 and "anchor" in out.lower()


def test_bad_anchor_and_since_are_one_line_errors(tmp_path, capsys):
    code, _, err = run(capsys, "audit", "verify", "--state-dir", tmp_path, "--anchor", "nonsense")
    assert code == 2 and err.startswith("routedeck: --anchor") and err.count("\n") == 1
    code, _, err = run(capsys, "audit", "list", "--state-dir", tmp_path, "--since", "yesterday")
    assert code == 2 and "--since" in err


def test_a_list_with_nothing_to_show_says_why_on_stderr(tmp_path, capsys):
    code, out, err = run(capsys, "audit", "list", "--state-dir", tmp_path, "--since", "2h")
    assert code == 0 and out == "" and err.startswith(f"no journal at {tmp_path / 'journal.jsonl'}")
    make_history(tmp_path, capsys)
    code, out, err = run(capsys, "audit", "list", "--state-dir", tmp_path, "--flag", "no-such-flag", "--json")
    assert code == 0 and out == "" and err == f"no journal entries for flag 'no-such-flag' in {tmp_path / 'journal.jsonl'}\n"
    code, out, err = run(capsys, "audit", "list", "--state-dir", tmp_path, "--since", "2h")
    assert code == 0 and out.count("\n") == 6 and err == ""
