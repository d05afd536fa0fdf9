"""One journal entry, its canonical JSON form and its hash.

The canonical form is what is hashed *and* what is written, so a line in the file is exactly
``canonical_json(entry)``; any edit to a stored line, even whitespace, shows up in ``verify``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from datetime import date, datetime, timezone
from enum import Enum
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

#: ``prev`` of the first entry: there is no previous entry to hash.
GENESIS = "0" * 64
#: Version of the line format, stored in every entry so a later format can be told apart.
FORMAT_VERSION = 1

EntryKind = Literal["intent", "outcome", "event"]
OutcomeStatus = Literal["confirmed", "failed"]


class ChainHead(NamedTuple):
    """The (seq, hash) of an entry, recorded elsewhere as an anchor. ``seq`` 0 is the empty journal."""

    seq: int
    hash: str

    def to_text(self) -> str:
        """``"<seq>:<hash>"``, the form stored with the rollout state and in exports."""
        return f"{self.seq}:{self.hash}"

    @classmethod
    def from_text(cls, text: str) -> "ChainHead":
        """Parse ``"<seq>:<hash>"``; raises ValueError with the expected form."""
        seq, sep, digest = text.strip().partition(":")
        if not sep or not seq.isdigit() or not _is_digest(digest):
            raise ValueError(f"chain anchor {text!r} is not in the form <seq>:<64 hex digits>")
        return cls(int(seq), digest)


EMPTY_HEAD = ChainHead(0, GENESIS)


class Operator(BaseModel):
    """Who acted: the configured operator name, the OS user and the machine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    os_user: str
    host: str | None = None


class EntryFields(BaseModel):
    """What a caller gives ``Journal.append``; the journal adds seq, time, operator, prev and hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EntryKind
    action: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    operator: Operator | None = None
    profile: str | None = None
    flag: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str = ""
    rule_hash: str | None = None
    verdict: Any = None
    status: OutcomeStatus | None = None
    intent_seq: int | None = Field(default=None, ge=1)
    error: str | None = None
    detail: dict[str, Any] | None = None


class JournalEntry(EntryFields):
    """An entry as stored: the caller's fields plus its place in the chain."""

    v: int = FORMAT_VERSION
    seq: int = Field(ge=1)
    time: str
    operator: Operator
    prev: str
    hash: str

    @property
    def anchor(self) -> ChainHead:
        """This entry as a chain anchor."""
        return ChainHead(self.seq, self.hash)

    @property
    def at(self) -> datetime:
        """``time`` as an aware UTC datetime."""
        return datetime.fromisoformat(self.time.replace("Z", "+00:00"))

    def to_line(self) -> str:
        """The line as written to the journal, with its trailing newline."""
        return canonical_json(self.model_dump(mode="json")) + "\n"


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, ASCII only (so any string, even a lone surrogate, survives a round trip)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def entry_hash(body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of an entry without its ``hash`` field."""
    without = {k: v for k, v in body.items() if k != "hash"}
    return hashlib.sha256(canonical_json(without).encode("ascii")).hexdigest()


def format_time(moment: datetime) -> str:
    """UTC ISO time with microseconds and a ``Z``: fixed width, so strings sort as times do."""
    if moment.tzinfo is None:
        raise ValueError("journal times must be timezone-aware")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_json_value(value: Any) -> Any:
    """Plain JSON data for anything a caller may hand the journal (models, dataclasses, enums, times).

    Non-finite floats become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (JSON has no
    such numbers and a verdict with no data is common); mapping keys become strings.
    """
    if isinstance(value, BaseModel):
        return to_json_value(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json_value(dataclasses.asdict(value))
    if isinstance(value, Enum):
        return to_json_value(value.value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(to_json_value(k)): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [to_json_value(v) for v in value]
        return sorted(items, key=canonical_json) if isinstance(value, (set, frozenset)) else items
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return to_json_value(value.tolist())
    raise TypeError(f"cannot store a {type(value).__name__} in the journal")


def seal(fields: EntryFields, *, seq: int, prev: str, time: str, operator: Operator) -> JournalEntry:
    """The stored entry for ``fields`` at position ``seq`` after an entry hashed ``prev``."""
    body = to_json_value(fields.model_dump(mode="json", exclude={"operator"}))
    body.update(v=FORMAT_VERSION, seq=seq, prev=prev, time=time, operator=operator.model_dump(mode="json"))
    body["hash"] = entry_hash(body)
    return JournalEntry.model_validate(body)


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def is_digest(text: object) -> bool:
    """True for a lowercase 64-hex-digit sha256."""
    return isinstance(text, str) and _is_digest(text)
