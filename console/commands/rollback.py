"""`routedeck rollback`: everyone back on the baseline route — the safe direction, never refused.

It re-reads and re-applies until the read-back shows it holds, for up to the profile's rollback_within
(30 s by default). A journal that cannot be written does not stop it: the output says it rolled back
and was not journalled, and why. Exit 0 rolled back (confirmed by read-back), 1 not confirmed (the
message says what the platform holds), 2 bad input."""

from __future__ import annotations

import argparse

from console.core.errors import BadInput

from .common import add_backend_options, add_write_options, open_backends, open_journal_or_reason, print_change, report_rollback


def add_parser(sub) -> None:
    p = sub.add_parser("rollback", help="send 100%% of a flag's traffic back to its baseline route", description=__doc__)
    p.add_argument("--flag", required=True, help="the route flag's key")
    add_backend_options(p, metrics=False, rule=False)
    add_write_options(p, lease=False)
    p.add_argument("--reason", default="manual rollback from the command line", help="why (recorded in the journal)")
    p.add_argument("--within", metavar="DURATION",
                   help="keep re-reading and re-applying until it holds for this long, e.g. 30s (default: the "
                        "profile's rollback_within, else 30s)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from console.core import operations

    within = None
    if args.within is not None:
        from console.core.config import parse_seconds

        within = parse_seconds(args.within)
        if within is None or within < 0:
            raise BadInput(f"--within {args.within!r}: must be a duration such as 30s or 2m")
    platform, _ = open_backends(args, metrics=False)
    journal, unjournalled = (None, None) if args.dry_run else open_journal_or_reason(args)
    result = operations.rollback(platform, args.flag, journal, reason=args.reason, dry_run=args.dry_run,
                                 within_s=within)
    print_change(result.before, result.after, args.dry_run)
    if not args.dry_run:
        report_rollback(result, args.flag, unjournalled)
    return 0
