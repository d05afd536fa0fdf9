"""A profile that turns TLS verification off says so at the top of the console, even at 80 columns."""

from __future__ import annotations

from console.core.config import parse_config
from console.profiles import activate

from .helpers import demo_app, wait_for
from widgets.status_header import header_lines


async def test_header_says_tls_verification_is_off(tmp_path):
    config = parse_config('[profiles.lab]\nflags = "flagd:x"\ntls_verify = false\n', tmp_path / "config.toml")
    app = demo_app(tmp_path)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.session.figures)
            assert "TLS verification OFF" not in header_lines(app.session, 80)[0].plain
            activate(config.profiles["lab"])
            top = header_lines(app.session, 80)[0].plain
            assert top.startswith("routedeck TLS verification OFF flags flagd:")
            # the next refresh repaints the header
            await wait_for(pilot, lambda: "TLS&#160;verification&#160;OFF" in app.export_screenshot())
    finally:
        activate(None)
