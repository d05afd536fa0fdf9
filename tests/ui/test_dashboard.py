"""The dashboard as an operator uses it: keys, rollback, help, palette, foreign changes."""

from __future__ import annotations

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from adapters.flags.flagd_file import FlagdFilePlatform
from console.cli import main
from console.core.models import Stage

from console.screens.dashboard import DashboardScreen

from .helpers import StuckSource, demo_app, wait_for, settle
from widgets.status_header import header_lines

FLAG = "support-answer-route"


def served_variants(path, n=1500) -> set[str]:
    core = FlagdCore()
    core.set_flags(path.read_text())
    served = set()
    for i in range(n):
        ctx = EvaluationContext(
            targeting_key=f"unit-{i}",
            attributes={"scope": "english_support_chat", **({"audience": "internal_support_team"} if i % 10 == 0 else {})},
        )
        served.add(core.resolve_object_value(FLAG, {}, ctx).variant)
    return served


async def test_rollback_key_rewrites_flag_and_evaluator_serves_baseline(tmp_path):
    app = demo_app(tmp_path)
    path = tmp_path / "flags.json"
    assert served_variants(path) == {"fast_default_v1", "balanced_core_v2"}
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("R")
        await settle(app, pilot)
        flag = FlagdFilePlatform(path).read_flag(FLAG)
        assert flag.allocation.candidate_bp == 0 and not flag.allocation.internal_enabled
        assert flag.rollout.stage is Stage.ROLLED_BACK
        assert any("confirmed by read-back" in n.message for n in app._notifications)
    from console.core.journal import read_entries, verify

    entries = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action != "init"]  # init: the demo's set-up
    assert [(e.kind, e.action) for e in entries] == [("intent", "rollback"), ("outcome", "rollback")]
    assert entries[1].status == "confirmed" and entries[1].after["candidate_bp"] == 0
    assert verify(tmp_path / "journal.jsonl").ok
    assert served_variants(path) == {"fast_default_v1"}


async def test_candidate_share_falls_to_zero_after_rollback(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        cand = [f for f in app.session.figures if f.key.arm.value == "candidate"]
        assert cand and cand[0].share > 0.01
        await pilot.press("R")
        await settle(app, pilot)
        app.session.metrics.advance_by(60)  # a minute of traffic after the rollback
        app.poll_metrics()
        await settle(app, pilot)
        cand = [f for f in app.session.figures if f.key.arm.value == "candidate"]
        assert cand[0].share == 0.0


async def test_rollback_works_while_metrics_source_never_answers(tmp_path):
    stuck = StuckSource()
    app = demo_app(tmp_path, metrics=stuck)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert stuck.calls == 1
            header = header_lines(app.session, 80)[-1].plain
            assert "waiting for the metrics source" in header
            await pilot.press("R")
            for _ in range(200):  # generous: CI machines can be busy
                await pilot.pause(0.05)
                if not app.session.writes:
                    break
            flag = FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG)
            assert flag.allocation.candidate_bp == 0
            assert any("confirmed by read-back" in n.message for n in app._notifications)
            # the metrics read is still hanging: the rollback did not wait for it
            assert stuck.calls == 1 and any(w.group == "metrics" and w.is_running for w in app.workers)
            stuck.release.set()
    finally:
        stuck.release.set()


async def test_help_lists_keys_and_explains_unavailable_rollback(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("R")
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        from console.screens.help import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        rows = {label.split(" — ")[0]: (key, status) for key, label, status in app.screen.rows()}
        assert rows["Quit"] == ("q", "ready") and rows["Pause"][1] == "ready" and rows["Help"][0] == "?"
        assert rows["Rollback"][0] == "R"
        assert "already serves 100% baseline" in rows["Rollback"][1]


async def test_palette_runs_a_rollback_only_on_its_exact_name_and_asks_first(tmp_path):
    from textual.command import CommandPalette

    from console.screens.confirm import ConfirmScreen
    from console.screens.rollout import RolloutScreen

    app = demo_app(tmp_path)
    candidate_bp = lambda: FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp  # noqa: E731

    async def palette(text: str) -> list[str]:
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*text)
        options = app.screen.query_one("CommandList")
        await pilot.pause(0.3)  # every search hit is in
        return [str(options.get_option_at_index(i).prompt).split("\n")[0] for i in range(options.option_count)]

    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        # near matches ("roll", or a word of a description) never offer a change of traffic
        listed = await palette("roll")
        assert listed and "Rollback" not in listed
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RolloutScreen) and candidate_bp() == 500
        await pilot.press("escape")
        listed = await palette("light")
        assert "Rollback" not in listed
        await pilot.press("enter")
        await settle(app, pilot)
        assert candidate_bp() == 500
        while not isinstance(app.screen, DashboardScreen):
            await pilot.press("escape")
            await pilot.pause()
        # the exact name offers it alone, and it asks before it acts
        assert await palette("rollback") == ["Rollback"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert candidate_bp() == 500
        await pilot.press("tab", "enter")  # Cancel → confirm
        await wait_for(pilot, lambda: candidate_bp() == 0)


async def test_space_pauses_and_header_says_so(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("space")
        assert app.session.paused
        assert "PAUSED" in header_lines(app.session, 80)[-1].plain
        await pilot.press("space")
        assert not app.session.paused


async def test_foreign_change_shows_in_header(tmp_path):
    app = demo_app(tmp_path, refresh_s=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        other = FlagdFilePlatform(tmp_path / "flags.json")
        flag = other.read_flag(FLAG)
        other.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 2000}), flag.revision)
        for _ in range(200):
            await pilot.pause(0.05)
            if FLAG in app.session.foreign:
                break
        assert "5% → " in app.session.foreign[FLAG] or "20%" in app.session.foreign[FLAG]
        text = " ".join(line.plain for line in header_lines(app.session, 100))
        assert "changed elsewhere" in text and "20% of english_support_chat" in text


