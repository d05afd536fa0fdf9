"""One timeline: routedeck's journal entries and the flag platforms' own change history, by time.

Each journal entry and each platform ``ChangeEvent`` becomes a ``TimelineRecord`` of plain values.
A platform change that routedeck made itself is paired with the journal entries of that write
(it happened between the intent and the outcome, and shows the allocation the outcome read back),
so it reads as routedeck's; an unpaired change that moved traffic was made elsewhere and shows who
made it and when.

Records stay small so a journal of 100,000 entries fits in memory and filters in a blink: the
large parts of an entry (allocations, evidence) are read again from the journal, by byte offset,
when one record is opened (``Timeline.detail``). Search and filters use text lower-cased once,
at load.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from ..models import Allocation, ChangeEvent
from .entry import JournalEntry
from .lines import parse_line
from .verify import VerifyReport

Source = Literal["routedeck", "platform"]
#: where a record comes from, as a reviewer needs to read it:
#: ``journal`` an entry routedeck wrote; ``paired`` a platform change made by routedeck (the journal
#: has its intent and outcome); ``outside`` a platform change that moved traffic and that no journal
#: entry covers (made elsewhere); ``state`` a platform change with no routing change (e.g. a lease
#: renewal) not in the journal
Origin = Literal["journal", "paired", "outside", "state"]

#: how far a platform's clock may be from this machine's when pairing a change with a journal entry
DEFAULT_PAIRING_SLACK_S = 5.0
ROUTING_KEYS = ("internal_enabled", "internal_audience", "eligible_scope", "candidate_bp")


@dataclass(slots=True)
class TimelineRecord:
    """One line of the timeline. Text fields are never None (empty string when unknown)."""

    at: float  # epoch seconds
    time: str  # UTC, ISO 8601 with a Z
    source: Source
    origin: Origin
    actor: str
    action: str
    flag: str
    summary: str
    reason: str = ""
    kind: str = ""  # journal: intent / outcome / event; platform: "change"
    status: str = ""  # outcomes: confirmed / failed
    seq: int | None = None  # the journal entry's place in the chain
    intent_seq: int | None = None  # outcomes: the intent they answer
    offset: int = -1  # byte offset of the journal line (-1 for platform records)
    #: platform records: the journal seq of the routedeck write this change belongs to
    paired_seq: int | None = None
    #: confirmed outcomes: the allocation read back, in words (what a platform change is matched on)
    after_words: str = ""
    #: platform records keep their event (there are few); journal records are re-read on demand
    event: ChangeEvent | None = None
    text: str = ""  # lower-cased: actor, action, flag, reason, summary, kind, status
    flag_l: str = ""
    actor_l: str = ""
    action_l: str = ""

    @property
    def foreign(self) -> bool:
        """A change on the platform that routedeck did not make and that moved traffic."""
        return self.origin == "outside"


@dataclass(frozen=True)
class RecordDetail:
    """Everything known about one record, for the detail view."""

    record: TimelineRecord
    entry: JournalEntry | None = None  # journal records
    #: the other half of an intent/outcome pair, when the journal has it
    linked: JournalEntry | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    evidence: Any = None
    problem: str | None = None  # why the entry could not be read again


@dataclass
class Timeline:
    """The merged records (oldest first), with what went wrong while gathering them."""

    records: list[TimelineRecord]
    journal: Path | None = None
    #: lines of the journal that are not entries (skipped here; ``verify`` names the first)
    unreadable_lines: int = 0
    #: a crash left the last line incomplete (skipped)
    torn_tail: bool = False
    #: per flag: why its platform history could not be read (missing data is said, never hidden)
    history_errors: dict[str, str] = field(default_factory=dict)
    #: set once the chain has been checked (it takes a while on a long journal)
    report: VerifyReport | None = None
    _by_seq: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_seq = {r.seq: i for i, r in enumerate(self.records) if r.seq is not None}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def entries(self) -> int:
        return len(self._by_seq)

    def by_seq(self, seq: int) -> TimelineRecord | None:
        i = self._by_seq.get(seq)
        return self.records[i] if i is not None else None

    def values(self, attribute: str) -> list[str]:
        """The distinct values of ``flag``, ``actor`` or ``action``, sorted (for prompts)."""
        return sorted({getattr(r, attribute) for r in self.records} - {""})

    def chain_status(self, record: TimelineRecord) -> str:
        """Whether the chain vouches for this record, in words."""
        if record.seq is None:
            paired = self.by_seq(record.paired_seq) if record.paired_seq is not None else None
            if paired is not None:
                return f"the journal's write at seq {paired.seq} covers it: {self.chain_status(paired)}"
            return "not in the journal: only the platform's own history has it"
        report = self.report
        if report is None:
            return "chain not checked yet"
        bad = report.first_bad
        if bad is not None and (bad.seq is None or record.seq >= bad.seq):
            return f"NOT verified: the chain breaks at {bad.describe()}"
        if record.seq > report.head.seq:
            return "NOT verified: after the end of the valid chain"
        anchors = [a for a in report.anchors if a.status != "matched"]
        if anchors:
            return f"chain intact through seq {report.head.seq}, but {anchors[0].detail}"
        return f"verified (chain intact through seq {report.head.seq}, head {report.head.hash[:12]}…)"

    def detail(self, record: TimelineRecord) -> RecordDetail:
        """The record with its full entry read again from the journal (allocations, evidence, link)."""
        if record.event is not None:
            ev = record.event
            return RecordDetail(record, before=allocation_of(ev.before) or ev.before,
                                after=allocation_of(ev.after) or ev.after)
        if self.journal is None or record.offset < 0:
            return RecordDetail(record, problem="no journal to read the entry from")
        entry, problem = read_entry_at(self.journal, record.offset)
        if entry is None:
            return RecordDetail(record, problem=problem)
        linked = None
        if entry.kind == "outcome" and entry.intent_seq is not None:
            other = self.by_seq(entry.intent_seq)
            if other is not None:
                linked = read_entry_at(self.journal, other.offset)[0]
        elif entry.kind == "intent":
            linked = self._outcome_of(entry.seq)
        evidence = entry.verdict
        if evidence is None and linked is not None:
            evidence = linked.verdict
        return RecordDetail(record, entry, linked, entry.before, entry.after, evidence)

    def _outcome_of(self, intent_seq: int) -> JournalEntry | None:
        start = self._by_seq.get(intent_seq)
        if start is None or self.journal is None:
            return None
        # the outcome follows its intent closely; other writers' entries may sit in between
        for r in self.records[start + 1:start + 200]:
            if r.intent_seq == intent_seq:
                return read_entry_at(self.journal, r.offset)[0]
        return None


# ---- building -----------------------------------------------------------------------------


def build_timeline(
    journal: Path | str | None,
    history: Mapping[str, Sequence[ChangeEvent]] | None = None,
    *,
    history_errors: Mapping[str, str] | None = None,
    slack_s: float = DEFAULT_PAIRING_SLACK_S,
) -> Timeline:
    """Read the journal at ``journal`` (None: no journal) and merge the platform's ``history``
    (flag key → events) into one time-ordered timeline."""
    path = Path(journal) if journal is not None else None
    records, unreadable, torn = read_journal_records(path) if path is not None else ([], 0, False)
    events = [ev for evs in (history or {}).values() for ev in evs]
    platform = pair_platform_events(records, events, slack_s)
    merged = records + platform
    if platform:
        merged.sort(key=lambda r: (r.at, 0 if r.seq is not None else 1, r.seq or 0))
    return Timeline(merged, path, unreadable, torn, dict(history_errors or {}))


def gather_history(
    flags: Iterable[str], history: Callable[[str], Sequence[ChangeEvent]]
) -> tuple[dict[str, list[ChangeEvent]], dict[str, str]]:
    """Ask ``history(key)`` for each flag; a failing flag is reported, the others still count."""
    events: dict[str, list[ChangeEvent]] = {}
    errors: dict[str, str] = {}
    for key in flags:
        try:
            events[key] = list(history(key))
        except NotImplementedError:
            errors[key] = "the flag platform keeps no history"
        except Exception as exc:  # one flag's history must not hide the rest of the timeline
            errors[key] = " ".join(str(exc).split()) or type(exc).__name__
    return events, errors


class _Interner:
    """One string object per distinct value, and its lower-cased twin (100,000 entries, few values)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, str]] = {}

    def __call__(self, value: Any) -> tuple[str, str]:
        text = "" if value is None else str(value)
        got = self._seen.get(text)
        if got is None:
            got = self._seen[text] = (text, text.lower())
        return got


