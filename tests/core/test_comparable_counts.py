"""Request level (a source without per-unit records): the rule's scope and audience applied to the source's
unit groups, the sample-ratio and crossover gates that use them, and the cost guardrails' intervals."""

from __future__ import annotations

import numpy as np

from console.core.comparable_counts import comparable_unit_counts, predicate_attributes
from console.core.operations import comparable_for
from console.core.registry import lookup
from console.core.rules import parse_rule
from console.core.simulator.portfolio import demo_flags
from console.core.stats.engine import UnitCounts, arm_estimate, evaluate
from console.core.stats.summary import summarise_counters
from console.core.stats.spec import DecisionSpec, GateStatus, GuardrailSpec, MarginKind, StageContext, StageSpec
from console.core.telemetry import Arm, RouteCounters, RouteKey, UnitGroup

from .test_segments import RULE

FLAG = "support-answer-route"
ATTRS = ("plan", "region", "workflow", "audience", "scope")


def flag(excluded: tuple[tuple[str, str], ...] = ()):
    f = next(f for f in demo_flags() if f.key == FLAG)
    return f.model_copy(update={"allocation": f.allocation.model_copy(update={"excluded_segments": excluded})})


def group(arm: Arm, units: int, *, audience: str = "", scope: str = "english_support_chat", region: str = "eu",
          crossed: int | None = 0, flag_key: str = FLAG, stage: str = "5%") -> UnitGroup:
    route = "balanced_core_v2" if arm is Arm.CANDIDATE else "fast_default_v1"
    seg = {"plan": "pro", "region": region, "workflow": "support_answer", "audience": audience, "scope": scope}
    return UnitGroup(RouteKey(flag_key, route, arm), seg, units, crossed, stage=stage)


GROUPS = [
    group(Arm.CANDIDATE, 40, audience="internal_support_team"),  # the first audience: always on the candidate
    group(Arm.CANDIDATE, 200, crossed=6),
    group(Arm.BASELINE, 800, crossed=6),
    group(Arm.BASELINE, 3000, scope=""),  # outside the eligible scope: always on the baseline
    group(Arm.CANDIDATE, 999, flag_key="another-flag"),
]


def counts(rule_text: str = RULE, groups=GROUPS, f=None) -> UnitCounts | None:
    rule = parse_rule(rule_text)
    f = f or flag()
    return comparable_unit_counts(rule, f, groups, ATTRS, comparable_for(rule, f))


def test_only_units_in_scope_and_outside_the_first_audience_are_counted():
    got = counts()
    assert (got.candidate, got.baseline, got.crossed, got.missing) == (200, 800, 12, "")


def test_units_counted_under_the_current_stage_are_preferred():
    # the demo flag is at 5%; units the application counted while it still saw the internal stage are left out
    late = GROUPS + [group(Arm.BASELINE, 700, stage="internal"), group(Arm.CANDIDATE, 9, stage="internal")]
    assert (counts(groups=late).candidate, counts(groups=late).baseline) == (200, 800)
    # an application that labels no stage: every group counts
    unlabelled = [UnitGroup(g.key, g.segment, g.units, g.crossed, stage="unknown") for g in late]
    assert (counts(groups=unlabelled).candidate, counts(groups=unlabelled).baseline) == (209, 1500)


def test_an_excluded_segment_leaves_the_comparison():
    groups = GROUPS + [group(Arm.BASELINE, 500, region="apac")]
    assert counts(groups=groups).baseline == 1300
    assert counts(groups=groups, f=flag(excluded=(("region", "apac"),))).baseline == 800


def test_an_attribute_the_source_does_not_split_by_makes_the_counts_missing():
    rule = RULE.replace("  eligible_scope: english_support_chat\n", "  eligible_scope: english_support_chat\n"
                        "  scopes:\n    english_support_chat: {\"==\": [{\"var\": \"language\"}, \"en\"]}\n")
    got = counts(rule)
    assert "'language'" in got.missing and got.candidate == got.baseline == 0
    assert "does not split units by 'audience', 'scope'" in comparable_unit_counts(
        parse_rule(RULE), flag(), None, (), lambda g: True).missing
    # a rule without scope or audience compares every unit: the source's totals serve as they are
    bare = RULE.replace("  first_audience: internal_support_team\n", "").replace("  eligible_scope: english_support_chat\n", "")
    assert comparable_unit_counts(parse_rule(bare), flag(), None, (), lambda g: True) is None


def test_units_without_the_targeting_labels_are_named_in_a_note():
    blank = [group(Arm.CANDIDATE, 50, scope=""), group(Arm.BASELINE, 200, scope="")]
    got = counts(groups=blank)
    assert (got.candidate, got.baseline) == (0, 0) and "'scope'" in got.note
    assert counts().note == ""


def test_crossover_is_unknown_when_any_group_lacks_it():
    got = counts(groups=GROUPS[:2] + [group(Arm.BASELINE, 800, crossed=None)])
    assert got.crossed is None and got.candidate == 200


def test_predicate_attributes_reads_every_var():
    pred = {"and": [{"==": [{"var": "language"}, "en"]}, {"in": [{"var": ["team", "none"]}, ["a"]]},
                    {"!": {"var": "user.plan"}}]}
    assert predicate_attributes(pred) == {"language", "team", "user"}
    assert predicate_attributes(None) == set()


# ---- the gates at request level -----------------------------------------------------------------

