"""Building the real demo app for UI tests: fixed seed, frozen clocks, relative paths."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from adapters.flags.flagd_file import FlagdFilePlatform
from adapters.metrics.simulated import SimulatedMetricsSource
from console.app import RouteDeckApp
from console.commands.demo import prepare_state_dir
from console.core.ports import MetricsSource
from console.core.simulator.evaluator import FlagdFileEvaluator
from console.core.telemetry import MetricsSnapshot, SourceCapabilities

SIM_EPOCH = 1_790_000_000.0


def demo_app(state_dir: Path, *, scenario: str = "steady", metrics: MetricsSource | None = None, **kw) -> RouteDeckApp:
    path = prepare_state_dir(state_dir)
    platform = FlagdFilePlatform(path)
    flags = {k: platform.read_flag(k) for k in platform.list_flags()}
    if metrics is None:
        metrics = sim_source(path, scenario)
    from console.core.journal import Journal, journal_path

    kw.setdefault("journal", Journal(journal_path(state_dir)))
    kw.setdefault("clock", lambda: 100.0)
    return RouteDeckApp(platform, metrics, flags=flags, **kw)


def sim_source(flags_path: Path, scenario: str = "steady") -> SimulatedMetricsSource:
    """The demo's simulator on a frozen clock: simulated time moves only by ``advance_by``."""
    return SimulatedMetricsSource(
        FlagdFileEvaluator(flags_path), scenario, seed=7, sim_epoch=SIM_EPOCH, clock=lambda: 0.0, warmup_s=300
    )


class StuckSource(MetricsSource):
    """A metrics source whose reads never return (until released at teardown)."""

    kind = "stuck"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(unit_level=False)

    def describe(self) -> str:
        return "stuck:never-answers"

    def now(self) -> float:
        return SIM_EPOCH

    def read(self, start: float, end: float, step: float) -> MetricsSnapshot:
        self.calls += 1
        self.release.wait(30)
        raise TimeoutError("released")


class RefusingSource(MetricsSource):
    """A metrics source whose every read is refused, like a Prometheus that is down."""

    kind = "prometheus"

    def __init__(self, url: str = "http://127.0.0.1:9") -> None:
        self.url = url

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(unit_level=False)

    def describe(self) -> str:
        return f"prometheus:{self.url}"

    def now(self) -> float:
        return SIM_EPOCH

    def read(self, start: float, end: float, step: float) -> MetricsSnapshot:
        from console.core.errors import BackendError

        raise BackendError(f"Prometheus at {self.url}/api/v1/query: cannot connect (connection refused) — check that "
                           "it is running and reachable")


async def wait_for(pilot, condition, timeout_s: float = 10.0) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout_s``."""
    started = time.perf_counter()
    while not condition():
        assert time.perf_counter() - started < timeout_s, "timed out"
        await pilot.pause(0.02)


def rollout_demo_app(state_dir: Path, *, scenario: str = "steady", stage: str = "5%", minutes: float = 20,
                     **kw) -> RouteDeckApp:
    """The demo with its decision rule, started fresh and moved to ``stage`` on the simulator's clock, then
    ``minutes`` of simulated traffic in that stage: the rollout screen has evidence to show."""
    from console.commands.demo import DEMO_RULE
    from console.core import operations as ops
    from console.core.rules import parse_rule

    path = prepare_state_dir(state_dir, fresh=True)
    platform = FlagdFilePlatform(path)
    rule = parse_rule(DEMO_RULE.read_text(), "rule-demo.yaml")
    metrics = sim_source(path, scenario)
    while True:
        current = ops.look(rule, platform, metrics)
        if (current.flag.rollout.stage_label or current.flag.rollout.stage.value) == stage:
            break
        ops.advance(rule, platform, current, None, "setup", override_reason="set up for a picture",
                    on_metrics_clock=True)
    metrics.advance_by(minutes * 60)
    flags = {k: platform.read_flag(k) for k in platform.list_flags()}
    from console.core.journal import Journal, journal_path

    kw.setdefault("journal", Journal(journal_path(state_dir)))
    kw.setdefault("clock", lambda: 100.0)
    return RouteDeckApp(platform, metrics, flags=flags, rule=rule, **kw)


async def settle(app, pilot, timeout_s: float = 20.0) -> None:
    """Let the app finish what it started: its workers, the writes in flight (each on its own thread), and
    the redraw that follows them."""
    await pilot.pause()
    started = time.perf_counter()
    while True:
        await app.workers.wait_for_complete()
        await pilot.pause()
        session = getattr(app, "session", None)
        if session is None or not session.writes:
            break
        assert time.perf_counter() - started < timeout_s, "a write never finished"
        await pilot.pause(0.02)
    await pilot.pause(0.05)  # the redraw after a write waits a moment (writes.WRITE_FIRST_S)
    await pilot.pause()
