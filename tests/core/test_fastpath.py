"""The aggregate path used by the guardrail benchmark agrees with the request-level simulator and with flagd."""

from __future__ import annotations

import numpy as np
import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from adapters.flags.flagd_file import FlagdFilePlatform
from console.core.simulator import get_scenario
from console.core.simulator.fastpath import FLAG, UnitPool, run_stage
from console.core.simulator.portfolio import demo_flags
from console.core.telemetry import Arm

from .test_sim_traffic import make_sim


def test_arms_are_the_official_evaluators(tmp_path):
    path = tmp_path / "flags.json"
    platform = FlagdFilePlatform(path)
    flag = next(f for f in demo_flags() if f.key == FLAG)
    platform.create_flag(flag.model_copy(update={"allocation": flag.allocation.model_copy(update={"candidate_bp": 2000})}))
    core = FlagdCore()
    core.set_flags(path.read_text())
    pool = UnitPool.make(n=3000, seed=5)
    served = np.array([
        core.resolve_object_value(FLAG, {}, EvaluationContext(targeting_key=uid, attributes={"scope": "english_support_chat"})).variant
        == "balanced_core_v2"
        for uid in pool.ids
    ])
    np.testing.assert_array_equal(served, pool.bucket < 2000)


def _rates(cols: dict[str, np.ndarray]) -> dict[str, float]:
    s = {k: float(v.sum()) for k, v in cols.items()}
    return {
        "fallback": s["fallbacks"] / s["requests"],
        "slo": s["slo_met"] / s["requests"],
        "resolved": s["resolved"] / s["outcomes"],
        "cost_per_request": s["cost_usd"] / s["requests"],
        "join": s["outcomes"] / s["exposures"],
        "requests_per_unit": s["requests"] / len(cols["requests"]),
    }


@pytest.mark.parametrize("scenario", ["steady", "latency-regression", "provider-outage", "join-break"])
def test_rates_match_the_request_level_simulator(tmp_path, scenario):
    seconds = 900
    fast = run_stage(UnitPool.make(), get_scenario(scenario), seed=1, candidate_bp=5000, seconds=seconds, rate_rps=14)
    f_cand, f_base = fast.at(len(fast.look_times) - 1)

    sim = make_sim(tmp_path, scenario=scenario, seed=4, bp=5000, rate=30)
    sim.advance_to(sim.start_time + seconds)
    units = [u for u in sim.units(FLAG, sim.start_time, 120)
             if u.segment.get("scope") == "english_support_chat" and u.segment.get("internal") == "no"]
    fields = ("requests", "fallbacks", "slo_met", "resolved", "outcomes", "cost_usd", "exposures")

    def cols(arm):
        chosen = [u for u in units if u.arm is arm]
        return {f: np.array([getattr(u, f) for u in chosen], dtype=float) for f in fields}

    for fast_cols, slow_cols in ((f_cand, cols(Arm.CANDIDATE)), (f_base, cols(Arm.BASELINE))):
        a, b = _rates(fast_cols), _rates(slow_cols)
        for key in ("fallback", "slo", "resolved", "join"):
            assert a[key] == pytest.approx(b[key], abs=0.04), (scenario, key, a[key], b[key])
        assert a["cost_per_request"] == pytest.approx(b["cost_per_request"], rel=0.15), scenario