def read_journal_records(path: Path) -> tuple[list[TimelineRecord], int, bool]:
    """One record per journal line, with its byte offset: (records, unreadable lines, torn tail)."""
    records: list[TimelineRecord] = []
    unreadable = 0
    torn = False
    intern = _Interner()
    describe = _AllocationWords()
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return records, 0, False
    with fh:
        offset = 0
        for data in fh:
            start, offset = offset, offset + len(data)
            obj = _parse_without_evidence(data) if data.endswith(b"\n") else None
            if obj is None or not isinstance(obj.get("seq"), int):
                if not data.endswith(b"\n"):
                    torn = True
                else:
                    unreadable += 1
                continue
            records.append(_journal_record(obj, start, intern, describe))
    return records, unreadable, torn


#: in a canonical line the evidence is the last key, right after the format version
_EVIDENCE_CUT = b'"v":1,"verdict":'


def _parse_without_evidence(data: bytes) -> dict[str, Any] | None:
    """The entry on a line without parsing its evidence (the bulk of a line; the detail view reads it).

    Canonical lines sort their keys, so ``"v":1,"verdict":`` ends the line's fields. Cut there and
    the rest parses on its own; if a nested object happened to hold the same bytes the cut leaves
    unbalanced JSON, which fails to parse, and the whole line is parsed instead.
    """
    cut = data.find(_EVIDENCE_CUT)
    if cut > 0:
        obj = parse_line(data[:cut] + b'"v":1}')
        if obj is not None:
            return obj
    return parse_line(data)


