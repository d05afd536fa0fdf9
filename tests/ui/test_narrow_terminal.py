"""At 80×24 nothing essential is cut: figures whole, a readout's line readable in a sentence."""

from __future__ import annotations

from rich.console import Console

from console.core import operations as ops
from console.core.stats.spec import Verdict
from console.screens.rollout import LIVE, RolloutScreen

from .helpers import rollout_demo_app, settle

FLAG = "support-answer-route"


def drawn(widget) -> str:
    """The widget's content as the terminal shows it: rendered at the width the widget has."""
    console = Console(width=widget.content_size.width, record=True, file=open("/dev/null", "w"))
    console.print(widget.content)
    return console.export_text()


async def test_the_rollout_screens_live_table_keeps_every_figure_whole_at_80x24(tmp_path):
    app = rollout_demo_app(tmp_path, stage="5%", minutes=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("o")
        await settle(app, pilot)
        assert isinstance(app.screen, RolloutScreen)
        live = drawn(app.screen.query_one("#live"))
        assert "…" not in live, live
        rows = [f for f in app.session.figures if f.key.flag == FLAG and f.requests]
        assert rows
        from console.core.figures import format_value

        for f in rows:
            assert f.key.route in live
            for m in LIVE:
                assert format_value(m, f.values.get(m)) in live, (m, live)


async def test_a_readouts_line_in_a_reason_reads_as_a_sentence(tmp_path):
    app = rollout_demo_app(tmp_path, scenario="latency-regression", stage="5%", minutes=30)
    rule = next(iter(app.session.rules.values()))
    decision = ops.look(rule, app.session.platform, app.session.metrics).decision
    assert decision.verdict is Verdict.ROLLBACK
    quoting = [r for r in decision.reasons if " — " in r and ("harmed" in r or "not judged" in r)]
    assert quoting, decision.reasons
    for reason in quoting:  # the readout's table row, quoted in a sentence, keeps no column padding
        assert "  " not in reason, reason
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        notices = [n.message for n in app._notifications if "AUTO-ROLLBACK" in n.message]
        assert notices and all("  " not in n for n in notices), notices


async def test_a_failing_flag_platforms_error_is_read_whole_at_80_columns(tmp_path):
    from console.core.errors import BackendError
    from widgets.status_header import header_lines

    from .helpers import demo_app, wait_for

    app = demo_app(tmp_path, refresh_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        error = "flagd:/var/lib/routedeck/flags.json: permission denied — check the file's mode"

        def refuse():
            raise BackendError(error)

        app.session.platform.list_flags = refuse
        await wait_for(pilot, lambda: app.session.flags_status.error is not None)
        lines = [line.plain for line in header_lines(app.session, 80)]
        assert all(len(line) <= 78 for line in lines)
        start = next(i for i, line in enumerate(lines) if line.startswith("flags FAILING"))
        said = " ".join(part.strip() for part in lines[start:start + 3])
        assert error in said and "…" not in said, lines


async def test_seconds_into_a_stage_the_estimate_says_too_little_data_on_screen_and_in_check(tmp_path, capsys):
    """Seconds into 5% nothing is judged even at 48× the data: that is too little data (5 of 150 units),
    not "no ADVANCE expected" — said the same way on the rollout screen and by `routedeck check`."""
    from console.commands.check import decision_json, print_decision

    app = rollout_demo_app(tmp_path, stage="5%", minutes=0.1)
    rule = next(iter(app.session.rules.values()))
    decision = ops.look(rule, app.session.platform, app.session.metrics).decision
    print_decision(FLAG, decision)
    printed = capsys.readouterr().out
    assert "too little data yet to estimate when — " in printed and "no ADVANCE expected" not in printed, printed
    assert decision_json(decision)["eta_early"] is True
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.poll_verdicts()
        await settle(app, pilot)
        await pilot.press("o")
        await settle(app, pilot)
        d = app.session.decision
        assert d.eta_early and "candidate units" in d.eta_note, d.eta_note
        verdict = " ".join(drawn(app.screen.query_one("#verdict")).split())
        assert f"too little data yet to estimate when — {d.eta_note}" in verdict, verdict
        assert "no ADVANCE expected" not in verdict and verdict.count("too little data yet") == 1, verdict


async def test_the_guardrail_tables_metric_names_are_never_cut(tmp_path):
    """'primary: resolved_witho…' was cut even at 120 columns: each name is whole (wrapped between words),
    the primary marked ★ with a legend, and the table fits the screen with a full trend column."""
    from rich.measure import Measurement

    for size in ((80, 24), (120, 40)):
        app = rollout_demo_app(tmp_path / f"{size[0]}", stage="5%", minutes=20)
        async with app.run_test(size=size) as pilot:
            await settle(app, pilot)
            history = app.session.interval_history[(FLAG, "5%")]
            history[:] = [(t + i, dict(iv)) for i in range(12) for t, iv in history[-1:]]  # a full trend
            await pilot.press("o")
            await settle(app, pilot)
            widget = app.screen.query_one("#guardrails")
            table = widget.content.renderables[0]
            names = ["".join(cell.plain.split("\n")) for cell in table.columns[0]._cells]
            d = app.session.decision
            for m, name in zip(d.metrics, names):
                assert name.removeprefix("★ ").startswith(m.name), (name, m.name)
            assert names[0].startswith("★ ") and sum(n.startswith("★ ") for n in names) == 1, names
            shown = drawn(widget)
            assert "…" not in shown and "★ primary" in shown, shown
            console = Console(width=widget.content_size.width, file=open("/dev/null", "w"))
            assert Measurement.get(console, console.options, table).maximum <= widget.content_size.width, size
