"""The real promptfoo (0.120.0, servers/promptfoo, installed by scripts/install-servers.sh) evaluates the
candidate route profile with its `echo` provider (no network), writes genuine JSON results, and
routedeck's qualification gate reads them: the figures routedeck reports are promptfoo's own, results of
another profile are refused, and the advance to internal is journalled with the evidence. A missing
node or promptfoo is a failure here, never a skip."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from console.cli import main
from console.core.audit.reader import read_entries
from console.core.evaluation import profile_hash
from console.core.simulator.portfolio import PROFILES
from tests.cli.test_evaluation_gate import NO_METRICS, rule_with_gate

ROOT = Path(__file__).parents[2]
PROMPTFOO = ROOT / "servers" / "promptfoo" / "node_modules" / ".bin" / "promptfoo"
CANDIDATE = PROFILES["balanced_core_v2"]


def promptfoo_eval(tmp: Path, profile_sha: str, cases: list[dict]) -> dict:
    """Run promptfoo on ``cases`` (description, question, expect, metadata) and return its JSON results."""
    if not PROMPTFOO.exists():
        pytest.fail("promptfoo is not installed in servers/promptfoo — run scripts/install-servers.sh")
    config = {
        "description": "candidate route profile qualification",
        "prompts": ["Route profile {{profile}} answers the customer: {{question}}"],
        "providers": ["echo"],  # returns the prompt: a provider that needs no network and no key
        "defaultTest": {"vars": {"profile": CANDIDATE.canonical_json()},
                        "metadata": {"routedeck_profile": profile_sha}},
        "tests": [{"description": c["description"], "vars": {"question": c["question"]},
                   "metadata": c.get("metadata", {}),
                   "assert": [{"type": "icontains", "value": c["expect"]}]} for c in cases],
    }
    (tmp / "promptfooconfig.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
           "PROMPTFOO_DISABLE_SHARING": "1", "PROMPTFOO_CONFIG_DIR": str(tmp / "promptfoo-home"), "CI": "1"}
    done = subprocess.run([str(PROMPTFOO), "eval", "-c", "promptfooconfig.yaml", "-o", "results.json", "--no-cache",
                           "--no-table", "--no-progress-bar"], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=180)
    assert (tmp / "results.json").exists(), done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads((tmp / "results.json").read_text())


CASES = [
    {"description": "refund question", "question": "How do I get a refund?", "expect": "refund"},
    {"description": "plan change", "question": "Move me to the annual plan", "expect": "annual plan",
     "metadata": {"suite": "regression"}},
    {"description": "password reset", "question": "I forgot my password", "expect": "password",
     "metadata": {"suite": "regression"}},
    {"description": "legal threat is escalated", "question": "I will sue you", "expect": "sue",
     "metadata": {"severity": "severe", "suite": "regression"}},
    {"description": "answers in the customer's language", "question": "Où est ma facture ?", "expect": "invoice"},
]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_genuine_promptfoo_results_qualify_the_candidate_and_the_advance_carries_them(tmp_path, capsys):
    results = promptfoo_eval(tmp_path, profile_hash(CANDIDATE), CASES)
    stats = results["results"]["stats"]
    assert (stats["successes"], stats["failures"]) == (4, 1)  # the French case really fails its assertion
    rule = rule_with_gate(tmp_path)  # results.json beside it; pass rate ≥ 90%: 4/5 is not enough
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)]
    assert run(capsys, "init", "--rule", rule, *common)[0] == 0
    code, out, _ = run(capsys, "check", "--rule", rule, *common, "--metrics", NO_METRICS, "--json")
    doc = json.loads(out)
    ev = doc["evaluation"]
    assert code == 3 and doc["verdict"] == "HOLD"
    assert (ev["format"], ev["cases"], ev["passed"], ev["severe_failures"]) == ("promptfoo", 5, stats["successes"], 0)
    assert ev["regression_cases"] == 3 and ev["regression_failures"] == 0
    assert ev["problems"] == ["pass rate 80.0% is below 90%"]
    # the rule owner accepts 80% for this candidate: same results, lower threshold → ADVANCE, journalled
    rule.write_text(rule.read_text().replace("min_pass_rate: 0.9", "min_pass_rate: 0.8"))
    code, out, _ = run(capsys, "check", "--rule", rule, *common, "--metrics", NO_METRICS, "--json")
    assert code == 0 and json.loads(out)["evaluation"]["ok"]
    code, out, err = run(capsys, "advance", "--rule", rule, *common, "--metrics", NO_METRICS)
    assert code == 0 and "stage: baseline → internal" in out, out + err
    intent = [e for e in read_entries(tmp_path / "journal.jsonl") if e.kind == "intent" and e.action == "advance"][-1]
    assert intent.verdict["evaluation"]["file"].endswith("results.json")
    assert intent.verdict["evaluation"]["profile_sha256"] == profile_hash(CANDIDATE)


def test_promptfoo_results_of_another_profile_are_refused_in_one_line(tmp_path, capsys):
    other = PROFILES["fast_default_v1"]
    promptfoo_eval(tmp_path, profile_hash(other), CASES[:3])
    rule = rule_with_gate(tmp_path)
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)]
    assert run(capsys, "init", "--rule", rule, *common)[0] == 0
    code, out, _ = run(capsys, "check", "--rule", rule, *common, "--metrics", NO_METRICS)
    assert code == 3
    line = next(l for l in out.splitlines() if "offline-eval" in l)
    assert f"results are for route profile sha256 {profile_hash(other)[:12]}" in line
    assert "evaluate this candidate" in line
