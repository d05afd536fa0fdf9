"""Offline evaluation as the qualification gate: `baseline → internal` holds until a results file proves
the candidate (matched by its route profile's hash) meets the rule's thresholds; the evidence is in
`check --json`, journalled with the advance and carried by the decision; a rule naming no evidence
behaves as before. JUnit XML comes from a real pytest run; promptfoo JSON in the shape it writes (the
real promptfoo runs in tests/integration/test_promptfoo.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import main
from console.core.audit.reader import read_entries
from console.core.errors import BadInput
from console.core.evaluation import profile_hash
from console.core.rules import load_rule, parse_rule
from console.core.simulator.portfolio import PROFILES

DEMO_RULE = Path(__file__).parents[2] / "console" / "core" / "data" / "rule-demo.yaml"
CANDIDATE = "balanced_core_v2"
HASH = profile_hash(PROFILES[CANDIDATE])
#: the simulator as the metrics source (check probes it when a verdict read no metrics)
NO_METRICS = "sim:steady?minutes=5"
GATE = """  evaluation:
    results: results.{ext}
    min_pass_rate: 0.9
    max_severe_failures: 0
    regression_suite: regression
"""


def rule_with_gate(tmp_path: Path, ext: str = "json") -> Path:
    text = DEMO_RULE.read_text().replace("  auto_rollback: true\n", "  auto_rollback: true\n" + GATE.format(ext=ext))
    path = tmp_path / "rule.yaml"
    path.write_text(text)
    return path


def promptfoo_results(cases: list[tuple[bool, dict]], profile: str = HASH) -> dict:
    """promptfoo's JSON output (`promptfoo eval -o FILE.json`): results.results[] with success and testCase."""
    return {"evalId": "eval-1", "results": {"version": 3, "results": [
        {"id": f"r{i}", "success": ok, "score": 1.0 if ok else 0.0,
         "testCase": {"description": f"case {i}", "metadata": {"routedeck_profile": profile, **meta}}}
        for i, (ok, meta) in enumerate(cases)],
        "stats": {"successes": sum(ok for ok, _ in cases), "failures": sum(not ok for ok, _ in cases)}}}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def env(tmp_path):
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)]
    return tmp_path, common


def check_json(capsys, rule: Path, common: list[str], metrics: str = NO_METRICS) -> tuple[int, dict]:
    code, out, err = run(capsys, "check", "--rule", rule, *common, "--metrics", metrics, "--json")
    assert err == "", err
    return code, json.loads(out)


def test_the_gate_holds_until_results_prove_the_candidate_then_the_advance_journals_the_evidence(env, capsys):
    tmp, common = env
    rule = rule_with_gate(tmp)
    assert run(capsys, "init", "--rule", rule, *common)[0] == 0
    # no results yet: HOLD, and the line says what to do
    code, doc = check_json(capsys, rule, common)
    assert code == 3 and doc["verdict"] == "HOLD"
    gate = next(g for g in doc["health"] if g["name"] == "offline-eval")
    assert gate["status"] == "fail" and "no evaluation results yet" in gate["detail"]
    code, out, err = run(capsys, "advance", "--rule", rule, *common, "--metrics", NO_METRICS)
    assert code == 3 and "advance refused: verdict HOLD" in err and "offline evaluation not proven" in err
    # results for another route profile: refused in one line, nothing moves
    (tmp / "results.json").write_text(json.dumps(promptfoo_results([(True, {})] * 10, profile="ab" * 32)))
    code, doc = check_json(capsys, rule, common)
    gate = next(g for g in doc["health"] if g["name"] == "offline-eval")
    assert code == 3 and "results are for route profile sha256 abababababab" in gate["detail"]
    assert HASH[:12] in gate["detail"] and "\n" not in gate["detail"]
    # results below the thresholds: the figures against them, still HOLD
    cases = [(True, {"suite": "regression"})] * 8 + [(False, {"severity": "severe"})] + [(False, {"suite": "regression"})]
    (tmp / "results.json").write_text(json.dumps(promptfoo_results(cases)))
    code, doc = check_json(capsys, rule, common)
    ev = doc["evaluation"]
    assert code == 3 and ev["cases"] == 10 and ev["passed"] == 8 and ev["severe_failures"] == 1
    assert ev["regression_cases"] == 9 and ev["regression_failures"] == 1 and not ev["ok"]
    assert set(ev["problems"]) == {"pass rate 80.0% is below 90%", "1 severe case(s) failed (at most 0)",
                                   "suite 'regression' is not green (1 of 9 failed)"}
    # results that prove it: ADVANCE, and the advance carries the evidence into the journal
    cases = [(True, {"suite": "regression"})] * 9 + [(False, {})]
    (tmp / "results.json").write_text(json.dumps(promptfoo_results(cases)))
    code, doc = check_json(capsys, rule, common)
    assert code == 0 and doc["verdict"] == "ADVANCE" and doc["evaluation"]["ok"]
    assert doc["evaluation"]["profile_sha256"] == HASH and doc["evaluation"]["pass_rate"] == 0.9
    code, out, err = run(capsys, "advance", "--rule", rule, *common, "--metrics", NO_METRICS)
    assert code == 0 and "stage: baseline → internal" in out, out + err
    intent = [e for e in read_entries(tmp / "journal.jsonl") if e.kind == "intent" and e.action == "advance"][-1]
    assert intent.verdict["evaluation"]["file_sha256"] == doc["evaluation"]["file_sha256"]
    assert intent.verdict["evaluation"]["profile_sha256"] == HASH
    # past baseline the gate is not asked again
    code, doc = check_json(capsys, rule, common, "sim:steady?minutes=5")
    assert not any(g["name"] == "offline-eval" for g in doc["health"]) and doc["evaluation"] is None


