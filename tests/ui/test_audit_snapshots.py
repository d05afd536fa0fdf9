"""Pictures of the audit screen at 80×24 and 120×40 on a fixed session (fixed times, operators, history)."""

from __future__ import annotations

from .audit_fixtures import audit_host, loaded


def test_audit_80x24(snap_compare, tmp_path):
    assert snap_compare(audit_host(tmp_path, extra=6), terminal_size=(80, 24), run_before=loaded)


def test_audit_120x40(snap_compare, tmp_path):
    assert snap_compare(audit_host(tmp_path, extra=6), terminal_size=(120, 40), run_before=loaded)


def test_audit_filtered_80x24(snap_compare, tmp_path):
    async def filtered(pilot) -> None:
        await loaded(pilot)
        await pilot.press("t", *"advance", "enter")
        await pilot.pause()

    assert snap_compare(audit_host(tmp_path, extra=6), terminal_size=(80, 24), run_before=filtered)


def test_audit_detail_120x40(snap_compare, tmp_path):
    async def detail(pilot) -> None:
        await loaded(pilot)
        await pilot.press("slash", *"verdict advance", "enter", "enter")
        await pilot.pause()

    assert snap_compare(audit_host(tmp_path, extra=6), terminal_size=(120, 40), run_before=detail)
