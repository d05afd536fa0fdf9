"""`routedeck ack`: acknowledge a manual checklist item of the rule for the current stage (recorded)."""

from __future__ import annotations

import argparse

from .common import WRITE_EXIT_CODES, add_backend_options, add_write_options, open_backends, open_journal, operator, take_over


def add_parser(sub) -> None:
    p = sub.add_parser("ack", help="acknowledge a checklist item of the rule for the current stage", description=__doc__,
                       epilog=WRITE_EXIT_CODES)
    add_backend_options(p, metrics=False)
    add_write_options(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--item", help="the checklist line, exactly as `routedeck check` prints it")
    what.add_argument("--engine", action="store_true",
                      help="accept that the current stage goes on under this routedeck's decision engine (after an "
                           "upgrade in the middle of a stage the verdict holds until this is acknowledged)")
    p.add_argument("--reason", help="why the lease is taken over (with --take-over-lease)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from console.core import operations
    from console.core.rules import load_rule

    taking_over = take_over(args)
    rule = load_rule(args.rule)
    platform, _ = open_backends(args, metrics=False)
    journal = None if args.dry_run else open_journal(args)
    if args.engine:
        result = operations.acknowledge_engine(rule, platform, journal, operator(args), dry_run=args.dry_run,
                                               take_over=taking_over)
        if result.write is None and result.warning:
            print(f"{result.warning} — nothing changed")
        else:
            print(("DRY RUN — would acknowledge: " if args.dry_run else "acknowledged: ")
                  + f"the stage goes on under decision engine {result.after.rollout.engine}")
        return 0
    result = operations.acknowledge(rule, platform, args.item, journal, operator(args), dry_run=args.dry_run,
                                    take_over=taking_over)
    if result.write is None and result.warning:
        print(f"{args.item}: {result.warning} — nothing changed")
        return 0
    print(("DRY RUN — would acknowledge: " if args.dry_run else "acknowledged: ") + args.item)
    return 0
