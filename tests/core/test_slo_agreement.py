"""Every metrics source says the SLO it counts in-SLO requests at, every SPEC can set it, and the engine judges a
metric computed from that count only for a rule whose latency_slo_ms is the same (tests/events/test_slo_agreement.py
runs it through the core on the simulator and the events source)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adapters.metrics.clickhouse import ClickHouseSource
from adapters.metrics.prometheus import PrometheusSource
from adapters.metrics.simulated import SimulatedMetricsSource
from console.backends import open_metrics
from console.core.errors import BadInput
from console.core.stats.engine import evaluate
from console.core.stats.spec import (
    DecisionSpec,
    GuardrailSpec,
    MetricVerdict,
    PrimarySpec,
    StageContext,
    StageSpec,
    Verdict,
    slo_mismatch,
)
from console.core.telemetry import DEFAULT_SLO_MS, Arm

from .test_stats_engine import make_units
from .test_sim_traffic import write_flags

SPEC = DecisionSpec(
    alpha=0.05,
    guardrails=(GuardrailSpec("error_rate", 0.01, critical=True), GuardrailSpec("slo_attainment", 0.03)),
    primary=PrimarySpec("resolved_without_escalation", margin=0.03),
    latency_slo_ms=2000,
)
CTX = StageContext(StageSpec("20%", 2000, internal=False, min_units=1000, min_dwell_s=600), elapsed_s=3600,
                   intended_candidate_share=0.5)
REASON = "the metrics source counts the SLO at 2500 ms, the rule says 2000 ms — add slo_ms=2000 to the metrics SPEC (--metrics or the profile's metrics =)"


@pytest.fixture(scope="module")
def units():
    return make_units(Arm.CANDIDATE, 4000, seed=2) + make_units(Arm.BASELINE, 4000, seed=1)


def test_a_source_at_the_rules_slo_lets_the_look_advance(units):
    for counted in (None, 2000.0):
        d = evaluate(replace(SPEC, source_slo_ms=counted), CTX, units, None)
        assert d.verdict is Verdict.ADVANCE, d.reasons
        assert next(m for m in d.metrics if m.name == "slo_attainment").verdict is MetricVerdict.NON_INFERIOR


def test_a_source_at_another_slo_holds_and_says_how_to_fix_it(units):
    d = evaluate(replace(SPEC, source_slo_ms=DEFAULT_SLO_MS), CTX, units, None)
    assert d.verdict is Verdict.HOLD
    slo = next(m for m in d.metrics if m.name == "slo_attainment")
    assert slo.verdict is MetricVerdict.NO_DATA and not slo.judged and slo.note == REASON
    assert slo.candidate is None and slo.interval is None  # no number counted at the wrong SLO is shown
    assert REASON in slo.line
    (hold,) = [r for r in d.reasons if r.startswith("hold:")]
    assert hold.startswith(f"hold: slo_attainment not judged yet ({REASON}) — slo_attainment ")
    # the other metrics are judged as before, and more data would not help: no ETA, the reason instead
    assert {m.verdict for m in d.metrics if m.name != "slo_attainment"} == {MetricVerdict.NON_INFERIOR}
    assert d.eta_s is None and d.eta_note == REASON


def test_an_slo_primary_metric_is_not_judged_either(units):
    spec = replace(SPEC, guardrails=(GuardrailSpec("error_rate", 0.01),), primary=PrimarySpec("slo_attainment", 0.03),
                   source_slo_ms=DEFAULT_SLO_MS)
    d = evaluate(spec, CTX, units, None)
    assert d.verdict is Verdict.HOLD and any("primary metric slo_attainment" in r and REASON in r for r in d.reasons)
    assert evaluate(replace(spec, source_slo_ms=2000.0), CTX, units, None).verdict is Verdict.ADVANCE


def test_a_rule_without_slo_metrics_is_not_held_by_the_sources_slo(units):
    spec = replace(SPEC, guardrails=(GuardrailSpec("error_rate", 0.01),), source_slo_ms=DEFAULT_SLO_MS)
    assert slo_mismatch(spec) == REASON
    d = evaluate(spec, CTX, units, None)
    assert d.verdict is Verdict.ADVANCE and not any(REASON in r for r in d.reasons)


# ---- SPECs ------------------------------------------------------------------------------------------------------


def test_every_spec_takes_slo_ms(tmp_path):
    flags = tmp_path / "flags.json"
    write_flags(flags, 500)
    sim = open_metrics("sim:steady?seed=3&slo_ms=2000", f"flagd:{flags}")
    assert sim.slo_ms == 2000 and sim.sim.slo_ms == 2000 and sim.describe().endswith("&slo_ms=2000")
    assert open_metrics("sim:steady", f"flagd:{flags}").slo_ms == DEFAULT_SLO_MS
    prom = PrometheusSource.from_spec("prometheus:http://127.0.0.1:9/?slo_ms=1800")
    assert prom.slo_ms == 1800 and prom.base_url == "http://127.0.0.1:9" and prom.describe().endswith("?slo_ms=1800")
    assert PrometheusSource.from_spec("prometheus:http://127.0.0.1:9").slo_ms == DEFAULT_SLO_MS
    house = ClickHouseSource.from_spec("clickhouse:http://127.0.0.1:9?database=d&table=t&slo_ms=3000")
    assert house.slo_ms == 3000 and house.describe().endswith("&slo_ms=3000")
    assert ClickHouseSource.from_spec("clickhouse:http://127.0.0.1:9").slo_ms == DEFAULT_SLO_MS
    events = open_metrics(f"events:{tmp_path}?slo_ms=1500", None)
    try:
        assert events.slo_ms == 1500
    finally:
        events.close()


@pytest.mark.parametrize("spec", ["sim:steady?slo_ms=fast", "sim:steady?slo_ms=0", "prometheus:http://h:9?slo_ms=-1",
                                  "clickhouse:http://h:9?slo_ms=nan", "events:{dir}?slo_ms=inf"])
def test_a_bad_slo_ms_is_a_one_line_error_naming_it(tmp_path, spec):
    flags = tmp_path / "flags.json"
    write_flags(flags, 500)
    with pytest.raises(BadInput, match=r"slo_ms=.* must be a number of milliseconds above 0") as caught:
        open_metrics(spec.format(dir=tmp_path), f"flagd:{flags}")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("--metrics '")


def test_prometheus_takes_no_other_option():
    with pytest.raises(BadInput, match="unknown option 'step'"):
        PrometheusSource.from_spec("prometheus:http://127.0.0.1:9?step=5")


# ---- the demo ---------------------------------------------------------------------------------------------------


def test_the_demo_opens_its_simulator_at_the_rules_slo(tmp_path):
    from console.commands.demo import DEMO_RULE, load_demo

    tight = tmp_path / "rule-2000.yaml"
    tight.write_text(DEMO_RULE.read_text().replace("  auto_rollback: true\n", "  auto_rollback: true\n  latency_slo_ms: 2000\n"))
    for rules, want in (([DEMO_RULE], DEFAULT_SLO_MS), ([tight], 2000), ([DEMO_RULE, tight], DEFAULT_SLO_MS), (None, DEFAULT_SLO_MS)):
        _, metrics, _, _, loaded, _ = load_demo(tmp_path / "state", None, 7, 1.0, rules)
        try:
            assert metrics.slo_ms == want and metrics.sim.slo_ms == want
        finally:
            metrics.close()
