"""Keys without surprises, proof at the data plane, and every state drawn as it is — as an operator meets them."""

from __future__ import annotations

from adapters.flags.flagd_file import FlagdFilePlatform
from console.commands.demo import DEMO_RULE
from console.core import operations as ops
from console.core.journal import read_entries
from console.core.rules import load_rule
from console.screens.confirm import ConfirmScreen
from console.screens.dashboard import DashboardScreen
from console.screens.rollout import RolloutScreen
from widgets.route_table import RouteTable
from widgets.status_header import header_lines

from .helpers import demo_app, rollout_demo_app, settle, wait_for

FLAG = "support-answer-route"


def header(app, width: int = 200) -> str:
    return "\n".join(line.plain for line in header_lines(app.session, width))


def cell(app, route: str, column: str) -> str:
    table = app.screen.query_one(RouteTable)
    key = f"{FLAG}|{route}|" + ("candidate" if route == "balanced_core_v2" else "baseline")
    return str(table.get_cell(key, column)).strip()


async def test_q_asks_while_this_console_is_the_only_automatic_rollback_watch(tmp_path):
    app = demo_app(tmp_path, rule=load_rule(DEMO_RULE))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("o", "q")  # on the rollout screen too: q is the same key everywhere
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "only automatic-rollback watch of support-answer-route" in str(app.screen.query_one("#change").render())
        await pilot.press("enter")  # Cancel is focused: the console stays, and so does its watch
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, RolloutScreen)


async def test_q_quits_at_once_when_nothing_depends_on_this_console(tmp_path):
    app = demo_app(tmp_path)  # no rule: this console guards nothing
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_dialog_focus_goes_cancel_then_reason_then_the_confirm_button(tmp_path):
    app = rollout_demo_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("o", "O")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 20)
        assert app.focused.id == "cancel"
        await pilot.press("tab")
        assert app.focused.id == "reason"
        await pilot.press(*"checked by hand", "tab")
        assert app.focused.id == "confirm"
        await pilot.press("shift+tab")
        assert app.focused.id == "reason" and app.focused.value == "checked by hand"
        await pilot.press("enter")  # enter in the reason confirms with what was typed
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen) and not app.session.writes, 20)
    overrides = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "override" and e.kind == "intent"]
    assert overrides and overrides[0].reason == "checked by hand"


async def test_route_table_moves_filters_and_sorts_from_the_keyboard(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(RouteTable)
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("slash", *"classify", "enter")
        await pilot.pause()
        assert {k.split("|", 1)[0].removeprefix("flag|") for k in table.rows_by_key} == {"classify-route"}
        await pilot.press("escape")  # clears the filter; the dashboard stays
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen) and len(table.rows_by_key) > 3
        await pilot.press("S")  # sort each flag's routes by p95, worst first
        await pilot.pause()
        rows = [k for k in table.rows_by_key if k.startswith(FLAG)]
        p95 = [table.rows_by_key[k].values["p95_latency"] for k in rows if table.rows_by_key[k].requests]
        assert p95 == sorted(p95, reverse=True)


async def test_after_r_the_allocation_shows_at_once_and_the_traffic_confirms_it_later(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert cell(app, "balanced_core_v2", "alloc") == "5%+i"
        share_before = cell(app, "balanced_core_v2", "share")
        await pilot.press("R")
        await settle(app, pilot)
        # the flag's allocation, at once; the traffic has not been read since
        assert cell(app, "balanced_core_v2", "alloc") == "0%" and cell(app, "fast_default_v1", "alloc") == "100%"
        assert cell(app, "balanced_core_v2", "share") == share_before
        assert "waiting for the traffic to confirm it" in header(app)
        app.session.metrics.advance_by(45)  # three quarters of a minute of traffic on the baseline alone
        app.poll_metrics()
        await wait_for(pilot, lambda: "no candidate traffic since" in header(app))
        await settle(app, pilot)
    stopped = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "traffic_stopped"]
    assert len(stopped) == 1 and stopped[0].flag == FLAG
    assert stopped[0].detail["quiet_since"] <= stopped[0].detail["data_until"]


