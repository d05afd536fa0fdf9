"""The LaunchDarkly entry of the FlagPlatform contract suite: the local LaunchDarkly fake, one per check."""

from __future__ import annotations

from pathlib import Path

import pytest


def launchdarkly_factory(request: pytest.FixtureRequest, tmp_path: Path):
    """A Harness on a fresh LaunchDarkly fake (started here, stopped by the harness's cleanup)."""
    from adapters.flags.launchdarkly import LaunchDarklyPlatform
    from tests.contract.implementations import Harness, seed_flag
    from tests.fakes.launchdarkly_server import FakeLaunchDarkly

    fake = FakeLaunchDarkly().start()
    other_token = fake.add_token("someone-else")

    def new(token: str = fake.token) -> LaunchDarklyPlatform:
        return LaunchDarklyPlatform(fake.url, token, fake.project, "production")

    platform, other = new(), new(other_token)
    try:
        platform.create_flag(seed_flag())
    except Exception:
        fake.stop()
        raise
    return Harness(platform, other, new, cleanup=[fake.stop, platform.close, other.close])
