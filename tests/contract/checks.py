"""The behaviour every FlagPlatform must show, one function per promise.

Each check takes a fresh ``Harness`` and raises (AssertionError, a pytest failure or the
platform's own error) when the implementation breaks the promise. Checks use only the
FlagPlatform interface, so they run unchanged against any backend.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from console.core.errors import ConflictError
from console.core.models import Acknowledgement, Allocation, Lease, Override, RolloutState, Stage

from .implementations import BASELINE, CANDIDATE, FLAG, Harness, seed_flag


def _at(alloc: Allocation, bp: int, internal: bool = True) -> Allocation:
    return alloc.model_copy(update={"candidate_bp": bp, "internal_enabled": internal})


def read_returns_seeded_flag(h: Harness) -> None:
    flag = h.platform.read_flag(FLAG)
    want = seed_flag()
    assert flag.revision, "a read must carry the revision it was read at"
    assert (flag.key, flag.baseline, flag.candidate) == (FLAG, BASELINE, CANDIDATE)
    assert flag.variations == want.variations
    assert flag.allocation.candidate_bp == 0 and not flag.allocation.internal_enabled
    assert flag.allocation.audience_rule() == want.allocation.audience_rule()
    assert flag.allocation.scope_rule() == want.allocation.scope_rule()
    assert flag.foreign_targeting is None
    assert FLAG in h.platform.list_flags()
    assert h.platform.read_flag(FLAG).revision == flag.revision, "the revision must not move without a write"


def set_allocation_persists_for_a_fresh_client(h: Harness) -> None:
    flag = h.platform.read_flag(FLAG)
    wanted = _at(flag.allocation, 500)
    result = h.platform.set_allocation(FLAG, wanted, flag.revision)
    assert result.before.allocation == flag.allocation
    assert result.after.allocation == wanted
    fresh = h.reopen().read_flag(FLAG)
    assert fresh.allocation == wanted
    assert fresh.revision == result.after.revision
    assert fresh.variations == flag.variations  # an allocation change touches nothing else


def revision_changes_on_every_write(h: Harness) -> None:
    seen = [h.platform.read_flag(FLAG).revision]
    alloc = h.platform.read_flag(FLAG).allocation
    for bp in (500, 2000):
        seen.append(h.platform.set_allocation(FLAG, _at(alloc, bp), seen[-1]).after.revision)
    seen.append(h.platform.set_rollout_state(FLAG, RolloutState(stage=Stage.PCT20), seen[-1]).after.revision)
    seen.append(h.platform.rollback_to_baseline(FLAG, seen[-1]).after.revision)
    assert all(seen), seen
    assert len(set(seen)) == len(seen), f"a revision was reused: {seen}"


def stale_revision_is_refused_and_changes_nothing(h: Harness) -> None:
    seen = h.platform.read_flag(FLAG)
    theirs = h.other.read_flag(FLAG)
    h.other.set_allocation(FLAG, _at(theirs.allocation, 2000), theirs.revision)
    holds = h.reopen().read_flag(FLAG)
    with pytest.raises(ConflictError) as caught:
        h.platform.set_allocation(FLAG, _at(seen.allocation, 500), seen.revision)
    assert "\n" not in str(caught.value) and FLAG in str(caught.value)
    after = h.reopen().read_flag(FLAG)
    assert after.allocation.candidate_bp == 2000
    assert after.revision == holds.revision, "a refused write must change nothing"


def change_between_read_and_write_is_detected(h: Harness) -> None:
    """The adapter's own write primitive refuses a stale revision: the race between the shared
    read-compare in ``write_flag`` and the store itself is closed by the platform."""
    seen = h.platform.read_flag(FLAG)
    theirs = h.other.read_flag(FLAG)
    h.other.set_allocation(FLAG, _at(theirs.allocation, 2000), theirs.revision)
    with pytest.raises(ConflictError):
        h.platform._write_flag(seen.model_copy(update={"allocation": _at(seen.allocation, 500)}), seen.revision)
    assert h.reopen().read_flag(FLAG).allocation.candidate_bp == 2000


def rollback_after_foreign_change_still_rolls_back_and_reports_it(h: Harness) -> None:
    seen = h.platform.read_flag(FLAG)
    ours = h.platform.set_allocation(FLAG, _at(seen.allocation, 500), seen.revision)
    theirs = h.other.read_flag(FLAG)
    h.other.set_allocation(FLAG, _at(theirs.allocation, 5000), theirs.revision)
    result = h.platform.rollback_to_baseline(FLAG, ours.after.revision)
    assert result.foreign_change and "50%" in result.foreign_change, result.foreign_change
    assert result.before.allocation.candidate_bp == 5000
    after = h.reopen().read_flag(FLAG)
    assert after.allocation.candidate_bp == 0 and not after.allocation.internal_enabled
    assert after.baseline == BASELINE  # rollback never changes which route is the baseline
    assert after.allocation.scope_rule() == seen.allocation.scope_rule()


def rollback_without_foreign_change_reports_none(h: Harness) -> None:
    seen = h.platform.read_flag(FLAG)
    ours = h.platform.set_allocation(FLAG, _at(seen.allocation, 10_000), seen.revision)
    result = h.platform.rollback_to_baseline(FLAG, ours.after.revision)
    assert result.foreign_change is None
    assert result.before.allocation.candidate_bp == 10_000
    assert result.after.allocation == seen.allocation.rolled_back()
    assert h.reopen().read_flag(FLAG).allocation == seen.allocation.rolled_back()


def rollout_state_round_trips(h: Harness) -> None:
    seen = h.platform.read_flag(FLAG)
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    state = RolloutState(
        stage=Stage.PCT5,
        stage_started_at=at,
        rule_hash="abc123",
        acknowledgements=[Acknowledgement(item="join-health", by="ana", at=at, stage="5%")],
        overrides=[Override(stage_from="5%", stage_to="20%", verdict="HOLD", reason="peak ended", by="ana", at=at)],
        lease=Lease(holder="guard@host-1", expires_at=at + timedelta(minutes=5)),
        chain_head="7:deadbeef",
    )
    result = h.platform.set_rollout_state(FLAG, state, seen.revision)
    assert result.after.rollout == state
    assert h.reopen().read_flag(FLAG).rollout == state
    # an allocation change that does not mention the rollout state keeps it
    r2 = h.platform.set_allocation(FLAG, _at(seen.allocation, 500), result.after.revision)
    assert h.reopen().read_flag(FLAG).rollout == state and r2.after.rollout == state


def write_is_confirmed_by_read_back(h: Harness) -> None:
    seen = h.platform.read_flag(FLAG)
    wanted = _at(seen.allocation, 700, internal=False)
    result = h.platform.set_allocation(FLAG, wanted, seen.revision)
    assert result.after.allocation == wanted and result.elapsed_s >= 0
    assert h.reopen().read_flag(FLAG).allocation == wanted


def create_then_read(h: Harness) -> None:
    new = seed_flag("contract-created")
    result = h.platform.create_flag(new)
    assert result.after.variations == new.variations
    got = h.reopen().read_flag("contract-created")
    assert (got.baseline, got.candidate, got.variations) == (new.baseline, new.candidate, new.variations)
    assert set(h.reopen().list_flags()) >= {FLAG, "contract-created"}
    assert h.reopen().read_flag(FLAG).variations == seed_flag().variations  # the other flag is untouched


def history_lists_routedeck_writes(h: Harness) -> None:
    seen = h.platform.read_flag(FLAG)
    already = len(h.platform.history(FLAG))
    r1 = h.platform.set_allocation(FLAG, _at(seen.allocation, 500), seen.revision)
    h.platform.set_allocation(FLAG, _at(seen.allocation, 2000), r1.after.revision)
    events = h.reopen().history(FLAG)
    assert len(events) >= already + 2, events
    assert all(e.flag == FLAG for e in events)
    assert events == sorted(events, key=lambda e: e.at, reverse=True), "history must be newest first"
    assert "20%" in events[0].detail + str(events[0].after), events[0]


CHECKS = [
    read_returns_seeded_flag,
    set_allocation_persists_for_a_fresh_client,
    revision_changes_on_every_write,
    stale_revision_is_refused_and_changes_nothing,
    change_between_read_and_write_is_detected,
    rollback_after_foreign_change_still_rolls_back_and_reports_it,
    rollback_without_foreign_change_reports_none,
    rollout_state_round_trips,
    write_is_confirmed_by_read_back,
    create_then_read,
    history_lists_routedeck_writes,
]