def _journal_record(obj: dict[str, Any], offset: int, intern: _Interner, describe: "_AllocationWords") -> TimelineRecord:
    time_text = str(obj.get("time", ""))
    operator = obj.get("operator") if isinstance(obj.get("operator"), dict) else {}
    actor, actor_l = intern(operator.get("name") or operator.get("os_user") or "?")
    action, action_l = intern(obj.get("action") or "?")
    flag, flag_l = intern(obj.get("flag"))
    kind, _ = intern(obj.get("kind"))
    status, _ = intern(obj.get("status"))
    reason = str(obj.get("reason") or "")
    after_words = describe(obj["after"]) if kind == "outcome" and status == "confirmed" and obj.get("after") is not None else ""
    summary = _journal_summary(obj, kind, status, describe)
    return TimelineRecord(
        at=_epoch(time_text), time=time_text, source="routedeck", origin="journal",
        actor=actor, action=action, flag=flag, summary=summary, reason=reason, kind=kind, status=status,
        seq=obj["seq"], intent_seq=obj.get("intent_seq") if isinstance(obj.get("intent_seq"), int) else None,
        offset=offset, after_words=after_words,
        text=" ".join((actor_l, action_l, flag_l, reason.lower(), summary.lower(), kind, status)),
        flag_l=flag_l, actor_l=actor_l, action_l=action_l,
    )