async def test_a_change_by_another_routedeck_is_told_apart_from_a_foreign_one(tmp_path):
    from console.core.journal import Journal, journal_path, read_entries, record_action

    app = demo_app(tmp_path, refresh_s=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        other = FlagdFilePlatform(tmp_path / "flags.json")
        flag = other.read_flag(FLAG)
        # another routedeck process (a CLI advance, a guard) writes through the same journal
        cli_journal = Journal(journal_path(tmp_path), operator_name="bob")
        record_action(cli_journal, "advance", flag=FLAG, reason="from the command line",
                      call=lambda: other.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 2000}),
                                                        flag.revision))
        for _ in range(200):
            await pilot.pause(0.05)
            if FLAG in app.session.by_routedeck:
                break
        assert "advance by bob" in app.session.by_routedeck[FLAG] and FLAG not in app.session.foreign
        text = " ".join(line.plain for line in header_lines(app.session, 100))
        assert "changed by routedeck" in text and "changed elsewhere" not in text, text
        assert not [e for e in read_entries(journal_path(tmp_path)) if e.action == "foreign_change"]
        # and a change that no routedeck journalled is still foreign
        flag = other.read_flag(FLAG)
        other.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 3000}), flag.revision)
        for _ in range(200):
            await pilot.pause(0.05)
            if FLAG in app.session.foreign:
                break
        assert FLAG in app.session.foreign and FLAG not in app.session.by_routedeck

        def foreign_entries() -> list:
            return [e for e in read_entries(journal_path(tmp_path)) if e.action == "foreign_change"]

        for _ in range(100):  # journalled once no routedeck outcome turned up in the grace period
            await pilot.pause(0.05)
            if foreign_entries():
                break
        assert len(foreign_entries()) == 1 and FLAG in app.session.foreign


async def test_read_only_refuses_rollback(tmp_path):
    app = demo_app(tmp_path, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("R")
        await settle(app, pilot)
        assert FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp == 500
        assert "READ-ONLY" in header_lines(app.session, 80)[0].plain


def test_malformed_flag_file_is_one_line_error(tmp_path, capsys):
    (tmp_path / "flags.json").write_text('{"flags": {"x": \n')
    assert main(["demo", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "flags.json:2" in err and "not valid JSON" in err


def test_unknown_scenario_and_unusable_state_dir(tmp_path, capsys):
    assert main(["demo", "--scenario", "meltdown", "--state-dir", str(tmp_path)]) == 2
    assert "unknown scenario" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["demo", "--state-dir", str(blocker / "inner")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("routedeck: --state-dir") and "\n" not in err


async def test_every_flag_route_and_its_allocation_show_before_any_figure_is_read(tmp_path):
    stuck = StuckSource()
    app = demo_app(tmp_path, metrics=stuck)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.5)  # past the wait for the first read, which never comes
            table = app.screen.query_one("RouteTable")

            def row(route: str) -> list[str]:
                key = next(k for k in table.rows_by_key if k.split("|")[1] == route)
                return [str(cell).strip() for cell in table.get_row(key)]

            # the flags' routes with what the flags allocate them; nothing is measured, so no figure and no share
            assert row("fast_default_v1")[1:3] == ["95%", "—"]
            assert row("balanced_core_v2")[1:3] == ["5%+i", "—"]
            assert set(row("balanced_core_v2")[3:]) == {"—"} and row("balanced_core_v2")[0].endswith("◆")
            assert row("small_low_cost_v1")[1] == "100%" and row("premium_hard_cases_v1")[1] == "100%"
            assert not any(cell.endswith("↪fb") for key in table.rows_by_key for cell in row(key.split("|")[1])[:1])
            # no trend is drawn from no data (an empty sparkline is a flat line, as if every value were the lowest)
            assert not app.screen.query_one("#trend-spark").visible
            assert "no figures read yet" in str(app.screen.query_one("#trend-title").render())
            await pilot.press("R")
            for _ in range(200):
                await pilot.pause(0.05)
                if not app.session.writes:
                    break
            assert row("balanced_core_v2")[1] == "0%" and row("fast_default_v1")[1] == "100%"
            stuck.release.set()
    finally:
        stuck.release.set()
