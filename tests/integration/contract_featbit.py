"""The FeatBit entry of the FlagPlatform contract suite: the local FeatBit fake, one per check."""

from __future__ import annotations

from pathlib import Path

import pytest


def featbit_factory(request: pytest.FixtureRequest, tmp_path: Path):
    """A Harness on a fresh FeatBit fake (started here, stopped by the harness's cleanup)."""
    from adapters.flags.featbit import FeatBitPlatform
    from tests.contract.implementations import Harness, seed_flag
    from tests.fakes.featbit_server import FakeFeatBit

    fake = FakeFeatBit().start()
    other_token = fake.add_token("someone-else")

    def new(token: str = fake.token) -> FeatBitPlatform:
        return FeatBitPlatform(fake.url, token, fake.env_id)

    platform, other = new(), new(other_token)
    try:
        platform.create_flag(seed_flag())
    except Exception:
        fake.stop()
        raise
    return Harness(platform, other, new, cleanup=[fake.stop, platform.close, other.close])
