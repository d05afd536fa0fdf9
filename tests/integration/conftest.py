"""Session fixtures for the real servers: each starts once, on 127.0.0.1, and stops by PID at the end.

A server that cannot be installed or started here fails every test that needs it, with the reason:
a suite that did not run must never look like a suite that passed.
"""

from __future__ import annotations

import pytest

from .servers import Servers, session_servers


@pytest.fixture(scope="session")
def servers() -> Servers:
    s = session_servers()
    yield s
    s.stop_all()


@pytest.fixture(scope="session")
def unleash(servers: Servers):
    return servers.unleash()


@pytest.fixture(scope="session")
def clickhouse(servers: Servers):
    """The real ClickHouse server. One that cannot start here fails the tests that need it: never a skip."""
    try:
        return servers.clickhouse()
    except Unavailable as exc:
        pytest.fail(f"ClickHouse could not start: {exc}")


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which servers could not run here and why, beside the failures that follow from it."""
    for name, reason in session_servers().unavailable().items():
        terminalreporter.write_line(f"servers: {name} could not start — {reason}", red=True)
