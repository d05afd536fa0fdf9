"""Journalling one platform action: an intent before the call, an outcome after it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..ports import WriteResult
from .entry import JournalEntry
from .writer import Journal, JournalUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class RecordedAction(Generic[T]):
    """What ``record_action`` did: the call's result and the entries written around it."""

    result: T
    intent: JournalEntry | None
    outcome: JournalEntry | None
    #: set when the journal could not record part of it (the action itself went ahead)
    warning: str | None = None


def read_back_state(result: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The confirmed allocation and details of a platform write result (``WriteResult``)."""
    if isinstance(result, WriteResult):
        detail: dict[str, Any] = {"revision": result.after.revision, "elapsed_s": round(result.elapsed_s, 6)}
        if result.foreign_change:
            detail["foreign_change"] = result.foreign_change
        if result.attempts > 1:
            detail["attempts"] = result.attempts
        if result.after.rollout is not None:
            detail["rollout"] = result.after.rollout.model_dump(mode="json")
        return result.after.allocation.model_dump(mode="json"), detail
    return None, {}


def record_action(
    journal: Journal,
    action: str,
    *,
    call: Callable[[], T],
    flag: str | None = None,
    before: Mapping[str, Any] | Any = None,
    planned: Mapping[str, Any] | Any = None,
    reason: str = "",
    rule_hash: str | None = None,
    verdict: Any = None,
    detail: Mapping[str, Any] | None = None,
    read_back: Callable[[T], tuple[Any, Mapping[str, Any]]] = read_back_state,
    required: bool = True,
) -> RecordedAction[T]:
    """Write an INTENT, run ``call()``, then write an OUTCOME: confirmed with the read-back state,
    or failed with the error text — and re-raise the error.

    ``required`` (advance, promote): if the intent cannot be written, JournalUnavailable is raised
    and the call is not made. Not required (rollback): the call is made anyway and the returned
    ``warning`` says what was not recorded. An outcome that cannot be written after a successful
    call never hides the result: it comes back with ``outcome=None`` and a warning.
    """
    common = {"action": action, "flag": flag, "rule_hash": rule_hash}
    intent: JournalEntry | None = None
    warning: str | None = None
    try:
        intent = journal.append(
            kind="intent", before=before, after=planned, reason=reason, verdict=verdict, detail=detail, **common
        )
    except JournalUnavailable as exc:
        if required:
            raise
        warning = f"{exc} (the {action} went ahead without an intent entry)"
    intent_seq = intent.seq if intent is not None else None
    try:
        result = call()
    except Exception as exc:
        try:
            journal.append(
                kind="outcome", status="failed", intent_seq=intent_seq, before=before,
                error=" ".join(str(exc).split()) or type(exc).__name__,
                detail={"error_type": type(exc).__name__}, **common,
            )
        except JournalUnavailable as journal_exc:
            exc.add_note(str(journal_exc))
        raise
    after, found = read_back(result)
    try:
        outcome = journal.append(
            kind="outcome", status="confirmed", intent_seq=intent_seq, before=before, after=after,
            detail=dict(found) or None, **common,
        )
    except JournalUnavailable as exc:
        note = f"{exc} (the {action} was made but its outcome is not recorded)"
        return RecordedAction(result, intent, None, f"{warning}; {note}" if warning else note)
    return RecordedAction(result, intent, outcome, warning)


def record_event(
    journal: Journal | None,
    action: str,
    *,
    flag: str | None = None,
    reason: str = "",
    rule_hash: str | None = None,
    before: Mapping[str, Any] | Any = None,
    after: Mapping[str, Any] | Any = None,
    detail: Mapping[str, Any] | None = None,
) -> tuple[JournalEntry | None, str | None]:
    """Append one ``event`` entry: something seen or loaded, with no platform call around it.

    Never raises for a journal that cannot be written (nor when there is none): the entry is
    informational, so the caller gets ``(None, warning)`` and carries on, saying so.
    """
    if journal is None:
        return None, f"no audit journal: {action} not recorded"
    try:
        entry = journal.append(kind="event", action=action, flag=flag, reason=reason, rule_hash=rule_hash,
                               before=before, after=after, detail=dict(detail) if detail else None)
    except JournalUnavailable as exc:
        return None, f"{exc} ({action} not recorded)"
    return entry, None
