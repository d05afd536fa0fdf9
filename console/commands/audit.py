"""`routedeck audit`: verify the journal's chain and anchors, list entries, export a rollout's decision record."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from console.core.errors import BadInput

from .common import add_profile_option, state_dir


def add_parser(sub) -> None:
    p = sub.add_parser("audit", help="verify, list and export the audit journal", description=__doc__)
    audit = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--journal", type=Path, help="the journal file (default: journal.jsonl in the state dir)")
        q.add_argument("--state-dir", type=Path, help="default: $XDG_STATE_HOME/routedeck")

    v = audit.add_parser("verify", help="check every entry, the hash chain and the anchors; exit 1 if anything is wrong")
    common(v)
    v.add_argument("--anchor", action="append", default=[], metavar="SEQ:HASH",
                   help="a chain head recorded elsewhere (an export, a ticket); repeatable")
    v.add_argument("--flags", help="also check the chain heads stored with the rollout state on this flag platform")
    add_profile_option(v)
    v.set_defaults(run=run_verify)

    ls = audit.add_parser("list", help="journal entries, oldest first")
    common(ls)
    ls.add_argument("--flag", help="only entries for this flag")
    ls.add_argument("--since", help="only entries at or after this time (ISO 8601, e.g. 2026-11-23T08:00)")
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
    from console.core.journal import ChainHead, verify

    anchors = []
    for text in args.anchor:
        try:
            anchors.append(ChainHead.from_text(text))
        except ValueError as exc:
            raise BadInput(f"--anchor: {exc}") from None
    if args.flags:
        from console.backends import open_flags

        platform = open_flags(args.flags)
        for key in platform.list_flags():
            flag = platform.read_flag(key)
            if flag.rollout and flag.rollout.chain_head:
                anchors.append(ChainHead.from_text(flag.rollout.chain_head))
    path = journal_file(args)
    report = verify(path, anchors)
    print(report.summary())
    for problem in report.problems():
        print(f"  {problem}")
    return 0 if report.ok else 1


def _since(text: str | None):
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"--since {text!r}: not a time — use ISO 8601, e.g. 2026-11-23T08:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def run_list(args: argparse.Namespace) -> int:
    from console.core.journal import read_entries

    for e in read_entries(journal_file(args), flag=args.flag, since=_since(args.since)):
        if args.json:
            sys.stdout.write(e.to_line())
            continue
        who = e.operator.name or e.operator.os_user
        status = f" {e.status}" if e.status else ""
        detail = f" — {e.reason}" if e.reason else ""
        print(f"{e.seq:>6} {e.time} {who:<12} {e.kind:<7} {e.action:<12}{status:<10} {e.flag or '-'}{detail}")
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
