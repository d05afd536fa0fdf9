"""Who changes a flag and why, handed from the core operation to the adapter doing the write, so each
platform can keep it in its own history (Unleash: a strategy parameter visible in its event log;
LaunchDarkly and FeatBit: the change's comment) — without widening every adapter's write signature.

``operations`` writes inside ``noting("ana: advance — verdict ADVANCE")``; adapters read ``current_note()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_note: ContextVar[str | None] = ContextVar("routedeck_change_note", default=None)

#: the Unleash strategy parameter holding it (never part of routing or of routedeck's state)
UNLEASH_PARAMETER = "routedeck-change"


@contextmanager
def noting(text: str) -> Iterator[None]:
    token = _note.set(" ".join(text.split())[:500])
    try:
        yield
    finally:
        _note.reset(token)


def current_note() -> str | None:
    return _note.get()
