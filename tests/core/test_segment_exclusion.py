"""Excluding a segment from the candidate: the rule key, the targeting on each platform, the journalled write."""

from __future__ import annotations

import json

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform, parse_targeting, render_targeting
from adapters.flags.unleash import render_strategies
from console.core import operations
from console.core.errors import BadInput
from console.core.journal import Journal, read_entries
from console.core.rules import parse_rule
from console.core.simulator import get_scenario
from console.core.simulator.engine import TrafficSimulator
from console.core.simulator.evaluator import FlagdFileEvaluator
from console.core.simulator.portfolio import demo_flags
from console.core.telemetry import Arm

from .test_segments import RULE

FLAG = "support-answer-route"


def support_flag(bp: int = 2000):
    flag = next(f for f in demo_flags() if f.key == FLAG)
    return flag.model_copy(update={"allocation": flag.allocation.model_copy(update={"candidate_bp": bp})})


# ---- the rule key ------------------------------------------------------------------------------


def test_segment_harm_defaults_to_report_and_takes_exclude_or_rollback():
    assert parse_rule(RULE).segment_harm == "report"
    assert parse_rule(RULE + "  segment_harm: exclude\n").segment_harm == "exclude"
    assert parse_rule(RULE + "  segment_harm: rollback\n").segment_harm == "rollback"


def test_segment_harm_other_values_are_a_one_line_error_with_file_line_field():
    with pytest.raises(BadInput) as exc:
        parse_rule(RULE + "  segment_harm: ignore\n", "rule.yaml")
    msg = str(exc.value)
    assert msg.startswith("rule.yaml:15: segment_harm: must be one of report, exclude, rollback") and "\n" not in msg


def test_a_segment_the_route_sets_is_refused():
    with pytest.raises(BadInput, match=r"rule.yaml:\d+: segments\[1\]: 'provider' is set by the route or after exposure"):
        parse_rule(RULE.replace("segments: [region, plan]", "segments: [region, provider]"), "rule.yaml")


# ---- flagd targeting ---------------------------------------------------------------------------


def test_flagd_targeting_sends_excluded_segments_to_baseline_first_and_reads_back():
    flag = support_flag()
    alloc = flag.allocation.model_copy(update={"excluded_segments": (("region", "eu"), ("plan", "free"))})
    flag = flag.model_copy(update={"allocation": alloc})
    targeting = render_targeting(flag)
    assert targeting["if"][:2] == [
        {"or": [{"==": [{"var": "region"}, "eu"]}, {"==": [{"var": "plan"}, "free"]}]}, flag.baseline]
    base = alloc.model_copy(update={"internal_enabled": False, "candidate_bp": 0})
    parsed, why = parse_targeting(targeting, base, flag.baseline, flag.candidate)
    assert why is None and parsed == alloc
    # metadata that names an exclusion the targeting lacks is reported, not guessed at
    plain = render_targeting(support_flag())
    _, why = parse_targeting(plain, base, flag.baseline, flag.candidate)
    assert why == "excluded segments in metadata are not in the targeting"


def test_flagd_file_stores_exclusions_and_a_hand_removed_branch_is_foreign(tmp_path):
    path = tmp_path / "flags.json"
    platform = FlagdFilePlatform(path)
    flag = support_flag()
    platform.create_flag(flag)
    before = platform.read_flag(FLAG)
    target = before.model_copy(update={"allocation": before.allocation.model_copy(
        update={"excluded_segments": (("region", "eu"),)})})
    result = platform.write_flag(target, before.revision)
    assert result.after.allocation.excluded_segments == (("region", "eu"),)
    assert result.after.foreign_targeting is None
    assert "except region=eu" in result.after.allocation.describe()
    doc = json.loads(path.read_text())
    doc["flags"][FLAG]["targeting"]["if"] = doc["flags"][FLAG]["targeting"]["if"][2:]
    path.write_text(json.dumps(doc))
    assert "not in the targeting" in platform.read_flag(FLAG).foreign_targeting


def test_unleash_refuses_an_exclusion_in_one_line():
    flag = support_flag()
    flag = flag.model_copy(update={"allocation": flag.allocation.model_copy(
        update={"excluded_segments": (("region", "eu"),)})})
    with pytest.raises(BadInput, match="excluding a segment \\(region=eu\\) is not supported on Unleash — nothing written"):
        render_strategies(flag)


# ---- the operation ------------------------------------------------------------------------------


@pytest.fixture
def setup(tmp_path):
    path = tmp_path / "flags.json"
    platform = FlagdFilePlatform(path)
    for f in demo_flags():
        platform.create_flag(support_flag(5000) if f.key == FLAG else f)
    journal = Journal(tmp_path / "journal.jsonl", operator_name="ana")
    return path, platform, journal, parse_rule(RULE)


