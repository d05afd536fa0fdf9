"""The embedded metrics source: the traffic simulator, read as a MetricsSource.

Its clock is simulated time: ``sim_epoch + speed × real seconds elapsed``. Reads advance
the simulation to "now" first, so data exists exactly up to the clock.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from console.core.errors import BadInput
from console.core.ports import MetricsSource
from console.core.pricing import PricingTable
from console.core.simulator import get_scenario
from console.core.simulator.engine import TrafficSimulator
from console.core.simulator.evaluator import FlagdFileEvaluator, FlagEvaluator
from console.core.telemetry import MetricsSnapshot, SourceCapabilities, UnitRecord


class SimulatedMetricsSource(MetricsSource):
    kind = "sim"

    def __init__(
        self,
        evaluator: FlagEvaluator,
        scenario: str = "steady",
        *,
        seed: int = 7,
        speed: float = 1.0,
        warmup_s: float = 300.0,
        sim_epoch: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        pricing: PricingTable | None = None,
        rate_rps: float = 30.0,
    ) -> None:
        if speed <= 0:
            raise BadInput(f"--speed {speed}: must be a positive number of simulated seconds per second")
        self.scenario = get_scenario(scenario)
        self.seed = seed
        self.speed = speed
        self._clock = clock
        self._real_start = clock()
        epoch = float(int(sim_epoch if sim_epoch is not None else time.time()))
        self._sim_start = epoch
        self.sim = TrafficSimulator(
            evaluator, self.scenario, seed=seed, pricing=pricing, rate_rps=rate_rps, start_time=epoch - warmup_s
        )
        self._lock = threading.Lock()
        with self._lock:
            self.sim.advance_to(epoch)

    @classmethod
    def from_spec(cls, spec: str, flags_path: Path, **options) -> "SimulatedMetricsSource":
        """``sim:SCENARIO?seed=N&minutes=M&speed=X``: with ``minutes``, M simulated minutes are generated now."""
        body = spec.partition(":")[2]
        parts = urlsplit("sim://x/" + body)
        scenario = parts.path.lstrip("/") or "steady"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            seed = int(query.get("seed", options.pop("seed", 7)))
            minutes = float(query.get("minutes", 0))
            speed = float(query.get("speed", options.pop("speed", 1.0)))
        except ValueError:
            raise BadInput(f"--metrics {spec!r}: seed, minutes and speed must be numbers") from None
        source = cls(FlagdFileEvaluator(flags_path), scenario, seed=seed, speed=speed, **options)
        if minutes:
            source.advance_by(minutes * 60)
        return source

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(unit_level=True, segments=("plan", "region", "workflow", "internal"))

    def describe(self) -> str:
        return f"sim:{self.scenario.name}?seed={self.seed}&speed={self.speed:g}"

    def now(self) -> float:
        return self._sim_start + self.speed * (self._clock() - self._real_start)

    def advance_by(self, seconds: float) -> None:
        """Move simulated time forward independently of the clock (headless runs and tests)."""
        self._sim_start += seconds
        with self._lock:
            self.sim.advance_to(self.now())

    def read(self, start: float, end: float, step: float) -> MetricsSnapshot:
        with self._lock:
            self.sim.advance_to(self.now())
            return self.sim.snapshot(start, end, step)

    def read_units(self, flag: str, since: float, maturation_s: float = 120.0) -> list[UnitRecord]:
        with self._lock:
            self.sim.advance_to(self.now())
            return self.sim.units(flag, since, maturation_s)
