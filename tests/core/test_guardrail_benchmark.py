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


def _looks(bench, stage: str, seed: int, change: dict | None = None, every: int = 1):
    """(look, ctx, candidate summary, baseline summary) along one run of the benchmark's traffic."""
    import numpy as np

    from console.core.stats.spec import StageContext

    rule = bench.rules()["ni"]
    st = bench.stage_spec(rule, stage)
    horizon = 2 * st.min_dwell_s
    looks, units, values, buckets, cand_of, _ = bench.traffic(seed, stage, change or {}, horizon, False)
    acc = bench.Accumulator(len(cand_of), cand_of, False)
    n_looks = int(horizon // bench.LOOK_S)
    bounds = np.searchsorted(looks, np.arange(n_looks + 2), side="left")
    for k in range(1, n_looks + 1):
        acc.add(units[bounds[k]:bounds[k + 1]], values[bounds[k]:bounds[k + 1]], buckets[bounds[k]:bounds[k + 1]])
        if k % every:
            continue
        ctx = StageContext(st, k * bench.LOOK_S, has_control=stage != "internal",
                           intended_candidate_share=bench.stage_share(stage) if stage != "internal" else None,
                           segments=bool(rule.segments))
        yield k, ctx, acc.summary(True), acc.summary(False)


def test_the_seed_rules_advance_is_decides_own(bench):
    from console.core.stats.engine import alpha_budget, decide
    from console.core.stats.spec import Verdict

    assert bench.check_rules() is None
    ni, seed = bench.rules()["ni"], bench.rules()["seed"]
    budget = alpha_budget(ni.spec, bool(ni.segments))
    seen = {True: 0, False: 0}
    for stage, seeds in (("20%", (1, 2, 3)), ("internal", (1,))):
        for s in seeds:
            for _k, ctx, cand, base in _looks(bench, stage, s, every=3):
                if decide(ni.spec, ctx, cand, base, with_eta=False).verdict is not Verdict.ADVANCE:
                    continue
                want = decide(seed.spec, ctx, cand, base, with_eta=False).verdict is Verdict.ADVANCE
                assert bench.seed_advances(seed.spec, ctx, cand, base, budget) == want
                seen[want] += 1
    assert seen[False] > 0  # the comparison saw the NI rule advance where the seed rule does not


@pytest.mark.comparator
def test_the_gbstats_screen_never_changes_gbstats_answer(bench):
    # gbstats is a benchmark-only dependency: `make bench` runs this before the benchmark, `make test` deselects it
    from console.core.stats.engine import alpha_budget
    from console.core.stats.spec import MarginKind

    rule = bench.rules()["ni"]
    alpha = alpha_budget(rule.spec, bool(rule.segments)).per_test
    compared = bench.compared_guardrails(rule.spec)
    checked = near = 0
    for stage, change in (("5%", {}), ("20%", {"resolve": -0.05}), ("5%", {"tokens": 1.5})):
        for _k, _ctx, cand, base in _looks(bench, stage, 7, change, every=15):
            for g in compared:
                g_at = g.at_stage(stage)
                margins = [(g_at.margin, g_at.margin_kind), (0.0, MarginKind.ABSOLUTE)]
                # and margins right at gbstats' own bound, where only exact agreement keeps the answer
                for margin, kind in list(margins):
                    for edge in _edges(bench, g.metric, kind, cand, base, alpha):
                        margins.append((edge, kind))
                for margin, kind in margins:
                    want = bench.gbstats_call(g.metric, margin, kind, cand, base, alpha)
                    got = bench.gbstats_harm(g.metric, margin, kind, cand, base, alpha)
                    assert bool(got) == bool(want), (g.metric, margin, kind)
                    checked += 1
                    near += bench.gbstats_screen(g.metric, margin, kind, cand, base, alpha) is None
    assert checked > 200 and near > 10


def _edges(bench, metric_name, kind, cand, base, alpha):
    """Margins a hair either side of gbstats' harm-side bound (when it gives one)."""
    import math

    from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
    from gbstats.models.statistics import RatioStatistic, SampleMeanStatistic

    from console.core.registry import lookup
    from console.core.stats.spec import MarginKind

    metric = lookup(metric_name)
    num, den = metric.numerator, metric.denominator

    def stat(s):
        if s.units < 2 or s.product(num, den) is None or s.sums.get(den, 0) <= 0:
            return None
        return RatioStatistic(n=s.units, m_statistic=SampleMeanStatistic(n=s.units, sum=s.sums[num], sum_squares=s.squares[num]),
                              d_statistic=SampleMeanStatistic(n=s.units, sum=s.sums[den], sum_squares=s.squares[den]),
                              m_d_sum_of_products=s.product(num, den))

    a, b = stat(base), stat(cand)
    if a is None or b is None:
        return []
    config = SequentialConfig(difference_type="relative" if kind is MarginKind.RELATIVE else "absolute", alpha=alpha)
    result = SequentialTwoSidedTTest(a, b, config).compute_result()
    if result.error_message or any(v is None or math.isnan(v) for v in result.ci):
        return []
    bound = result.ci[0] if metric.worse_is_higher else -result.ci[1]
    width = abs(result.ci[1] - result.ci[0]) / 2
    return [bound + f * width for f in (-1e-3, -1e-9, 1e-9, 1e-3)]
