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

AnchorStatus = Literal["matched", "mismatch", "missing", "unreached", "other"]


@dataclass(frozen=True)
class Anchor:
    """A chain head recorded outside the journal, with which journal wrote it (None: not recorded, as in
    anchors older routedeck versions stored) and where it was found (for the report)."""

    head: ChainHead
    journal: str | None = None
    where: str = ""


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

    #: the journal's identity (its first entry's hash, shortened); None when it is empty
    identity: str | None = None
    #: why a torn last line is not a harmless crash (an anchor shows what it recorded happened), else None
    torn_problem: str | None = None

    @property
    def ok(self) -> bool:
        """True when every entry checks out and every anchor of this journal is found with its hash
        (anchors another journal wrote are reported, not counted)."""
        return (self.first_bad is None and self.torn_problem is None
                and all(a.status in ("matched", "other") for a in self.anchors))

    def problems(self) -> list[str]:
        """Each problem as one line, the first bad entry first."""
        out = []
        if self.first_bad is not None:
            out.append(f"journal {self.path} {self.first_bad.describe()}")
        if self.torn is not None and self.torn_problem is not None:
            out.append(f"journal {self.path} {self.torn.describe()}: {self.torn_problem}")
        for check in self.anchors:
            if check.status not in ("matched", "other"):
                out.append(f"journal {self.path}: {check.detail}")
        return out

    def notes(self) -> list[str]:
        """What is not a problem but is worth saying: other journals' anchors, a crash's torn line."""
        out = [f"note: {check.detail}" for check in self.anchors if check.status == "other"]
        return out

    def summary(self) -> str:
        """One line for people: intact (with the head to record) or the first problem."""
        problems = self.problems()
        if problems:
            return problems[0]
        note = f"; {self.torn.describe()} (ignored)" if self.torn else ""
        mine = sum(1 for a in self.anchors if a.status == "matched")
        anchors = f"; {mine} anchor{'s' if mine != 1 else ''} matched" if self.anchors else ""
        return f"journal {self.path}: {self.entries} entries, chain intact, head {self.head.to_text()}{anchors}{note}"


def verify(path: Path | str, anchors: Iterable[Anchor | ChainHead | tuple[int, str] | str] = ()) -> VerifyReport:
    """Check every line of the journal at ``path`` and each anchor; stops at the first bad entry.

    Anchors are ``Anchor``s, ``(seq, hash)`` pairs or ``"seq:hash"`` strings. An ``Anchor`` that names
    another journal is reported as such ("other") and not checked against this one. A missing file is
    an empty journal (so any anchor past seq 0 is reported missing).
    """
    path = Path(path)
    given = [a if isinstance(a, Anchor) else Anchor(_as_anchor(a)) for a in anchors]
    identity = _identity(path)
    others = [a for a in given if a.journal is not None and a.journal != identity]
    wanted = [a.head for a in given if a not in others]
    described = {a.head: a for a in given if a not in others}
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
                known = described.get(anchor)
                unsure = "" if known is not None and known.journal is not None else (
                    " (or the anchor came from another journal: this one does not say which journal wrote it)")
                results[anchor] = AnchorCheck(
                    anchor, "mismatch", raw.number,
                    f"line {raw.number} (seq {head.seq}) has hash {head.hash[:12]}… but the anchor recorded "
                    f"{anchor.hash[:12]}…{_at(known)} — the journal was rewritten after the anchor was taken{unsure}",
                )

    torn_problem = None
    if torn is not None:
        torn_obj = _torn_object(path)
        for anchor in by_seq.get(torn.seq or -1, []):
            if torn_obj is not None and torn_obj.get("hash") == anchor.hash and entry_hash(torn_obj) == anchor.hash:
                # the anchor proves the cut line was once a whole, acknowledged entry
                results[anchor] = AnchorCheck(anchor, "mismatch", torn.line,
                                              f"anchor {anchor.to_text()}{_at(described.get(anchor))} names line "
                                              f"{torn.line}, which is cut short: an acknowledged entry was damaged")
        # the cut line is the outcome of an intent whose write an anchor elsewhere shows was made
        intent = torn_obj.get("intent_seq") if isinstance(torn_obj, dict) and torn_obj.get("kind") == "outcome" \
            else (head.seq if head.seq in intents else None)
        carried = [a for a in by_seq.get(intent or -1, []) if results.get(a) is not None and results[a].status == "matched"]
        if carried:
            torn_problem = (f"it holds the outcome of intent seq {intent}, and anchor {carried[0].to_text()}"
                            f"{_at(described.get(carried[0]))} shows that write was made — its confirmed outcome may "
                            "have been acknowledged and is lost; this is not a harmless crash")
    checks = [AnchorCheck(a.head, "other", None,
                          f"anchor {a.head.to_text()}{_at(a)} was written by journal {a.journal}, not this one "
                          f"({identity or 'empty'}) — check it against that journal")
              for a in others]
    for anchor in wanted:
        if anchor in results:
            checks.append(results[anchor])
        elif first_bad is not None:
            checks.append(AnchorCheck(anchor, "unreached", None, f"anchor {anchor.to_text()} not checked: the chain breaks at line {first_bad.line}"))
        elif torn is not None and anchor.seq == head.seq + 1:
            checks.append(AnchorCheck(
                anchor, "missing", torn.line,
                f"line {torn.line}: anchor seq {anchor.seq}{_at(described.get(anchor))} names the last line, which is "
                "cut short — an entry acknowledged elsewhere was damaged, this is no crash",
            ))
        else:
            end = f"ends at seq {head.seq} (line {count})" if count else "is empty or missing"
            checks.append(AnchorCheck(
                anchor, "missing", count + 1,
                f"line {count + 1}: anchor seq {anchor.seq}{_at(described.get(anchor))} is missing — the journal "
                f"{end}, so it was truncated below an anchor recorded elsewhere",
            ))
    return VerifyReport(path, count, head, first_bad, torn, tuple(checks), exists, identity, torn_problem)


def _at(anchor: Anchor | None) -> str:
    return f" (from {anchor.where})" if anchor is not None and anchor.where else ""


def _identity(path: Path) -> str | None:
    import os

    from .writer import identity_of

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return identity_of(fd)
    finally:
        os.close(fd)


def _torn_object(path: Path) -> dict[str, Any] | None:
    """The last line of the file as an object when it parses (a line cut only at its newline does)."""
    last = None
    for raw in iter_raw_lines(path):
        last = raw
    return parse_line(last.data) if last is not None else None


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
