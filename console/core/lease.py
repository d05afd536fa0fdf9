"""Who may act on a flag right now: a lease stored with the flag's rollout state.

A guard (or a console) takes the lease before it acts and renews it on every look; the lease
names its holder and when it lapses. Writes go through ``FlagPlatform.set_rollout_state`` with
the revision just read, so two acquirers racing for a free lease cannot both win: the loser's
write is refused with a ConflictError, it reads the flag again and sees the other holder. A lease
past its ``expires_at`` is stale (its holder died or hung) and may be taken over.

No I/O here beyond the FlagPlatform port.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from .errors import ConflictError, RouteDeckError
from .models import Lease, RolloutState, RouteFlag
from .ports import FlagPlatform

MIN_TTL_S = 30.0
#: how often a racing acquirer re-reads and retries before giving up
_ATTEMPTS = 3


class LeaseHeld(RouteDeckError):
    """Another live holder has the flag's lease (the command exits 5)."""

    exit_code = 5

    def __init__(self, key: str, lease: Lease, hint: str = "") -> None:
        super().__init__(f"flag {key}: lease held by {lease.holder} until {_fmt(lease.expires_at)}"
                         + (f" — {hint}" if hint else ""))
        self.key = key
        self.lease = lease


def check_free(flag: RouteFlag, holder: str | None, now: datetime | None = None, hint: str = "") -> Lease | None:
    """Raise LeaseHeld when someone other than ``holder`` holds a live lease on ``flag``; else return the
    lease that is there (None, stale or ``holder``'s own)."""
    held = current(flag)
    if held is not None and held.holder != holder and is_live(held, now or datetime.now(UTC)):
        raise LeaseHeld(flag.key, held, hint)
    return held


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_holder(kind: str = "guard") -> str:
    """``guard:<host>:<pid>``: names the process, so an operator can find it."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


def ttl_for(interval_s: float) -> float:
    """A lease outlives a few missed looks: 3 × the interval, at least 30 s."""
    return max(MIN_TTL_S, 3.0 * float(interval_s))


def current(flag: RouteFlag) -> Lease | None:
    return flag.rollout.lease if flag.rollout is not None else None


def is_live(lease: Lease | None, now: datetime) -> bool:
    return lease is not None and lease.expires_at > now


def _with_lease(flag: RouteFlag, lease: Lease | None) -> RolloutState:
    return (flag.rollout or RolloutState()).model_copy(update={"lease": lease})


def acquire(platform: FlagPlatform, key: str, holder: str, ttl_s: float, now: datetime | None = None) -> Lease:
    """Take (or renew) the lease on ``key`` for ``ttl_s`` seconds.

    Free, stale or ours: written with the revision read (ours with more than half its time left
    is kept as it is, so a guard looking every few seconds does not rewrite the flag each time). Held live by someone else:
    ``LeaseHeld``. A concurrent write in between: re-read and decide again.
    """
    last: ConflictError | None = None
    for _ in range(_ATTEMPTS):
        moment = now or datetime.now(UTC)
        flag = platform.read_flag(key)
        held = current(flag)
        if held is not None and held.holder != holder and is_live(held, moment):
            raise LeaseHeld(key, held)
        if held is not None and held.holder == holder and (held.expires_at - moment).total_seconds() > ttl_s / 2:
            return held  # ours with more than half its time left: no write needed
        lease = Lease(holder=holder, expires_at=moment + timedelta(seconds=max(1.0, float(ttl_s))))
        try:
            platform.set_rollout_state(key, _with_lease(flag, lease), flag.revision)
        except ConflictError as exc:
            last = exc
            continue
        return lease
    held = current(platform.read_flag(key))
    if held is not None and held.holder != holder and is_live(held, now or datetime.now(UTC)):
        raise LeaseHeld(key, held)
    raise last if last is not None else ConflictError(f"flag {key}: the lease could not be written")


renew = acquire


def release(platform: FlagPlatform, key: str, holder: str) -> bool:
    """Give the lease back if we still hold it; True when a lease was cleared."""
    for _ in range(_ATTEMPTS):
        flag = platform.read_flag(key)
        held = current(flag)
        if held is None or held.holder != holder:
            return False
        try:
            platform.set_rollout_state(key, _with_lease(flag, None), flag.revision)
        except ConflictError:
            continue
        return True
    return False


__all__ = ["MIN_TTL_S", "LeaseHeld", "acquire", "check_free", "current", "default_holder", "is_live", "release", "renew", "ttl_for"]
