"""The official flagd evaluator serves exactly the split routedeck writes, with nested cohorts.

The file is written through FlagdFilePlatform and evaluated with ``openfeature-flagd-core``, as
an application's in-process flagd provider would evaluate it.
"""

from __future__ import annotations

import math
from pathlib import Path

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from adapters.flags.flagd_file import FlagdFilePlatform
from console.core.models import Allocation, RouteFlag, RouteProfile

FLAG = "support-answer-route"
BASELINE, CANDIDATE = "fast_default_v1", "balanced_core_v2"
N = 12_000


def make_flag(scope: str | None = "english_support_chat") -> RouteFlag:
    return RouteFlag(
        key=FLAG,
        variations={BASELINE: RouteProfile(route=BASELINE, timeoutMs=6000),
                    CANDIDATE: RouteProfile(route=CANDIDATE, maxOutputTokens=900, fallback=BASELINE)},
        baseline=BASELINE,
        candidate=CANDIDATE,
        allocation=Allocation(internal_audience="internal_support_team", eligible_scope=scope),
    )


def serve(path: Path, contexts: list[EvaluationContext]) -> list[str]:
    core = FlagdCore()
    core.set_flags(path.read_text())
    return [core.resolve_object_value(FLAG, {}, ctx).variant for ctx in contexts]


def units(prefix: str, n: int, **attributes: str) -> list[EvaluationContext]:
    return [EvaluationContext(targeting_key=f"{prefix}-{i}", attributes=attributes) for i in range(n)]


def move(platform: FlagdFilePlatform, bp: int, internal: bool) -> None:
    flag = platform.read_flag(FLAG)
    update = {"internal_enabled": internal, "candidate_bp": bp}
    platform.set_allocation(FLAG, flag.allocation.model_copy(update=update), flag.revision)


def assert_share(served: list[str], bp: int) -> None:
    got = sum(v == CANDIDATE for v in served) / len(served)
    p = bp / 10_000
    assert abs(got - p) < 4 * math.sqrt(p * (1 - p) / len(served)), (bp, got)


def test_stages_serve_their_share_nested_and_rollback_serves_baseline_to_all(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    platform = FlagdFilePlatform(path)
    platform.create_flag(make_flag())
    in_scope = units("unit", N, scope="english_support_chat")
    outside = units("unit", 2000, scope="french_email")
    internal = units("staff", 200, audience="internal_support_team")

    assert set(serve(path, in_scope[:2000] + outside + internal)) == {BASELINE}  # nothing moved yet

    move(platform, 0, internal=True)  # internal stage: only the first audience
    assert set(serve(path, internal)) == {CANDIDATE}
    assert set(serve(path, in_scope[:2000] + outside)) == {BASELINE}

    cohorts: dict[int, set[int]] = {}
    for bp in (500, 2000):
        move(platform, bp, internal=True)
        served = serve(path, in_scope)
        assert_share(served, bp)
        cohorts[bp] = {i for i, v in enumerate(served) if v == CANDIDATE}
        assert set(serve(path, outside)) == {BASELINE}  # never outside the eligible scope
        assert set(serve(path, internal)) == {CANDIDATE}  # the first audience stays on
    assert cohorts[500] <= cohorts[2000], len(cohorts[500] - cohorts[2000])  # 5% ⊂ 20%

    move(platform, 2000, internal=False)  # the audience switched off: staff outside scope get baseline
    assert set(serve(path, internal)) == {BASELINE}

    move(platform, 10_000, internal=True)
    assert set(serve(path, in_scope[:2000])) == {CANDIDATE}
    assert set(serve(path, outside)) == {BASELINE}

    platform.rollback_to_baseline(FLAG)
    assert set(serve(path, in_scope + outside + internal)) == {BASELINE}


def test_without_an_eligible_scope_the_split_covers_everyone(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    platform = FlagdFilePlatform(path)
    platform.create_flag(make_flag(scope=None))
    anyone = units("unit", N, region="eu")
    move(platform, 500, internal=False)
    five = serve(path, anyone)
    assert_share(five, 500)
    move(platform, 2000, internal=False)
    twenty = serve(path, anyone)
    assert_share(twenty, 2000)
    assert all(b == CANDIDATE for a, b in zip(five, twenty) if a == CANDIDATE)
    platform.rollback_to_baseline(FLAG)
    assert set(serve(path, anyone[:2000])) == {BASELINE}
