"""routedeck's flagd files evaluated by the official evaluators of two languages — Python
(``openfeature-flagd-core``) and JavaScript (``@openfeature/flagd-core`` 4.0.1, run by node from
``servers/flagd-js``, installed by ``scripts/install-servers.sh``) — unit by unit.

Both serve the shares routedeck wrote; they put different units in the cohort. The fleet bucketing
rule (``console.core.fleet``) predicts each evaluator exactly, and the simulator follows the rule the
profile declares. A missing node or evaluator is a failure here, never a skip.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from adapters.flags.flagd_file import FlagdFilePlatform
from console.core.fleet import fractional_variant
from console.core.simulator.evaluator import FlagdFileEvaluator
from tests.contract.implementations import BASELINE, CANDIDATE, FLAG, seed_flag

ROOT = Path(__file__).parents[1]
JS_DIR = ROOT / "servers" / "flagd-js"
UNITS = 4000
SCOPE = {"scope": "english_support_chat"}


def js_evaluate(flag_file: Path, contexts: list[dict]) -> tuple[str, list[str | None]]:
    """(evaluator version, variant per context) from the official JavaScript evaluator."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the cross-language test needs it (scripts/install-servers.sh)")
    if not (JS_DIR / "node_modules" / "@openfeature" / "flagd-core").is_dir():
        pytest.fail("@openfeature/flagd-core is not installed in servers/flagd-js — run scripts/install-servers.sh")
    done = subprocess.run([node, str(JS_DIR / "evaluate.mjs")], cwd=JS_DIR, capture_output=True, text=True,
                          timeout=60, input=json.dumps({"file": flag_file.read_text(), "flag": FLAG,
                                                        "contexts": contexts}))
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    return out["version"], out["variants"]


def py_evaluate(flag_file: Path, contexts: list[dict]) -> list[str | None]:
    core = FlagdCore()
    core.set_flags(flag_file.read_text())
    out = []
    for ctx in contexts:
        attrs = {k: v for k, v in ctx.items() if k != "targetingKey"}
        out.append(core.resolve_object_value(FLAG, {}, EvaluationContext(ctx["targetingKey"], attrs)).variant)
    return out


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    FlagdFilePlatform(path).create_flag(seed_flag())
    return path


def set_share(path: Path, bp: int) -> None:
    platform = FlagdFilePlatform(path)
    flag = platform.read_flag(FLAG)
    platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": bp, "internal_enabled": True}),
                            flag.revision)


def within_sampling_error(hits: int, n: int, p: float) -> bool:
    return abs(hits / n - p) <= 4 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("bp", [500, 2000])
def test_both_evaluators_serve_the_share_and_each_follows_its_own_bucketing_rule(flag_file: Path, bp: int) -> None:
    set_share(flag_file, bp)
    contexts = [{"targetingKey": f"user-{i}", **SCOPE} for i in range(UNITS)]
    version, js = js_evaluate(flag_file, contexts)
    py = py_evaluate(flag_file, contexts)
    assert version == "4.0.1"
    p = bp / 10_000
    for variants in (js, py):
        assert set(variants) == {BASELINE, CANDIDATE}
        assert within_sampling_error(variants.count(CANDIDATE), UNITS, p), variants.count(CANDIDATE)
    weights = [(CANDIDATE, bp), (BASELINE, 10_000 - bp)]
    # unit by unit, each evaluator is exactly the rule routedeck says it uses
    assert js == [fractional_variant("concat", FLAG, c["targetingKey"], weights) for c in contexts]
    assert py == [fractional_variant("cbor", FLAG, c["targetingKey"], weights) for c in contexts]
    # and the two rules agree on a unit no better than chance: a mixed fleet splits users between routes
    agree = sum(a == b for a, b in zip(js, py)) / UNITS
    chance = p * p + (1 - p) * (1 - p)
    assert abs(agree - chance) <= 4 * math.sqrt(chance * (1 - chance) / UNITS), (agree, chance)
    # outside the scope and inside the internal audience the two agree exactly (no bucketing there)
    fixed = [{"targetingKey": f"x-{i}", "scope": "billing_chat"} for i in range(200)] + \
            [{"targetingKey": f"y-{i}", "audience": "internal_support_team"} for i in range(200)]
    assert js_evaluate(flag_file, fixed)[1] == py_evaluate(flag_file, fixed) == [BASELINE] * 200 + [CANDIDATE] * 200


@pytest.mark.parametrize("rule", ["cbor", "concat"])
def test_the_simulator_assigns_units_as_the_declared_fleet_does(flag_file: Path, rule: str) -> None:
    set_share(flag_file, 2000)
    contexts = [{"targetingKey": f"unit-{i}", **SCOPE} for i in range(1500)]
    official = js_evaluate(flag_file, contexts)[1] if rule == "concat" else py_evaluate(flag_file, contexts)
    sim = FlagdFileEvaluator(flag_file, fleet=rule)
    assert sim.services == 1
    served = [sim.evaluate(FLAG, c["targetingKey"], SCOPE)[0] for c in contexts]
    assert served == official


def test_a_mixed_fleet_serves_one_unit_both_routes_in_the_simulator(flag_file: Path) -> None:
    set_share(flag_file, 2000)
    sim = FlagdFileEvaluator(flag_file, fleet="mixed")
    assert sim.services == 2
    both = sum(sim.evaluate(FLAG, f"unit-{i}", SCOPE, service=0)[0] != sim.evaluate(FLAG, f"unit-{i}", SCOPE, service=1)[0]
               for i in range(2000))
    # a unit on the candidate under one rule is on it under the other only by chance (2 × 0.2 × 0.8 ≈ 32% differ)
    assert 0.25 < both / 2000 < 0.39, both
