"""Pictures of the frontier, budgets and incident views and the switch dialog: fixed seed, frozen clocks."""

from __future__ import annotations

from pathlib import Path

from .helpers import demo_app


async def _loaded(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def _drawn(screen) -> bool:
    """The screen's worker result has been handled (a worker can end before its message is)."""
    name = type(screen).__name__
    if name == "BudgetsScreen":
        return screen.report is not None or screen.error is not None
    if name == "IncidentScreen":
        return bool(screen._segments)
    return True


async def _open(pilot, *keys) -> None:
    await _loaded(pilot)
    for key in keys:
        await pilot.press(key)
        await _loaded(pilot)
        for _ in range(100):
            if _drawn(pilot.app.screen):
                break
            await pilot.pause(0.05)
        await pilot.pause()


def test_frontier_120x40(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(demo_app(Path(".")), terminal_size=(120, 40), run_before=lambda p: _open(p, "f"))


def test_frontier_80x24(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(demo_app(Path(".")), terminal_size=(80, 24), run_before=lambda p: _open(p, "f"))


def test_budgets_80x24(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(demo_app(Path(".")), terminal_size=(80, 24), run_before=lambda p: _open(p, "b"))


def test_incident_outage_120x40(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = demo_app(Path("."), scenario="provider-outage")
    assert snap_compare(app, terminal_size=(120, 40), run_before=lambda p: _open(p, "i"))


def test_switch_dialog_80x24(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = demo_app(Path("."), scenario="provider-outage")
    assert snap_compare(app, terminal_size=(80, 24), run_before=lambda p: _open(p, "i", "x"))
