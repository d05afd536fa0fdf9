"""A rule's latency_slo_ms against the SLO its metrics source counts at: judged only when they agree.

The rollout is the demo's at 20% on the simulator, written as event records too; the demo rule's SLO is
the default 2500 ms, and a copy of it says 2000 ms.
"""

from __future__ import annotations

import pytest

from console.backends import open_metrics
from console.commands.demo import DEMO_RULE
from console.core import operations as ops
from console.core.rules import parse_rule
from console.core.stats.spec import MetricVerdict, Verdict

from .helpers import shared_rollout

MISMATCH = ("the metrics source counts the SLO at 2500 ms, the rule says 2000 ms — "
            "add slo_ms=2000 to the metrics SPEC (--metrics or the profile's metrics =)")


def rule_at(slo_ms: int, extra: str = ""):
    text = DEMO_RULE.read_text()
    assert "latency_slo_ms" not in text  # the demo rule takes the default, which the demo's simulator counts at
    anchor = "  auto_rollback: true\n"
    return parse_rule(text.replace(anchor, f"{anchor}  latency_slo_ms: {slo_ms}\n{extra}"), f"rule-{slo_ms}.yaml")


def slo_readout(decision):
    (readout,) = [m for m in decision.metrics if m.name == "slo_attainment"]
    return readout


def assert_not_judged_for_the_slo(decision) -> None:
    m = slo_readout(decision)
    assert m.verdict is MetricVerdict.NO_DATA and not m.judged
    assert m.note == MISMATCH and m.candidate is None and m.baseline is None and m.interval is None
    assert any(r.startswith(f"hold: slo_attainment not judged yet ({MISMATCH}) — ") for r in decision.reasons)
    assert decision.verdict is not Verdict.ADVANCE
    assert decision.eta_s is None and decision.eta_note == MISMATCH


def test_the_simulator_at_2500_does_not_judge_a_rule_at_2000(tmp_path_factory):
    r = shared_rollout(tmp_path_factory)
    assert r.sim.slo_ms == 2500
    assert_not_judged_for_the_slo(ops.look(rule_at(2000), r.platform, r.sim).decision)
    # the same look, the same source: the rule at the source's SLO judges it
    same = slo_readout(ops.look(rule_at(2500), r.platform, r.sim).decision)
    assert same.judged and same.note == "" and 0.5 < same.candidate < 1


def test_the_simulator_opened_at_the_rules_slo_counts_at_it(tmp_path_factory):
    at_2500 = shared_rollout(tmp_path_factory)
    at_2000 = shared_rollout(tmp_path_factory, slo_ms=2000)
    wide = slo_readout(ops.look(rule_at(2500), at_2500.platform, at_2500.sim).decision)
    tight = slo_readout(ops.look(rule_at(2000), at_2000.platform, at_2000.sim).decision)
    assert tight.judged and tight.note == ""
    # the same traffic, fewer requests inside the tighter SLO
    assert (tight.n_candidate, tight.n_baseline) == (wide.n_candidate, wide.n_baseline)
    assert tight.candidate < wide.candidate - 0.01 and tight.baseline < wide.baseline - 0.01


def test_events_count_at_the_slo_their_spec_names(tmp_path_factory):
    r = shared_rollout(tmp_path_factory)
    flags = f"flagd:{r.flags_path}"
    default = open_metrics(f"events:{r.events_dir}", flags, clock=r.sim.now)
    tight = open_metrics(f"events:{r.events_dir}?slo_ms=2000", flags, clock=r.sim.now)
    try:
        assert default.slo_ms == 2500 and tight.slo_ms == 2000 and tight.describe().endswith("?slo_ms=2000")
        assert_not_judged_for_the_slo(ops.look(rule_at(2000), r.platform, default).decision)
        judged = slo_readout(ops.look(rule_at(2000), r.platform, tight).decision)
        wide = slo_readout(ops.look(rule_at(2500), r.platform, default).decision)
    finally:
        default.close()
        tight.close()
    assert judged.judged and judged.note == ""
    assert judged.candidate < wide.candidate - 0.01
    # what the simulator counts at 2000 ms on the same traffic
    on_sim = shared_rollout(tmp_path_factory, slo_ms=2000)
    sim_tight = slo_readout(ops.look(rule_at(2000), on_sim.platform, on_sim.sim).decision)
    assert judged.candidate == pytest.approx(sim_tight.candidate, rel=1e-12)
    assert judged.baseline == pytest.approx(sim_tight.baseline, rel=1e-12)


def test_segment_rows_of_the_slo_metric_are_not_judged_either(tmp_path_factory):
    r = shared_rollout(tmp_path_factory)
    readout = ops.look_segments(rule_at(2000, "  segments: [region]\n"), r.platform, r.sim).readout
    slo_rows = [row for row in readout.rows if row.metric == "slo_attainment"]
    assert slo_rows and all(row.verdict is MetricVerdict.NO_DATA and row.note == MISMATCH for row in slo_rows)
    assert not any(row.harm for row in slo_rows)
    # at the source's SLO the same rows hold numbers
    agreed = ops.look_segments(rule_at(2500, "  segments: [region]\n"), r.platform, r.sim).readout
    assert all(row.candidate is not None for row in agreed.rows if row.metric == "slo_attainment")
