"""The behaviour every FlagPlatform must show. Each check raises AssertionError (or an error) on failure."""

from __future__ import annotations

import pytest

from console.core.errors import ConflictError, WriteNotConfirmed
from console.core.models import RolloutState, Stage

from .implementations import FLAG, Harness, seed_flag


def read_returns_seeded_flag(h: Harness) -> None:
    flag = h.platform.read_flag(FLAG)
    want = seed_flag()
    assert flag.revision
    assert (flag.baseline, flag.candidate) == (want.baseline, want.candidate)
    assert flag.variations == want.variations
    assert flag.allocation.candidate_bp == 0 and not flag.allocation.internal_enabled
    assert FLAG in h.platform.list_flags()


def set_allocation_persists_for_a_fresh_client(h: Harness) -> None:
    flag = h.platform.read_flag(FLAG)
    wanted = flag.allocation.model_copy(update={"internal_enabled": True, "candidate_bp": 500})
    result = h.platform.set_allocation(FLAG, wanted, flag.revision)
    assert result.after.allocation == wanted
    assert result.after.revision != flag.revision
    assert h.reopen().read_flag(FLAG).allocation == wanted
    again = h.platform.set_allocation(FLAG, wanted.model_copy(update={"candidate_bp": 2000}), result.after.revision)
    assert again.after.revision not in (flag.revision, result.after.revision)
    assert h.reopen().read_flag(FLAG).allocation.candidate_bp == 2000


def stale_revision_is_refused_and_changes_nothing(h: Harness) -> None:
    seen = h.platform.read_flag(FLAG)
    theirs = h.other.read_flag(FLAG)
    h.other.set_allocation(FLAG, theirs.allocation.model_copy(update={"candidate_bp": 2000}), theirs.revision)
    with pytest.raises(ConflictError):
        h.platform.set_allocation(FLAG, seen.allocation.model_copy(update={"candidate_bp": 500}), seen.revision)
    assert h.reopen().read_flag(FLAG).allocation.candidate_bp == 2000


def rollback_after_foreign_change_still_rolls_back_and_reports_it(h: Harness) -> None:
    seen = h.platform.read_flag(FLAG)
    r = h.platform.set_allocation(FLAG, seen.allocation.model_copy(update={"internal_enabled": True, "candidate_bp": 500}), seen.revision)
    theirs = h.other.read_flag(FLAG)
    h.other.set_allocation(FLAG, theirs.allocation.model_copy(update={"candidate_bp": 5000}), theirs.revision)
    result = h.platform.rollback_to_baseline(FLAG, r.after.revision)
    assert result.foreign_change and "50%" in result.foreign_change
    after = h.reopen().read_flag(FLAG)
    assert after.allocation.candidate_bp == 0 and not after.allocation.internal_enabled
    assert after.baseline == seen.baseline  # rollback never changes which route is the baseline


def rollout_state_round_trips(h: Harness) -> None:
    seen = h.platform.read_flag(FLAG)
    state = RolloutState(stage=Stage.PCT5, rule_hash="abc123", chain_head="7:deadbeef")
    h.platform.set_rollout_state(FLAG, state, seen.revision)
    got = h.reopen().read_flag(FLAG).rollout
    assert got is not None and got.stage is Stage.PCT5 and got.rule_hash == "abc123" and got.chain_head == "7:deadbeef"


def history_lists_routedeck_writes(h: Harness) -> None:
    seen = h.platform.read_flag(FLAG)
    h.platform.set_allocation(FLAG, seen.allocation.model_copy(update={"candidate_bp": 500}), seen.revision)
    events = h.platform.history(FLAG)
    assert events and events[0].flag == FLAG
    assert events == sorted(events, key=lambda e: e.at, reverse=True)


def create_then_read(h: Harness) -> None:
    new = seed_flag().model_copy(update={"key": "contract-created"})
    h.platform.create_flag(new)
    assert h.reopen().read_flag("contract-created").variations == new.variations


def lost_write_is_not_confirmed(h: Harness) -> None:
    """Every implementation must confirm; the broken one must raise here."""
    seen = h.platform.read_flag(FLAG)
    try:
        h.platform.set_allocation(FLAG, seen.allocation.model_copy(update={"candidate_bp": 700}), seen.revision)
    except WriteNotConfirmed:
        raise AssertionError("write not confirmed by read-back") from None
    assert h.reopen().read_flag(FLAG).allocation.candidate_bp == 700


CHECKS = [
    read_returns_seeded_flag,
    set_allocation_persists_for_a_fresh_client,
    stale_revision_is_refused_and_changes_nothing,
    rollback_after_foreign_change_still_rolls_back_and_reports_it,
    rollout_state_round_trips,
    history_lists_routedeck_writes,
    create_then_read,
    lost_write_is_not_confirmed,
]
