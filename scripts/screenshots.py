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

from tests.ui.helpers import demo_app  # noqa: E402

SHOTS = [
    ("dashboard-80x24", (80, 24), []),
    ("dashboard-120x40", (120, 40), []),
    ("help-80x24", (80, 24), ["question_mark"]),
    ("route-details-80x24", (80, 24), ["enter"]),
    ("after-rollback-120x40", (120, 40), ["R"]),
]


async def shoot(name: str, size: tuple[int, int], keys: list[str], out: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix="routedeck-shot-"))
    cwd = Path.cwd()
    os.chdir(work)
    try:
        app = demo_app(Path("."))
        async with app.run_test(size=size, notifications=True) as pilot:  # toasts are how R reports
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
                await app.workers.wait_for_complete()
                await pilot.pause()
            if keys == ["R"]:
                app.metrics.advance_by(45)
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
    for name, size, keys in SHOTS:
        svg = asyncio.run(shoot(name, size, keys, out))
        if converter:
            subprocess.run([converter, str(svg), "-o", str(svg.with_suffix(".png"))], check=True)
        print(f"wrote {svg}" + (" and .png" if converter else " (install librsvg2-bin for PNG)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
