"""A rollout on the demo's flags with its traffic written as event records, beside the simulator that made it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from adapters.metrics.simulated import SimulatedMetricsSource
from console.backends import open_metrics
from console.commands.demo import DEMO_RULE, prepare_state_dir
from console.core import operations as ops
from console.core.rules import DecisionRule, parse_rule
from console.core.stats.summary import ArmSummary, GroupSummary
from console.core.simulator.event_log import EventRecorder, JsonLinesFile
from console.core.simulator.evaluator import FlagdFileEvaluator
from console.core.telemetry import DEFAULT_SLO_MS

SIM_EPOCH = 1_790_000_000.0
FLAG = "support-answer-route"


@dataclass
class Rollout:
    rule: DecisionRule
    platform: FlagdFilePlatform
    sim: SimulatedMetricsSource
    events_dir: Path
    flags_path: Path

    def events(self, **options):
        """The events source on the directory, on the simulator's clock, arms from the flag file."""
        return open_metrics(f"events:{self.events_dir}", f"flagd:{self.flags_path}", clock=self.sim.now, **options)


def rollout(tmp: Path, scenario: str = "steady", *, stage: str = "20%", minutes: float = 20, seed: int = 7,
            replicas: int = 1, slo_ms: float = DEFAULT_SLO_MS) -> Rollout:
    """The demo's rollout moved to ``stage`` (overrides on the simulator's clock), then ``minutes`` of
    ``scenario`` traffic; every request and joined outcome written to ``tmp/events`` by ``replicas`` writers.
    The simulator counts requests in-SLO at ``slo_ms`` (the traffic is the same whatever it is)."""
    state = tmp / "state"
    path = prepare_state_dir(state, fresh=True)
    platform = FlagdFilePlatform(path)
    rule = parse_rule(DEMO_RULE.read_text(), "rule-demo.yaml")
    sim = SimulatedMetricsSource(FlagdFileEvaluator(path), scenario, seed=seed, sim_epoch=SIM_EPOCH,
                                 clock=lambda: 0.0, warmup_s=300, slo_ms=slo_ms)
    events_dir = tmp / "events"
    events_dir.mkdir()
    for i in range(replicas):
        sim.sim.add_listener(EventRecorder(JsonLinesFile(events_dir / f"events-{i}-of-{replicas}.jsonl"), i, replicas))
    while True:
        current = ops.look(rule, platform, sim)
        if (current.flag.rollout.stage_label or current.flag.rollout.stage.value) == stage:
            break
        ops.advance(rule, platform, current, None, "setup", override_reason="set up for a test", on_metrics_clock=True)
        sim.advance_by(60)
    sim.advance_by(minutes * 60)
    return Rollout(rule, platform, sim, events_dir, path)


_SHARED: dict[tuple, Rollout] = {}


def shared_rollout(tmp_path_factory, scenario: str = "steady", **options) -> Rollout:
    """``rollout(...)`` made once per session and shared by the tests that only read it (its simulator is not
    advanced, its flag and event files not changed): the same traffic as a test's own, without the wait."""
    key = (scenario, tuple(sorted(options.items())))
    if key not in _SHARED:
        _SHARED[key] = rollout(tmp_path_factory.mktemp(f"shared-{scenario}"), scenario, **options)
    return _SHARED[key]


def own_events(r: Rollout, tmp: Path) -> Rollout:
    """A copy of ``r`` whose event files a test may change (the flag file and simulator stay shared, read-only)."""
    import shutil
    from dataclasses import replace

    copy = tmp / "events-copy"
    shutil.copytree(r.events_dir, copy)
    return replace(r, events_dir=copy)


def rewrite(events_dir: Path, change) -> None:
    """Rewrite every record of every .jsonl file in ``events_dir`` through ``change(record) -> record | None``."""
    for path in sorted(events_dir.glob("*.jsonl")):
        kept = []
        for line in path.read_text().splitlines():
            record = change(json.loads(line))
            if record is not None:
                kept.append(json.dumps(record))
        path.write_text("".join(line + "\n" for line in kept))


def _by_group(groups: list[GroupSummary]) -> dict[tuple, ArmSummary]:
    out: dict[tuple, ArmSummary] = {}
    for g in groups:
        assert g.summary.units > 0
        key = (g.arm, tuple(sorted(g.attributes.items())))
        assert key not in out, f"two groups for {key}"
        out[key] = g.summary
    return out


def assert_same_summaries(got: list[GroupSummary], want: list[GroupSummary]) -> None:
    got_, want_ = _by_group(got), _by_group(want)
    assert set(got_) == set(want_)
    for key, w in want_.items():
        g = got_[key]
        assert (g.units, g.crossed, g.request_level) == (w.units, w.crossed, w.request_level), key
        assert g.nonzero == w.nonzero, key
        for name in ("sums", "squares", "products"):
            a, b = getattr(g, name), getattr(w, name)
            assert set(a) == set(b), (key, name)
            for col in b:
                assert a[col] == pytest.approx(b[col], rel=1e-9, abs=1e-9), (key, name, col)
        assert g.hist == w.hist, key
        assert g.hist_squares == w.hist_squares and g.hist_products == w.hist_products, key
        assert set(w.hist) == {"latency_hist", "ttft_hist"}  # the reference had per-unit histograms to compare


def assert_same_snapshots(got, want) -> None:
    """Two reads of the same window: the same buckets, route keys and counters (floats to 1e-9)."""
    assert [(b.start, b.end) for b in got.buckets] == [(b.start, b.end) for b in want.buckets]
    assert got.fallback_served == want.fallback_served
    for x, y in zip(got.buckets, want.buckets):
        assert set(x.counters) == set(y.counters)
        for key, a in x.counters.items():
            b = y.counters[key]
            for name in a.__dataclass_fields__:
                va, vb = getattr(a, name), getattr(b, name)
                if isinstance(va, float):
                    assert va == pytest.approx(vb, rel=1e-9, abs=1e-12), (key, name)
                else:
                    assert va == vb, (key, name)
