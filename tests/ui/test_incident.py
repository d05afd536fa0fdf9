"""The incident view in the demo's provider-outage: the failing provider first, the switch and its undo."""

from __future__ import annotations

from collections import Counter

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from textual.widgets import DataTable, Input

from adapters.flags.flagd_file import FlagdFilePlatform
from console.core.journal import read_entries, verify
from console.screens.incident import IncidentScreen
from console.screens.switch import SwitchScreen, UndoSwitchScreen

from .helpers import demo_app, settle
from widgets.status_header import header_lines
from console.core import availability as av

FLAG = "support-answer-route"


def served(path, n=1500) -> Counter:
    core = FlagdCore()
    core.set_flags(path.read_text())
    out = Counter()
    for i in range(n):
        ctx = EvaluationContext(targeting_key=f"unit-{i}", attributes={
            "scope": "english_support_chat", **({"audience": "internal_support_team"} if i % 10 == 0 else {})})
        out[core.resolve_object_value(FLAG, {}, ctx).variant] += 1
    return out


async def test_failing_provider_ranks_first_with_the_route_and_segments_it_hurts(tmp_path):
    app = demo_app(tmp_path, scenario="provider-outage")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("i")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, IncidentScreen)
        worst = screen.providers[0]
        assert worst.label == "provider-b/balanced"
        assert worst.failure_rate > 0.25 and worst.fallback_ratio > 0.25
        # the hurt route and its figures are the dashboard's
        assert screen.highlighted_route() == (FLAG, "balanced_core_v2")
        routes = screen.query_one("#routes", DataTable)
        row = routes.get_row_at(0)
        fig = next(f for f in app.session.figures if f.key.flag == FLAG and f.key.route == "balanced_core_v2")
        from console.core.figures import format_value

        assert row[5] == format_value("fallback_rate", fig.values["fallback_rate"])
        assert row[6] == format_value("error_rate", fig.values["error_rate"])
        await settle(app, pilot)
        segments = str(screen.query_one("#segments").render())
        assert "segments of balanced_core_v2" in segments and "plan=" in segments


async def test_switch_sends_everyone_to_the_safe_route_and_undo_restores_it(tmp_path):
    app = demo_app(tmp_path, scenario="provider-outage")
    path = tmp_path / "flags.json"
    before = FlagdFilePlatform(path).read_flag(FLAG).allocation
    assert set(served(path)) == {"fast_default_v1", "balanced_core_v2"}
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("i")
        await settle(app, pilot)
        await pilot.press("x")
        await settle(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, SwitchScreen)
        assert app.focused.id == "cancel"  # the safe answer is the default
        text = " ".join(str(s.render()) for s in dialog.query("Static"))
        assert "5% of english_support_chat → balanced_core_v2" in text and "everyone → fallback_baseline_v1" in text
        assert "provider-b/balanced fails" in text
        await pilot.press("enter")  # Cancel
        await settle(app, pilot)
        assert FlagdFilePlatform(path).read_flag(FLAG).allocation == before
        await pilot.press("x")
        await settle(app, pilot)
        app.screen.query_one("#reason", Input).value = "provider-b failing a third of calls"
        await pilot.click("#confirm")
        await settle(app, pilot)
        flag = FlagdFilePlatform(path).read_flag(FLAG)
        assert flag.allocation.serve_all == "fallback_baseline_v1"
        assert flag.allocation.held() == before
        assert served(path) == Counter({"fallback_baseline_v1": 1500})
        assert any("confirmed by read-back" in n.message for n in app._notifications)
        assert "SWITCHED" in str(app.screen.query_one("#incident-title").render())
        header = " ".join(line.plain for line in header_lines(app.session, 200))
        assert f"{FLAG}  SWITCHED: everyone on fallback_baseline_v1" in header and "100% baseline" not in header
        # undo: the allocation before the switch is shown, then restored exactly
        await pilot.press("u")
        await settle(app, pilot)
        assert isinstance(app.screen, UndoSwitchScreen)
        assert "5% of english_support_chat → balanced_core_v2" in str(app.screen.query_one("#change").render())
        await pilot.click("#confirm")
        await settle(app, pilot)
        flag = FlagdFilePlatform(path).read_flag(FLAG)
        assert flag.allocation == before
        assert set(served(path)) == {"fast_default_v1", "balanced_core_v2"}
    entries = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action != "init"]  # init: the demo's set-up
    assert [(e.kind, e.action) for e in entries] == [
        ("intent", "emergency_switch"), ("outcome", "emergency_switch"),
        ("intent", "undo_switch"), ("outcome", "undo_switch"),
    ]
    assert entries[0].reason == "provider-b failing a third of calls"
    assert entries[1].status == "confirmed" and entries[1].after["serve_all"] == "fallback_baseline_v1"
    assert entries[3].status == "confirmed" and entries[3].after["serve_all"] is None
    assert verify(tmp_path / "journal.jsonl").ok


async def test_switch_without_a_reason_writes_nothing(tmp_path):
    app = demo_app(tmp_path, scenario="provider-outage")
    path = tmp_path / "flags.json"
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("x")
        await settle(app, pilot)
        assert isinstance(app.screen, SwitchScreen)
        await pilot.click("#confirm")
        await settle(app, pilot)
        assert isinstance(app.screen, SwitchScreen)
        assert "reason is required" in str(app.screen.query_one("#problem").render())
    assert FlagdFilePlatform(path).read_flag(FLAG).allocation.serve_all is None


async def test_read_only_console_refuses_the_switch(tmp_path):
    app = demo_app(tmp_path, scenario="provider-outage", read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("i")
        await settle(app, pilot)
        await pilot.press("x")
        await settle(app, pilot)
        assert isinstance(app.screen, IncidentScreen)
    assert FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.serve_all is None


async def test_rollback_from_the_incident_view_lifts_a_switch_to_the_baseline(tmp_path):
    app = demo_app(tmp_path, scenario="provider-outage")
    path = tmp_path / "flags.json"
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("i")
        await settle(app, pilot)
        await pilot.press("x")
        await settle(app, pilot)
        app.screen.query_one("#reason", Input).value = "provider-b down"
        await pilot.click("#confirm")
        await settle(app, pilot)
        assert FlagdFilePlatform(path).read_flag(FLAG).allocation.serve_all == "fallback_baseline_v1"
        assert av.rollback_target(app.session) == (FLAG, "")
        await pilot.press("R")
        await settle(app, pilot)
        flag = FlagdFilePlatform(path).read_flag(FLAG)
        assert flag.allocation.serve_all is None and not flag.allocation.serves_candidate
        assert served(path) == Counter({"fast_default_v1": 1500})
        assert av.undo_switch_target(app.session)[0] is None