def test_a_rule_naming_no_evidence_behaves_as_before(env, capsys):
    tmp, common = env
    assert run(capsys, "init", "--rule", DEMO_RULE, *common)[0] == 0
    code, doc = check_json(capsys, DEMO_RULE, common)
    assert code == 0 and doc["verdict"] == "ADVANCE" and doc["evaluation"] is None
    assert not any(g["name"] == "offline-eval" for g in doc["health"])


def test_a_malformed_file_is_refused_in_one_line(env, capsys):
    tmp, common = env
    rule = rule_with_gate(tmp)
    assert run(capsys, "init", "--rule", rule, *common)[0] == 0
    for text, words in (('{"results": [1, 2', "not valid JSON"), ("name,passed\nx,1\n", "neither promptfoo JSON"),
                        ('{"results": {"results": [{"success": "yes"}]}}', "has no success flag"),
                        ('{"evalId": "e"}', "no results.results list")):
        (tmp / "results.json").write_text(text)
        code, doc = check_json(capsys, rule, common)
        gate = next(g for g in doc["health"] if g["name"] == "offline-eval")
        assert code == 3 and words in gate["detail"] and "\n" not in gate["detail"], gate


def test_junit_xml_from_a_real_pytest_run_is_read_with_severity_and_suites(env, capsys):
    tmp, common = env
    suite = tmp / "test_candidate_suite.py"
    suite.write_text(f'''
import pytest

@pytest.fixture(autouse=True, scope="session")
def profile(record_testsuite_property):
    record_testsuite_property("routedeck_profile", "{HASH}")

def test_answers_refund_question():
    assert True

def test_escalates_legal_threat(record_property):
    record_property("severity", "severe")
    assert True

@pytest.mark.parametrize("n", range(8))
def test_regression_case(n, record_property):
    record_property("suite", "regression")
    assert True

def test_tone_is_polite():
    assert 1 + 1 == 3
''')
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite),
                           f"--junitxml={tmp / 'results.xml'}", "-o", "junit_family=xunit1"],
                          capture_output=True, text=True, cwd=tmp, timeout=120)
    assert done.returncode == 1, done.stdout  # one case really fails
    rule = rule_with_gate(tmp, "xml")
    assert run(capsys, "init", "--rule", rule, *common)[0] == 0
    code, doc = check_json(capsys, rule, common)
    ev = doc["evaluation"]
    assert ev["format"] == "junit" and ev["cases"] == 11 and ev["passed"] == 10
    assert ev["severe_failures"] == 0 and ev["regression_cases"] == 8 and ev["regression_failures"] == 0
    assert code == 0 and ev["ok"], ev  # 10/11 ≥ 90%, no severe failure, the regression suite green


def test_the_evaluation_section_is_checked_with_file_and_line(tmp_path):
    text = DEMO_RULE.read_text().replace("  auto_rollback: true\n", "  auto_rollback: true\n  evaluation:\n"
                                         "    results: r.json\n    min_pass_rate: 95\n")
    with pytest.raises(BadInput) as caught:
        parse_rule(text, str(tmp_path / "rule.yaml"))
    assert "rule.yaml:" in str(caught.value) and "min_pass_rate" in str(caught.value) and "between 0 and 1" in str(caught.value)
    text = text.replace("min_pass_rate: 95", "min_pass: 0.9")
    with pytest.raises(BadInput, match="unknown key"):
        parse_rule(text, str(tmp_path / "rule.yaml"))
    rule = load_rule(rule_with_gate(tmp_path))
    assert rule.evaluation.results == tmp_path / "results.json" and rule.evaluation.regression_suite == "regression"
    assert rule.rule_hash != load_rule(DEMO_RULE).rule_hash
