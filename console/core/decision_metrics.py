"""routedeck's own decisions as Prometheus metrics (``routedeck guard --listen HOST:PORT``), so the team's
monitoring sees a rollout held, a guardrail near its margin, a rollback — with prometheus-client.

Every series carries ``flag``. Gauges describe the latest look; counters count since the guard started:

==========================================  =====================================================================
``routedeck_rollout_stage``                 stage index (0 baseline, 1 the rule's first stage, …; -1 rolled
                                            back, 100 promoted), with label ``stage``: the stage's name
``routedeck_verdict``                       1 for the latest verdict, 0 for the others (label ``verdict``)
``routedeck_guardrail_interval_lower`` /    the interval of candidate − baseline, per ``metric``
``…_upper``
``routedeck_guardrail_margin``              the margin (harm beyond it), per ``metric``
``routedeck_guardrail_headroom``            how far the interval's worse end is from the margin (≤ 0: crossed)
``routedeck_guardrail_harm``                1 while a guardrail reads harm
``routedeck_gate_failing``                  1 while a health gate fails (label ``gate``)
``routedeck_units``                         units on each ``arm`` this stage
``routedeck_looks_total``                   looks made
``routedeck_holds_total``                   looks that ended in HOLD
``routedeck_rollbacks_total``               rollbacks the guard made (label ``cause``: verdict, blind, …)
``routedeck_look_errors_total``             looks that could not be made (backend down, bad data)
``routedeck_last_look_timestamp_seconds``   when the latest look succeeded (Unix time)
``routedeck_data_age_seconds``              seconds since then, computed at scrape time
==========================================  =====================================================================
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from .registry import Direction, lookup
from .stats.spec import Decision, GateStatus, MetricVerdict

VERDICTS = ("ADVANCE", "HOLD", "ROLLBACK")
#: why the guard rolled back: its verdict said so, or it went blind (no data past the rule's limit)
ROLLBACK_CAUSES = ("verdict", "blind")
TERMINAL_INDEX = {"rolled_back": -1, "promoted": 100}


def headroom(name: str, interval: tuple[float, float] | None, margin: float | None) -> float | None:
    """Distance from the interval's worse end to the harm margin, in the metric's unit (≤ 0: harm)."""
    if interval is None or margin is None:
        return None
    metric = lookup(name)
    low, high = interval
    if metric is not None and metric.direction is Direction.HIGHER_IS_BETTER:
        return low + margin
    return margin - high


class DecisionMetrics:
    """The guard's decision metrics in a registry of their own (nothing else of the process leaks out)."""

    def __init__(self, clock=time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ok: dict[str, float] = {}
        r = self.registry
        self.stage = Gauge("routedeck_rollout_stage", "Stage index of the rollout (name in label stage)",
                           ["flag", "stage"], registry=r)
        self.verdict = Gauge("routedeck_verdict", "1 for the latest verdict of the flag's rule, 0 for the others",
                             ["flag", "verdict"], registry=r)
        self.lower = Gauge("routedeck_guardrail_interval_lower", "Lower bound of candidate minus baseline",
                           ["flag", "metric"], registry=r)
        self.upper = Gauge("routedeck_guardrail_interval_upper", "Upper bound of candidate minus baseline",
                           ["flag", "metric"], registry=r)
        self.margin = Gauge("routedeck_guardrail_margin", "The guardrail's margin (harm beyond it), metric unit",
                            ["flag", "metric"], registry=r)
        self.headroom = Gauge("routedeck_guardrail_headroom",
                              "Distance from the interval's worse end to the margin (<= 0: harm)", ["flag", "metric"],
                              registry=r)
        self.harm = Gauge("routedeck_guardrail_harm", "1 while the guardrail reads harm", ["flag", "metric"],
                          registry=r)
        self.gate = Gauge("routedeck_gate_failing", "1 while the health gate fails", ["flag", "gate"], registry=r)
        self.units = Gauge("routedeck_units", "Units on each arm in the current stage", ["flag", "arm"], registry=r)
        self.looks = Counter("routedeck_looks", "Looks made by the guard", ["flag"], registry=r)
        self.holds = Counter("routedeck_holds", "Looks that ended in HOLD", ["flag"], registry=r)
        self.rollbacks = Counter("routedeck_rollbacks", "Rollbacks made by the guard", ["flag", "cause"], registry=r)
        self.errors = Counter("routedeck_look_errors", "Looks that could not be made", ["flag"], registry=r)
        self.last_look = Gauge("routedeck_last_look_timestamp_seconds", "When the latest look succeeded",
                               ["flag"], registry=r)
        self.age = Gauge("routedeck_data_age_seconds", "Seconds since the latest successful look", ["flag"],
                         registry=r)
        self._stage_label: dict[str, str] = {}
        self._metrics: dict[str, set[str]] = {}
        self._gates: dict[str, set[str]] = {}

    # ---- updates from the guard's loop ---------------------------------------------------------

    def observe(self, flag: str, stage_index: int, stage_name: str, decision: Decision) -> None:
        """Record one successful look."""
        with self._lock:
            old = self._stage_label.get(flag)
            if old is not None and old != stage_name:
                self.stage.remove(flag, old)
            self._stage_label[flag] = stage_name
            self.stage.labels(flag, stage_name).set(stage_index)
            for v in VERDICTS:
                self.verdict.labels(flag, v).set(1.0 if decision.verdict.value == v else 0.0)
            seen = set()
            for m in decision.metrics:
                if m.signal:
                    continue
                seen.add(m.name)
                self._set(self.lower, flag, m.name, m.interval[0] if m.interval else None)
                self._set(self.upper, flag, m.name, m.interval[1] if m.interval else None)
                self._set(self.margin, flag, m.name, m.threshold)
                self._set(self.headroom, flag, m.name, headroom(m.name, m.interval, m.threshold))
                self.harm.labels(flag, m.name).set(1.0 if m.verdict is MetricVerdict.HARM else 0.0)
            for gone in self._metrics.get(flag, set()) - seen:
                for g in (self.lower, self.upper, self.margin, self.headroom, self.harm):
                    self._drop(g, flag, gone)
            self._metrics[flag] = seen
            gates = {g.name for g in decision.health}
            for g in decision.health:
                self.gate.labels(flag, g.name).set(1.0 if g.status is GateStatus.FAIL else 0.0)
            for gone in self._gates.get(flag, set()) - gates:
                self._drop(self.gate, flag, gone)
            self._gates[flag] = gates
            self.units.labels(flag, "candidate").set(decision.units_candidate)
            self.units.labels(flag, "baseline").set(decision.units_baseline)
            self.looks.labels(flag).inc()
            for cause in ROLLBACK_CAUSES:  # present at 0 from the first look: an alert sees the first rollback
                self.rollbacks.labels(flag, cause)
            self.holds.labels(flag)
            if decision.verdict.value == "HOLD":
                self.holds.labels(flag).inc()
            now = self._clock()
            self._last_ok[flag] = now
            self.last_look.labels(flag).set(now)
            self.age.labels(flag).set_function(lambda f=flag: self._clock() - self._last_ok.get(f, self._clock()))

    def set_stage(self, flag: str, stage_index: int, stage_name: str) -> None:
        """The stage after the guard's own write (a rollback), without counting a look."""
        with self._lock:
            old = self._stage_label.get(flag)
            if old is not None and old != stage_name:
                self.stage.remove(flag, old)
            self._stage_label[flag] = stage_name
            self.stage.labels(flag, stage_name).set(stage_index)

    def look_failed(self, flag: str) -> None:
        with self._lock:
            self.errors.labels(flag).inc()
            if flag not in self._last_ok:  # never looked: the age counts from now, not from 1970
                self._last_ok[flag] = self._clock()
                self.age.labels(flag).set_function(lambda f=flag: self._clock() - self._last_ok.get(f, self._clock()))

    def rolled_back(self, flag: str, cause: str) -> None:
        with self._lock:
            self.rollbacks.labels(flag, cause).inc()

    @staticmethod
    def _set(gauge: Gauge, flag: str, metric: str, value: float | None) -> None:
        if value is None:
            DecisionMetrics._drop(gauge, flag, metric)  # unknown is no series, never a zero
        else:
            gauge.labels(flag, metric).set(value)

    @staticmethod
    def _drop(gauge: Gauge, *labels: str) -> None:
        try:
            gauge.remove(*labels)
        except KeyError:
            pass

    # ---- serving -------------------------------------------------------------------------------

    def serve(self, host: str, port: int) -> Any:
        """``/metrics`` on HOST:PORT in a background thread; returns the server (``shutdown()`` stops it)."""
        from prometheus_client import disable_created_metrics

        disable_created_metrics()
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server


def stage_index(stage: str, stage_names: list[str]) -> int:
    """0 for baseline, 1.. for the rule's stages in order, -1 rolled back, 100 promoted."""
    if stage in TERMINAL_INDEX:
        return TERMINAL_INDEX[stage]
    if stage == "baseline":
        return 0
    return stage_names.index(stage) + 1 if stage in stage_names else 0
