"""`routedeck check`: the verdict table for a rollout; exit 0 advance, 3 hold, 4 rollback, 2 bad input, 1 backend error."""

from __future__ import annotations

import argparse

from .common import EXIT_ADVANCE, EXIT_HOLD, EXIT_ROLLBACK, add_backend_options, open_backends, print_json


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="print the verdict for the rollout in a rule (exit 0 advance, 3 hold, 4 rollback)",
                       description=__doc__,
                       epilog="exit codes: 0 ADVANCE, 3 HOLD, 4 ROLLBACK, 1 a backend failed (the metrics source "
                              "included, whatever the stage), 2 bad input")
    add_backend_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(run=run)


def decision_json(decision) -> dict:
    return {
        "verdict": decision.verdict.value,
        "stage": decision.stage,
        "health": [{"name": g.name, "status": g.status.value, "detail": g.detail, "action": g.action.value}
                   for g in decision.health],
        "metrics": [
            {"name": m.name, "candidate": m.candidate, "baseline": m.baseline,
             "interval": list(m.interval) if m.interval else None, "threshold": m.threshold,
             "n": {"candidate": m.n_candidate, "baseline": m.n_baseline}, "verdict": m.verdict.value,
             "critical": m.critical, "line": m.line, "action": m.action, "signal": m.signal, "judged": m.judged,
             "note": m.note}
            for m in decision.metrics
        ],
        "reasons": decision.reasons,
        "request_level": decision.request_level,
        "units": {"candidate": decision.units_candidate, "baseline": decision.units_baseline},
        # seconds until an ADVANCE at the current traffic if nothing changes; null when unknown or not expected
        "eta_s": decision.eta_s,
        "eta_note": decision.eta_note,
        # true while the stage is short of its minimum units or dwell: too little data to say when, not "never"
        "eta_early": decision.eta_early,
        # true when the estimated ADVANCE also waits for the checklist to be acknowledged or the rule re-confirmed
        "eta_needs_person": decision.eta_needs_person,
        # the α accounting: this stage's bound, each test's share, and the whole rollout's bound in words
        "alpha": decision.alpha.as_json() if decision.alpha is not None else None,
        "evaluation": decision.evaluation,
    }


def print_decision(flag_key: str, decision) -> None:
    print(f"{flag_key}  stage {decision.stage}  verdict {decision.verdict.value}  "
          f"(units: candidate {decision.units_candidate}, baseline {decision.units_baseline})")
    if decision.health:
        print("health gates")
        for g in decision.health:
            print(f"  {g.name:<24} {g.status.value:<8} {g.detail}")
    if decision.metrics:
        print("metrics")
        for m in decision.metrics:
            print(f"  {m.line}")
    print("why")
    for r in decision.reasons:
        print(f"  - {r}")
    if decision.alpha is not None:
        print(f"α: {decision.alpha.statement}")


def probe_metrics(metrics) -> None:
    """A look that needed no metrics (nothing started, nothing left to decide) still says when the metrics
    source cannot be read: a script must never read exit 0 as "all is well" with the source down."""
    now = metrics.now()
    metrics.read(now - 60.0, now, 60.0)  # a BackendError here is exit 1, naming the source


def exit_code(decision) -> int:
    return {"ADVANCE": EXIT_ADVANCE, "HOLD": EXIT_HOLD, "ROLLBACK": EXIT_ROLLBACK}[decision.verdict.value]


def run(args: argparse.Namespace) -> int:
    from console.core.operations import look
    from console.core.rules import load_rule

    rule = load_rule(args.rule)
    platform, metrics = open_backends(args)
    current = look(rule, platform, metrics)
    if current.decision.verdict.value == "ADVANCE" and not current.decision.metrics and not current.decision.health:
        probe_metrics(metrics)  # an ADVANCE that read nothing (not started yet)
    if args.json:
        print_json(decision_json(current.decision) | {
            "flag": rule.flag_key, "rule_hash": rule.rule_hash,
            "guardrails": [{"metric": m, "origin": w} for m, w in rule.guard_origins.items()]})
    else:
        print_decision(rule.flag_key, current.decision)
        print("guardrails and where each comes from")
        for metric, where in rule.guard_origins.items():
            print(f"  {metric:<24} {where}")
    return exit_code(current.decision)
