"""Shared fixtures: every test runs with an isolated HOME/XDG tree and no keyring."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    yield home


@pytest.fixture(autouse=True)
def _secrets_forgotten(monkeypatch):
    """Secrets a test made routedeck read are masked for that test only: a later test's text stays its own."""
    from console.core import redact

    monkeypatch.setattr(redact, "_KNOWN", set())


@pytest.fixture(autouse=True)
def _profile_settings_reset():
    """Commands run in process with a profile (short timeouts, its secrets): none of it outlives the test."""
    yield
    from console.profiles import activate

    activate(None)


def _strict() -> bool:
    """In ``make test`` and CI a skipped test is a failure: a suite that did not run never reads as green."""
    import os

    return os.environ.get("ROUTEDECK_STRICT_TESTS") == "1" or os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _strict() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} was skipped ({reason}); make test allows no skips — install or start what it needs"