SPEC = DecisionSpec(guardrails=(GuardrailSpec("error_rate", 0.01, critical=True),))
CTX = StageContext(StageSpec("20%", 2000, internal=False, min_units=100, min_dwell_s=0), elapsed_s=600,
                   intended_candidate_share=0.2)


def totals(cand_units: int, base_units: int) -> dict[Arm, RouteCounters]:
    return {Arm.CANDIDATE: RouteCounters(new_units=cand_units, requests=5000, exposures=5000, outcomes=5000),
            Arm.BASELINE: RouteCounters(new_units=base_units, requests=20000, exposures=20000, outcomes=20000)}


def gate(decision, name: str):
    return next(g for g in decision.health if g.name == name)


def test_sample_ratio_uses_the_comparable_units_not_every_unit():
    # all units: 240 candidate (incl. the first audience) of 4040 is 6% against an intended 20%
    every = evaluate(SPEC, CTX, None, totals(240, 3800))
    assert gate(every, "sample ratio").status is GateStatus.FAIL
    fair = evaluate(SPEC, CTX, None, totals(240, 3800), unit_counts=UnitCounts(200, 800, 12))
    assert gate(fair, "sample ratio").status is GateStatus.PASS
    assert fair.units_candidate == 200 and fair.units_baseline == 800


def test_crossover_is_judged_from_the_counted_units():
    ok = evaluate(SPEC, CTX, None, totals(240, 3800), unit_counts=UnitCounts(200, 800, 12))
    assert gate(ok, "crossover").status is GateStatus.PASS and "6 of 994 units" in gate(ok, "crossover").detail
    bad = evaluate(SPEC, CTX, None, totals(240, 3800), unit_counts=UnitCounts(200, 800, 200))
    assert gate(bad, "crossover").status is GateStatus.FAIL


def test_missing_counts_are_no_data_never_a_pass():
    d = evaluate(SPEC, CTX, None, totals(240, 3800), unit_counts=UnitCounts(missing="no split by 'language'"))
    assert gate(d, "sample ratio").status is GateStatus.NO_DATA and "language" in gate(d, "sample ratio").detail
    assert gate(d, "crossover").status is GateStatus.NO_DATA
    unknown = evaluate(SPEC, CTX, None, totals(240, 3800), unit_counts=UnitCounts(200, 800, None))
    assert gate(unknown, "crossover").status is GateStatus.NO_DATA
    assert gate(unknown, "sample ratio").status is GateStatus.PASS


# ---- cost guardrails at request level ------------------------------------------------------------


def _replicate(rng, n: int) -> RouteCounters:
    """``n`` independent requests whose cost and resolution are correlated (dearer requests resolve more)."""
    cost = rng.lognormal(-6.5, 0.8, n)
    resolved = rng.random(n) < np.clip(0.5 + 40 * (cost - cost.mean()), 0.05, 0.95)
    return RouteCounters(requests=n, cost_usd=float(cost.sum()), cost_sq_usd=float(np.dot(cost, cost)),
                         resolved=int(resolved.sum()), outcomes=n)


def test_cost_intervals_at_request_level_cover_the_real_spread():
    rng = np.random.default_rng(3)
    reps = [_replicate(rng, 2000) for _ in range(400)]
    for name in ("cost_per_request", "cost_per_resolved_case"):
        metric = lookup(name)
        estimates = [arm_estimate(summarise_counters(c), metric) for c in reps]
        observed = float(np.var([e.value for e in estimates], ddof=1))
        claimed = float(np.mean([e.variance for e in estimates]))
        # per request the variance is the plain one; per resolved case the worst case correlation can only widen it
        assert 0.8 * observed <= claimed, (name, observed, claimed)
        assert claimed <= (1.3 if name == "cost_per_request" else 4.0) * observed, (name, observed, claimed)


def test_cost_guardrail_has_an_interval_only_with_the_squared_cost():
    spec = DecisionSpec(guardrails=(GuardrailSpec("cost_per_resolved_case", 0.3, MarginKind.RELATIVE),))
    rng = np.random.default_rng(4)
    with_sq = {Arm.CANDIDATE: _replicate(rng, 3000), Arm.BASELINE: _replicate(rng, 12000)}
    d = evaluate(spec, CTX, None, with_sq, unit_counts=UnitCounts(600, 2400, 0))
    assert d.metrics[0].interval is not None and d.metrics[0].verdict.value == "non-inferior", d.metrics[0].line
    for c in with_sq.values():
        c.cost_sq_usd = 0.0  # an application that exports no squared cost
    d = evaluate(spec, CTX, None, with_sq, unit_counts=UnitCounts(600, 2400, 0))
    assert d.metrics[0].interval is None and "no spread of a request's cost" in d.metrics[0].line


def test_more_outcomes_than_exposures_is_never_a_passing_join():
    broken = totals(240, 3800)
    broken[Arm.CANDIDATE].outcomes = 3 * broken[Arm.CANDIDATE].exposures  # e.g. counters read across a restart
    d = evaluate(SPEC, CTX, None, broken, unit_counts=UnitCounts(200, 800, 0))
    join = gate(d, "exposure→outcome join")
    assert join.status is GateStatus.WAIT and "more outcomes than exposures" in join.detail
    fine = evaluate(SPEC, CTX, None, totals(240, 3800), unit_counts=UnitCounts(200, 800, 0))
    assert gate(fine, "exposure→outcome join").status is GateStatus.PASS
