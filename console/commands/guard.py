"""`routedeck guard`: watch a rollout headless, one line per look, and roll back on a ROLLBACK verdict.

Each look takes (or renews) the flag's lease, reads the verdict and prints one line. On ROLLBACK
with the rule's `auto_rollback` on, everyone goes back to the baseline (journalled, confirmed by
read-back) and the guard exits 4. It exits 0 once the rollout is promoted or rolled back by someone
else, 5 when another live guard or console holds the lease, and after --max-looks with the code of
the last verdict (0 advance, 3 hold, 4 rollback). The lease is released on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC

from console.core.errors import BadInput, RouteDeckError

from .common import EXIT_ROLLBACK, add_backend_options, open_backends, open_journal

EXIT_DONE = 0
EXIT_LEASE_HELD = 5
DEFAULT_INTERVAL_S = 30.0


def add_parser(sub) -> None:
    p = sub.add_parser("guard", help="watch a rollout and roll back on a ROLLBACK verdict (holds the flag's lease)",
                       description=__doc__)
    add_backend_options(p)
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S,
                   help=f"seconds between looks (default {DEFAULT_INTERVAL_S:g}); the lease lasts 3× this, at least 30 s")
    p.add_argument("--max-looks", type=int, help="stop after N looks (default: until the rollout ends)")
    p.set_defaults(run=run)


def first_reason(decision) -> str:
    """The reason that decided the verdict: the first rollback reason on ROLLBACK, else the first one."""
    reasons = list(decision.reasons)
    if decision.verdict.value == "ROLLBACK":
        for r in reasons:
            if r.lower().startswith("rollback"):
                return r
    return reasons[0] if reasons else ""


def look_line(current) -> str:
    from datetime import datetime

    d = current.decision
    at = datetime.fromtimestamp(current.at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = " ".join(first_reason(d).split())
    return (f"{at}  stage {d.stage}  {d.verdict.value:<8}  units {d.units_candidate}/{d.units_baseline}"
            f"  {reason}").rstrip()


def _pause(metrics, simulated: bool, seconds: float) -> None:
    if simulated:
        metrics.advance_by(seconds)  # simulated minutes: the next look sees `seconds` more traffic
    else:
        time.sleep(seconds)


def run(args: argparse.Namespace) -> int:
    from console.backends import spec_query
    from console.commands.check import exit_code
    from console.core import lease, operations
    from console.core.rollout import TERMINAL
    from console.core.rules import load_rule

    if not args.interval > 0:
        raise BadInput(f"--interval {args.interval:g}: must be a positive number of seconds")
    if args.max_looks is not None and args.max_looks < 1:
        raise BadInput(f"--max-looks {args.max_looks}: must be 1 or more")
    rule = load_rule(args.rule)
    platform, metrics = open_backends(args)
    simulated = (args.metrics or "").startswith("sim:") and "minutes" in spec_query(args.metrics) \
        and hasattr(metrics, "advance_by")
    key = rule.flag_key
    holder = lease.default_holder("guard")
    args.operator = args.operator or holder
    ttl = lease.ttl_for(args.interval)
    taken = False
    looks = 0
    journal = None
    previous = None  # the flag as the last look saw it, to notice a change made by someone else
    try:
        while True:
            try:
                lease.acquire(platform, key, holder, ttl)
            except lease.LeaseHeld as exc:
                print(f"routedeck: {exc}", file=sys.stderr)
                return EXIT_LEASE_HELD
            taken = True
            current = operations.look(rule, platform, metrics)
            looks += 1
            if looks == 1:
                journal = _note_rule(args, rule, current.flag)
            elif previous is not None:
                _note_foreign(journal, previous, current.flag)
            previous = current.flag
            print(look_line(current), flush=True)
            state = current.flag.rollout
            if state is not None and state.stage in TERMINAL:
                print(f"{key} is {state.stage.value.replace('_', ' ')}: nothing left to guard")
                return EXIT_DONE
            decision = current.decision
            if decision.verdict.value == "ROLLBACK" and rule.spec.auto_rollback:
                return _roll_back(args, platform, rule, decision, " ".join(first_reason(decision).split()))
            if args.max_looks is not None and looks >= args.max_looks:
                return exit_code(decision)
            _pause(metrics, simulated, args.interval)
    finally:
        if taken:
            try:
                lease.release(platform, key, holder)
            except RouteDeckError as exc:
                print(f"routedeck: WARNING: the lease on {key} was not released ({exc}); it lapses by itself",
                      file=sys.stderr)


def _note_rule(args, rule, flag):
    """Journal the rule this guard loaded (and a change of rule); return the journal, or None."""
    from console.core.audit.notes import note_rule_loaded

    journal = open_journal(args, required=False)
    if journal is None:
        print("routedeck: WARNING: the audit journal cannot be opened; the rule this guard loaded is not recorded",
              file=sys.stderr)
        return None
    for warning in note_rule_loaded(journal, rule, flag, by="guard"):
        print(f"routedeck: WARNING: {warning}", file=sys.stderr)
    return journal


def _note_foreign(journal, old, new) -> None:
    """Between two looks the flag's routing changed, and not by this guard (it only renews its lease)."""
    from console.core.audit.notes import describe_write, note_foreign_change, routedeck_write
    from console.core.ports import describe_difference, same_routing

    if same_routing(old, new):
        return
    entry = routedeck_write(journal, new.key, new.revision)
    if entry is not None:  # an operator's advance, override or rollback, journalled: not foreign
        print(f"note: {new.key} changed by routedeck: {describe_difference(old, new)} ({describe_write(entry)})",
              flush=True)
        return
    print(f"note: {new.key} changed outside this guard: {describe_difference(old, new)}", flush=True)
    if journal is not None:
        warning = note_foreign_change(journal, old, new, seen_by="guard")
        if warning:
            print(f"routedeck: WARNING: {warning}", file=sys.stderr)


def _roll_back(args, platform, rule, decision, reason: str) -> int:
    from console.core import operations

    journal = open_journal(args, required=False)
    if journal is None:
        print("routedeck: WARNING: the audit journal cannot be opened; rolling back anyway, unrecorded", file=sys.stderr)
    result = operations.rollback(platform, rule.flag_key, journal, reason=f"guard: {reason}", decision=decision,
                                 rule=rule, action="rollback")
    if result.warning:
        print(f"routedeck: WARNING: {result.warning}", file=sys.stderr)
    if result.write and result.write.foreign_change:
        print(f"note: the flag had been changed elsewhere before this rollback: {result.write.foreign_change}")
    print(f"guard rolled back {rule.flag_key}: {reason}")
    print(f"confirmed by read-back: {rule.flag_key} serves 100% {result.after.baseline}, stage "
          f"{operations.rollout.current_stage_name(result.after)} ({result.write.elapsed_s * 1000:.0f} ms)")
    return EXIT_ROLLBACK
