"""One suite every FlagPlatform passes; a platform that drops writes fails it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from console.core.errors import WriteNotConfirmed

from .checks import CHECKS
from .implementations import BROKEN, FLAG, Harness


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_contract(platform_factory: Callable[[], Harness], check) -> None:
    check(platform_factory())


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_adapter_fails_exactly_the_write_checks(name: str, request, tmp_path: Path) -> None:
    factory, expected = BROKEN[name]
    failed = set()
    for i, check in enumerate(CHECKS):
        where = tmp_path / str(i)
        where.mkdir()
        harness = factory(request, where)
        try:
            check(harness)
        except (Exception, pytest.fail.Exception):  # any failure counts: that is the point
            failed.add(check.__name__)
        finally:
            harness.close()
    assert failed == expected


@pytest.mark.parametrize("name", list(BROKEN))
def test_lost_write_raises_write_not_confirmed(name: str, request, tmp_path: Path) -> None:
    harness = BROKEN[name][0](request, tmp_path)
    seen = harness.platform.read_flag(FLAG)
    wanted = seen.allocation.model_copy(update={"candidate_bp": 500})
    with pytest.raises(WriteNotConfirmed, match="not confirmed by read-back") as caught:
        harness.platform.set_allocation(FLAG, wanted, seen.revision)
    assert "\n" not in str(caught.value)
    harness.other.set_allocation(FLAG, wanted, seen.revision)  # someone else really moves traffic
    with pytest.raises(WriteNotConfirmed):
        harness.platform.rollback_to_baseline(FLAG)  # a rollback that does not land must say so
