"""`routedeck promote`: at the last stage, make the candidate the new baseline (the old one stays a variation)."""

from __future__ import annotations

import argparse

from console.core.errors import BadInput

from .common import (
    VERDICT_EXIT_CODES,
    add_backend_options,
    add_write_options,
    open_backends,
    open_journal,
    operator,
    print_change,
    take_over,
)


def add_parser(sub) -> None:
    p = sub.add_parser("promote", help="make the candidate the new baseline once the final check passes",
                       description=__doc__, epilog=VERDICT_EXIT_CODES)
    add_backend_options(p)
    add_write_options(p)
    p.add_argument("--override", action="store_true", help="promote despite a HOLD verdict")
    p.add_argument("--reason", help="why (mandatory with --override and --take-over-lease)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from console.core import operations
    from console.core.rules import load_rule

    if args.override and not (args.reason and args.reason.strip()):
        raise BadInput("--override needs --reason TEXT")
    taking_over = take_over(args)
    rule = load_rule(args.rule)
    platform, metrics = open_backends(args)
    current = operations.look(rule, platform, metrics)
    journal = None if args.dry_run else open_journal(args)
    result = operations.promote(rule, platform, current, journal, operator(args),
                                override_reason=args.reason if args.override else None, dry_run=args.dry_run,
                                take_over=taking_over)
    print_change(result.before, result.after, args.dry_run)
    if not args.dry_run:
        print(f"confirmed by read-back: {result.after.key} serves 100% {result.after.baseline} "
              f"(previous baseline kept as a variation)")
    return 0
