"""Live updates: polls never pile up, stale data is flagged, and a refresh touches only what changed."""

from __future__ import annotations

import threading
import time

from console.commands.demo import prepare_state_dir
from console.core.ports import MetricsSource
from console.core.telemetry import MetricsSnapshot, SourceCapabilities
from console.screens.help import HelpScreen
from widgets.route_table import RouteTable

from .helpers import demo_app, sim_source, wait_for, settle
from widgets.status_header import header_lines


class SlowSource(MetricsSource):
    """Answers like the simulator, but each read takes ``delay_s``; can be told to stop answering."""

    kind = "slow"

    def __init__(self, inner: MetricsSource, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self.answering = threading.Event()
        self.answering.set()
        self._lock = threading.Lock()

    @property
    def capabilities(self) -> SourceCapabilities:
        return self.inner.capabilities

    def describe(self) -> str:
        return "slow:sim"

    def now(self) -> float:
        return self.inner.now()

    def read(self, start: float, end: float, step: float) -> MetricsSnapshot:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            time.sleep(self.delay_s)
            if not self.answering.wait(10):
                raise TimeoutError("never answered")
            return self.inner.read(start, end, step)
        finally:
            with self._lock:
                self.running -= 1


async def test_a_slow_source_stretches_the_period_instead_of_piling_up(tmp_path):
    source = SlowSource(sim_source(prepare_state_dir(tmp_path)), delay_s=0.2)
    app = demo_app(tmp_path, metrics=source, refresh_s=0.01)
    async with app.run_test(size=(80, 24)) as pilot:
        started = time.perf_counter()
        while source.calls < 4 and time.perf_counter() - started < 20:
            await pilot.pause(0.05)
        elapsed = time.perf_counter() - started
        calls = source.calls
    assert calls >= 4  # it keeps polling...
    assert source.max_running == 1  # ...one read at a time...
    assert calls <= elapsed / 0.2 + 1  # ...each started after the last finished, whatever the 10 ms period says


async def test_header_warns_when_the_metrics_source_stops_answering(tmp_path):
    now = [100.0]
    source = SlowSource(sim_source(prepare_state_dir(tmp_path)), delay_s=0.0)
    app = demo_app(tmp_path, metrics=source, refresh_s=0.05, clock=lambda: now[0])
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            assert "data live" in header_lines(app.session, 80)[-1].plain
            source.answering.clear()
            await wait_for(pilot, lambda: source.running == 1)  # the next read is out and hanging
            now[0] += 14
            status = header_lines(app.session, 80)[-1]
            assert "data 14s old" in status.plain and "not answering" in status.plain
            assert any("red" in str(span.style) for span in status.spans)
            source.answering.set()
    finally:
        source.answering.set()


async def test_paused_console_reads_nothing_until_resumed(tmp_path):
    source = SlowSource(sim_source(prepare_state_dir(tmp_path)), delay_s=0.0)
    app = demo_app(tmp_path, metrics=source, refresh_s=0.02)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("space")
        await settle(app, pilot)
        calls = source.calls
        await pilot.pause(0.3)
        assert source.calls == calls
        await pilot.press("space")
        await wait_for(pilot, lambda: source.calls > calls)


def count_writes(table: RouteTable) -> list[str]:
    """Record every cell write and row insertion the table makes from now on."""
    writes: list[str] = []
    update_cell, add_row = table.update_cell, table.add_row
    table.update_cell = lambda row, col, *a, **k: (writes.append(f"{row}/{col}"), update_cell(row, col, *a, **k))[1]
    table.add_row = lambda *a, **k: (writes.append(f"+{k.get('key')}"), add_row(*a, **k))[1]
    return writes


async def test_refresh_with_unchanged_data_writes_no_cell(tmp_path):
    app = demo_app(tmp_path, refresh_s=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        writes = count_writes(app.screen.query_one(RouteTable))
        app.poll_metrics()  # the simulated clock is frozen: the same figures come back
        await settle(app, pilot)
        assert writes == []


async def test_refresh_keeps_the_highlight_and_marks_changes(tmp_path):
    app = demo_app(tmp_path, refresh_s=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(RouteTable)
        rows = table.row_count
        await pilot.press("up")  # from the candidate to the baseline of the same flag
        highlighted = table.highlighted_key
        assert highlighted == "support-answer-route|fast_default_v1|baseline"
        assert not any("↑" in str(c) or "↓" in str(c) for r in range(rows) for c in table.get_row_at(r))
        writes = count_writes(table)
        app.session.metrics.advance_by(120)
        app.poll_metrics()
        await settle(app, pilot)
        assert table.highlighted_key == highlighted and table.row_count == rows
        assert writes and not any(w.startswith("+") for w in writes)  # cells updated in place, no row re-added
        cells = [str(c) for r in range(rows) for c in table.get_row_at(r)]
        assert any("↑" in c or "↓" in c for c in cells)
        await pilot.press("m")  # a redraw without a new read keeps the arrows of the last read
        await settle(app, pilot)
        assert [str(c) for r in range(rows) for c in table.get_row_at(r)] == cells


async def test_reads_over_time_keep_the_tables_rendered_cells_to_what_one_frame_draws(tmp_path):
    # a console open for days: the cells rendered for earlier reads are never drawn again and must not pile up
    app = demo_app(tmp_path, refresh_s=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(RouteTable)
        for _ in range(12):
            writes = count_writes(table)
            app.session.metrics.advance_by(60)
            app.poll_metrics()
            await settle(app, pilot)
            assert writes  # each read changed cells
        one_frame = (table.row_count + 1) * len(table.columns)  # the rows and the header
        assert 0 < len(table._cell_render_cache) <= one_frame


async def test_nothing_is_drawn_under_a_modal(tmp_path):
    app = demo_app(tmp_path, refresh_s=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(RouteTable)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        writes = count_writes(table)
        app.session.metrics.advance_by(120)
        app.poll_metrics()
        await settle(app, pilot)
        assert writes == []


def _loaded_demo(tmp_path, source_of):
    """The app as `routedeck demo` opens it: the flags and the source come from a loader, after the first frame."""
    from adapters.flags.flagd_file import FlagdFilePlatform
    from console.app import RouteDeckApp
    from console.core.journal import Journal, journal_path

    path = prepare_state_dir(tmp_path)
    source = source_of(path)

    def loader():
        platform = FlagdFilePlatform(path)
        flags = {key: platform.read_flag(key) for key in platform.list_flags()}
        return platform, source, flags, Journal(journal_path(tmp_path)), [], []

    return RouteDeckApp(loader=loader, clock=lambda: 100.0), source


def _drawn_header(app) -> str:
    """The header as the dashboard last drew it."""
    from widgets.status_header import StatusHeader

    content = app.screen.query_one(StatusHeader).content
    return getattr(content, "plain", str(content))


async def test_loaded_routes_are_drawn_once_with_their_first_figures(tmp_path, monkeypatch):
    import console.app as app_module

    monkeypatch.setattr(app_module, "FIRST_READ_WAIT_S", 30.0)
    app, source = _loaded_demo(tmp_path, lambda path: SlowSource(sim_source(path), delay_s=0.0))
    source.answering.clear()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one(RouteTable)
        await wait_for(pilot, lambda: source.running == 1)  # loaded; the first read is out and held
        await pilot.pause(1.3)  # longer than the one-second tick that moves the clocks: it draws nothing yet
        # the flags wait for their figures...
        assert "connecting" in _drawn_header(app) and "support-answer-route" not in _drawn_header(app)
        assert table.row_count == 0
        source.answering.set()
        await wait_for(pilot, lambda: "support-answer-route" in _drawn_header(app))
        # ...and are drawn with them, in one redraw
        assert "data live" in _drawn_header(app) and table.row_count > 0


async def test_loaded_routes_are_drawn_without_figures_when_the_first_read_is_slow(tmp_path, monkeypatch):
    import console.app as app_module

    monkeypatch.setattr(app_module, "FIRST_READ_WAIT_S", 0.2)
    app, source = _loaded_demo(tmp_path, lambda path: SlowSource(sim_source(path), delay_s=0.0))
    source.answering.clear()
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: "support-answer-route" in _drawn_header(app))
            # the read still hangs: the flags are drawn after the wait, without figures
            assert source.running == 1 and not app.session.figures
            assert "data live" not in _drawn_header(app)
    finally:
        source.answering.set()
