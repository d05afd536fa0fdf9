"""Options and helpers shared by the headless commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from console.core.errors import BadInput

EXIT_ADVANCE, EXIT_BACKEND, EXIT_BAD_INPUT, EXIT_HOLD, EXIT_ROLLBACK = 0, 1, 2, 3, 4


def state_dir(args: argparse.Namespace) -> Path:
    if getattr(args, "state_dir", None):
        return Path(args.state_dir).expanduser()
    from platformdirs import user_state_path

    return user_state_path("routedeck")


def default_flags_spec(args: argparse.Namespace) -> str:
    return args.flags or f"flagd:{state_dir(args) / 'flags.json'}"


def add_backend_options(p: argparse.ArgumentParser, metrics: bool = True, rule: bool = True) -> None:
    if rule:
        p.add_argument("--rule", type=Path, help="the decision rule (YAML); required unless the profile names one")
        p.set_defaults(rule_required=True)
    add_profile_option(p)
    p.add_argument("--flags", help="flag platform SPEC, e.g. flagd:PATH (default: the demo's flag file in the state dir)")
    if metrics:
        p.add_argument("--metrics", help="metrics SPEC: events:DIR (event files), clickhouse:URL?database=D&table=T, prometheus:URL, "
                            "or sim:SCENARIO?seed=N&minutes=M; slo_ms=N in any of them sets the latency SLO requests are "
                            "counted in at — the rule's latency_slo_ms (default 2500; docs/events.md)")
    p.add_argument("--state-dir", type=Path, help="where the journal lives (default: $XDG_STATE_HOME/routedeck)")
    p.add_argument("--operator", default=os.environ.get("ROUTEDECK_OPERATOR"),
                   help="your name in the journal (default: $ROUTEDECK_OPERATOR, else the OS user)")


def add_profile_option(p: argparse.ArgumentParser) -> None:
    """``--profile NAME``: backends, rule and defaults from the config file (explicit options win)."""
    # SUPPRESS: `routedeck --profile P COMMAND` keeps the profile given before the command
    p.add_argument("--profile", metavar="NAME", default=argparse.SUPPRESS,
                   help="take --flags, --metrics, --rule and defaults from this profile of the config file")
    p.set_defaults(uses_profile=True)


#: what a command that changes a flag can exit with, for its --help
WRITE_EXIT_CODES = ("exit codes: 0 done (confirmed by read-back), 1 a backend failed or did not confirm, 2 bad input, "
                    "5 a live lease held by someone else (a guard) — see --take-over-lease")
VERDICT_EXIT_CODES = ("exit codes: 0 done (confirmed by read-back), 1 a backend failed or did not confirm, 2 bad input, "
                      "3 refused by a HOLD verdict, 4 refused by a ROLLBACK verdict, 5 a live lease held by someone "
                      "else (a guard) — see --take-over-lease")


def add_write_options(p: argparse.ArgumentParser, lease: bool = True) -> None:
    p.add_argument("--dry-run", action="store_true", help="print the exact before/after flag change; write nothing")
    if lease:
        p.add_argument("--take-over-lease", action="store_true",
                       help="write even though a live guard holds the flag's lease (needs --reason; journalled; "
                            "the guard keeps its lease and goes on watching)")


def take_over(args: argparse.Namespace) -> str | None:
    """The reason for taking over a lease, or None; BadInput when --take-over-lease comes without --reason."""
    if not getattr(args, "take_over_lease", False):
        return None
    if not (getattr(args, "reason", None) or "").strip():
        raise BadInput("--take-over-lease needs --reason TEXT: say why the guard's lease is overridden")
    return args.reason.strip()


def open_backends(args: argparse.Namespace, metrics: bool = True):
    from console.backends import open_flags, open_metrics

    flags_spec = default_flags_spec(args)
    platform = open_flags(flags_spec)
    source = None
    if metrics:
        if not args.metrics:
            raise BadInput("--metrics is required: e.g. --metrics 'sim:steady?minutes=30' or --metrics prometheus:URL")
        source = open_metrics(args.metrics, flags_spec, profile=getattr(args, "active_profile", None))
    return platform, source


def open_journal(args: argparse.Namespace, required: bool = True):
    """The journal; when it cannot be opened, required actions stop and rollback goes on with a warning."""
    journal, _ = open_journal_or_reason(args, required)
    return journal


def open_journal_or_reason(args: argparse.Namespace, required: bool = False):
    """(the journal, None), or (None, why it cannot be opened) when it is not ``required``."""
    from console.core.journal import Journal, JournalUnavailable, journal_path

    try:
        return Journal(journal_path(state_dir(args)), operator_name=args.operator), None
    except JournalUnavailable as exc:
        if required:
            raise
        return None, str(exc)


def report_rollback(result, flag: str, unjournalled: str | None) -> None:
    """What a rollback did, in the order an operator needs it: done (confirmed), then what was not recorded."""
    write = result.write
    if write.foreign_change:
        print(f"note: the flag had been changed elsewhere before this rollback: {write.foreign_change}")
    tries = f", {write.attempts} attempts" if write.attempts > 1 else ""
    print(f"confirmed by read-back: {flag} serves 100% {result.after.baseline}, stage "
          f"{_stage(result.after)} ({write.elapsed_s * 1000:.0f} ms{tries})")
    missing = "; ".join(x for x in (unjournalled, result.warning) if x)
    if missing:
        print(f"routedeck: WARNING: rolled back, but not journalled: {missing}", file=sys.stderr)


def _stage(flag) -> str:
    from console.core.rollout import current_stage_name

    return current_stage_name(flag)


def operator(args: argparse.Namespace) -> str:
    if args.operator:
        return args.operator
    from console.core.audit.writer import current_os_user

    return current_os_user()


def print_change(before, after, dry_run: bool) -> None:
    from console.core.operations import describe_change

    print("DRY RUN — nothing written. The change would be:" if dry_run else "changed:")
    for line in describe_change(before, after):
        print(f"  {line}")


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def add_stage_change_parser(sub, name: str, doc: str, help_text: str, override_help: str, run) -> None:
    """The options `advance` and `promote` share: the backends, the write options, --override with --reason."""
    p = sub.add_parser(name, help=help_text, description=doc, epilog=VERDICT_EXIT_CODES)
    add_backend_options(p)
    add_write_options(p)
    p.add_argument("--override", action="store_true", help=override_help)
    p.add_argument("--reason", help="why (mandatory with --override and --take-over-lease; recorded in the journal)")
    p.set_defaults(run=run)


def run_stage_change(args: argparse.Namespace, operation, confirmed) -> int:
    """Look, then change the stage by the core ``operation`` (``operations.advance`` or ``.promote``, the one the
    console and the guard call); ``confirmed(after, result)`` is the line printed once the read-back agrees."""
    from console.core import operations
    from console.core.rules import load_rule

    if args.override and not (args.reason and args.reason.strip()):
        raise BadInput("--override needs --reason TEXT: say why the verdict is being overridden")
    taking_over = take_over(args)
    rule = load_rule(args.rule)
    platform, metrics = open_backends(args)
    current = operations.look(rule, platform, metrics)
    journal = None if args.dry_run else open_journal(args)
    result = operation(rule, platform, current, journal, operator(args),
                       override_reason=args.reason if args.override else None, dry_run=args.dry_run,
                       take_over=taking_over)
    print_change(result.before, result.after, args.dry_run)
    if not args.dry_run:
        print(f"confirmed by read-back: {confirmed(result.after, result)}")
    return 0
