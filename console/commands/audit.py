"""`routedeck audit`: verify the journal's chain and anchors, list entries, export a rollout's decision record."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from console.core.errors import BadInput

from .common import add_profile_option, state_dir


def add_parser(sub) -> None:
    p = sub.add_parser("audit", help="verify, list and export the audit journal", description=__doc__)
    audit = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--journal", type=Path, help="the journal file (default: journal.jsonl in the state dir)")
        q.add_argument("--state-dir", type=Path, help="default: $XDG_STATE_HOME/routedeck")

    v = audit.add_parser("verify", help="check every entry, the hash chain and the anchors; exit 1 if anything is wrong",
                         description="Check every entry and the hash chain, then the anchors: chain heads recorded "
                                     "elsewhere. By default the anchors stored with the rollout state on every flag "
                                     "platform the journal's own entries name are read and checked (a platform that "
                                     "cannot be reached is named, and the exit code is 1: the check is incomplete). "
                                     "Anchors another journal wrote are reported as such, never as a rewrite. "
                                     "Exit 0 intact, 1 a problem (or a platform not reached), 2 bad input.")
    common(v)
    v.add_argument("--anchor", action="append", default=[], metavar="SEQ:HASH",
                   help="a chain head recorded elsewhere (an export, a ticket); repeatable")
    v.add_argument("--flags", help="check the chain heads stored on this flag platform (every route flag on it) "
                                   "instead of those the journal's entries name")
    v.add_argument("--offline", action="store_true", help="check the file and --anchor only; read no flag platform")
    add_profile_option(v)
    v.set_defaults(run=run_verify)

    ls = audit.add_parser("list", help="journal entries, oldest first")
    common(ls)
    ls.add_argument("--flag", help="only entries for this flag")
    ls.add_argument("--since", help="only entries at or after this time: ISO 8601 (e.g. 2026-11-23T08:00, UTC unless "
                                    "it says otherwise) or a duration back from now (e.g. 2h, 30m)")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(run=run_list)

    ex = audit.add_parser("export", help="the decision record of a rollout (rule, stages, decisions with evidence)")
    common(ex)
    ex.add_argument("--flag", required=True)
    ex.add_argument("--format", choices=("md", "json"), default="md")
    ex.add_argument("--rule", type=Path, help="the rule file to include (default: none)")
    ex.add_argument("--out", type=Path, help="write here instead of standard output")
    ex.set_defaults(run=run_export)


def journal_file(args: argparse.Namespace) -> Path:
    from console.core.journal import journal_path

    return args.journal or journal_path(state_dir(args))


def run_verify(args: argparse.Namespace) -> int:
    from console.core.journal import Anchor, ChainHead, verify

    anchors = []
    for text in args.anchor:
        try:
            anchors.append(Anchor(ChainHead.from_text(text), None, "--anchor"))
        except ValueError as exc:
            raise BadInput(f"--anchor: {exc}") from None
    path = journal_file(args)
    if args.flags:
        sources: dict[str, set[str] | None] = {args.flags: None}
    else:
        sources = {} if args.offline else dict(platforms_named(path))
    checked, unreached = [], []
    for spec, keys in sources.items():
        found, problem = platform_anchors(spec, keys)
        anchors += found
        (unreached.append(f"{spec} ({problem})") if problem else checked.append(spec))
    report = verify(path, anchors)
    problems = report.problems()
    if problems:  # each problem once: the first is not repeated as a summary
        print(f"journal {path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
        for line in problems:
            print(f"  {line}")
    else:
        print(report.summary())
    for line in report.notes():
        print(f"  {line}")
    for spec in checked:
        print(f"  anchors read from {spec}")
    for what in unreached:
        print(f"  NOT CHECKED: the anchors on {what}")
    return 0 if report.ok and not unreached else 1


def platforms_named(path: Path) -> dict[str, set[str]]:
    """Flag platform SPEC → flags, as the journal's own entries name them (intents record their platform).
    Read line by line and leniently: a damaged journal still says where its anchors are."""
    from console.core.audit.lines import iter_raw_lines, parse_line

    named: dict[str, set[str]] = {}
    if not path.exists():
        return named
    for raw in iter_raw_lines(path):
        obj = parse_line(raw.data)
        detail = obj.get("detail") if isinstance(obj, dict) else None
        spec = detail.get("platform") if isinstance(detail, dict) else None
        if isinstance(spec, str) and isinstance(obj.get("flag"), str):
            named.setdefault(spec, set()).add(obj["flag"])
    return named


def platform_anchors(spec: str, keys: set[str] | None):
    """The anchors stored with the rollout state of ``keys`` (all route flags when None) on ``spec``,
    and why they could not be read (None when they were)."""
    from console.backends import open_flags
    from console.core.errors import RouteDeckError
    from console.core.journal import Anchor, ChainHead

    found = []
    try:
        platform = open_flags(spec)
        try:
            for key in sorted(keys if keys is not None else platform.list_flags()):
                try:
                    flag = platform.read_flag(key)
                except BadInput as exc:
                    if f"no flag {key!r}" in str(exc):
                        continue  # the flag is gone: it keeps no anchor
                    return found, str(exc)
                state = flag.rollout
                if state is not None and state.chain_head:
                    try:
                        head = ChainHead.from_text(state.chain_head)
                    except ValueError:
                        return found, f"flag {key}: stored chain head {state.chain_head!r} is not an anchor"
                    found.append(Anchor(head, state.chain_journal, f"flag {key} on {spec}"))
        finally:
            platform.close()
    except RouteDeckError as exc:
        return found, str(exc)
    return found, None


def _since(text: str | None):
    """``--since``: an ISO 8601 time, or a duration back from now ("2h", "30m", "90s") as the console takes it."""
    if not text:
        return None
    from console.core.config import parse_seconds

    seconds = parse_seconds(text.strip()) if any(c.isalpha() for c in text) else None
    if seconds is not None and seconds >= 0:
        return datetime.now(timezone.utc) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"--since {text!r}: not a time — use ISO 8601 (e.g. 2026-11-23T08:00) or a duration back "
                       "from now (e.g. 2h, 30m)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def run_list(args: argparse.Namespace) -> int:
    from console.core.journal import read_entries

    path, shown = journal_file(args), 0
    for e in read_entries(path, flag=args.flag, since=_since(args.since)):
        shown += 1
        if args.json:
            sys.stdout.write(e.to_line())
            continue
        who = e.operator.name or e.operator.os_user
        status = f" {e.status}" if e.status else ""
        detail = f" — {e.reason}" if e.reason else ""
        print(f"{e.seq:>6} {e.time} {who:<12} {e.kind:<7} {e.action:<12}{status:<10} {e.flag or '-'}{detail}")
    if not shown:  # said on stderr: a script reading the entries gets none, a person learns why
        if not path.exists():
            print(f"no journal at {path} — nothing has been recorded in this state dir (--state-dir DIR or "
                  "--journal FILE names another)", file=sys.stderr)
        else:
            which = "".join((f" for flag {args.flag!r}" if args.flag else "", f" since {args.since}" if args.since else ""))
            print(f"no journal entries{which} in {path}", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from console.core.journal import export_json, export_markdown, head, read_entries

    entries = list(read_entries(journal_file(args), flag=args.flag))
    if not entries:
        raise BadInput(f"{journal_file(args)}: no journal entries for flag {args.flag!r}")
    rule_text = ""
    if args.rule:
        try:
            rule_text = args.rule.read_text()
        except OSError as exc:
            raise BadInput(f"{args.rule}: cannot read the rule ({exc.strerror})") from None
    chain = head(journal_file(args))
    text = (export_markdown if args.format == "md" else export_json)(entries, rule_text, chain)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out} ({len(entries)} entries, chain head {chain.to_text()})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
