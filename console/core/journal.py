"""The audit journal's public interface (the code lives in ``console.core.audit``).

Every action routedeck takes on a flag platform is journalled: an ``intent`` entry before the
platform call and an ``outcome`` entry after it; things seen rather than done are ``event``s.
The file format is described in docs/journal.md.
"""

from __future__ import annotations

from .audit.entry import (
    EMPTY_HEAD,
    GENESIS,
    ChainHead,
    EntryFields,
    EntryKind,
    JournalEntry,
    Operator,
    OutcomeStatus,
    canonical_json,
    entry_hash,
)
from .audit.export import decision_record, export_json, export_markdown
from .audit.reader import head, read_entries
from .audit.record import RecordedAction, read_back_state, record_action, record_event
from .audit.verify import Anchor, AnchorCheck, LineProblem, VerifyReport, verify
from .audit.writer import JOURNAL_FILENAME, Journal, JournalUnavailable, journal_path

__all__ = [
    "Anchor",
    "EMPTY_HEAD",
    "GENESIS",
    "JOURNAL_FILENAME",
    "AnchorCheck",
    "ChainHead",
    "EntryFields",
    "EntryKind",
    "Journal",
    "JournalEntry",
    "JournalUnavailable",
    "LineProblem",
    "Operator",
    "OutcomeStatus",
    "RecordedAction",
    "VerifyReport",
    "canonical_json",
    "decision_record",
    "entry_hash",
    "export_json",
    "export_markdown",
    "head",
    "journal_path",
    "read_back_state",
    "read_entries",
    "record_action",
    "record_event",
    "verify",
]
