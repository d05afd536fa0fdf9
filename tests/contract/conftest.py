"""The ``platform_factory`` fixture: one parametrised entry per FlagPlatform implementation."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from .implementations import Harness, implementation_params


@pytest.fixture(params=implementation_params())
def platform_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Harness]]:
    """Builds a fresh, seeded harness of the parametrised implementation (closed after the test)."""
    made: list[Harness] = []
    counter = iter(range(1_000_000))

    def make() -> Harness:
        where = tmp_path / f"h{next(counter)}"
        where.mkdir()
        harness = request.param.factory(request, where)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()
