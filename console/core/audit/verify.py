"""Checking a journal: every line, the chain of hashes, and anchors recorded elsewhere.

The chain alone shows edits, deletions and reordering; it cannot show a journal cut short or
rewritten from scratch with fresh hashes. Anchors — (seq, hash) pairs stored with the rollout
state on the flag platform and in exports — catch both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from .entry import EMPTY_HEAD, FORMAT_VERSION, GENESIS, ChainHead, JournalEntry, canonical_json, entry_hash
from .lines import iter_raw_lines, parse_line

AnchorStatus = Literal["matched", "mismatch", "missing", "unreached"]


@dataclass(frozen=True)
class LineProblem:
    """What is wrong with one line (1-based ``line``)."""

    line: int
    reason: str
    seq: int | None = None

    def describe(self) -> str:
        where = f"line {self.line}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class AnchorCheck:
    """One anchor and what the journal holds at its seq."""

    anchor: ChainHead
    status: AnchorStatus
    line: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class VerifyReport:
    """The result of ``verify``: the valid prefix, the first bad entry, a torn tail, anchor checks."""

    path: Path
    #: entries in the valid prefix (all of them when the chain is intact)
    entries: int
    #: (seq, hash) of the last entry of the valid prefix
    head: ChainHead
    first_bad: LineProblem | None = None
    #: a last line left incomplete by a crash mid-write; not counted, not a chain failure
    torn: LineProblem | None = None
    anchors: tuple[AnchorCheck, ...] = field(default_factory=tuple)
    exists: bool = True

    @property
    def ok(self) -> bool:
        """True when every entry checks out and every anchor is found with its hash."""
        return self.first_bad is None and all(a.status == "matched" for a in self.anchors)

    def problems(self) -> list[str]:
        """Each problem as one line, the first bad entry first."""
        out = []
        if self.first_bad is not None:
            out.append(f"journal {self.path} {self.first_bad.describe()}")
        for check in self.anchors:
            if check.status != "matched":
                out.append(f"journal {self.path}: {check.detail}")
        return out

    def summary(self) -> str:
        """One line for people: intact (with the head to record) or the first problem."""
        problems = self.problems()
        if problems:
            return problems[0]
        note = f"; {self.torn.describe()} (ignored)" if self.torn else ""
        return f"journal {self.path}: {self.entries} entries, chain intact, head {self.head.to_text()}{note}"


def verify(path: Path | str, anchors: Iterable[ChainHead | tuple[int, str] | str] = ()) -> VerifyReport:
    """Check every line of the journal at ``path`` and each anchor; stops at the first bad entry.

    Anchors are ``(seq, hash)`` pairs or ``"seq:hash"`` strings. A missing file is an empty
    journal (so any anchor past seq 0 is reported missing).
    """
    path = Path(path)
    wanted = [_as_anchor(a) for a in anchors]
    by_seq: dict[int, list[ChainHead]] = {}
    for anchor in wanted:
        by_seq.setdefault(anchor.seq, []).append(anchor)
    results: dict[ChainHead, AnchorCheck] = {}
    for anchor in by_seq.get(0, []):
        status: AnchorStatus = "matched" if anchor.hash == GENESIS else "mismatch"
        results[anchor] = AnchorCheck(anchor, status, None, f"anchor {anchor.to_text()} names seq 0 with a hash other than the empty chain's")

    head, count, first_bad, torn = EMPTY_HEAD, 0, None, None
    intents: set[int] = set()
    exists = path.exists()
    lines = iter_raw_lines(path) if exists else iter(())
    for raw in lines:
        problem, obj = _check_line(raw.data, raw.complete, head, intents)
        if problem is not None:
            at = LineProblem(raw.number, problem, obj.get("seq") if isinstance(obj, dict) and isinstance(obj.get("seq"), int) else None)
            crash_like = not raw.complete or obj is None
            if raw.last and crash_like:
                torn = at
            else:
                first_bad = at
            break
        assert obj is not None
        count += 1
        head = ChainHead(obj["seq"], obj["hash"])
        if obj["kind"] == "intent":
            intents.add(obj["seq"])
        for anchor in by_seq.get(head.seq, []):
            if anchor.hash == head.hash:
                results[anchor] = AnchorCheck(anchor, "matched", raw.number)
            else:
                results[anchor] = AnchorCheck(
                    anchor, "mismatch", raw.number,
                    f"line {raw.number} (seq {head.seq}) has hash {head.hash[:12]}… but the anchor recorded "
                    f"{anchor.hash[:12]}… — the journal was rewritten after the anchor was taken",
                )

    checks = []
    for anchor in wanted:
        if anchor in results:
            checks.append(results[anchor])
        elif first_bad is not None:
            checks.append(AnchorCheck(anchor, "unreached", None, f"anchor {anchor.to_text()} not checked: the chain breaks at line {first_bad.line}"))
        else:
            end = f"ends at seq {head.seq} (line {count})" if count else "is empty or missing"
            checks.append(AnchorCheck(
                anchor, "missing", count + 1,
                f"line {count + 1}: anchor seq {anchor.seq} is missing — the journal {end}, so it was truncated "
                f"below an anchor recorded elsewhere",
            ))
    return VerifyReport(path, count, head, first_bad, torn, tuple(checks), exists)


def _check_line(
    data: bytes, complete: bool, head: ChainHead, intents: set[int]
) -> tuple[str | None, dict[str, Any] | None]:
    """Why the line does not continue the chain after ``head`` (None when it does), and its object."""
    if not complete:
        return "no trailing newline (a write cut short)", parse_line(data)
    obj = parse_line(data)
    if obj is None:
        return "not a JSON object", None
    if obj.get("v") != FORMAT_VERSION:
        return f"format version {obj.get('v')!r} is not {FORMAT_VERSION}", obj
    try:
        entry = JournalEntry.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "entry"
        return f"field {loc}: {first['msg']}", obj
    if entry.seq != head.seq + 1:
        return f"seq {entry.seq} where {head.seq + 1} was expected (an entry was removed, repeated or moved)", obj
    if entry.prev != head.hash:
        return "prev is not the hash of the entry before (that entry was changed or removed)", obj
    if entry_hash(obj) != entry.hash:
        return "hash does not match the entry's content (the entry was edited)", obj
    if data != (canonical_json(obj) + "\n").encode("ascii", "surrogateescape"):
        return "the line is not in canonical form (it was edited by hand)", obj
    if entry.kind == "outcome" and entry.intent_seq is not None and entry.intent_seq not in intents:
        return f"intent_seq {entry.intent_seq} does not name an earlier intent", obj
    return None, obj


def _as_anchor(anchor: ChainHead | tuple[int, str] | str) -> ChainHead:
    if isinstance(anchor, str):
        return ChainHead.from_text(anchor)
    seq, digest = anchor
    return ChainHead(int(seq), str(digest))
