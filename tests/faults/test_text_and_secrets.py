"""Text from outside is text (item 3) and a secret is masked wherever it turns up (item 5), on the command
line, in the journal and in its exports."""

from __future__ import annotations

import json

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from console.cli import main
from console.core import rollout
from console.core.models import RouteProfile
from console.core.rules import parse_rule

#: an OSC title change, a screen clear, a bell, a C1 CSI and a bidi override: none may reach a terminal
NASTY = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202etxt"
RAW_BYTES = ("\x1b", "\x07", "\x9b", "\u202e")
FLAG = "support-answer-route"
RULE = f"""llm_route_decision:
  flag_key: {FLAG}
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  primary_metric: resolved_without_escalation
  stages:
    - {{name: 5%, share: 5%, internal: false, min_units: 10, min_dwell: 0s}}
"""


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_shown_as_text(text: str) -> None:
    assert not any(ch in text for ch in RAW_BYTES), repr(text)


@pytest.fixture
def nasty_flag(tmp_path):
    """A flag file whose candidate profile, variation name and a note carry terminal escapes."""
    rule = parse_rule(RULE, str(tmp_path / "rule.yaml"))
    (tmp_path / "rule.yaml").write_text(RULE)
    profiles = {"fast_default_v1": RouteProfile(route="fast_default_v1", model="m" + NASTY),
                "balanced_core_v2": RouteProfile(route="balanced_core_v2", provider="p" + NASTY)}
    platform = FlagdFilePlatform(tmp_path / "flags.json")
    flag = rollout.init_flag(rule, profiles)
    platform.create_flag(flag)
    return tmp_path, ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)]


def test_escapes_in_reasons_and_profiles_never_reach_the_terminal_and_the_journal_keeps_them(nasty_flag, capsys):
    tmp, common = nasty_flag
    code, out, err = run(capsys, "advance", "--rule", tmp / "rule.yaml", *common, "--metrics", "sim:steady?minutes=5",
                         "--override", "--reason", "because " + NASTY)
    assert code == 0, out + err
    code, out, err = run(capsys, "rollback", "--flag", FLAG, *common, "--reason", "stop " + NASTY)
    assert code == 0, out + err
    for argv in (["audit", "list", "--state-dir", tmp], ["audit", "export", "--state-dir", tmp, "--flag", FLAG],
                 ["audit", "export", "--state-dir", tmp, "--flag", FLAG, "--format", "json"],
                 ["audit", "list", "--state-dir", tmp, "--json"]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert_shown_as_text(out + err)
        as_json = "--json" in argv or "json" in argv
        if argv[1] == "list" and not as_json:
            assert "␛]0;pwned␇␛[2J" in out, out  # shown, as pictures, not dropped
        elif not as_json:
            assert "␛\\]0;pwned␇␛\\[2J" in out, out  # in Markdown the brackets are escaped too
    # the journal keeps the original characters (its hash chain covers them); JSON escapes them
    lines = (tmp / "journal.jsonl").read_text().splitlines()
    reasons = [json.loads(line)["reason"] for line in lines]
    assert "stop " + NASTY in reasons and "because " + NASTY in reasons
    code, out, _ = run(capsys, "audit", "export", "--state-dir", tmp, "--flag", FLAG, "--format", "json")
    assert "stop " + NASTY in [d["reason"] for d in json.loads(out)["decisions"]]


def test_markdown_exports_escape_markup_in_outside_text(nasty_flag, capsys):
    tmp, common = nasty_flag
    assert run(capsys, "rollback", "--flag", FLAG, *common, "--reason", "see [here](javascript:alert(1)) **now** | x")[0] == 0
    code, out, _ = run(capsys, "audit", "export", "--state-dir", tmp, "--flag", FLAG)
    assert code == 0
    assert r"see \[here\](javascript:alert(1)) \*\*now\*\* \| x" in out, out


def test_an_escape_in_a_flag_key_is_shown_in_errors_too(tmp_path, capsys):
    key = "route" + NASTY
    (tmp_path / "flags.json").write_text(json.dumps({"flags": {}}))
    code, out, err = run(capsys, "rollback", "--flag", key, "--flags", f"flagd:{tmp_path / 'flags.json'}",
                         "--state-dir", tmp_path)
    assert code == 2 and "pwned" in err, err
    assert_shown_as_text(out + err)


def test_a_known_token_pasted_into_a_url_or_a_reason_is_masked_everywhere(tmp_path, capsys, monkeypatch):
    """Item 5: the FeatBit token sits in its variable; the same string pasted as a path segment of the URL
    (and into a reason) is never printed, journalled or exported."""
    token = "fbtok-" + "7" * 20
    monkeypatch.setenv("ROUTEDECK_FEATBIT_TOKEN", token)
    code, out, err = run(capsys, "rollback", "--flag", "x", "--flags",
                         f"featbit:http://127.0.0.1:9/{token}/api?env=e1", "--state-dir", tmp_path)
    assert code in (1, 2) and err, (code, out, err)
    assert token not in out + err and "***" in err, err
    # the same secret in a reason: the journal stores it masked, so nothing read from it can show it
    rule = parse_rule(RULE, str(tmp_path / "rule.yaml"))
    platform = FlagdFilePlatform(tmp_path / "flags.json")
    platform.create_flag(rollout.init_flag(rule, {n: RouteProfile(route=n) for n in ("fast_default_v1", "balanced_core_v2")}))
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)]
    code, out, err = run(capsys, "rollback", "--flag", FLAG, *common, "--reason", f"pasted {token} by mistake")
    assert code == 0 and token not in out + err
    assert token not in (tmp_path / "journal.jsonl").read_text()
    for fmt in ("md", "json"):
        code, out, _ = run(capsys, "audit", "export", "--state-dir", tmp_path, "--flag", FLAG, "--format", fmt)
        assert code == 0 and token not in out and "pasted *** by mistake" in out.replace("\\*", "*")
