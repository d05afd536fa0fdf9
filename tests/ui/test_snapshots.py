"""A picture of every screen at 80×24 and 120×40: fixed seeds, frozen clocks, relative paths.

80×24 is first-class: each picture there is compared like the wide one, so a figure cut short, a
footer that does not fit or a notice over the verdict shows up as a changed snapshot to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .audit_fixtures import audit_host, loaded
from .helpers import RefusingSource, demo_app, rollout_demo_app, settle
from .test_segments_screen import segments_app

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


async def _settle(pilot) -> None:
    for _ in range(2):
        await settle(pilot.app, pilot)


def _drawn(screen) -> bool:
    """The screen's own worker result has been handled (a worker can end before its message is)."""
    name = type(screen).__name__
    if name == "BudgetsScreen":
        return screen.report is not None or screen.error is not None
    if name == "IncidentScreen":
        return bool(screen._segments)
    if name == "SegmentsScreen":
        return screen.current is not None or screen.error is not None
    return True


def keys(*pressed: str):
    async def run(pilot) -> None:
        await _settle(pilot)
        for key in pressed:
            await pilot.press(key)
            await _settle(pilot)
            for _ in range(200):
                if _drawn(pilot.app.screen):
                    break
                await pilot.pause(0.05)
            await _settle(pilot)

    return run


async def after_rollback(pilot) -> None:
    """R, then three quarters of a simulated minute of traffic: the header says the candidate's traffic stopped."""
    await keys("R")(pilot)
    pilot.app.session.metrics.advance_by(45)
    pilot.app.poll_metrics()
    await _settle(pilot)


def audit(extra_keys: tuple[str, ...] = ()):
    async def run(pilot) -> None:
        await loaded(pilot)
        if extra_keys:
            await pilot.press(*extra_keys)
            await pilot.pause()

    return run


PICTURES = {
    "dashboard": (lambda: demo_app(Path(".")), keys()),
    "help": (lambda: demo_app(Path(".")), keys("question_mark")),
    "details": (lambda: demo_app(Path(".")), keys("enter")),
    "after-rollback": (lambda: demo_app(Path(".")), after_rollback),
    # the metrics source down from the start: every route the flags name, with its allocation and no figure
    "metrics-down": (lambda: demo_app(Path("."), metrics=RefusingSource()), keys()),
    "rollout": (lambda: rollout_demo_app(Path(".")), keys("o")),
    "override-confirm": (lambda: rollout_demo_app(Path(".")), keys("o", "O")),
    "verdict": (lambda: rollout_demo_app(Path(".")), keys("v")),
    "quit-asks": (lambda: rollout_demo_app(Path(".")), keys("q")),
    "frontier": (lambda: demo_app(Path(".")), keys("f")),
    "budgets": (lambda: demo_app(Path(".")), keys("b")),
    "incident": (lambda: demo_app(Path("."), scenario="provider-outage"), keys("i")),
    "switch-dialog": (lambda: demo_app(Path("."), scenario="provider-outage"), keys("i", "x")),
    "segments": (lambda: segments_app(Path(".")), keys("s")),
    "audit": (lambda: audit_host(Path("."), extra=6), audit()),
    "audit-detail": (lambda: audit_host(Path("."), extra=6), audit(("slash", *"verdict advance", "enter", "enter"))),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("picture", PICTURES)
def test_every_screen(snap_compare, tmp_path, monkeypatch, picture, size):
    monkeypatch.chdir(tmp_path)  # relative paths: the picture must not depend on where pytest puts tmp_path
    make, run_before = PICTURES[picture]
    assert snap_compare(make(), terminal_size=SIZES[size], run_before=run_before)
