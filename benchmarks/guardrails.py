"""How often each decision method rolls back an identical candidate, and how fast it catches real regressions.

For every scenario, N seeded runs of one stage (the 20% stage: 20% of the eligible scope on the
candidate; 10 simulated minutes; ~14 requests/s from the eligible units), looked at every 10
simulated seconds by three methods, all on the same runs:

- routedeck: anytime-valid confidence sequences, α split over the tests of a look;
- naive threshold: rolls back as soon as a guardrail's current value is worse than its threshold;
- fixed-horizon: z-intervals at the full α, looked at every 10 s as if each look were the only one.

Runs come from the simulator's aggregate path (console/core/simulator/fastpath.py, tested against
the request-level simulator). Prints a Markdown table with Clopper–Pearson 95% upper bounds.

    .venv/bin/python benchmarks/guardrails.py [--runs 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCENARIOS = ("aa", "latency-regression", "quality-regression", "provider-outage", "join-break")
METHODS = ("routedeck", "naive threshold", "fixed-horizon, peeking")
STAGE_BP = 2000
STAGE_S = 600.0
RATE_RPS = 14.0
LOOK_S = 10.0
SEED_RULE = ROOT.parent / "shared" / "examples" / "decision-rule-seed.yaml"

_pool = None
_rule = None


def _init() -> None:
    global _pool, _rule
    from console.core.rules import load_rule, parse_rule
    from console.core.simulator.fastpath import UnitPool

    _pool = UnitPool.make()
    _rule = load_rule(SEED_RULE) if SEED_RULE.exists() else parse_rule(FALLBACK_RULE, "seed-rule")


FALLBACK_RULE = """
llm_route_decision:
  flag_key: support-answer-route
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  first_audience: internal_support_team
  eligible_scope: english_support_chat
  primary_metric: resolved_without_escalation
  guardrails: [p95_latency, cost_per_resolved_case, correction_rate, fallback_rate, complaint_rate]
  rollback_when:
    - severe quality failure appears
    - provider errors or fallback rate breach the incident threshold
    - telemetry cannot join exposure to outcome
"""


def one_run(task: tuple[str, int]) -> dict:
    """One seeded stage; for each method the first look that rolled back and the verdict at the end."""
    from console.core.simulator import get_scenario
    from console.core.simulator.fastpath import run_stage
    from console.core.stats.engine import Arms, evaluate_with
    from console.core.stats.naive import fixed_horizon_peeking, naive_threshold
    from console.core.stats.spec import StageContext, StageSpec, Verdict

    scenario, seed = task
    run = run_stage(_pool, get_scenario(scenario), seed, candidate_bp=STAGE_BP, seconds=STAGE_S, rate_rps=RATE_RPS,
                    look_every=LOOK_S, maturation_s=_rule.spec.gates.maturation_s)
    # the stage's own minimums are met by the end, so ADVANCE at the end is possible
    stage = StageSpec("20%", STAGE_BP, min_units=300, min_dwell_s=STAGE_S - LOOK_S)
    methods = {
        "routedeck": lambda ctx, arms: evaluate_with(_rule.spec, ctx, None, None, arms=arms),
        "naive threshold": lambda ctx, arms: naive_threshold(_rule.spec, ctx, None, None, arms=arms),
        "fixed-horizon, peeking": lambda ctx, arms: fixed_horizon_peeking(_rule.spec, ctx, None, None, arms=arms),
    }
    out = {}
    for name, decide in methods.items():
        first_rollback = None
        final = None
        for k, at in enumerate(run.look_times):
            cand, base = run.at(k)
            arms = Arms(cand, base, 0, len(cand["requests"]) + len(base["requests"]))
            ctx = StageContext(stage, float(at), has_control=True, intended_candidate_share=STAGE_BP / 10_000)
            verdict = decide(ctx, arms).verdict
            if verdict is Verdict.ROLLBACK:
                first_rollback = float(at)
                break
            final = verdict
        out[name] = (first_rollback, final is Verdict.ADVANCE and first_rollback is None)
    return {"scenario": scenario, "seed": seed, "methods": out}


def clopper_pearson_upper(k: int, n: int, conf: float = 0.95) -> float:
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(conf, k + 1, n - k))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    started = time.perf_counter()
    tasks = [(s, seed) for s in SCENARIOS for seed in range(args.runs)]
    with Pool(args.workers, initializer=_init) as pool:
        results = pool.map(one_run, tasks, chunksize=20)
    elapsed = time.perf_counter() - started

    print(f"Guardrail benchmark — {args.runs} seeded runs per scenario of the 20% stage "
          f"({STAGE_S / 60:.0f} simulated minutes, ~{RATE_RPS:.0f} requests/s from eligible units), "
          f"a look every {LOOK_S:.0f} s, seed decision rule (α = 0.05); {elapsed:.0f} s on {args.workers} workers\n")
    print("| scenario | method | rolled back | 95% upper bound | ADVANCE at end | median time to rollback |")
    print("|---|---|---|---|---|---|")
    for scenario in SCENARIOS:
        rows = [r for r in results if r["scenario"] == scenario]
        n = len(rows)
        for method in METHODS:
            times = [r["methods"][method][0] for r in rows if r["methods"][method][0] is not None]
            k = len(times)
            adv = sum(1 for r in rows if r["methods"][method][1])
            median = f"{statistics.median(times):.0f} s" if times else "—"
            print(f"| {scenario} | {method} | {k / n:.1%} ({k}/{n}) | {clopper_pearson_upper(k, n):.1%} | "
                  f"{adv / n:.1%} | {median} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
