"""The flag platforms the contract suite runs against: one registry entry each.

An entry's factory returns a ``Harness``: the platform under test, seeded with one route flag
(baseline + candidate, internal audience + eligible scope, nobody on the candidate), and a
second, independent client of the same backend that plays "someone else". Adding a platform
to the suite is one entry in ``IMPLEMENTATIONS``; a factory that needs a running server asks
for it through ``request.getfixturevalue`` and carries the ``servers`` mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from console.core.models import Allocation, ChangeEvent, RouteFlag, RouteProfile
from console.core.ports import FlagPlatform
from tests.integration.contract_featbit import featbit_factory
from tests.integration.contract_launchdarkly import launchdarkly_factory
from tests.integration.contract_unleash import unleash_factory

FLAG = "contract-route"
BASELINE = "fast_default_v1"
CANDIDATE = "balanced_core_v2"


def seed_flag(key: str = FLAG) -> RouteFlag:
    """The route flag every implementation is seeded with."""
    return RouteFlag(
        key=key,
        variations={
            BASELINE: RouteProfile(route=BASELINE, model="provider-a/standard", timeout_ms=6000),
            CANDIDATE: RouteProfile(
                route=CANDIDATE,
                model="provider-b/balanced",
                max_output_tokens=900,
                fallback=BASELINE,
                budget_policy="standard_support_budget",
            ),
        },
        baseline=BASELINE,
        candidate=CANDIDATE,
        allocation=Allocation(internal_audience="internal_support_team", eligible_scope="english_support_chat"),
    )


@dataclass
class Harness:
    """One implementation, ready for a check."""

    platform: FlagPlatform
    #: an independent client of the same backend: "someone else" changing the flag
    other: FlagPlatform
    #: a fresh client, as another console on another machine would open it
    reopen: Callable[[], FlagPlatform]
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for fn in reversed(self.cleanup):
            fn()


Factory = Callable[[pytest.FixtureRequest, Path], Harness]


@dataclass(frozen=True)
class Implementation:
    name: str
    factory: Factory
    marks: tuple[pytest.MarkDecorator, ...] = ()


# ---- flagd flag file -------------------------------------------------------------------


def flagd_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    path = tmp_path / "flags.json"
    FlagdFilePlatform(path).create_flag(seed_flag())
    return Harness(FlagdFilePlatform(path), FlagdFilePlatform(path), lambda: FlagdFilePlatform(path))


# ---- a deliberately broken adapter (the suite must fail it) -----------------------------


class DroppingFlagdPlatform(FlagdFilePlatform):
    """Accepts every write and silently drops it; keeps no history."""

    def _write_flag(self, flag: RouteFlag, expected_revision: str | None) -> None:
        return None

    def history(self, key: str, limit: int = 100) -> list[ChangeEvent]:
        return []


def dropping_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    path = tmp_path / "flags.json"
    FlagdFilePlatform(path).create_flag(seed_flag())
    return Harness(DroppingFlagdPlatform(path), FlagdFilePlatform(path), lambda: FlagdFilePlatform(path))


#: every real implementation; each must pass every check
IMPLEMENTATIONS: list[Implementation] = [
    Implementation("flagd", flagd_factory),
    Implementation("unleash", unleash_factory, (pytest.mark.servers,)),
    Implementation("featbit", featbit_factory),  # the local FeatBit fake: no external server
    Implementation("launchdarkly", launchdarkly_factory),  # the local LaunchDarkly fake: no external server
]

#: implementations that must FAIL the suite (proof that the suite can fail), with the checks
#: each one is expected to fail
BROKEN: dict[str, tuple[Factory, frozenset[str]]] = {
    "drops-writes": (
        dropping_factory,
        frozenset(
            {
                "set_allocation_persists_for_a_fresh_client",
                "revision_changes_on_every_write",
                "change_between_read_and_write_is_detected",
                "rollback_after_foreign_change_still_rolls_back_and_reports_it",
                "rollback_without_foreign_change_reports_none",
                "rollout_state_round_trips",
                "write_is_confirmed_by_read_back",
                "history_lists_routedeck_writes",
            }
        ),
    ),
}


def implementation_params() -> list:
    return [pytest.param(impl, id=impl.name, marks=impl.marks) for impl in IMPLEMENTATIONS]
