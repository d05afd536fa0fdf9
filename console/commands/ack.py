"""`routedeck ack`: acknowledge a manual checklist item of the rule for the current stage (recorded)."""

from __future__ import annotations

import argparse

from .common import add_backend_options, add_write_options, open_backends, open_journal, operator


def add_parser(sub) -> None:
    p = sub.add_parser("ack", help="acknowledge a checklist item of the rule for the current stage", description=__doc__)
    add_backend_options(p, metrics=False)
    add_write_options(p)
    p.add_argument("--item", required=True, help="the checklist line, exactly as `routedeck check` prints it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from console.core import operations
    from console.core.rules import load_rule

    rule = load_rule(args.rule)
    platform, _ = open_backends(args, metrics=False)
    journal = None if args.dry_run else open_journal(args)
    operations.acknowledge(rule, platform, args.item, journal, operator(args), dry_run=args.dry_run)
    print(("DRY RUN — would acknowledge: " if args.dry_run else "acknowledged: ") + args.item)
    return 0
