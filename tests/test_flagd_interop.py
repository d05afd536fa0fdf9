"""The official flagd evaluator serves exactly the split routedeck writes, with nested cohorts."""

from __future__ import annotations

import math

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from adapters.flags.flagd_file import FlagdFilePlatform
from console.core.models import Allocation, RouteFlag, RouteProfile

FLAG = "support-answer-route"
N = 12_000


def make_flag() -> RouteFlag:
    return RouteFlag(
        key=FLAG,
        variations={"fast_default_v1": RouteProfile(route="fast_default_v1"),
                    "balanced_core_v2": RouteProfile(route="balanced_core_v2")},
        baseline="fast_default_v1",
        candidate="balanced_core_v2",
        allocation=Allocation(internal_audience="internal_support_team", eligible_scope="english_support_chat"),
    )


def serve(path, contexts) -> list[str]:
    core = FlagdCore()
    core.set_flags(path.read_text())
    return [core.resolve_object_value(FLAG, {}, ctx).variant for ctx in contexts]


def in_scope(i: int) -> EvaluationContext:
    return EvaluationContext(targeting_key=f"unit-{i}", attributes={"scope": "english_support_chat"})


def test_split_within_sampling_error_cohorts_nested_and_rollback_total(tmp_path):
    path = tmp_path / "flags.json"
    platform = FlagdFilePlatform(path)
    platform.create_flag(make_flag())
    units = [in_scope(i) for i in range(N)]
    outside = [EvaluationContext(targeting_key=f"unit-{i}", attributes={"scope": "french_email"}) for i in range(2000)]
    internal = [EvaluationContext(targeting_key=f"staff-{i}", attributes={"audience": "internal_support_team"}) for i in range(200)]

    cohorts = {}
    for bp in (500, 2000):
        flag = platform.read_flag(FLAG)
        platform.set_allocation(FLAG, flag.allocation.model_copy(update={"internal_enabled": True, "candidate_bp": bp}), flag.revision)
        served = serve(path, units)
        got = sum(v == "balanced_core_v2" for v in served) / N
        p = bp / 10_000
        assert abs(got - p) < 4 * math.sqrt(p * (1 - p) / N), (bp, got)
        cohorts[bp] = {i for i, v in enumerate(served) if v == "balanced_core_v2"}
        assert set(serve(path, outside)) == {"fast_default_v1"}  # never outside the eligible scope
        assert set(serve(path, internal)) == {"balanced_core_v2"}  # the first audience is on
    assert cohorts[500] <= cohorts[2000]  # every unit that had the candidate at 5% keeps it at 20%

    platform.rollback_to_baseline(FLAG)
    assert set(serve(path, units + outside + internal)) == {"fast_default_v1"}
