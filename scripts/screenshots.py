"""Regenerate README screenshots from the real app (fixed seed, frozen clocks): SVG, and PNG when rsvg-convert exists."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ui.helpers import demo_app, rollout_demo_app  # noqa: E402

SHOTS = [
    ("dashboard-80x24", (80, 24), []),
    ("dashboard-120x40", (120, 40), []),
    ("help-80x24", (80, 24), ["question_mark"]),
    ("route-details-80x24", (80, 24), ["enter"]),
    ("after-rollback-120x40", (120, 40), ["R"]),
    ("rollout-120x40", (120, 40), ["o"]),
    ("rollout-80x24", (80, 24), ["o"]),
    ("rollout-override-confirm-120x40", (120, 40), ["o", "O"]),
    ("audit", (120, 40), ["R", "a"]),
    ("frontier-120x40", (120, 40), ["f"]),
    ("budgets-120x40", (120, 40), ["b"]),
    ("incident-120x40", (120, 40), ["i"], "provider-outage"),
    ("switch-80x24", (80, 24), ["i", "x"], "provider-outage"),
]


async def shoot(name: str, size: tuple[int, int], keys: list[str], out: Path, scenario: str = "steady") -> Path:
    work = Path(tempfile.mkdtemp(prefix="routedeck-shot-"))
    cwd = Path.cwd()
    os.chdir(work)
    try:
        # the rollout pictures: the demo's rule, twenty simulated minutes into the 5% stage
        app = (rollout_demo_app if name.startswith("rollout") else demo_app)(Path("."), scenario=scenario)
        async with app.run_test(size=size, notifications=True) as pilot:  # toasts are how R reports
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
                await app.workers.wait_for_complete()
                await pilot.pause()
            if keys and keys[-1] == "a":  # the audit screen reads the journal and checks the chain in a worker
                from console.screens.audit import AuditScreen

                for _ in range(500):
                    if isinstance(app.screen, AuditScreen) and app.screen.timeline is not None \
                            and app.screen.timeline.report is not None:
                        break
                    await pilot.pause(0.02)
                await pilot.pause()
            if keys == ["R"]:
                app.session.metrics.advance_by(45)
                app.poll_metrics()
                await app.workers.wait_for_complete()
                await pilot.pause()
            svg = out / f"{name}.svg"
            app.save_screenshot(filename=svg.name, path=str(out))
            return svg
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots", help="where to write (default: screenshots/)")
    out = parser.parse_args(argv).out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    converter = shutil.which("rsvg-convert")
    for name, size, keys, *scenario in SHOTS:
        svg = asyncio.run(shoot(name, size, keys, out, *scenario))
        if converter:
            subprocess.run([converter, str(svg), "-o", str(svg.with_suffix(".png"))], check=True)
        print(f"wrote {svg}" + (" and .png" if converter else " (install librsvg2-bin for PNG)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
