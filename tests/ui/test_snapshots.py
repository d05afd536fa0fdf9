"""Pictures of the dashboard at 80×24 and 120×40: fixed seed, frozen clocks, relative paths."""

from __future__ import annotations

from pathlib import Path

from .helpers import demo_app


async def _loaded(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_dashboard_80x24(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(demo_app(Path(".")), terminal_size=(80, 24), run_before=_loaded)


def test_dashboard_120x40(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(demo_app(Path(".")), terminal_size=(120, 40), run_before=_loaded)


def test_help_80x24(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(demo_app(Path(".")), terminal_size=(80, 24), run_before=_loaded, press=["question_mark"])


def test_details_80x24(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(demo_app(Path(".")), terminal_size=(80, 24), run_before=_loaded, press=["enter"])