def test_exclusion_is_journalled_with_evidence_and_confirmed_by_read_back(setup):
    path, platform, journal, rule = setup
    evidence = {"segment": {"attribute": "region", "value": "eu"}, "metrics": [{"name": "resolved_without_escalation"}]}
    result = operations.exclude_segment(rule, platform, FLAG, "region", "eu", journal, "ana", "eu resolves less",
                                        evidence=evidence)
    assert result.write is not None and result.after.allocation.excluded_segments == (("region", "eu"),)
    assert platform.read_flag(FLAG).allocation.excluded_segments == (("region", "eu"),)
    entries = list(read_entries(journal.path))
    intent, outcome = entries[-2], entries[-1]
    assert intent.kind == "intent" and intent.action == "exclude_segment" and intent.reason == "eu resolves less"
    assert intent.verdict["segment"] == {"attribute": "region", "value": "eu"}
    assert intent.after["excluded_segments"] == [["region", "eu"]]
    assert outcome.kind == "outcome" and outcome.status == "confirmed"
    assert outcome.after["excluded_segments"] == [["region", "eu"]]
    lines = operations.describe_change(result.before, result.after)
    assert any("excluded from the candidate (always baseline): none → region=eu" in line for line in lines)


def test_exclusion_refuses_unregistered_attributes_repeats_and_a_missing_reason(setup):
    path, platform, journal, rule = setup
    with pytest.raises(BadInput, match="'language' is not a pre-registered segment attribute"):
        operations.exclude_segment(rule, platform, FLAG, "language", "en", journal, "ana", "why")
    with pytest.raises(BadInput, match="needs a reason"):
        operations.exclude_segment(rule, platform, FLAG, "region", "eu", journal, "ana", "  ")
    operations.exclude_segment(rule, platform, FLAG, "region", "eu", journal, "ana", "why")
    with pytest.raises(BadInput, match="already excluded"):
        operations.exclude_segment(rule, platform, FLAG, "region", "eu", journal, "ana", "again")


def test_dry_run_writes_nothing(setup):
    path, platform, journal, rule = setup
    before = path.read_bytes()
    result = operations.exclude_segment(rule, platform, FLAG, "region", "eu", journal, "ana", "why", dry_run=True)
    assert result.write is None and result.after.allocation.excluded_segments == (("region", "eu"),)
    assert path.read_bytes() == before and list(read_entries(journal.path)) == []


def test_after_exclusion_the_simulated_units_of_that_segment_get_the_baseline(setup):
    path, platform, journal, rule = setup
    operations.exclude_segment(rule, platform, FLAG, "region", "eu", journal, "ana", "eu resolves less")
    sim = TrafficSimulator(FlagdFileEvaluator(path), get_scenario("steady"), seed=5, rate_rps=30, start_time=0)
    sim.advance_to(900)
    units = [u for u in sim.units(FLAG, 0) if rule.comparable()(u)]
    eu = [u for u in units if u.segment["region"] == "eu"]
    others = [u for u in units if u.segment["region"] != "eu"]
    assert len(eu) > 200 and all(u.arm is Arm.BASELINE for u in eu)
    # the rest of the scope still splits about half and half
    share = sum(u.arm is Arm.CANDIDATE for u in others) / len(others)
    assert 0.4 < share < 0.6


def test_rollback_keeps_the_exclusion_and_sends_everyone_to_baseline(setup):
    path, platform, journal, rule = setup
    operations.exclude_segment(rule, platform, FLAG, "region", "eu", journal, "ana", "why")
    result = operations.rollback(platform, FLAG, journal, reason="test")
    assert result.after.allocation.candidate_bp == 0 and not result.after.allocation.serves_candidate
    assert result.after.allocation.excluded_segments == (("region", "eu"),)


def test_the_main_verdict_no_longer_compares_excluded_units(setup):
    path, platform, journal, rule = setup
    operations.exclude_segment(rule, platform, FLAG, "region", "eu", journal, "ana", "why")
    flag = platform.read_flag(FLAG)
    check = operations.comparable_for(rule, flag)
    from console.core.telemetry import UnitRecord

    unit = UnitRecord(unit_id="u", flag=FLAG, arm=Arm.BASELINE, route="r", first_seen=0.0, cost_usd=0.0,
                      segment={"region": "eu", "scope": "english_support_chat"})
    assert rule.comparable()(unit) and not check(unit)
    assert check(UnitRecord(unit_id="v", flag=FLAG, arm=Arm.BASELINE, route="r", first_seen=0.0, cost_usd=0.0,
                            segment={"region": "us", "scope": "english_support_chat"}))


def test_what_the_rule_says_about_a_flagged_segment():
    from console.core.stats.segments import SegmentReadout, SegmentRow
    from console.core.stats.spec import MetricVerdict

    row = SegmentRow("region", "eu", "resolved_without_escalation", 0.5, 0.7, (-0.3, -0.1), 0.02, 200, 800, 1e9,
                     MetricVerdict.HARM)
    flagged = operations.SegmentLook(support_flag(), SegmentReadout([row], 0.05, 1), 0.0, "20%")
    clean = operations.SegmentLook(support_flag(), SegmentReadout([], 0.05, 0), 0.0, "20%")
    say = {policy: operations.segment_response(parse_rule(RULE + f"  segment_harm: {policy}\n"), flagged)
           for policy in ("report", "exclude", "rollback")}
    assert say["report"] == ["report: harm in region=eu (the rule only reports segment harm)"]
    assert say["exclude"] == ["exclude region=eu from the candidate (the rule says segment harm excludes the segment)"]
    assert say["rollback"] == ["rollback: harm in region=eu and the rule says segment harm rolls the whole candidate back"]
    assert operations.segment_response(parse_rule(RULE + "  segment_harm: rollback\n"), clean) == []