def _journal_summary(obj: dict[str, Any], kind: str, status: str, describe: "_AllocationWords") -> str:
    before, after = obj.get("before"), obj.get("after")
    detail = obj.get("detail") if isinstance(obj.get("detail"), dict) else {}
    if kind == "intent":
        if before is None and after is None:
            return "plans the change"
        return f"plans {describe(before)} → {describe(after)}"
    if kind == "outcome":
        if status == "failed":
            return f"FAILED: {obj.get('error') or 'no error text'}"
        text = f"confirmed: platform holds {describe(after)}" if after is not None else "confirmed"
        if detail.get("foreign_change"):
            text += f" (changed elsewhere before: {detail['foreign_change']})"
        return text
    if isinstance(detail.get("what"), str):
        return detail["what"]
    if obj.get("action") == "rule_changed":
        return f"rule {detail.get('previous_rule_hash') or '?'} → {obj.get('rule_hash') or '?'}"
    if obj.get("action") == "rule_loaded":
        return f"rule {obj.get('rule_hash') or '?'} loaded" + (f" from {detail['path']}" if detail.get("path") else "")
    if before is not None or after is not None:
        return f"{describe(before)} → {describe(after)}"
    return str(obj.get("reason") or kind)


class _AllocationWords:
    """``Allocation.describe`` for allocation dicts, remembered per distinct allocation."""

    def __init__(self) -> None:
        self._seen: dict[tuple, str] = {}

    def __call__(self, data: Any) -> str:
        if data is None:
            return "—"
        if not isinstance(data, dict):
            return str(data)
        key = (data.get("internal_enabled"), data.get("internal_audience"), data.get("eligible_scope"),
               data.get("candidate_bp"))
        if data.get("audience_predicate") is not None or data.get("scope_predicate") is not None:
            key += (_hashable(data.get("audience_predicate")), _hashable(data.get("scope_predicate")))
        got = self._seen.get(key)
        if got is None:
            got = self._seen[key] = describe_allocation(data)
        return got


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def describe_allocation(data: Mapping[str, Any] | None) -> str:
    """An allocation in words (``5% of english_chat``), or its JSON when it is not one."""
    if data is None:
        return "—"
    try:
        return Allocation.model_validate(dict(data)).describe()
    except ValueError:
        return json.dumps(data, sort_keys=True)


