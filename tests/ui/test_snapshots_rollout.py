"""Pictures of the rollout screen at 80×24 and 120×40, and of the advance confirm dialog (fixed seed, frozen clocks)."""

from __future__ import annotations

from pathlib import Path

from .helpers import rollout_demo_app


async def _open_rollout(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.press("o")
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_rollout_80x24(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(rollout_demo_app(Path(".")), terminal_size=(80, 24), run_before=_open_rollout)


def test_rollout_120x40(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(rollout_demo_app(Path(".")), terminal_size=(120, 40), run_before=_open_rollout)


def test_override_confirm_120x40(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    async def open_dialog(pilot) -> None:
        await _open_rollout(pilot)
        await pilot.press("O")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(rollout_demo_app(Path(".")), terminal_size=(120, 40), run_before=open_dialog)
