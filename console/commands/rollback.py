"""`routedeck rollback`: everyone back on the baseline route — the safe direction, never refused."""

from __future__ import annotations

import argparse
import sys

from .common import add_backend_options, add_write_options, open_backends, open_journal, print_change


def add_parser(sub) -> None:
    p = sub.add_parser("rollback", help="send 100%% of a flag's traffic back to its baseline route", description=__doc__)
    p.add_argument("--flag", required=True, help="the route flag's key")
    add_backend_options(p, metrics=False, rule=False)
    add_write_options(p)
    p.add_argument("--reason", default="manual rollback from the command line", help="why (recorded in the journal)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from console.core import operations

    platform, _ = open_backends(args, metrics=False)
    journal = None if args.dry_run else open_journal(args, required=False)
    if journal is None and not args.dry_run:
        print("routedeck: WARNING: the audit journal cannot be opened; rolling back anyway, unrecorded", file=sys.stderr)
    result = operations.rollback(platform, args.flag, journal, reason=args.reason, dry_run=args.dry_run)
    print_change(result.before, result.after, args.dry_run)
    if result.warning:
        print(f"routedeck: WARNING: {result.warning}", file=sys.stderr)
    if not args.dry_run:
        if result.write and result.write.foreign_change:
            print(f"note: the flag had been changed elsewhere before this rollback: {result.write.foreign_change}")
        print(f"confirmed by read-back: {args.flag} serves 100% {result.after.baseline} ({result.write.elapsed_s * 1000:.0f} ms)")
    return 0
