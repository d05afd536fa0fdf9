"""The segments screen (`s`): harm rows highlighted, and a confirmed, journalled exclusion of a harmed segment."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from textual.widgets import Button, DataTable, Input

from adapters.flags.flagd_file import FlagdFilePlatform
from console.app import RouteDeckApp
from console.core.journal import Journal, read_entries
from console.core.models import RolloutState, Stage
from console.core.rules import parse_rule
from console.core.simulator.portfolio import demo_flags
from console.core.telemetry import Arm
from console.screens.confirm import ConfirmScreen
from console.screens.segments import SegmentsScreen

from .helpers import SIM_EPOCH, sim_source, wait_for, settle

FLAG = "support-answer-route"
RULE = """
llm_route_decision:
  flag_key: support-answer-route
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  first_audience: internal_support_team
  eligible_scope: english_support_chat
  primary_metric: resolved_without_escalation
  guardrails:
    - correction_rate
  segments: [region, plan]
"""


def segments_app(state_dir: Path, scenario: str = "region-regression", **kw) -> RouteDeckApp:
    """The demo's flags at 20% for the last simulated hour, the simulator on a frozen clock, a rule with segments."""
    path = state_dir / "flags.json"
    platform = FlagdFilePlatform(path)
    started = datetime.fromtimestamp(SIM_EPOCH - 3600, tz=timezone.utc)
    for flag in demo_flags():
        if flag.key == FLAG:
            flag = flag.model_copy(update={
                "allocation": flag.allocation.model_copy(update={"candidate_bp": 2000}),
                "rollout": RolloutState(stage=Stage.PCT20, stage_started_at=started)})
        platform.create_flag(flag)
    metrics = sim_source(path, scenario)
    metrics.sim.advance_to(SIM_EPOCH)  # the hour of the stage, generated before the first frame
    flags = {k: platform.read_flag(k) for k in platform.list_flags()}
    kw.setdefault("journal", Journal(state_dir / "journal.jsonl", operator_name="ana"))
    return RouteDeckApp(platform, metrics, flags=flags, rule=parse_rule(RULE, "rule.yaml"), clock=lambda: 100.0, **kw)


async def test_s_shows_the_harmed_region_highlighted_and_e_excludes_it_after_confirmation(tmp_path):
    app = segments_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("s")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, SegmentsScreen)
        assert screen.current.readout.harmed == [("region", "eu")]
        # the cursor starts on the first harmed row, drawn in red with a marker
        row = screen.highlighted()
        assert row.segment == ("region", "eu") and row.harm
        table = screen.query_one("#segment-rows", DataTable)
        cells = table.get_row_at(table.cursor_row)
        assert str(cells[0]) == "! region=eu" and cells[0].style == "bold red"
        assert str(cells[2]) == "harm"
        title = str(screen.query_one("#segments-title").render())
        assert "HARM in region=eu" in title

        # a clean row cannot be excluded: it says why, nothing is asked
        table.move_cursor(row=next(i for i, r in enumerate(screen.current.readout.rows) if r.segment == ("region", "us")))
        await pilot.press("e")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("exclude: region=us is not flagged harm" in n.message for n in app._notifications)

        table.move_cursor(row=next(i for i, r in enumerate(screen.current.readout.rows) if r.harm))
        await pilot.press("e")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        assert app.focused is dialog.query_one("#cancel", Button)
        change = str(dialog.query_one("#change").render())
        assert "20% of english_support_chat (internal on)  →" in change and "except region=eu" in change
        assert "none → region=eu" in change and "evidence: resolved_without_escalation" in change
        # no reason: refused, the dialog stays
        dialog.query_one("#confirm", Button).press()
        await pilot.pause()
        assert app.screen is dialog and "reason is required" in str(dialog.query_one("#problem").render())
        dialog.query_one("#reason", Input).value = "eu resolves far less"
        dialog.query_one("#confirm", Button).press()
        await settle(app, pilot)
        await settle(app, pilot)
        assert app.screen is screen
        assert screen.current.flag.allocation.excluded_segments == (("region", "eu"),)
        assert "excluded from the candidate: region=eu" in str(screen.query_one("#segments-title").render())
        eu_rows = [i for i, r in enumerate(screen.current.readout.rows) if r.segment == ("region", "eu")]
        assert eu_rows and all(str(table.get_row_at(i)[2]) == "excluded" for i in eu_rows)
        assert screen.current.readout.harmed == []

    flag = FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG)
    assert flag.allocation.excluded_segments == (("region", "eu"),) and flag.allocation.candidate_bp == 2000
    entries = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "exclude_segment"]
    assert [e.kind for e in entries] == ["intent", "outcome"] and entries[1].status == "confirmed"
    assert entries[0].reason == "eu resolves far less" and entries[0].verdict["segment"]["value"] == "eu"
    # the simulated application now serves eu units the baseline
    app.session.metrics.advance_by(300)
    since = SIM_EPOCH + 1
    eu = [u for u in app.session.metrics.read_units(FLAG, since) if u.segment.get("region") == "eu"]
    assert eu and all(u.arm is not Arm.CANDIDATE for u in eu)


async def test_cancel_writes_nothing(tmp_path):
    app = segments_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("s")
        await settle(app, pilot)
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")  # Cancel has the focus
        await settle(app, pilot)
        assert isinstance(app.screen, SegmentsScreen)
    assert FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.excluded_segments == ()
    assert not [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "exclude_segment"]


async def test_read_only_console_shows_segments_but_refuses_to_exclude(tmp_path):
    app = segments_app(tmp_path, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("s")
        await settle(app, pilot)
        assert app.screen.current.readout.harmed == [("region", "eu")]
        assert app.screen.exclude_why_not() == "read-only console: actions that change flags are disabled"
        await pilot.press("e")
        await wait_for(pilot, lambda: any("read-only console" in str(n.message) for n in app._notifications))
        assert isinstance(app.screen, SegmentsScreen)
    assert FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.excluded_segments == ()


async def test_without_a_rule_s_says_why(tmp_path):
    app = segments_app(tmp_path)
    app.session.set_rules([])
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("s")
        await pilot.pause()
        assert not isinstance(app.screen, SegmentsScreen)


async def test_a_stage_without_candidate_traffic_is_not_shown_as_clean(tmp_path):
    app = segments_app(tmp_path, scenario="aa")
    flag = app.session.platform.read_flag(FLAG)
    app.session.platform.write_flag(flag.model_copy(update={"allocation": flag.allocation.rolled_back()}), flag.revision)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("s")
        await settle(app, pilot)
        title = str(app.screen.query_one("#segments-title").render())
        assert "no segment could be compared yet" in title and "no segment shows harm" not in title
        assert "nobody is on the candidate" in str(app.screen.query_one("#segments-notes").render())


async def test_a_bug_in_the_screens_worker_is_shown_not_swallowed(tmp_path, monkeypatch):
    from console.core import operations

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in a readout")

    monkeypatch.setattr(operations, "look_segments", broken)
    app = segments_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: any("unexpected error" in n.text for n in app.session.notices))
        shown = next(n for n in app.session.notices if "unexpected error" in n.text)
        assert "ZeroDivisionError: a bug in a readout" in shown.text and shown.severity == "error"
