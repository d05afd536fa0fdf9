"""The simulator read as a MetricsSource: simulated clock, warm-up, specs, threads."""

from __future__ import annotations

import threading

import pytest

from adapters.metrics.simulated import SimulatedMetricsSource
from console.core.errors import BadInput
from console.core.simulator.evaluator import FlagdFileEvaluator
from tests.core.test_simulator import BASE, CAND, FLAG, write_flag_file

EPOCH = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


def source(tmp_path, scenario: str = "steady", **kw) -> tuple[SimulatedMetricsSource, FakeClock]:
    path = tmp_path / "flags.json"
    if not path.exists():
        write_flag_file(path, 5000)
    clock = FakeClock()
    kw.setdefault("warmup_s", 120)
    src = SimulatedMetricsSource(FlagdFileEvaluator(path), scenario, seed=3, sim_epoch=EPOCH, clock=clock, **kw)
    return src, clock


def test_clock_is_epoch_plus_speed_times_real_elapsed(tmp_path):
    src, clock = source(tmp_path, speed=4)
    assert src.now() == EPOCH
    clock.t += 2.5
    assert src.now() == EPOCH + 10
    assert src.describe() == "sim:steady?seed=3&speed=4"
    assert src.kind == "sim"
    caps = src.capabilities
    assert caps.unit_level and {"plan", "region", "workflow"} <= set(caps.segments)


def test_first_read_has_the_warm_up_history_and_reads_follow_the_clock(tmp_path):
    src, clock = source(tmp_path)
    assert src.sim.now == EPOCH - 120  # nothing generated before the first read
    snap = src.read(EPOCH - 120, EPOCH, 30)
    assert snap.as_of == EPOCH and len(snap.buckets) == 4
    assert all(sum(c.requests for c in b.counters.values()) > 500 for b in snap.buckets)
    assert not snap.gaps
    clock.t += 30
    later = src.read(EPOCH, EPOCH + 60, 30)
    assert later.as_of == EPOCH + 30 and later.end == EPOCH + 30  # no data from the future
    assert sum(c.requests for c in later.totals.values()) > 500


def test_advance_to_moves_time_forward_only(tmp_path):
    src, _ = source(tmp_path)
    src.advance_to(EPOCH + 300)
    assert src.now() == EPOCH + 300 and src.sim.now == EPOCH + 300
    src.advance_to(EPOCH)
    assert src.now() == EPOCH + 300


def test_read_units_delegates_to_the_simulator(tmp_path):
    src, _ = source(tmp_path)
    src.advance_to(EPOCH + 60)
    units = src.read_units(FLAG, EPOCH - 120, maturation_s=60)
    assert units and {u.arm.value for u in units} == {"baseline", "candidate"}
    assert sum(u.requests for u in units) == sum(
        src.read(EPOCH - 120, EPOCH + 60, 180).totals[k].requests for k in (BASE, CAND))


def test_from_spec_generates_the_asked_minutes(tmp_path):
    path = tmp_path / "flags.json"
    write_flag_file(path)
    src = SimulatedMetricsSource.from_spec("sim:cost-spike?seed=9&minutes=3", path,
                                           sim_epoch=EPOCH, clock=lambda: 0.0, warmup_s=0)
    assert src.describe() == "sim:cost-spike?seed=9&speed=1"
    assert src.sim.now == EPOCH + 180
    assert sum(c.requests for c in src.sim.snapshot(EPOCH, EPOCH + 180, 180).totals.values()) > 4000


@pytest.mark.parametrize(
    "spec, words",
    [
        ("sim:meltdown", "steady"),
        ("sim:steady?seed=x", "seed"),
        ("sim:steady?minutes=-1", "minutes"),
        ("sim:steady?sped=2", "sped"),
        ("sim:steady?speed=0", "speed"),
    ],
)
def test_bad_specs_are_refused_in_one_line(tmp_path, spec, words):
    path = tmp_path / "flags.json"
    write_flag_file(path)
    with pytest.raises(BadInput) as err:
        SimulatedMetricsSource.from_spec(spec, path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_missing_flag_file_is_refused(tmp_path):
    with pytest.raises(BadInput, match="flags.json"):
        SimulatedMetricsSource.from_spec("sim:steady", tmp_path / "flags.json")


def test_a_broken_flag_file_shows_as_a_gap_while_the_last_good_flags_serve(tmp_path):
    src, clock = source(tmp_path)
    src.read(EPOCH - 60, EPOCH, 60)
    (tmp_path / "flags.json").write_text("not json")
    clock.t += 20
    snap = src.read(EPOCH, EPOCH + 20, 20)
    assert any("last good" in g for g in snap.gaps)
    assert snap.totals[CAND].requests > 0


def test_reads_in_a_worker_while_another_thread_rewrites_the_flag_file(tmp_path):
    path = tmp_path / "flags.json"
    src, clock = source(tmp_path)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                clock.t += 1
                src.read(src.now() - 60, src.now(), 10)
        except BaseException as exc:  # noqa: BLE001 - the test reports whatever broke the worker
            errors.append(exc)

    worker = threading.Thread(target=reader)
    worker.start()
    try:
        for i in range(40):
            if i % 2:
                write_flag_file(path, 5000)
            else:  # a careless writer: truncate, then write, so a read may see half a file
                path.write_text(path.read_text()[:100])
                write_flag_file(path, 0, internal=False)
    finally:
        stop.set()
        worker.join(10)
    assert not errors and not worker.is_alive()
    write_flag_file(path, 0, internal=False)
    clock.t += 1
    src.read(src.now() - 1, src.now(), 1)  # the next tick picks the rollback up
    begin = src.now()
    clock.t += 30
    after = src.read(begin, src.now(), 30).totals
    # the candidate has no requests after the rollback; it is listed at all only when outcomes of its earlier
    # requests arrive in the window, which depends on how the reads above interleaved with the writes
    assert CAND not in after or after[CAND].requests == 0
    assert after[BASE].requests > 200
