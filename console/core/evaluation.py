"""Offline evaluation as the qualification gate before any traffic moves (``baseline → internal``).

A rule may name the evidence it requires::

    evaluation:
      results: evals/results.json     # promptfoo JSON results or JUnit XML, relative to the rule file
      min_pass_rate: 0.95             # share of all cases that passed
      max_severe_failures: 0          # failed cases marked severe
      regression_suite: regression    # every case of this suite must pass (optional)

The results are matched to the candidate by the SHA-256 of its route profile's canonical JSON
(``profile_hash``): every promptfoo result must carry it as ``metadata.routedeck_profile`` (set once with
``defaultTest.metadata``), a JUnit file as a ``routedeck_profile`` property of its test suites. Results
for another profile, or a file that is not results at all, are refused with one line; the gate holds
until a file proves the thresholds. A rule that names no evidence behaves as before.

Cases are *severe* when marked ``severity: severe`` (promptfoo test metadata; a JUnit ``severity``
property), and belong to a suite by ``metadata.suite`` (promptfoo) or the test suite's name or a
``suite`` property (JUnit).
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInput
from .models import RouteProfile

PROFILE_KEY = "routedeck_profile"
KEYS = {"results", "min_pass_rate", "max_severe_failures", "regression_suite"}


def profile_hash(profile: RouteProfile) -> str:
    """The content hash results are matched by: SHA-256 of the profile's canonical JSON."""
    return hashlib.sha256(profile.canonical_json().encode()).hexdigest()


@dataclass(frozen=True)
class EvaluationRequirement:
    """What a rule requires before ``baseline → internal``."""

    results: Path
    min_pass_rate: float = 1.0
    max_severe_failures: int = 0
    regression_suite: str | None = None

    def describe(self) -> str:
        text = f"pass rate ≥ {self.min_pass_rate:.0%}, severe failures ≤ {self.max_severe_failures}"
        if self.regression_suite:
            text += f", suite {self.regression_suite!r} green"
        return text


@dataclass
class Case:
    name: str
    passed: bool
    severe: bool
    suites: tuple[str, ...]
    profiles: tuple[str, ...]  # the profile hashes the case names


@dataclass
class EvalEvidence:
    """The figures read from one results file, against the thresholds."""

    file: str
    file_sha256: str
    format: str
    profile_sha256: str
    cases: int
    passed: int
    pass_rate: float
    severe_failures: int
    regression_cases: int | None
    regression_failures: int | None
    thresholds: dict[str, Any]
    ok: bool
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        text = (f"{self.file} ({self.format}, sha256 {self.file_sha256[:12]}): {self.passed}/{self.cases} passed "
                f"({self.pass_rate:.1%} vs ≥ {self.thresholds['min_pass_rate']:.0%}), severe failures "
                f"{self.severe_failures} (≤ {self.thresholds['max_severe_failures']})")
        if self.regression_cases is not None:
            text += f", suite {self.thresholds['regression_suite']!r} {self.regression_cases - self.regression_failures}" \
                    f"/{self.regression_cases} passed"
        return text + f"; candidate profile sha256 {self.profile_sha256[:12]}"


