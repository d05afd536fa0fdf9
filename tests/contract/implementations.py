"""The flag platforms the contract suite runs against: one factory each.

A factory returns a ``Harness``: the platform under test, seeded with one route flag, and a
second, independent handle on the same backend that plays "someone else".
Adding a platform to the suite is one entry in ``FACTORIES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from console.core.models import Allocation, ChangeEvent, RouteFlag, RouteProfile
from console.core.ports import FlagPlatform

FLAG = "contract-route"


def seed_flag() -> RouteFlag:
    return RouteFlag(
        key=FLAG,
        variations={
            "fast_default_v1": RouteProfile(route="fast_default_v1", model="provider-a/standard", timeout_ms=6000),
            "balanced_core_v2": RouteProfile(route="balanced_core_v2", model="provider-b/balanced", max_output_tokens=900,
                                             fallback="fast_default_v1", budget_policy="standard_support_budget"),
        },
        baseline="fast_default_v1",
        candidate="balanced_core_v2",
        allocation=Allocation(internal_audience="internal_support_team", eligible_scope="english_support_chat"),
    )


@dataclass
class Harness:
    platform: FlagPlatform
    other: FlagPlatform  # an independent client of the same backend
    reopen: Callable[[], FlagPlatform]  # a fresh client, as another console would open


class DroppingFlagdPlatform(FlagdFilePlatform):
    """A deliberately broken adapter: it accepts writes and silently drops them."""

    def _write_flag(self, flag: RouteFlag, expected_revision: str | None) -> None:
        return None

    def history(self, key: str, limit: int = 100) -> list[ChangeEvent]:
        return []


def flagd_factory(tmp_path: Path) -> Harness:
    path = tmp_path / "flags.json"
    FlagdFilePlatform(path).create_flag(seed_flag())
    return Harness(FlagdFilePlatform(path), FlagdFilePlatform(path), lambda: FlagdFilePlatform(path))


def dropping_factory(tmp_path: Path) -> Harness:
    path = tmp_path / "flags.json"
    FlagdFilePlatform(path).create_flag(seed_flag())
    return Harness(DroppingFlagdPlatform(path), FlagdFilePlatform(path), lambda: FlagdFilePlatform(path))


FACTORIES: dict[str, Callable[[Path], Harness]] = {
    "flagd": flagd_factory,
}

#: implementations that must FAIL the suite (proof that the suite can fail)
BROKEN: dict[str, Callable[[Path], Harness]] = {
    "drops-writes": dropping_factory,
}


def params():
    return [pytest.param(name, id=name) for name in FACTORIES]
