"""What the decision engine is asked to check, and what it answers.

The rule loader (``console/core/rules.py``) turns a YAML decision rule into a ``DecisionSpec``;
the engine (``console/core/stats/``) turns a spec plus telemetry into a ``Decision``. Both sides
code against these types only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
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


class Trigger(str, Enum):
    """What a guardrail's harm does: roll back, hold, or only warn (a signal metric that never blocks)."""

    ROLLBACK = "rollback"
    HOLD = "hold"
    WARN = "warn"


class AlphaScope(str, Enum):
    """How the rule's α is spent: each stage spends it (the rollout's bound is stages × α), or the
    rollout's stages share it (each stage spends α / stages, the whole rollout within α)."""

    STAGE = "stage"
    ROLLOUT = "rollout"


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


@functools.lru_cache(maxsize=512)
def _at_stage(g: "GuardrailSpec", margin: float) -> "GuardrailSpec":
    """``g`` with another margin (cached: every look asks it of every guardrail; the spec is immutable)."""
    return replace(g, margin=margin)


@dataclass(frozen=True)
class GuardrailSpec:
    metric: str  # registry name
    margin: float
    margin_kind: MarginKind = MarginKind.ABSOLUTE
    critical: bool = False
    #: absolute limit used where there is no comparable control (the internal stage)
    absolute_limit: float | None = None
    #: burn-in of a proportion: this many expected events on each arm before it can be judged
    #: non-inferior (0: the engine's default). Harm never waits for it.
    min_events: int = 0
    #: what harm does; None: rollback when ``critical``, else hold
    on_harm: Trigger | None = None
    #: the margin at named stages (others use ``margin``)
    stage_margins: tuple[tuple[str, float], ...] = ()

    def at_stage(self, stage: str) -> "GuardrailSpec":
        """This guardrail with the margin of ``stage``."""
        for name, margin in self.stage_margins:
            if name == stage:
                return _at_stage(self, margin)
        return self

    @property
    def trigger(self) -> Trigger:
        if self.on_harm is not None:
            return self.on_harm
        return Trigger.ROLLBACK if self.critical else Trigger.HOLD


@dataclass(frozen=True)
class PrimarySpec:
    metric: str
    test: PrimaryTest = PrimaryTest.NON_INFERIOR
    margin: float = 0.02
    margin_kind: MarginKind = MarginKind.ABSOLUTE
    #: the margin at named stages (others use ``margin``)
    stage_margins: tuple[tuple[str, float], ...] = ()


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
    #: metrics shown and journalled but never blocking (their harm only warns)
    signals: tuple[GuardrailSpec, ...] = ()
    alpha_scope: AlphaScope = AlphaScope.STAGE
    #: comparative stages of the rollout (for the whole-rollout α statement)
    stages: int = 4
    #: the SLO (ms) the metrics source counted in-SLO requests at, set by the core at each look (None: the
    #: rule's own); when it is not ``latency_slo_ms`` the metrics read from those counts are not judged
    source_slo_ms: float | None = None


#: the counter every SLO-based metric is computed from
SLO_COLUMN = "slo_met"


def slo_mismatch(spec: DecisionSpec) -> str | None:
    """Why the metrics computed from the in-SLO count cannot be judged for this rule, or None when they can:
    the source counted them at another SLO than the rule's."""
    counted, wanted = spec.source_slo_ms, spec.latency_slo_ms
    if counted is None or abs(counted - wanted) < 1e-9:
        return None
    return (f"the metrics source counts the SLO at {counted:g} ms, the rule says {wanted:g} ms — "
            f"add slo_ms={wanted:g} to the metrics SPEC (--metrics or the profile's metrics =)")


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
    #: the rule asks for segment readouts at this stage (they take a share of the stage's α)
    segments: bool = False


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
    #: what harm on this readout does (rollback / hold / warn); a signal only warns
    action: str = "hold"
    #: why it is not judged yet, or what else to know, in words ("" when nothing)
    note: str = ""
    #: seconds until it can be judged at the current traffic (None: unknown or not expected)
    eta_s: float | None = None
    #: a signal metric: shown and journalled, never blocking
    signal: bool = False

    @property
    def judged(self) -> bool:
        """Judged either way: harm, non-inferior or superior. Anything else holds an ADVANCE."""
        return self.verdict in (MetricVerdict.HARM, MetricVerdict.NON_INFERIOR, MetricVerdict.SUPERIOR)


@dataclass
class GateReadout:
    name: str
    status: GateStatus
    detail: str
    action: GateAction


@dataclass(frozen=True)
class AlphaBudget:
    """How the rule's α is spent at a look, and what it bounds over the whole rollout."""

    alpha: float  # the rule's α
    stage: float  # spent by this stage: the chance an identical candidate is rolled back here
    per_test: float  # each blocking test's share (one-sided, harm side)
    tests: int  # blocking tests at this stage (guardrails, primary, gates, segments)
    stages: int  # comparative stages in the rollout
    rollout: float  # bound on a false rollback over the whole rollout
    scope: str = "stage"

    @property
    def statement(self) -> str:
        if self.scope == AlphaScope.ROLLOUT.value:
            how = f"the rule's α {self.alpha:g} is shared by its {self.stages} stages ({self.stage:.3g} each)"
        else:
            how = f"each stage spends the rule's α {self.alpha:g}; {self.stages} stages"
        return (f"an identical candidate is rolled back at this stage with probability ≤ {self.stage:.3g} and over "
                f"the whole rollout ≤ {self.rollout:.3g} ({how}; {self.tests} tests at {self.per_test:.2g} each)")

    def as_json(self) -> dict:
        return {"alpha": self.alpha, "stage": self.stage, "per_test": self.per_test, "tests": self.tests,
                "stages": self.stages, "rollout": self.rollout, "scope": self.scope, "statement": self.statement}


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
    #: seconds until an ADVANCE at the current traffic if nothing changes (0 when ADVANCE; None: unknown or
    #: not expected — see ``eta_note``)
    eta_s: float | None = None
    eta_note: str = ""
    #: True when too little data is in yet (before the stage's minimum units or dwell) to say when — or
    #: whether — an ADVANCE can come: ``eta_note`` then says what is missing, and no forecast is made
    eta_early: bool = False
    #: True when the estimated ADVANCE also waits for a person (the checklist acknowledged or the rule
    #: re-confirmed): ``eta_s`` is then the earliest it can come, not what the traffic alone brings
    eta_needs_person: bool = False
    #: the α accounting behind this look (None for a look that judged nothing)
    alpha: AlphaBudget | None = None
    #: the offline evaluation evidence behind the gate before internal (console.core.evaluation), as JSON
    evaluation: dict | None = None
