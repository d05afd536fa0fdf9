"""One clock, read off the UI thread: the metrics source's time comes in with each read and look."""

from __future__ import annotations

import threading

from adapters.flags.flagd_file import FlagdFilePlatform
from console.core.models import Stage
from console.screens.rollout import RolloutScreen

from .helpers import rollout_demo_app, settle

FLAG = "support-answer-route"


def clock_reads(metrics) -> list[bool]:
    """Each read of the source's clock from now on: True when it ran on the UI (main) thread."""
    reads: list[bool] = []
    real = metrics.now

    def now() -> float:
        reads.append(threading.current_thread() is threading.main_thread())
        return real()

    metrics.now = now
    return reads


async def test_the_rollout_screen_and_a_rollback_never_read_the_sources_clock_on_the_ui_thread(tmp_path):
    """With events:DIR a read of the clock may scan the directory: drawing the dwell and stamping a rollback
    use the time the workers last read (the session holds it)."""
    app = rollout_demo_app(tmp_path, stage="5%", minutes=10)
    reads = clock_reads(app.session.metrics)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("o")
        await settle(app, pilot)
        assert isinstance(app.screen, RolloutScreen)
        app.poll_metrics()
        await settle(app, pilot)
        held = app.session.metrics_now()
        assert "in stage 5% for 10m" in str(app.screen.query_one("#stage").content)
        await pilot.press("R")
        await settle(app, pilot)
    after = FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG)
    assert after.rollout.stage is Stage.ROLLED_BACK
    assert reads and not any(reads), f"{sum(reads)} of {len(reads)} clock reads ran on the UI thread"
    # the rollback is stamped on the held clock: the metrics source's time, not the wall clock
    assert abs(after.rollout.stage_started_at.timestamp() - held) < 60


async def test_a_rollback_has_one_time_on_the_flag_and_in_the_data_plane_line(tmp_path):
    """At --speed 30 the flag said 'rolled back at …12:25:15Z' beside 'rolled back 12:25:16' (the clock as
    read when the write came back): the data-plane line uses the time the rollback was stamped with."""
    from console.screens.rollout import RolloutScreen
    from widgets.status_header import clock_time

    app = rollout_demo_app(tmp_path, stage="5%", minutes=10)
    platform = app.session.platform
    real_write = platform.rollback_to_baseline

    def rollback_while_the_clock_moves(*args, **kwargs):
        # a metrics read lands while the write is on its way: the held clock moves on two seconds
        app.session.metrics_clock_read(app.session.metrics_now() + 2.0)
        return real_write(*args, **kwargs)

    platform.rollback_to_baseline = rollback_while_the_clock_moves
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("o")
        await settle(app, pilot)
        await pilot.press("R")
        await settle(app, pilot)
        flag = app.session.flags[FLAG]
        assert flag.rollout.stage is Stage.ROLLED_BACK
        stamped = flag.rollout.stage_started_at.timestamp()
        assert app.session.data_plane[FLAG].rolled_back_at == stamped
        assert isinstance(app.screen, RolloutScreen)
        stage = str(app.screen.query_one("#stage").content)
        assert f"rolled back at {flag.rollout.stage_started_at:%Y-%m-%d} {clock_time(stamped)}Z" in stage, stage
        assert f"rolled back {clock_time(stamped)} · " in stage, stage
