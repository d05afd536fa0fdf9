"""The write behaviour every FlagPlatform shares (console/core/ports.py), on a tiny in-memory platform."""

from __future__ import annotations

import pytest

from console.core.errors import ConflictError, WriteNotConfirmed
from console.core.models import Allocation, ChangeEvent, RolloutState, RouteFlag, RouteProfile, Stage
from console.core.ports import (
    FlagPlatform,
    describe_difference,
    describe_difference_short,
    same_routing,
)

KEY = "support-answer-route"


def flag(**update) -> RouteFlag:
    base = RouteFlag(
        key=KEY,
        variations={"fast": RouteProfile(route="fast_default_v1"), "balanced": RouteProfile(route="balanced_core_v2")},
        baseline="fast",
        candidate="balanced",
        allocation=Allocation(internal_audience="staff", eligible_scope="english"),
    )
    return base.model_copy(update=update)


class MemoryPlatform(FlagPlatform):
    """Flags in a dict; the revision is a counter. ``mangle`` lets a test corrupt what is stored."""

    kind = "memory"

    def __init__(self, *flags: RouteFlag) -> None:
        self.flags = {f.key: f.model_copy(update={"revision": "r1"}) for f in flags}
        self.counter = 1
        self.writes: list[tuple[RouteFlag, str | None]] = []
        self.mangle = lambda f: f

    def describe(self) -> str:
        return "memory:test"

    def list_flags(self) -> list[str]:
        return sorted(self.flags)

    def read_flag(self, key: str) -> RouteFlag:
        return self.flags[key]

    def _write_flag(self, flag: RouteFlag, expected_revision: str | None) -> None:
        self.writes.append((flag, expected_revision))
        if expected_revision is not None and self.flags[flag.key].revision != expected_revision:
            raise ConflictError("stale", current_revision=self.flags[flag.key].revision)
        self._store(flag)

    def _store(self, flag: RouteFlag) -> None:
        self.counter += 1
        self.flags[flag.key] = self.mangle(flag).model_copy(update={"revision": f"r{self.counter}"})

    def history(self, key: str, limit: int = 100) -> list[ChangeEvent]:
        return []

    def someone_else_sets(self, bp: int) -> None:
        current = self.flags[KEY]
        self._store(current.model_copy(update={"allocation": current.allocation.model_copy(update={"candidate_bp": bp})}))


def at(bp: int, internal: bool = False) -> Allocation:
    return flag().allocation.model_copy(update={"candidate_bp": bp, "internal_enabled": internal})


# ---- write_flag / set_allocation ----------------------------------------------------------


def test_set_allocation_writes_with_the_revision_read_and_confirms() -> None:
    p = MemoryPlatform(flag())
    result = p.set_allocation(KEY, at(500), "r1")
    assert p.writes[-1][1] == "r1"  # the adapter gets the revision to close the race itself
    assert result.before.revision == "r1" and result.after.revision == "r2"
    assert result.after.allocation == at(500) and result.elapsed_s >= 0
    assert result.foreign_change is None
    assert p.read_flag(KEY).variations == flag().variations


def test_stale_revision_is_refused_before_anything_is_written() -> None:
    p = MemoryPlatform(flag())
    p.someone_else_sets(2000)
    with pytest.raises(ConflictError) as caught:
        p.set_allocation(KEY, at(500), "r1")
    message = str(caught.value)
    assert p.writes == [] and p.read_flag(KEY).allocation.candidate_bp == 2000
    assert KEY in message and "memory:test" in message and "20%" in message and "\n" not in message
    assert caught.value.current_revision == "r2"


def test_write_without_expected_revision_writes_whatever_is_there() -> None:
    p = MemoryPlatform(flag())
    p.someone_else_sets(2000)
    result = p.write_flag(flag(allocation=at(500)), None)
    assert p.writes[-1][1] is None and result.after.allocation.candidate_bp == 500


def test_a_write_the_platform_changed_is_not_confirmed() -> None:
    p = MemoryPlatform(flag())
    p.mangle = lambda f: f.model_copy(update={"allocation": f.allocation.model_copy(update={"candidate_bp": 100})})
    with pytest.raises(WriteNotConfirmed) as caught:
        p.set_allocation(KEY, at(500), "r1")
    message = str(caught.value)
    assert "5% of english → 1% of english" in message and "now holds 1% of english" in message


def test_a_rollout_state_the_platform_dropped_is_not_confirmed() -> None:
    p = MemoryPlatform(flag())
    p.mangle = lambda f: f.model_copy(update={"rollout": None})
    with pytest.raises(WriteNotConfirmed, match="rollout state not stored"):
        p.set_rollout_state(KEY, RolloutState(stage=Stage.PCT5), "r1")


