"""Decision rules: the seed loads as it is with documented defaults; the extended form; errors name file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.core.errors import BadInput
from console.core.models import default_audience_predicate, default_scope_predicate
from console.core.rules import DecisionRule, load_rule, parse_duration, parse_rule, parse_share
from console.core.stats.spec import GateAction, MarginKind, PrimaryTest
from console.core.telemetry import Arm, UnitRecord

SEED = Path(__file__).resolve().parents[2] / "examples" / "decision-rule-seed.yaml"
EXTENDED = Path(__file__).resolve().parents[2] / "console" / "core" / "data" / "rule-extended.yaml"


@pytest.fixture(scope="module")
def seed_text() -> str:
    return SEED.read_text()


@pytest.fixture(scope="module")
def seed(seed_text) -> DecisionRule:
    return parse_rule(seed_text, "seed.yaml")


def guardrail(rule: DecisionRule, name: str):
    matches = [g for g in rule.spec.guardrails if g.metric == name]
    assert matches, f"no guardrail {name} in {[g.metric for g in rule.spec.guardrails]}"
    return matches[0]


# ---- the seed form ----------------------------------------------------------------------


def test_seed_file_loads_as_it_is():
    rule = load_rule(SEED)
    assert rule.flag_key == "support-answer-route"
    assert rule.path == str(SEED)


def test_seed_routes_audience_and_scope_use_the_documented_default_predicates(seed):
    assert (seed.candidate_route, seed.baseline_route) == ("balanced_core_v2", "fast_default_v1")
    assert seed.first_audience == "internal_support_team"
    assert seed.eligible_scope == "english_support_chat"
    assert seed.audience_predicate == default_audience_predicate("internal_support_team")
    assert seed.scope_predicate == default_scope_predicate("english_support_chat")
    assert seed.explicit_predicates is False


def test_seed_guardrail_defaults_margins_and_severities(seed):
    cost = guardrail(seed, "cost_per_resolved_case")
    assert (cost.margin, cost.margin_kind, cost.critical, cost.trigger.value) == (0.25, MarginKind.RELATIVE, False, "hold")
    g = guardrail(seed, "correction_rate")
    assert (g.margin, g.margin_kind, g.critical, g.absolute_limit) == (0.03, MarginKind.ABSOLUTE, True, 0.25)
    for name in ("fallback_rate", "complaint_rate", "error_rate"):
        # rare events: relative margins that tighten as the candidate serves more (the power table)
        g = guardrail(seed, name)
        assert (g.margin, g.margin_kind, g.critical, g.trigger.value) == (1.0, MarginKind.RELATIVE, True, "rollback"), name
        assert g.at_stage("5%").margin == 3.0 and g.at_stage("20%").margin == 1.5 and g.at_stage("full").margin == 1.0


def test_seed_p95_is_a_quantile_guardrail_beside_an_slo_share_guardrail(seed):
    assert seed.spec.p95_tripwire_ms == 4000.0  # the p95 limit at the internal stage
    assert seed.spec.latency_slo_ms == 2500.0
    p95 = guardrail(seed, "p95_latency")
    assert (p95.margin, p95.margin_kind, p95.trigger.value) == (0.4, MarginKind.RELATIVE, "hold")
    slo = guardrail(seed, "slo_attainment")
    assert (slo.margin, slo.margin_kind, slo.critical, slo.absolute_limit) == (0.03, MarginKind.ABSOLUTE, True, 0.7)


def test_seed_stage_plan_alpha_gates_and_segments_defaults(seed):
    assert [(s.name, s.candidate_bp, s.internal) for s in seed.stages] == [
        ("internal", 0, True), ("5%", 500, True), ("20%", 2000, True), ("full", 9500, True)]
    assert all(s.min_units > 0 and s.min_dwell_s > 0 for s in seed.stages)
    assert [s.min_units for s in seed.stages] == sorted(s.min_units for s in seed.stages)
    assert seed.spec.alpha == 0.05
    assert seed.spec.auto_rollback is True
    gates = seed.spec.gates
    assert gates.join_action is GateAction.ROLLBACK
    assert gates.srm_action is GateAction.HOLD
    assert gates.crossover_action is GateAction.HOLD
    assert gates.no_traffic_action is GateAction.HOLD
    assert seed.segments == ("plan", "region")


def test_seed_text_lines_map_to_checks_and_the_rest_to_the_checklist(seed):
    became = {m.source: m for m in seed.mappings}
    assert len(seed.mappings) == 7  # every line is accounted for
    # "primary_metric improves enough to matter" asks for superiority, not only non-inferiority
    assert seed.spec.primary.metric == "resolved_without_escalation"
    assert seed.spec.primary.test is PrimaryTest.SUPERIOR
    assert "superior" in became["expand_when[0]"].became
    assert "cost_per_resolved_case" in became["expand_when[1]"].became
    assert "guardrail p95_latency" in became["expand_when[2]"].became
    assert became["expand_when[3]"].checklist
    assert "correction_rate" in became["rollback_when[0]"].became
    assert guardrail(seed, "error_rate").critical and guardrail(seed, "fallback_rate").critical
    assert "error_rate" in became["rollback_when[1]"].became
    assert "join" in became["rollback_when[2]"].became
    assert seed.checklist == ["no critical segment shows unacceptable harm"]
    assert [m.source for m in seed.mappings if m.checklist] == ["expand_when[3]"]


def test_primary_metric_without_an_improve_line_is_non_inferior_with_the_registry_margin(seed_text):
    rule = parse_rule(seed_text.replace("    - primary_metric improves enough to matter\n", ""))
    assert rule.spec.primary.test is PrimaryTest.NON_INFERIOR
    assert rule.spec.primary.margin == 0.03


def test_join_line_turns_a_hold_gate_into_rollback(seed_text):
    text = seed_text + "  gates:\n    join_coverage: {on_fail: hold}\n"
    assert parse_rule(text).spec.gates.join_action is GateAction.ROLLBACK
    without = text.replace("    - telemetry cannot join exposure to outcome\n", "")
    assert parse_rule(without).spec.gates.join_action is GateAction.HOLD


# ---- the hash -----------------------------------------------------------------------------


def test_rule_hash_ignores_comments_whitespace_and_key_order(seed, seed_text):
    edited = "# reviewed by the release owner\n" + seed_text.replace("  flag_key:", "\n  # the flag\n  flag_key:")
    lines = seed_text.splitlines(keepends=True)
    reordered = "".join([lines[0], lines[3], lines[2], lines[1], *lines[4:]])
    assert parse_rule(edited).rule_hash == seed.rule_hash
    assert parse_rule(reordered).rule_hash == seed.rule_hash


@pytest.mark.parametrize("old, new", [
    ("balanced_core_v2", "balanced_core_v3"),
    ("    - complaint_rate\n", ""),
    ("primary_metric improves", "primary_metric holds"),
    ("  guardrails:\n", "  alpha: 0.01\n  guardrails:\n"),
])
def test_rule_hash_changes_with_any_semantic_edit(seed, seed_text, old, new):
    assert old in seed_text
    assert parse_rule(seed_text.replace(old, new)).rule_hash != seed.rule_hash


# ---- the extended form --------------------------------------------------------------------


@pytest.fixture(scope="module")
def extended() -> DecisionRule:
    return load_rule(EXTENDED)


def test_extended_example_uses_its_explicit_predicates(extended):
    assert extended.explicit_predicates is True
    assert extended.audience_predicate == {"in": [{"var": "team"}, ["support", "support-leads"]]}
    assert extended.scope_predicate["and"][0] == {"==": [{"var": "language"}, "en"]}


def test_extended_example_guardrails_primary_stages_and_gates(extended):
    cost = guardrail(extended, "cost_per_resolved_case")
    assert (cost.margin, cost.margin_kind, cost.critical) == (pytest.approx(0.10), MarginKind.RELATIVE, False)
    corr = guardrail(extended, "correction_rate")
    assert (corr.absolute_limit, corr.critical) == (0.15, True)
    assert extended.spec.p95_tripwire_ms == 3500
    assert extended.spec.primary.test is PrimaryTest.NON_INFERIOR
    assert [(s.name, s.candidate_bp, s.min_dwell_s) for s in extended.stages] == [
        ("internal", 0, 300), ("5%", 500, 600), ("20%", 2000, 900), ("50%", 5000, 1800), ("full", 9500, 3600)]
    assert extended.spec.gates.maturation_s == 120
    assert extended.spec.gates.crossover_max == pytest.approx(0.01)
    assert extended.spec.tuning_units == 3000


def test_extended_margin_kinds_explicit_and_inferred(seed_text):
    text = seed_text.replace("    - correction_rate\n", "    - metric: correction_rate\n      margin: 3%\n").replace(
        "    - cost_per_resolved_case\n", "    - metric: cost_per_resolved_case\n      margin: 0.5\n")
    rule = parse_rule(text)
    # a percentage of a share is points; a bare number for a cost is in dollars
    assert (guardrail(rule, "correction_rate").margin, guardrail(rule, "correction_rate").margin_kind) == (
        pytest.approx(0.03), MarginKind.ABSOLUTE)
    assert (guardrail(rule, "cost_per_resolved_case").margin, guardrail(rule, "cost_per_resolved_case").margin_kind) == (
        0.5, MarginKind.ABSOLUTE)


def test_holdback_sets_the_full_stage_share(seed_text):
    rule = parse_rule(seed_text + "  holdback: 10%\n")
    assert rule.stages[-1].candidate_bp == 9000
    assert parse_rule(seed_text + "  holdback: 0%\n").stages[-1].candidate_bp == 10_000


def test_comparable_units_are_in_scope_and_outside_the_first_audience(seed):
    check = seed.comparable()

    def unit(**segment):
        return UnitRecord(unit_id="u", flag=seed.flag_key, arm=Arm.CANDIDATE, route=seed.candidate_route,
                          segment=segment, first_seen=0.0)

    assert check(unit(scope="english_support_chat"))
    assert not check(unit(scope="french_email"))
    assert not check(unit(scope="english_support_chat", audience="internal_support_team"))


# ---- errors ---------------------------------------------------------------------------------


def error_of(text: str) -> str:
    with pytest.raises(BadInput) as info:
        parse_rule(text, "rule.yaml")
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_unknown_metric_names_file_line_field_and_the_known_metrics(seed_text):
    message = error_of(seed_text.replace("    - correction_rate\n", "    - p99_latncy\n"))
    assert message.startswith("rule.yaml:11: guardrails[2]: unknown metric 'p99_latncy' — known metrics: ")
    assert "p95_latency" in message


@pytest.mark.parametrize("edit, expected", [
    (("  primary_metric:", "  primry: 1\n  primary_metric:"), "rule.yaml:7: primry: unknown key"),
    (("  guardrails:\n", "  alpha: high\n  guardrails:\n"), "rule.yaml:8: alpha: must be a number"),
    (("  guardrails:\n", "  alpha: .nan\n  guardrails:\n"), "rule.yaml:8: alpha: '.nan' is not a finite number"),
    (("  guardrails:\n", "  alpha: 2\n  guardrails:\n"), "rule.yaml:8: alpha: must be between"),
    (("  guardrails:\n", "  auto_rollback: sometimes\n  guardrails:\n"), "rule.yaml:8: auto_rollback: must be true or false"),
    (("  flag_key: support-answer-route\n", ""), "rule.yaml:2: flag_key: required"),
    (("  baseline_route: fast_default_v1", "  baseline_route: balanced_core_v2"), "candidate_route: the candidate must differ"),
    (("    - correction_rate\n", "    - metric: correction_rate\n      severity: high\n"),
     "rule.yaml:12: guardrails[2].severity: must be critical or normal"),
    (("    - correction_rate\n", "    - metric: correction_rate\n      margin: lots\n"),
     "rule.yaml:12: guardrails[2].margin: must be a number or a percentage"),
    (("    - correction_rate\n", "    - metric: correction_rate\n      colour: red\n"),
     "rule.yaml:12: guardrails[2].colour: unknown key"),
    (("  primary_metric: resolved_without_escalation", "  primary_metric: p95_latency"),
     "rule.yaml:7: primary_metric: p95_latency is a quantile: list it under guardrails"),
    (("  expand_when:\n", "  segments: plan\n  expand_when:\n"), "rule.yaml:14: segments: must be a list"),
])
def test_bad_fields_are_one_line_errors_with_line_and_field(seed_text, edit, expected):
    old, new = edit
    assert old in seed_text
    assert expected in error_of(seed_text.replace(old, new))


@pytest.mark.parametrize("tail, expected", [
    ("  stages:\n    - {name: a, share: 5%, min_dwell: soon}\n", "rule.yaml:24: stages[0].min_dwell: must be a duration"),
    ("  stages:\n    - {name: a, share: 5}\n", "rule.yaml:24: stages[0].share: must be a percentage"),
    ("  stages:\n    - {name: a, share: 20%}\n    - {name: b, share: 5%}\n", "stages[1].share: stages must not shrink"),
    ("  stages:\n    - {name: a, share: 5%}\n    - {name: a, share: 20%}\n", "stages[1].name: stage 'a' is reserved or used twice"),
    ("  stages:\n    - {name: baseline, share: 5%}\n", "stages[0].name: stage 'baseline' is reserved"),
    ("  stages:\n    - {name: a, share: 5%, speed: 3}\n", "stages[0].speed: unknown key"),
    ("  holdback: 5%\n  stages:\n    - {name: a, share: 5%}\n", "rule.yaml:23: holdback: applies to the default stage plan only"),
    ("  gates:\n    srm:\n      on_fail: panic\n", "rule.yaml:25: gates.srm.on_fail: must be hold or rollback"),
    ("  gates:\n    join_coverage: {maturation: later}\n", "gates.join_coverage.maturation: must be a duration"),
    ("  gates:\n    smoke: {on_fail: hold}\n", "gates.smoke: unknown gate"),
    ("  audiences:\n    internal_support_team: staff\n", "audiences.internal_support_team: must be a JsonLogic object"),
])
def test_bad_extended_fields(seed_text, tail, expected):
    assert expected in error_of(seed_text + tail)


def test_invalid_yaml_reports_file_line_and_column(seed_text):
    message = error_of(seed_text.replace("  flag_key: support-answer-route", "  flag_key: [support"))
    assert message.startswith("rule.yaml:3:18: invalid YAML")


def test_missing_top_key_and_empty_file():
    assert "top-level 'llm_route_decision:'" in error_of("route_decision:\n  flag_key: x\n")
    assert "top-level 'llm_route_decision:'" in error_of("")
    assert "unknown top-level key" in error_of("llm_route_decision: {}\nextra: 1\n")


def test_load_rule_missing_and_binary_files_are_bad_input(tmp_path):
    with pytest.raises(BadInput, match="no such rule file"):
        load_rule(tmp_path / "absent.yaml")
    binary = tmp_path / "rule.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BadInput, match="not UTF-8"):
        load_rule(binary)


@pytest.mark.parametrize("value, expected", [("5%", 0.05), (" 12.5 % ", 0.125), (0.2, 0.2), ("10", None), (True, None)])
def test_parse_share(value, expected):
    assert parse_share(value) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("value, expected", [("10m", 600), ("90s", 90), ("1h", 3600), (30, 30), ("soon", None), ("5d", None)])
def test_parse_duration(value, expected):
    assert parse_duration(value) == expected


def test_a_metric_named_only_in_a_line_becomes_a_guardrail_with_its_registry_defaults(seed_text):
    rule = parse_rule(seed_text + "    - timeout_rate climbs after launch\n")
    timeouts = guardrail(rule, "timeout_rate")
    assert (timeouts.margin, timeouts.margin_kind, timeouts.critical) == (1.0, MarginKind.RELATIVE, True)
    assert rule.mappings[-1].became == "guardrail timeout_rate must not get worse than its margin"


def test_signals_on_harm_and_alpha_scope():
    text = """llm_route_decision:
  flag_key: f
  candidate_route: c
  baseline_route: b
  primary_metric: resolved_without_escalation
  guardrails:
    - {metric: cost_per_request, on_harm: rollback}
    - {metric: error_rate, on_harm: warn}
  signals:
    - timeout_rate
  alpha_scope: rollout
"""
    rule = parse_rule(text)
    assert [g.metric for g in rule.spec.signals] == ["timeout_rate"]
    assert rule.spec.signals[0].trigger.value == "warn"
    assert guardrail(rule, "cost_per_request").trigger.value == "rollback"
    assert guardrail(rule, "error_rate").trigger.value == "warn"
    assert rule.spec.alpha_scope.value == "rollout" and rule.spec.stages == 4
    assert "rule.yaml:8: guardrails[1].on_harm: must be one of rollback, hold, warn" in error_of(
        text.replace("on_harm: warn", "on_harm: panic"))
