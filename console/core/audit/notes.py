"""Informational journal entries: a decision rule loaded or changed, a foreign change seen; and
telling a change another routedeck process made (it is in the journal) from a foreign one.

Nothing here calls a platform, and nothing here raises for a journal that cannot be written:
each function returns the warnings to show, so a console or a guard carries on and says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import RouteDeckError
from ..ports import describe_difference, same_routing
from ..rollout import rule_changed
from .entry import JournalEntry
from .reader import read_entries
from .record import record_event
from .writer import Journal

if TYPE_CHECKING:
    from ..models import RouteFlag
    from ..rules import DecisionRule

RULE_LOADED = "rule_loaded"
RULE_CHANGED = "rule_changed"
FOREIGN_CHANGE = "foreign_change"


def note_rule_loaded(journal: Journal | None, rule: "DecisionRule", flag: "RouteFlag | None", *, by: str) -> list[str]:
    """Record that ``by`` (``console``, ``guard``) loaded ``rule``; when the rollout state on the
    platform names another rule hash, record that the rule changed too. Returns warnings."""
    warnings = []
    _, warning = record_event(
        journal, RULE_LOADED, flag=rule.flag_key, rule_hash=rule.rule_hash,
        reason=f"{by} loaded the decision rule", detail={"path": str(rule.path), "by": by},
    )
    if warning:
        warnings.append(warning)
    if flag is not None and rule_changed(flag, rule):
        previous = flag.rollout.rule_hash if flag.rollout else None
        _, warning = record_event(
            journal, RULE_CHANGED, flag=rule.flag_key, rule_hash=rule.rule_hash,
            reason=f"the rule {by} loaded is not the one the rollout's stage was started under",
            detail={"path": str(rule.path), "by": by, "previous_rule_hash": previous},
        )
        if warning:
            warnings.append(warning)
    return warnings


def note_foreign_change(journal: Journal | None, old: "RouteFlag", new: "RouteFlag", *, seen_by: str) -> str | None:
    """Record that ``seen_by`` saw ``new`` where it last read ``old``, changed by someone else.
    Nothing is recorded when only the revision moved (a platform whose revision covers several
    flags changes it for all of them). Returns a warning when it could not be recorded."""
    if same_routing(old, new) and old.rollout == new.rollout:
        return None
    what = describe_difference(old, new)
    _, warning = record_event(
        journal, FOREIGN_CHANGE, flag=new.key,
        before=old.allocation.model_dump(mode="json"), after=new.allocation.model_dump(mode="json"),
        reason=f"{seen_by} saw the flag changed outside it",
        detail={"what": what, "seen_by": seen_by, "revision_before": old.revision, "revision_after": new.revision},
    )
    return warning


def routedeck_write(journal: Journal | None, flag: str, revision: str | None) -> JournalEntry | None:
    """The confirmed outcome of a routedeck write (any process sharing this journal) that left ``flag``
    at ``revision``; None when the journal holds none, so the change came from somewhere else."""
    if journal is None or not revision:
        return None
    found = None
    try:
        for entry in read_entries(journal.path, flag=flag):
            if entry.kind == "outcome" and entry.status == "confirmed" and (entry.detail or {}).get("revision") == revision:
                found = entry
    except (OSError, RouteDeckError):  # an unreadable journal cannot vouch for the change
        return None
    return found


def describe_write(entry: JournalEntry) -> str:
    """"advance by alice at 10:42:05Z" — who made a routedeck write, for a notice."""
    who = entry.operator.name or entry.operator.os_user
    return f"{entry.action} by {who} at {entry.time[11:19]}Z, journal #{entry.seq}"
