"""The decision record of a rollout, for reviewers: rule, stages, each decision with its evidence.

Built from journal entries (usually ``read_entries(path, flag=...)``) and ended with the chain
head, so a reader can check the record against the journal with ``verify(path, [head])``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from ..models import Allocation
from ..safe_text import visible
from .entry import ChainHead, JournalEntry


def decision_record(
    entries: Iterable[JournalEntry],
    rule_text: str,
    chain_head: ChainHead | tuple[int, str] | str | None,
) -> dict[str, Any]:
    """The decision record as plain JSON data (what ``export_json`` writes)."""
    items = list(entries)
    head = _head(chain_head)
    outcomes = {e.intent_seq: e for e in items if e.kind == "outcome" and e.intent_seq is not None}
    intent_seqs = {e.seq for e in items if e.kind == "intent"}
    decisions: list[dict[str, Any]] = []
    stages: list[dict[str, Any]] = []
    for e in items:
        if e.kind == "outcome" and e.status == "confirmed" and e.after is not None:
            stages.append({"seq": e.seq, "time": e.time, "action": e.action, "flag": e.flag,
                           "allocation": e.after, "described": describe_allocation(e.after)})
        if e.kind == "outcome" and e.intent_seq in intent_seqs:
            continue  # shown with its intent
        decision = {
            "seq": e.seq, "time": e.time, "kind": e.kind, "action": e.action, "flag": e.flag,
            "who": who(e), "profile": e.profile, "reason": e.reason, "rule_hash": e.rule_hash,
            "evidence": e.verdict, "before": e.before,
            "planned" if e.kind == "intent" else "after": e.after, "detail": e.detail,
        }
        if e.kind == "intent":
            decision["outcome"] = _outcome(outcomes.get(e.seq))
        elif e.kind == "outcome":
            decision["outcome"] = _outcome(e)
        decisions.append(decision)
    return {
        "flags": sorted({e.flag for e in items if e.flag}),
        "rule": {"text": rule_text, "hashes": sorted({e.rule_hash for e in items if e.rule_hash})},
        "stages": stages,
        "decisions": decisions,
        "entries": {"count": len(items), "first_seq": items[0].seq if items else None,
                    "last_seq": items[-1].seq if items else None},
        "chain_head": head.to_text() if head else None,
    }


def export_json(
    entries: Iterable[JournalEntry],
    rule_text: str,
    chain_head: ChainHead | tuple[int, str] | str | None,
) -> str:
    """The decision record as indented JSON text."""
    # ASCII only: every control character (and every character a terminal could act on) is escaped
    return json.dumps(decision_record(entries, rule_text, chain_head), indent=2, ensure_ascii=True) + "\n"


def export_markdown(
    entries: Iterable[JournalEntry],
    rule_text: str,
    chain_head: ChainHead | tuple[int, str] | str | None,
) -> str:
    """The decision record as Markdown: rule, stages table, one section per decision, chain head."""
    record = decision_record(entries, rule_text, chain_head)
    flags = ", ".join(record["flags"]) or "(no flag)"
    out = [f"# Decision record: {_md(flags)}", ""]
    head = record["chain_head"]
    if head:
        out += [f"Chain head: `{head}` — check it with `routedeck audit verify --anchor {head}`.", ""]
    else:
        out += ["Chain head: not given; this record cannot be checked against the journal.", ""]
    span = record["entries"]
    out += [f"Entries: {span['count']}" + (f" (seq {span['first_seq']}–{span['last_seq']})" if span["count"] else ""), ""]
    out += ["## Decision rule", ""]
    if record["rule"]["hashes"]:
        out += ["Rule hash: " + ", ".join(f"`{h}`" for h in record["rule"]["hashes"]), ""]
    if rule_text.strip():
        out += [_fenced(rule_text, "yaml"), ""]
    else:
        out += ["The rule's text is not included (export with `--rule FILE` to include it).", ""]
    out += ["## Stages", ""]
    if record["stages"]:
        out += ["| when (UTC) | action | flag | allocation | seq |", "|---|---|---|---|---|"]
        for s in record["stages"]:
            out.append(f"| {s['time']} | {_md(s['action'])} | {_md(s['flag'] or '')} | {_md(s['described'])} | {s['seq']} |")
    else:
        out.append("No confirmed allocation change.")
    out += ["", "## Decisions", ""]
    for d in record["decisions"]:
        out += _decision_markdown(d)
    return "\n".join(out).rstrip() + "\n"


def who(entry: JournalEntry) -> str:
    """``name (os_user@host)``, or ``os_user@host`` when no operator name was configured."""
    op = entry.operator
    account = f"{op.os_user}@{op.host}" if op.host else op.os_user
    return f"{op.name} ({account})" if op.name else account


def describe_allocation(data: dict[str, Any] | None) -> str:
    """An allocation dict in words (``5% of english_chat``), or its JSON if it is not one."""
    if data is None:
        return "—"
    try:
        return Allocation.model_validate(data).describe()
    except ValueError:
        return json.dumps(data, sort_keys=True)


def _outcome(e: JournalEntry | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"seq": e.seq, "time": e.time, "status": e.status, "after": e.after, "error": e.error, "detail": e.detail}


def _decision_markdown(d: dict[str, Any]) -> list[str]:
    out = [f"### seq {d['seq']} · {_md(d['action'])} ({d['kind']}) · {d['time']}", ""]
    out.append(f"- who: {_md(d['who'])}" + (f", profile {_md(d['profile'])}" if d["profile"] else ""))
    if d["flag"]:
        out.append(f"- flag: {_md(d['flag'])}")
    if d["reason"]:
        out.append(f"- reason: {_md(d['reason'])}")
    if d["rule_hash"]:
        out.append(f"- rule: `{d['rule_hash']}`")
    target = d.get("planned", d.get("after"))
    if d["before"] is not None or target is not None:
        out.append(f"- change: {_md(describe_allocation(d['before']))} → {_md(describe_allocation(target))}")
    outcome = d.get("outcome")
    if d["kind"] == "intent" and outcome is None:
        out.append("- outcome: **none recorded** (the process stopped before the call returned)")
    elif outcome is not None:
        line = f"- outcome: **{outcome['status']}** at {outcome['time']} (seq {outcome['seq']})"
        if outcome["after"] is not None:
            line += f", platform now holds {_md(describe_allocation(outcome['after']))}"
        if outcome["error"]:
            line += f": {_md(outcome['error'])}"
        out.append(line)
    if d["detail"]:
        out.append(f"- detail: `{json.dumps(d['detail'], sort_keys=True)}`")
    out.append("")
    if d["evidence"] is not None:
        out += ["Evidence:", ""] + _evidence_markdown(d["evidence"]) + [""]
    return out


def _evidence_markdown(verdict: Any) -> list[str]:
    """Scalars as a list; a mapping of metric → figures as a table; anything else as JSON."""
    if not isinstance(verdict, dict):
        return [_fenced(json.dumps(verdict, indent=2), "json")]
    out: list[str] = []
    tables = {k: v for k, v in verdict.items() if isinstance(v, dict) and v and all(not isinstance(x, (dict, list)) for x in v.values())}
    for key, value in verdict.items():
        if key in tables:
            continue
        shown = value if not isinstance(value, (dict, list)) else json.dumps(value, sort_keys=True)
        out.append(f"- {_md(str(key))}: {_md(str(shown))}")
    if tables:
        columns: list[str] = []
        for row in tables.values():
            columns += [c for c in row if c not in columns]
        columns.sort(key=lambda c: (_COLUMN_ORDER.index(c) if c in _COLUMN_ORDER else len(_COLUMN_ORDER), c))
        out += ([""] if out else []) + ["| metric | " + " | ".join(_md(c) for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for name, row in tables.items():
            cells = [_md(str(row.get(c, ""))) for c in columns]
            out.append(f"| {_md(name)} | " + " | ".join(cells) + " |")
    return out


#: Evidence columns people expect first: the figure, its interval, the threshold, the sample size.
_COLUMN_ORDER = ["value", "estimate", "lower", "upper", "threshold", "limit", "n", "status", "verdict"]


def _fenced(text: str, lang: str) -> str:
    # A fence longer than any run of backticks inside, so the text cannot close it; control characters
    # shown, never passed on to whoever reads the file in a terminal.
    text = visible(text, keep_newlines=True)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


#: characters Markdown would read as markup (emphasis, links, HTML, code, headings, tables); an underscore
#: only where it can open or close emphasis (inside a word, as in english_chat, it cannot)
_MARKUP = re.compile(r"([\\`*\[\]<>#|~!]|(?<!\w)_|_(?!\w))")


def _md(text: str) -> str:
    """One line of outside text in Markdown: control characters shown, markup characters escaped, so a
    reason or a flag key is read as written and never rendered (a link, a heading, a table cell)."""
    return _MARKUP.sub(r"\\\1", visible(text))


def _head(chain_head: ChainHead | tuple[int, str] | str | None) -> ChainHead | None:
    if chain_head is None:
        return None
    if isinstance(chain_head, str):
        return ChainHead.from_text(chain_head)
    return ChainHead(int(chain_head[0]), str(chain_head[1]))
