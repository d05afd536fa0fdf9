"""The guardrail benchmark compares gbstats with routedeck on the same margins (benchmarks/guardrails.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("guardrails_bench", ROOT / "benchmarks" / "guardrails.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["guardrails_bench"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stage", ["5%", "20%", "full"])
def test_gbstats_is_given_the_margin_routedeck_judges_at_each_stage(bench, stage):
    # the primary metric (resolved_without_escalation) is 5 points at 5%, 3 points later: gbstats was given 3 points
    # at 5% (the primary's per-stage margins were dropped), so it "detected" a −5-point candidate that routedeck,
    # at its 5-point margin, rightly did not call harm
    spec = bench.rules()["ni"].spec
    compared = {}
    for g in bench.compared_guardrails(spec):
        compared.setdefault(g.metric, set()).add(g.at_stage(stage).margin)
    judged = {}
    for g in spec.guardrails:
        judged.setdefault(g.metric, set()).add(g.at_stage(stage).margin)
    p = spec.primary
    judged.setdefault(p.metric, set()).add(dict(p.stage_margins).get(stage, p.margin))
    for metric, margins in compared.items():
        assert margins == judged[metric], metric
    assert compared["resolved_without_escalation"] == ({0.05} if stage == "5%" else {0.03})