def test_set_allocation_keeps_the_rollout_state_unless_given_one() -> None:
    state = RolloutState(stage=Stage.INTERNAL)
    p = MemoryPlatform(flag(rollout=state))
    assert p.set_allocation(KEY, at(500), "r1").after.rollout == state
    new_state = RolloutState(stage=Stage.PCT5)
    assert p.set_allocation(KEY, at(500), "r2", rollout=new_state).after.rollout == new_state


# ---- rollback_to_baseline -----------------------------------------------------------------


def test_rollback_is_never_refused_and_reports_a_foreign_change() -> None:
    p = MemoryPlatform(flag(allocation=at(500, internal=True)))
    p.someone_else_sets(5000)
    result = p.rollback_to_baseline(KEY, seen_revision="r1")
    assert p.writes[-1][1] is None  # the safe direction does not wait for a fresh read
    assert result.foreign_change and "50% of english" in result.foreign_change
    assert result.before.allocation.candidate_bp == 5000
    after = p.read_flag(KEY).allocation
    assert after.candidate_bp == 0 and not after.internal_enabled
    assert (after.internal_audience, after.eligible_scope) == ("staff", "english")  # targeting kept


def test_rollback_without_foreign_change_or_seen_revision_reports_none() -> None:
    p = MemoryPlatform(flag(allocation=at(2000)))
    assert p.rollback_to_baseline(KEY, seen_revision="r1").foreign_change is None
    assert p.rollback_to_baseline(KEY).foreign_change is None


def test_rollback_clears_foreign_targeting_and_stores_the_rollout_state() -> None:
    p = MemoryPlatform(flag(foreign_targeting="hand-written rule"))
    state = RolloutState(stage=Stage.ROLLED_BACK)
    result = p.rollback_to_baseline(KEY, rollout=state)
    assert p.writes[-1][0].foreign_targeting is None
    assert result.after.rollout == state and result.after.foreign_targeting is None


def test_a_rollback_that_does_not_land_raises() -> None:
    p = MemoryPlatform(flag(allocation=at(2000)))
    p.mangle = lambda f: f.model_copy(update={"allocation": at(2000)})
    with pytest.raises(WriteNotConfirmed, match="now holds 20% of english"):
        p.rollback_to_baseline(KEY)


# ---- create_flag --------------------------------------------------------------------------


def test_create_flag_needs_the_platform_to_support_it() -> None:
    with pytest.raises(NotImplementedError, match="memory cannot create flags"):
        MemoryPlatform().create_flag(flag())


def test_create_flag_confirms_by_read_back() -> None:
    class Creating(MemoryPlatform):
        def _create_flag(self, new: RouteFlag) -> None:
            self._store(new)

    p = Creating()
    assert p.create_flag(flag()).after.revision == "r2"
    p.mangle = lambda f: f.model_copy(update={"candidate": None})
    with pytest.raises(WriteNotConfirmed, match="candidate balanced → None"):
        p.create_flag(flag(key="other"))


# ---- comparing reads ----------------------------------------------------------------------


def test_describe_difference_names_each_change() -> None:
    old = flag()
    new = flag(
        allocation=at(500, internal=True),
        baseline="balanced",
        candidate="fast",
        variations=old.variations | {"premium": RouteProfile(route="premium_hard_cases")},
    )
    text = describe_difference(old, new)
    assert "allocation 0% of english → staff + 5% of english" in text
    assert "baseline fast → balanced" in text and "candidate balanced → fast" in text
    assert "variation premium added" in text
    edited = flag(variations={"fast": RouteProfile(route="fast_default_v1", timeout_ms=10), "balanced": old.variations["balanced"]})
    assert describe_difference(old, edited) == "variation fast edited"
    assert describe_difference(old, flag(foreign_targeting="odd rule")) == "targeting: odd rule"
    assert describe_difference(old, flag(rollout=RolloutState())) == "rollout state"
    assert describe_difference(old, flag(revision="x")) == "revision changed (content identical)"


def test_same_routing_ignores_revision_and_rollout_only() -> None:
    a = flag()
    assert same_routing(a, flag(revision="other", rollout=RolloutState(stage=Stage.PCT5)))
    assert not same_routing(a, flag(allocation=at(1)))
    assert not same_routing(a, flag(candidate=None))
    assert not same_routing(a, flag(foreign_targeting="x"))
    assert not same_routing(a, flag(variations={"fast": RouteProfile(route="fast_default_v1"), "balanced": RouteProfile(route="other")}))


def test_describe_difference_short() -> None:
    text = describe_difference_short(flag(allocation=at(2000, internal=True)))
    assert text == "now staff + 20% of english, baseline fast, candidate balanced"

