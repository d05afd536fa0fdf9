"""`routedeck segments`: candidate vs baseline within each pre-registered segment, on every guardrail.

Each (segment, metric) row carries an anytime-valid e-value; e-BH over the whole family decides which
rows are harm. Exit 0 when no segment is flagged, 4 when one is, 3 when nothing could be compared (no
data is never a clean bill), 5 when --exclude meets a live lease held by someone else (a guard),
2 bad input, 1 backend error.
With --exclude ATTR=VALUE --reason TEXT the segment is sent to the baseline (journalled, confirmed by
read-back); with --apply the rule's segment_harm says what happens to flagged segments.
"""

from __future__ import annotations

import argparse
import sys

from console.core.errors import BadInput

from .common import (
    EXIT_ADVANCE,
    EXIT_HOLD,
    EXIT_ROLLBACK,
    add_backend_options,
    add_write_options,
    open_backends,
    open_journal,
    open_journal_or_reason,
    operator,
    print_change,
    print_json,
    report_rollback,
    take_over,
)


def add_parser(sub) -> None:
    p = sub.add_parser("segments", help="per-segment guardrails with multiplicity control (exit 0 clean, 3 nothing "
                                        "compared, 4 harm)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backend_options(p)
    add_write_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--exclude", metavar="ATTR=VALUE", help="send this segment to the baseline route from now on")
    p.add_argument("--apply", action="store_true",
                   help="do what the rule's segment_harm says for flagged segments (exclude, rollback or report)")
    p.add_argument("--reason", help="why (required with --exclude and --take-over-lease; recorded in the journal)")
    p.set_defaults(run=run)


def readout_json(current) -> dict:
    r = current.readout
    return {
        "flag": current.flag.key,
        "stage": current.stage,
        "alpha": r.alpha,
        "hypotheses": r.hypotheses,
        "correction": "e-BH",
        "excluded": [{"attribute": a, "value": v} for a, v in current.flag.allocation.excluded_segments],
        "rows": [
            {"attribute": x.attribute, "value": x.value, "metric": x.metric, "candidate": x.candidate,
             "baseline": x.baseline, "interval": list(x.interval) if x.interval else None, "margin": x.margin,
             "n": {"candidate": x.n_candidate, "baseline": x.n_baseline}, "e_value": x.e_value, "p_value": x.p_value,
             "verdict": x.verdict.value, "critical": x.critical, "note": x.note}
            for x in r.rows
        ],
        "harmed": [{"attribute": a, "value": v} for a, v in r.harmed],
        "notes": r.notes,
    }


def print_readout(rule, current, response: list[str]) -> None:
    r = current.readout
    print(f"{current.flag.key}  stage {current.stage}  segments {', '.join(rule.segments)}  "
          f"(e-BH over {r.hypotheses} segment tests at α {r.alpha:g}; segment_harm: {rule.segment_harm})")
    if r.rows:
        print("segments")
        for row in r.rows:
            print(f"  {'!' if row.harm else ' '} {row.line()}")
    harmed = r.harmed
    print("why")
    if harmed:
        for a, v in harmed:
            metrics = ", ".join(x.metric for x in r.rows if x.segment == (a, v) and x.harm)
            print(f"  - harm in {a}={v}: {metrics}")
    elif not r.rows or all(x.verdict.value == "no data" for x in r.rows):
        print("  - no segment could be compared yet: no data is never a pass")
    else:
        print("  - no segment shows harm beyond its margin after the correction")
    for line in response:
        print(f"  - {line}")
    for note in r.notes:
        print(f"  - note: {note}")


def _parse_segment(text: str, rule) -> tuple[str, str]:
    attr, sep, value = text.partition("=")
    if not sep or not attr.strip() or not value.strip():
        raise BadInput(f"--exclude {text!r}: expected ATTR=VALUE, e.g. --exclude region=eu "
                       f"(attributes in {rule.path}: {', '.join(rule.segments)})")
    if attr.strip() not in rule.segments:
        raise BadInput(f"--exclude {text!r}: {attr.strip()!r} is not a pre-registered segment attribute "
                       f"({', '.join(rule.segments)}) in {rule.path} — only attributes fixed before exposure")
    return attr.strip(), value.strip()


def run(args: argparse.Namespace) -> int:
    from console.core import operations
    from console.core.rules import load_rule

    if args.exclude and args.apply:
        raise BadInput("--exclude and --apply do different things: use one of them")
    if args.exclude and not (args.reason and args.reason.strip()):
        raise BadInput("--exclude needs --reason TEXT: say why the segment leaves the candidate (it is journalled)")
    rule = load_rule(args.rule)
    segment = _parse_segment(args.exclude, rule) if args.exclude else None
    platform, metrics = open_backends(args)
    current = operations.look_segments(rule, platform, metrics)
    response = operations.segment_response(rule, current)
    if args.json and not (segment or args.apply):
        print_json(readout_json(current) | {"rule_hash": rule.rule_hash, "response": response})
        return _exit_code(current.readout)
    if not args.json:
        print_readout(rule, current, response)
    targets: list[tuple[str, str]] = []
    if segment is not None:
        targets = [segment]
    elif args.apply and rule.segment_harm == "exclude":
        targets = [s for s in current.readout.harmed if s not in current.flag.allocation.excluded_segments]
    elif args.apply and rule.segment_harm == "rollback" and current.readout.harmed:
        return _rollback(args, rule, platform, current)
    journal = None if args.dry_run or not targets else open_journal(args)
    for attr, value in targets:
        reason = args.reason or f"segment harm in {attr}={value}; the rule says segment harm excludes the segment"
        if (attr, value) not in current.readout.harmed:
            print(f"note: {attr}={value} is not flagged at this look — excluding it on your word ({reason})")
        result = operations.exclude_segment(
            rule, platform, rule.flag_key, attr, value, journal, operator(args), reason,
            evidence=operations.segment_evidence(current.readout, attr, value), dry_run=args.dry_run,
            take_over=take_over(args))
        print_change(result.before, result.after, args.dry_run)
        if result.warning:
            print(f"routedeck: WARNING: {result.warning}", file=sys.stderr)
        if not args.dry_run:
            print(f"confirmed by read-back: {result.after.key} now {result.after.allocation.describe()} "
                  f"({result.write.elapsed_s * 1000:.0f} ms)")
    return _exit_code(current.readout)


def _exit_code(readout) -> int:
    """4: a segment is flagged; 3: nothing could be compared (no data is never a clean bill); 0: compared, none flagged."""
    if readout.harmed:
        return EXIT_ROLLBACK
    if not any(row.verdict.value != "no data" for row in readout.rows):
        return EXIT_HOLD
    return EXIT_ADVANCE


def _rollback(args, rule, platform, current) -> int:
    from console.core import operations

    names = ", ".join(f"{a}={v}" for a, v in current.readout.harmed)
    journal, unjournalled = (None, None) if args.dry_run else open_journal_or_reason(args)
    result = operations.rollback(platform, rule.flag_key, journal, rule=rule, dry_run=args.dry_run,
                                 reason=args.reason or f"segment harm in {names}; the rule says segment harm rolls back")
    print_change(result.before, result.after, args.dry_run)
    if not args.dry_run:
        report_rollback(result, rule.flag_key, unjournalled)
    return EXIT_ROLLBACK
