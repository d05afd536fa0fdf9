"""Regenerate the screenshots from the real app — every screen at 80×24 and 120×40, the same pictures the
snapshot tests compare (fixed seeds, frozen clocks): SVG, and PNG when rsvg-convert exists.

    .venv/bin/python scripts/screenshots.py [--out screenshots/] [--only dashboard,rollout]
"""

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

from tests.ui.test_snapshots import PICTURES, SIZES  # noqa: E402


class _Pilot:
    """What the pictures' set-up steps use of a Textual pilot."""

    def __init__(self, pilot) -> None:
        self._pilot = pilot
        self.app = pilot.app

    async def pause(self, delay: float | None = None) -> None:
        await self._pilot.pause(delay)

    async def press(self, *keys: str) -> None:
        await self._pilot.press(*keys)


async def shoot(name: str, size: str, out: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix="routedeck-shot-"))
    cwd = Path.cwd()
    os.chdir(work)
    try:
        make, run_before = PICTURES[name]
        app = make()
        async with app.run_test(size=SIZES[size]) as pilot:
            await run_before(_Pilot(pilot))
            svg = out / f"{name}-{size}.svg"
            app.save_screenshot(filename=svg.name, path=str(out))
            return svg
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots", help="where to write (default: screenshots/)")
    parser.add_argument("--only", default="", help="comma-separated picture names (default: all)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    wanted = [n for n in args.only.split(",") if n] or list(PICTURES)
    converter = shutil.which("rsvg-convert")
    for name in wanted:
        for size in SIZES:
            svg = asyncio.run(shoot(name, size, out))
            if converter:
                subprocess.run([converter, str(svg), "-o", str(svg.with_suffix(".png"))], check=True)
            print(f"wrote {svg}" + (" and .png" if converter else " (install librsvg2-bin for PNG)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