def allocation_of(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The allocation inside a platform event's before/after, when it holds one."""
    if not isinstance(data, Mapping):
        return None
    inner = data.get("allocation")
    if isinstance(inner, Mapping):
        return dict(inner)
    if "candidate_bp" in data:
        return dict(data)
    return None


def _routing_of(data: Mapping[str, Any] | None) -> tuple | None:
    """What routes traffic in an event's before/after (allocation, baseline, candidate), if known."""
    alloc = allocation_of(data)
    if alloc is None:
        return None
    full = Allocation.model_validate(alloc) if "candidate_bp" in alloc else None
    if full is None:
        return None
    return (full.internal_enabled, full.internal_audience, full.eligible_scope, full.candidate_bp,
            data.get("baseline") if isinstance(data, Mapping) else None,
            data.get("candidate") if isinstance(data, Mapping) else None)


@dataclass
class _Write:
    """One routedeck write from the journal: when it ran and what the platform held after it."""

    seq: int  # the outcome's seq (the intent's when no outcome was written)
    flag: str
    start: float
    end: float


def pair_platform_events(
    records: Sequence[TimelineRecord], events: Iterable[ChangeEvent], slack_s: float = DEFAULT_PAIRING_SLACK_S,
) -> list[TimelineRecord]:
    """Platform records for ``events``, each paired with the routedeck write it belongs to, if any.

    A change belongs to a write on the same flag when it happened between the write's intent and
    its outcome (give or take ``slack_s`` for the platform's clock) and, when both are known, the
    platform's allocation after the change is the one the outcome read back.
    """
    by_flag: dict[str, list[_Write]] = {}
    for w in sorted(_writes(records), key=lambda w: w.start):
        by_flag.setdefault(w.flag, []).append(w)
    starts = {flag: [w.start for w in ws] for flag, ws in by_flag.items()}
    longest = {flag: max(w.end - w.start for w in ws) for flag, ws in by_flag.items()}
    afters = {r.seq: r for r in records if r.seq is not None}
    intern = _Interner()
    out = []
    for ev in events:
        at = ev.at.timestamp() if ev.at.tzinfo else ev.at.replace(tzinfo=timezone.utc).timestamp()
        ev_after = allocation_of(ev.after)
        paired: int | None = None
        # a platform that itself says a change came from outside routedeck is believed
        candidates = () if "outside routedeck" in ev.action else _around(
            by_flag.get(ev.flag, []), starts.get(ev.flag, []), at, slack_s, longest.get(ev.flag, 0.0))
        for w in candidates:
            if not (w.start - slack_s <= at <= w.end + slack_s):
                continue
            held = afters[w.seq].after_words if w.seq in afters else ""
            if ev_after is not None and held and describe_allocation(ev_after) != held:
                continue  # the platform shows another allocation than this write read back
            paired = w.seq
            break
        if paired is not None:
            origin: Origin = "paired"
        elif _routing_of(ev.before) is not None and _routing_of(ev.before) == _routing_of(ev.after):
            origin = "state"
        else:
            origin = "outside"
        actor, actor_l = intern(ev.actor or "?")
        action, action_l = intern(ev.action or "change")
        flag, flag_l = intern(ev.flag)
        summary = ev.detail or _event_summary(ev)
        if origin == "paired":
            summary = f"{summary} (routedeck's write, journal seq {paired})"
        elif origin == "outside":
            summary = f"{summary} — not journalled by routedeck"
        elif origin == "state":
            summary = f"{summary} (no routing change)"
        out.append(TimelineRecord(
            at=at, time=_iso(at), source="platform", origin=origin, actor=actor, action=action, flag=flag,
            summary=summary, kind="change", paired_seq=paired, event=ev,
            text=" ".join((actor_l, action_l, flag_l, summary.lower(), "platform", origin)),
            flag_l=flag_l, actor_l=actor_l, action_l=action_l,
        ))
    return out


def _around(writes: list[_Write], starts: list[float], at: float, slack_s: float, longest: float) -> list[_Write]:
    """The writes (sorted by start) whose window could hold ``at``: found by bisection, so pairing
    stays quick with a long journal and a long platform history."""
    last = bisect.bisect_right(starts, at + slack_s)
    first = bisect.bisect_left(starts, at - slack_s - longest)
    return writes[first:last]


def _writes(records: Sequence[TimelineRecord]) -> list[_Write]:
    intents = {r.seq: r for r in records if r.kind == "intent" and r.seq is not None}
    writes = []
    answered = set()
    for r in records:
        if r.kind == "outcome" and r.seq is not None:
            intent = intents.get(r.intent_seq) if r.intent_seq is not None else None
            start = intent.at if intent is not None else r.at
            writes.append(_Write(r.seq, r.flag, start, r.at))
            if r.intent_seq is not None:
                answered.add(r.intent_seq)
    for seq, r in intents.items():
        if seq not in answered:  # the process stopped before the outcome: the write may still have happened
            writes.append(_Write(seq, r.flag, r.at, r.at + 60.0))
    return writes


def _event_summary(ev: ChangeEvent) -> str:
    before, after = allocation_of(ev.before), allocation_of(ev.after)
    if before is not None or after is not None:
        return f"{describe_allocation(before)} → {describe_allocation(after)}"
    return ev.action


def read_entry_at(path: Path, offset: int) -> tuple[JournalEntry | None, str | None]:
    """The journal entry whose line starts at ``offset``: (entry, None) or (None, why not)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.readline()
    except OSError as exc:
        return None, f"journal {path}: cannot be read ({exc.strerror})"
    obj = parse_line(data)
    if obj is None:
        return None, f"journal {path} at byte {offset}: no entry there any more (the file changed since it was loaded)"
    try:
        return JournalEntry.model_validate(obj), None
    except ValueError:
        return None, f"journal {path} at byte {offset}: not a journal entry — run `routedeck audit verify {path}`"


# ---- filtering ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineFilter:
    """What the reviewer narrowed the timeline to. Text matches are case-insensitive substrings."""

    text: str = ""
    flag: str = ""
    actor: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @property
    def empty(self) -> bool:
        return not (self.text or self.flag or self.actor or self.action or self.since or self.until)

    def describe(self) -> str:
        """The active filters in one line (empty string when none)."""
        parts = []
        if self.text:
            parts.append(f"/{self.text}")
        if self.flag:
            parts.append(f"flag~{self.flag}")
        if self.actor:
            parts.append(f"who~{self.actor}")
        if self.action:
            parts.append(f"action~{self.action}")
        if self.since or self.until:
            parts.append(f"time {_short(self.since) if self.since else '…'}..{_short(self.until) if self.until else 'now'}")
        return " · ".join(parts)


def apply_filter(records: Sequence[TimelineRecord], wanted: TimelineFilter) -> list[int]:
    """Indices of the records that pass every active filter, in timeline order."""
    if wanted.empty:
        return list(range(len(records)))
    text = wanted.text.lower()
    flag, actor, action = wanted.flag.lower(), wanted.actor.lower(), wanted.action.lower()
    since = wanted.since.timestamp() if wanted.since else None
    until = wanted.until.timestamp() if wanted.until else None
    out = []
    append = out.append
    for i, r in enumerate(records):
        if flag and flag not in r.flag_l:
            continue
        if actor and actor not in r.actor_l:
            continue
        if action and action not in r.action_l:
            continue
        if since is not None and r.at < since:
            continue
        if until is not None and r.at >= until:
            continue
        if text and text not in r.text:
            continue
        append(i)
    return out


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time_range(text: str, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """``2h`` (the last two hours), ``SINCE..UNTIL`` or ``SINCE`` (ISO 8601, UTC unless an offset
    is given; a date alone is that whole day when it is the only bound). Raises ValueError in words."""
    now = now or datetime.now(timezone.utc)
    text = text.strip()
    if not text:
        return None, None
    match = _RELATIVE.match(text)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)]), None
    if ".." in text:
        left, right = text.split("..", 1)
        since = _moment(left) if left.strip() else None
        until = _moment(right, end=True) if right.strip() else None
        if since and until and until <= since:
            raise ValueError(f"time range {text!r}: the end is not after the start")
        return since, until
    since = _moment(text)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return since, since + timedelta(days=1)
    return since, None


def _moment(text: str, end: bool = False) -> datetime:
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {text!r}: use ISO 8601 (2026-11-23T08:00), a date, or a span like 2h") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if end and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        moment += timedelta(days=1)  # "..2026-11-23" includes that day
    return moment


def _short(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def _epoch(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---- the before/after diff ------------------------------------------------------------------


def allocation_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[tuple[str, str, str, bool]]:
    """(field, before, after, changed) for each field of two allocations (or any two objects).

    The routing fields always come first; other fields only when they changed or hold something.
    """
    names = {"internal_enabled": "first audience on", "internal_audience": "first audience",
             "eligible_scope": "eligible scope", "candidate_bp": "candidate share"}
    a, b = dict(before or {}), dict(after or {})
    keys = [k for k in names if k in a or k in b] + sorted((set(a) | set(b)) - set(names))
    rows = []
    for key in keys:
        x, y = a.get(key), b.get(key)
        if key not in names and x in (None, [], {}, "") and y in (None, [], {}, ""):
            continue
        rows.append((names.get(key, key), _field_text(key, x, key in a or before is not None),
                     _field_text(key, y, key in b or after is not None), x != y))
    return rows


def _field_text(key: str, value: Any, known: bool) -> str:
    if not known:
        return "—"
    if key == "candidate_bp" and isinstance(value, int):
        return f"{value / 100:g}%"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