def parse_requirement(raw: Any, base_dir: Path, error) -> EvaluationRequirement:
    """The rule's ``evaluation:`` section; ``error(subkey, message)`` builds the located one-line error."""
    if not isinstance(raw, dict):
        raise error(None, "must be a mapping with results, min_pass_rate, max_severe_failures, regression_suite")
    for key in raw:
        if key not in KEYS:
            raise error(key, f"unknown key — allowed: {', '.join(sorted(KEYS))}")
    results = raw.get("results")
    if not isinstance(results, str) or not results.strip():
        raise error("results", "required: the path of the evaluation results (promptfoo JSON or JUnit XML)")
    rate = raw.get("min_pass_rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise error("min_pass_rate", f"must be a share between 0 and 1 (got {rate!r})")
    severe = raw.get("max_severe_failures", 0)
    if isinstance(severe, bool) or not isinstance(severe, int) or severe < 0:
        raise error("max_severe_failures", f"must be a whole number ≥ 0 (got {severe!r})")
    suite = raw.get("regression_suite")
    if suite is not None and (not isinstance(suite, str) or not suite.strip()):
        raise error("regression_suite", "must be the name of a suite")
    path = Path(results).expanduser()
    return EvaluationRequirement(path if path.is_absolute() else base_dir / path, float(rate), severe,
                                 suite.strip() if suite else None)


# ---- reading results -------------------------------------------------------------------------


def read_cases(path: Path) -> tuple[str, list[Case]]:
    """(format, cases) of a promptfoo JSON results file or a JUnit XML file; BadInput in one line otherwise."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{path}: no evaluation results yet — run the evaluation on the candidate and write its "
                       "results there") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the evaluation results ({exc.strerror})") from None
    head = data.lstrip()[:1]
    if head == b"<":
        return "junit", _junit_cases(path, data)
    if head == b"{":
        return "promptfoo", _promptfoo_cases(path, data)
    raise BadInput(f"{path}: neither promptfoo JSON results nor JUnit XML — point evaluation.results at one")


def _promptfoo_cases(path: Path, data: bytes) -> list[Case]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f"line {exc.lineno}: " if isinstance(exc, json.JSONDecodeError) else ""
        raise BadInput(f"{path}: not valid JSON ({where}{exc.args[0].split(':')[0]}) — not promptfoo results") from None
    results = (doc.get("results") or {}).get("results") if isinstance(doc, dict) else None
    if not isinstance(results, list):
        raise BadInput(f"{path}: no results.results list — not promptfoo's JSON output (`promptfoo eval -o FILE.json`)")
    cases = []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or not isinstance(r.get("success"), bool):
            raise BadInput(f"{path}: results.results[{i}] has no success flag — not promptfoo's JSON output")
        test = r.get("testCase") if isinstance(r.get("testCase"), dict) else {}
        meta = {**(test.get("metadata") or {}), **(r.get("metadata") or {})} if isinstance(test.get("metadata") or {}, dict) else {}
        name = str(test.get("description") or r.get("id") or f"case {i}")
        profiles = tuple(str(v) for v in _as_list(meta.get(PROFILE_KEY)))
        cases.append(Case(name, r["success"], _severe(meta.get("severity")), tuple(map(str, _as_list(meta.get("suite")))),
                          profiles))
    return cases


def _junit_cases(path: Path, data: bytes) -> list[Case]:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        line = exc.position[0] if exc.position else "?"
        raise BadInput(f"{path}:{line}: not well-formed XML — not a JUnit results file") from None
    suites = [root] if root.tag == "testsuite" else root.findall(".//testsuite") if root.tag == "testsuites" else None
    if not suites:
        raise BadInput(f"{path}: no <testsuites> or <testsuite> element — not JUnit XML")
    cases = []
    for suite in suites:
        suite_props = _properties(suite)
        suite_name = str(suite.get("name") or "")
        for case in suite.findall("testcase"):
            props = _properties(case)
            failed = any(case.find(tag) is not None for tag in ("failure", "error"))
            skipped = case.find("skipped") is not None
            if skipped:
                continue  # a skipped case proves nothing either way
            name = ".".join(filter(None, [case.get("classname"), case.get("name")])) or "testcase"
            suites_of = tuple(filter(None, [suite_name, *props.get("suite", []), *suite_props.get("suite", [])]))
            profiles = tuple(props.get(PROFILE_KEY, []) + suite_props.get(PROFILE_KEY, []))
            severe = any(_severe(v) for v in props.get("severity", []) + suite_props.get("severity", []))
            cases.append(Case(name, not failed, severe, suites_of, profiles))
    return cases


def _properties(node: ElementTree.Element) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for prop in node.findall("./properties/property"):
        name = prop.get("name")
        if name:
            out.setdefault(name, []).append(str(prop.get("value") if prop.get("value") is not None else prop.text or ""))
    return out


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _severe(value: Any) -> bool:
    return any(str(v).strip().lower() in ("severe", "critical") for v in _as_list(value))


# ---- judging -----------------------------------------------------------------------------------


def judge(requirement: EvaluationRequirement, candidate: RouteProfile) -> EvalEvidence:
    """The evidence for ``candidate`` against the requirement; BadInput (one line) when the file is not
    results, or results of another profile."""
    want = profile_hash(candidate)
    fmt, cases = read_cases(requirement.results)
    path = requirement.results
    if not cases:
        raise BadInput(f"{path}: holds no evaluated case — run the evaluation again")
    unmarked = [c.name for c in cases if not c.profiles]
    if unmarked:
        raise BadInput(f"{path}: case {unmarked[0]!r} names no route profile ({PROFILE_KEY}) — results are matched to "
                       f"the candidate by its profile's sha256 {want[:12]}…: set it in the evaluation's metadata")
    others = sorted({p for c in cases for p in c.profiles if p != want})
    if others:
        raise BadInput(f"{path}: results are for route profile sha256 {others[0][:12]}…, not the candidate "
                       f"{candidate.route} (sha256 {want[:12]}…) — evaluate this candidate and write its results")
    passed = sum(c.passed for c in cases)
    severe = sum(1 for c in cases if c.severe and not c.passed)
    rate = passed / len(cases)
    problems = []
    if rate < requirement.min_pass_rate:
        problems.append(f"pass rate {rate:.1%} is below {requirement.min_pass_rate:.0%}")
    if severe > requirement.max_severe_failures:
        problems.append(f"{severe} severe case(s) failed (at most {requirement.max_severe_failures})")
    reg_cases = reg_failed = None
    if requirement.regression_suite:
        suite = [c for c in cases if requirement.regression_suite in c.suites]
        reg_cases, reg_failed = len(suite), sum(1 for c in suite if not c.passed)
        if not suite:
            problems.append(f"no case of suite {requirement.regression_suite!r} in the results")
        elif reg_failed:
            problems.append(f"suite {requirement.regression_suite!r} is not green ({reg_failed} of {reg_cases} failed)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return EvalEvidence(
        file=str(path), file_sha256=digest, format=fmt, profile_sha256=want, cases=len(cases), passed=passed,
        pass_rate=rate, severe_failures=severe, regression_cases=reg_cases, regression_failures=reg_failed,
        thresholds={"min_pass_rate": requirement.min_pass_rate, "max_severe_failures": requirement.max_severe_failures,
                    "regression_suite": requirement.regression_suite},
        ok=not problems, problems=problems,
    )