async def test_a_promoted_flag_reads_as_promoted_with_one_row_per_route(tmp_path):
    app = rollout_demo_app(tmp_path, stage="full", minutes=10)
    rule = next(iter(app.session.rules.values()))
    platform = app.session.platform
    ops.promote(rule, platform, ops.look(rule, platform, app.session.metrics), None, "test",
                override_reason="set up a promoted flag")
    app.session.metrics.advance_by(60)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.poll_flags()
        await wait_for(pilot, lambda: app.session.flags[FLAG].rollout.stage.value == "promoted")
        app.poll_metrics()
        await settle(app, pilot)
        text = header(app)
        assert f"{FLAG} → balanced_core_v2 (promoted)" in text and "rollout promoted" in text
        assert "verdict HOLD" not in text
        routes = [k for k in app.screen.query_one(RouteTable).rows_by_key if k.startswith(FLAG + "|")]
        assert len([k for k in routes if "|balanced_core_v2|" in k]) == 1  # not once per arm it served under
        assert f"{FLAG}|balanced_core_v2|baseline" in routes
        await pilot.press("o")
        await settle(app, pilot)
        verdict = str(app.screen.query_one("#verdict").render())
        assert "the rollout is promoted: nothing to decide" in verdict and "HOLD" not in verdict


async def test_after_a_promote_n_says_it_is_unavailable_and_why_instead_of_promising_a_rollout(tmp_path):
    """The demo rule names fast_default_v1 as the baseline; after the promote balanced_core_v2 serves as the
    baseline, so a new rollout with that rule is refused: the screens say N is unavailable and why."""
    app = rollout_demo_app(tmp_path, stage="full", minutes=10)
    rule = next(iter(app.session.rules.values()))
    platform = app.session.platform
    ops.promote(rule, platform, ops.look(rule, platform, app.session.metrics), None, "test",
                override_reason="set up a promoted flag")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.poll_flags()
        await wait_for(pilot, lambda: app.session.flags[FLAG].rollout.stage.value == "promoted")
        await settle(app, pilot)
        text = header(app)
        assert "N starts" not in text and "N unavailable: the rule's baseline no longer serves" in text, text
        await pilot.press("o")
        await settle(app, pilot)
        shown = " ".join(" ".join(str(app.screen.query_one(f"#{w}").render()) for w in ("ladder", "verdict")).split())
        assert "N starts" not in shown, shown
        assert ("N is unavailable: the rule's baseline fast_default_v1 no longer serves support-answer-route "
                "(balanced_core_v2 does)") in shown, shown
        allocation = " ".join(str(app.screen.query_one("#stage").render()).split())
        assert "allocation now (from the flag): everyone on balanced_core_v2 (no candidate)" in allocation, allocation
        await pilot.press("N")
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmScreen)  # no dialog that would end in an error
        said = [n.message for n in app._notifications if "no longer serves" in n.message]
        assert said and "a new rollout needs a rule whose baseline_route is balanced_core_v2" in said[-1], said
    assert platform.read_flag(FLAG).rollout.stage.value == "promoted"


async def test_an_action_says_what_changed_when_the_verdict_moved_since_it_was_shown(tmp_path):
    app = rollout_demo_app(tmp_path, minutes=1)  # just into 5%: the fresh look says HOLD
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.poll_verdicts()
        await wait_for(pilot, lambda: app.session.decision is not None, 20)
        shown = app.session.decision
        assert shown.verdict.value == "HOLD"
        # the screen had shown ADVANCE a moment ago (an older look)
        shown.verdict = type(shown.verdict)("ADVANCE")
        app.session.verdict_read(FLAG, shown)
        await pilot.press("A")
        await wait_for(pilot, lambda: any("the verdict changed since it was shown" in n.text
                                          for n in app.session.notices), 20)
        said = next(n.text for n in app.session.notices if "the verdict changed" in n.text)
        assert said.startswith("advance not done: the verdict changed since it was shown: ADVANCE → HOLD")
        assert not isinstance(app.screen, ConfirmScreen)
        assert app.session.decision.verdict.value == "HOLD"  # what the dialog would have used is what shows
    assert FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).rollout.stage_label == "5%"


async def test_a_failing_flag_platform_has_its_own_line_and_the_flags_shown_are_marked_stale(tmp_path):
    from console.core.errors import BackendError

    app = demo_app(tmp_path, refresh_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        broken = app.session.platform

        def refuse():
            raise BackendError("flagd:flags.json: permission denied — check the file's mode")

        broken.list_flags = refuse
        now = [app.session.now()]
        app.session.clock = lambda: now[0]
        await wait_for(pilot, lambda: app.session.flags_status.error is not None)
        now[0] += 30
        lines = [line.plain for line in header_lines(app.session, 200)]
        (failing,) = [line for line in lines if line.startswith("flags FAILING")]
        assert "permission denied" in failing and "allocation shown from" in failing
        assert any("as last read (stale)" in line for line in lines)
        assert not any(line.startswith("metrics FAILING") for line in lines)
        # at 80 columns the marks wrap to a line of their own rather than being cut
        narrow = "\n".join(line.plain for line in header_lines(app.session, 80))
        assert "as last read (stale)" in narrow and "steady (stale): " in narrow, narrow
