"""How long routedeck waits: one backend request, a rollback that must hold, a guard that cannot see, a lock.

The active profile may set each of these (``timeout``, ``rollback_within``, ``give_up_after``,
``lock_timeout``); adapters and commands read them here when they start, so one profile with short
values makes every path fail fast (the fault tests run that way) and none needs an option of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timeouts:
    #: one HTTP request to a flag platform or a metrics source (connect, send, answer)
    request_s: float = 5.0
    #: how long a rollback re-reads and re-applies until the read-back shows it holds
    rollback_within_s: float = 30.0
    #: how long ``guard`` keeps retrying a backend that fails before it exits 1
    give_up_after_s: float = 600.0
    #: how long a write waits for the flag file's or the journal's lock
    lock_s: float = 10.0

    @property
    def connect_s(self) -> float:
        return min(2.0, self.request_s)


_active = Timeouts()


def use_timeouts(settings: Timeouts | None) -> None:
    """Make ``settings`` the ones used from now on (``None`` restores the defaults)."""
    global _active
    _active = settings or Timeouts()


def timeouts() -> Timeouts:
    return _active
