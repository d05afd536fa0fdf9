"""The fault matrix runs against real servers (PostgreSQL, Unleash, Prometheus) started once for the
session on 127.0.0.1, each behind a ``FaultProxy`` of its own per test. A server that cannot start is
a failure of every test that needs it, never a skip."""

from __future__ import annotations

import pytest

from tests.integration.servers import Servers, session_servers

from .proxy import FaultProxy


@pytest.fixture(scope="session")
def fault_servers() -> Servers:
    s = session_servers()
    yield s
    s.stop_all()


@pytest.fixture(scope="session")
def unleash(fault_servers: Servers):
    return fault_servers.unleash()


@pytest.fixture
def unleash_proxy(unleash):
    proxy = FaultProxy(unleash.url)
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def prometheus(fault_servers: Servers):
    """A real Prometheus that scrapes nothing: every query answers, with no series for any flag."""
    return fault_servers.prometheus("faults-empty", [])


@pytest.fixture
def prom_proxy(prometheus):
    proxy = FaultProxy(prometheus.url)
    yield proxy
    proxy.close()
