"""One look at every rule: one moment, and each question asked of the metrics source once.

The console judges all its rules together every few seconds. Wrapped in ``SharedReads`` for the
duration of that look, the metrics source answers every rule at the same ``now``, and a read asked
twice (two rules on one window, a verdict and a segment readout of one stage) goes out once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class SharedReads:
    """A metrics source seen through one look: ``now`` fixed, every read memoised by its arguments."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._answers: dict[tuple, Any] = {}
        #: how many reads reached the source (the rest were shared)
        self.reads = 0
        #: the last read that failed, in words (a look that failed on it could not read the metrics)
        self.failure: str | None = None
        #: the source could not tell its time (events:DIR?clock=data when its data has gone): a failed read
        #: like any other, raised to every look that asks the time
        self.now_error: Exception | None = None
        self._now = 0.0
        try:
            self._now = source.now()
        except Exception as exc:  # noqa: BLE001 — noted and raised again, unchanged, from now()
            self.now_error = exc
            self.failure = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)

    def now(self) -> float:
        if self.now_error is not None:
            raise self.now_error
        return self._now

    def moment(self) -> float:
        """When this look happened: the source's clock, or the wall clock when the source cannot tell it."""
        return time.time() if self.now_error is not None else self._now

    @property
    def capabilities(self):
        return self.source.capabilities

    def describe(self) -> str:
        return self.source.describe()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.source, name)
        if not (name.startswith("read") and callable(attr)):
            return attr
        return self._shared(name, attr)

    def _shared(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def ask(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            try:
                return call(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 — noted (which read failed) and passed on unchanged
                self.failure = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
                raise

        def read(*args: Any, **kwargs: Any) -> Any:
            key = (name, args, tuple(sorted(kwargs.items())))
            try:
                hash(key)
            except TypeError:  # an argument that cannot be compared: ask the source
                return ask(*args, **kwargs)
            if key not in self._answers:
                self._answers[key] = ask(*args, **kwargs)
            return self._answers[key]

        return read
