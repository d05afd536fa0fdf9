"""One suite every FlagPlatform passes; a platform that drops writes fails it."""

from __future__ import annotations

import pytest

from .checks import CHECKS
from .implementations import BROKEN, FACTORIES


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", list(FACTORIES))
def test_contract(name, check, tmp_path):
    check(FACTORIES[name](tmp_path))


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_adapter_fails_the_suite(name, tmp_path):
    failed = []
    for i, check in enumerate(CHECKS):
        d = tmp_path / str(i)
        d.mkdir()
        try:
            check(BROKEN[name](d))
        except Exception as exc:  # noqa: BLE001 - any failure counts: that is the point
            failed.append((check.__name__, type(exc).__name__))
    names = {n for n, _ in failed}
    assert "lost_write_is_not_confirmed" in names
    assert "set_allocation_persists_for_a_fresh_client" in names
    assert len(failed) >= 4, failed
