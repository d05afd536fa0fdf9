"""What the decision engine is asked to check, and what it answers.

The rule loader (``console/core/rules.py``) turns a YAML decision rule into a ``DecisionSpec``;
the engine (``console/core/stats/``) turns a spec plus telemetry into a ``Decision``. Both sides
code against these types only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(str, Enum):
    ADVANCE = "ADVANCE"
    HOLD = "HOLD"
    ROLLBACK = "ROLLBACK"


class MarginKind(str, Enum):
    ABSOLUTE = "absolute"  # in the metric's unit (shares as fractions: 0.02 = 2 points)
    RELATIVE = "relative"  # a fraction of the baseline value (0.10 = 10% worse)


class PrimaryTest(str, Enum):
    NON_INFERIOR = "non_inferior"
    SUPERIOR = "superior"


class GateAction(str, Enum):
    HOLD = "hold"
    ROLLBACK = "rollback"


class MetricVerdict(str, Enum):
    HARM = "harm"
    NON_INFERIOR = "non-inferior"
    SUPERIOR = "superior"
    INCONCLUSIVE = "inconclusive"
    NO_DATA = "no data"
    TRIPPED = "tripped"  # a tripwire (p95) beyond its limit: can only hold


class GateStatus(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    WAIT = "wait"  # not enough data yet to judge
    NO_DATA = "no data"


@dataclass(frozen=True)
class GuardrailSpec:
    metric: str  # registry name
    margin: float
    margin_kind: MarginKind = MarginKind.ABSOLUTE
    critical: bool = False
    #: absolute limit used where there is no comparable control (the internal stage)
    absolute_limit: float | None = None
    #: a harm verdict needs at least this many events on the candidate arm
    min_events: int = 0


@dataclass(frozen=True)
class PrimarySpec:
    metric: str
    test: PrimaryTest = PrimaryTest.NON_INFERIOR
    margin: float = 0.02
    margin_kind: MarginKind = MarginKind.ABSOLUTE


@dataclass(frozen=True)
class HealthGateSpec:
    """Checks run before any metric. Each failure holds or rolls back, never passes."""

    srm_alpha: float = 0.001
    srm_action: GateAction = GateAction.HOLD
    join_floor: float = 0.90  # matured exposures joined to an outcome, per arm
    join_max_gap: float = 0.05  # largest tolerated coverage difference between arms
    maturation_s: float = 120.0
    join_action: GateAction = GateAction.ROLLBACK
    crossover_max: float = 0.01
    crossover_action: GateAction = GateAction.HOLD
    no_traffic_action: GateAction = GateAction.HOLD


@dataclass(frozen=True)
class StageSpec:
    """One rung of the ladder: who gets the candidate, and how long and how much to watch."""

    name: str  # "internal", "5%", "20%", "full"
    candidate_bp: int
    internal: bool = True
    min_units: int = 200  # candidate units in the stage before any ADVANCE
    min_dwell_s: float = 600.0


@dataclass(frozen=True)
class DecisionSpec:
    alpha: float = 0.05
    guardrails: tuple[GuardrailSpec, ...] = ()
    primary: PrimarySpec | None = None
    gates: HealthGateSpec = HealthGateSpec()
    latency_slo_ms: float = 2500.0
    p95_tripwire_ms: float | None = None  # p95 tripwire: beyond this the verdict can only HOLD
    auto_rollback: bool = True
    #: the confidence sequences are tuned to be tightest near this many units per arm
    tuning_units: int = 2000


@dataclass(frozen=True)
class StageContext:
    """Where the rollout stands at the moment of a look."""

    stage: StageSpec
    elapsed_s: float
    #: the stage has a concurrent baseline to compare with (false at internal, and at full without holdback)
    has_control: bool = True
    pending_checklist: tuple[str, ...] = ()
    rule_changed: bool = False
    #: intended candidate share among eligible units, for the sample-ratio check
    intended_candidate_share: float | None = None


@dataclass
class MetricReadout:
    name: str
    candidate: float | None
    baseline: float | None
    interval: tuple[float, float] | None  # candidate − baseline, in the metric's unit
    threshold: float | None  # the margin in the metric's unit (harm beyond it)
    n_candidate: int
    n_baseline: int
    verdict: MetricVerdict
    critical: bool = False
    #: e.g. {"cost_per_request": ..., "resolved_rate": ...} for ratio metrics
    components: dict[str, float | None] = field(default_factory=dict)
    line: str = ""  # one human-readable line: candidate, baseline, interval, margin, n, verdict


@dataclass
class GateReadout:
    name: str
    status: GateStatus
    detail: str
    action: GateAction


@dataclass
class Decision:
    verdict: Verdict
    stage: str
    health: list[GateReadout]
    metrics: list[MetricReadout]
    reasons: list[str]
    #: True when the source only counts requests: intervals then ignore clustering by unit
    request_level: bool = False
    units_candidate: int = 0
    units_baseline: int = 0
    #: the offline evaluation evidence behind the gate before internal (console.core.evaluation), as JSON
    evaluation: dict | None = None
