"""The Unleash entry of the FlagPlatform contract suite: a real server, a freshly seeded flag per check."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .servers import remove_unleash_flag, session_servers

#: flags the contract checks create; removed (archived, then deleted) before each check
CONTRACT_KEYS = ("contract-route", "contract-created")


def unleash_factory(request: pytest.FixtureRequest, tmp_path: Path):
    """A Harness on the session's Unleash server (fails, with the reason, where it cannot run).

    The server is shared by the whole session (one start-up), so the flags a check creates are
    deleted before the next check seeds its own.
    """
    from adapters.flags.unleash import UnleashPlatform
    from tests.contract.implementations import Harness, seed_flag

    server = session_servers().unleash()
    with httpx.Client(base_url=server.url, headers={"Authorization": server.admin_token}, timeout=5) as http:
        for key in CONTRACT_KEYS:
            remove_unleash_flag(http, key)

    def new() -> UnleashPlatform:
        return UnleashPlatform(server.url, server.admin_token)

    platform, other = new(), new()
    platform.create_flag(seed_flag())
    return Harness(platform, other, new, cleanup=[platform.close, other.close])
