"""`routedeck init`: create the route flag a rule needs (baseline 100%, candidate ready); an existing flag is left
alone, unless its rollout has ended (rolled back or promoted) and `--restart` asks for a new one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from console.core.errors import BadInput

from .common import WRITE_EXIT_CODES, add_backend_options, add_write_options, open_backends, open_journal, take_over


def add_parser(sub) -> None:
    p = sub.add_parser("init", help="create the rule's route flag if it does not exist", description=__doc__,
                       epilog=WRITE_EXIT_CODES)
    add_backend_options(p, metrics=False)
    add_write_options(p)
    p.add_argument("--reason", help="why the lease is taken over (with --restart --take-over-lease)")
    p.add_argument("--restart", action="store_true",
                   help="the flag's rollout has ended (rolled back or promoted): start a new one from the rule — "
                        "100%% baseline, candidate ready, stage baseline")
    p.add_argument("--cohort", choices=("reuse", "new"),
                   help="with --restart: reuse the previous rollout's cohort (the units exposed last time come first "
                        "again) or draw a new one; asked when not given on a terminal")
    p.add_argument("--profiles", type=Path,
                   help="JSON object of route name → route profile (default: the built-in portfolio's profiles)")
    p.set_defaults(run=run)


def load_profiles(path: Path | None) -> dict:
    from pydantic import ValidationError

    from console.core.models import RouteProfile

    if path is None:
        from console.core.simulator.portfolio import PROFILES

        return dict(PROFILES)
    from console.core.finite import loads_finite

    try:
        raw = loads_finite(path.read_text(), str(path), "route profiles hold finite numbers only")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such profiles file") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the profiles file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text — a profiles file is JSON") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise BadInput(f"{path}: must be a JSON object of route name → route profile")
    out = {}
    for name, body in raw.items():
        try:
            out[name] = RouteProfile.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise BadInput(f"{path}: {name}.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    return out


def run(args: argparse.Namespace) -> int:
    from console.core import rollout
    from console.core.rules import load_rule

    rule = load_rule(args.rule)
    platform, _ = open_backends(args, metrics=False)
    try:
        existing = platform.read_flag(rule.flag_key)
    except BadInput as exc:
        if "no flag" not in str(exc) and "no such flag file" not in str(exc):
            raise
        existing = None
    if existing is not None and args.restart:
        return _restart(args, rule, platform)
    if existing is not None:
        print(f"{rule.flag_key} already exists on {platform.describe()} "
              f"(baseline {existing.baseline}, candidate {existing.candidate}, {existing.allocation.describe()}) — "
              "nothing changed")
        return 0
    flag = rollout.init_flag(rule, load_profiles(args.profiles))
    if args.dry_run:
        print(f"DRY RUN — would create {flag.key} on {platform.describe()}: baseline {flag.baseline} for everyone, "
              f"candidate {flag.candidate} ready, first audience {rule.first_audience}, scope {rule.eligible_scope}")
        return 0
    journal = open_journal(args)
    from console.core.journal import record_action

    record_action(journal, "init", call=lambda: platform.create_flag(flag), flag=flag.key,
                  planned=flag.allocation.model_dump(mode="json"), reason=f"rule {rule.path}", rule_hash=rule.rule_hash,
                  detail={"platform": platform.describe()})
    print(f"created {flag.key} on {platform.describe()}: 100% {flag.baseline}, candidate {flag.candidate} at 0% "
          "(confirmed by read-back)")
    return 0


def _restart(args: argparse.Namespace, rule, platform) -> int:
    """A new rollout on a flag whose last one ended: nothing serves the candidate until the first advance."""
    from console.core import operations

    profiles = load_profiles(args.profiles)
    plan = operations.restart(rule, platform, None, profiles=profiles, dry_run=True)  # refused here if it cannot
    cohort = args.cohort or _ask_cohort(plan.before.allocation.cohort_salt)
    if args.dry_run:
        plan = operations.restart(rule, platform, None, profiles=profiles, dry_run=True, cohort=cohort,
                                  take_over=take_over(args))
        print("DRY RUN — nothing written. The change would be:")
        for line in operations.describe_change(plan.before, plan.after):
            print(f"  {line}")
        print(f"  cohort: {operations.describe_cohort(plan.after.allocation.cohort_salt, plan.before.allocation.cohort_salt)}"
              if cohort == "reuse" else "  cohort: a new cohort (drawn when written)")
        return 0
    result = operations.restart(rule, platform, open_journal(args), profiles=profiles, cohort=cohort,
                                reason=f"new rollout, rule {rule.path}", take_over=take_over(args))
    after = result.after
    print(f"restarted {after.key} on {platform.describe()}: 100% {after.baseline}, candidate {after.candidate} at 0%, "
          f"stage baseline, {operations.describe_cohort(after.allocation.cohort_salt, result.before.allocation.cohort_salt)} "
          "(confirmed by read-back)")
    return 0


def _ask_cohort(previous: str | None) -> str:
    """The operator's choice of cohort, asked on a terminal; without one the choice must be given."""
    import sys

    question = ("The last rollout exposed its cohort first. Reuse it (the same units come first again) or draw "
                "a new one (those a regression may have hurt are not first again)?")
    if not sys.stdin.isatty():
        raise BadInput("init --restart: choose the new rollout's cohort — --cohort reuse (the units exposed last "
                       "time come first again) or --cohort new (a cohort drawn anew)")
    print(question)
    while True:
        answer = input("cohort [reuse/new]: ").strip().lower()
        if answer in ("reuse", "r"):
            return "reuse"
        if answer in ("new", "n"):
            return "new"
        print("answer reuse or new")
