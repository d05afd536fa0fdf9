"""Segment readouts: candidate vs baseline on every guardrail (and the primary metric), per pre-registered segment, with
false-discovery control that stays valid however often anyone looks.

Per (segment, metric) the null hypothesis is "no harm beyond the guardrail's margin". Its evidence
is an e-process: the one-sided normal-mixture martingale behind the engine's asymptotic confidence
sequences (Robbins' method of mixtures; Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", and the asymptotic version of Waudby-Smith
et al. 2023). With S = √N·(Δ̂ − margin)/σ̂_Δ oriented so that S > 0 points at harm, a = N + 1/ρ²,

    E = 2 / √(1 + Nρ²) · exp(S² / (2a)) · Φ(S / √a)

which mixes exp(λS − λ²N/2) over λ ≥ 0 with a half-normal(ρ) prior: a non-negative
supermartingale for every difference at or inside the margin, so P(E ever ≥ 1/α) ≤ α (Ville).
``1/E`` is the anytime-valid p-value shown beside it.

The family — every (segment value, guardrail) — is corrected with e-BH (Wang & Ramdas 2022,
"False discovery rate control with e-values"): with K hypotheses, reject the k largest e-values
for the largest k with e₍ₖ₎ ≥ K/(αk). e-BH controls the false discovery rate at α under any
dependence between the tests, and e-processes stay e-values at any stopping time, so the control
holds at whatever look someone acts on. When no segment is harmed at all, the first look that
flags anything is itself a stopping time: the chance an A/A rollout *ever* flags a segment is ≤ α.

Segments are the rule's pre-registered attributes (``segments:``), which are fixed before
exposure; a segment with too few units on either arm reads "no data" and can never pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dataclasses import replace

from ..registry import Metric, MetricKind, lookup
from ..telemetry import Arm, UnitRecord
from .engine import alpha_budget, fmt, judge
from .sequences import MIN_CONTRIBUTING_UNITS, rho_for
from .spec import DecisionSpec, GuardrailSpec, MetricVerdict, StageContext, StageSpec
from .summary import COLUMNS, ArmSummary, GroupSummary, summarise_columns

#: below this many units on either arm a segment reads "no data" (the sequences' burn-in)
MIN_SEGMENT_UNITS = MIN_CONTRIBUTING_UNITS
#: the mixture is tuned for a segment holding about this share of the rule's planned units
SEGMENT_TUNING_SHARE = 0.25
MISSING = "(missing)"


@dataclass(frozen=True)
class SegmentRow:
    """One (segment attribute, value, guardrail) comparison."""

    attribute: str
    value: str
    metric: str
    candidate: float | None
    baseline: float | None
    interval: tuple[float, float] | None  # candidate − baseline, anytime-valid at the rule's α (uncorrected)
    margin: float | None  # harm beyond this difference, in the metric's unit
    n_candidate: int
    n_baseline: int
    e_value: float  # evidence of harm beyond the margin (0: cannot count as evidence)
    verdict: MetricVerdict  # HARM only after the e-BH correction
    critical: bool = False
    note: str = ""

    @property
    def p_value(self) -> float:
        """The anytime-valid p-value 1/E (capped at 1)."""
        return 1.0 if self.e_value <= 1.0 else 1.0 / self.e_value

    @property
    def harm(self) -> bool:
        return self.verdict is MetricVerdict.HARM

    @property
    def segment(self) -> tuple[str, str]:
        return (self.attribute, self.value)

    def line(self) -> str:
        """One human-readable line: segment, metric, candidate, baseline, interval, margin, n, e, verdict."""
        m = lookup(self.metric)
        iv = f"[{fmt(m, self.interval[0], True)}, {fmt(m, self.interval[1], True)}]" if self.interval else "—"
        # the margin on the side where harm lies: +x for "higher is worse", −x for "lower is worse"
        mg = fmt(m, self.margin if m.worse_is_higher else -self.margin, True) if self.margin is not None else "—"
        seg = f"{self.attribute}={self.value}"
        text = (f"{seg:<18} {self.metric:<28} cand {fmt(m, self.candidate):>9}  base {fmt(m, self.baseline):>9}  "
                f"Δ {iv:<26} margin {mg:<9} n {self.n_candidate}/{self.n_baseline}  "
                f"e {format_e(self.e_value):>7}  p {format_p(self.p_value):>6}  {self.verdict.value}")
        return text + (f" ({self.note})" if self.note else "")


@dataclass
class SegmentReadout:
    """Every segment row of one look, the family's size and α, and notes in words."""

    rows: list[SegmentRow]
    alpha: float
    hypotheses: int
    notes: list[str] = field(default_factory=list)

    @property
    def harmed(self) -> list[tuple[str, str]]:
        """Segments (attribute, value) with at least one guardrail flagged, in row order."""
        out: list[tuple[str, str]] = []
        for r in self.rows:
            if r.harm and r.segment not in out:
                out.append(r.segment)
        return out


def format_e(e: float) -> str:
    if e <= 0:
        return "—"
    if e >= 1e4:
        return f"{e:.1e}"
    return f"{e:.3g}"


def format_p(p: float) -> str:
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def harm_e_value(diff_value: float, variance: float, n: int, margin: float, worse_is_higher: bool, rho: float) -> float:
    """The one-sided normal-mixture e-value against "no harm beyond ``margin``" after ``n`` units."""
    if variance <= 0 or n < 2:
        return 0.0
    excess = (diff_value - margin) if worse_is_higher else (-margin - diff_value)
    s = math.sqrt(n) * excess / math.sqrt(variance)  # the standardised sum: √N · z
    a = n + 1.0 / (rho * rho)
    tail = 0.5 * math.erfc(-s / math.sqrt(2 * a))  # Φ(s/√a)
    if tail <= 0.0:
        return 0.0  # far on the safe side of the margin
    log_e = math.log(2.0 * tail) - 0.5 * math.log1p(n * rho * rho) + s * s / (2 * a)
    return math.exp(min(log_e, 700.0))


def e_bh(e_values: Sequence[float], alpha: float) -> set[int]:
    """Indices rejected by e-BH at level ``alpha`` (Wang & Ramdas 2022)."""
    k_total = len(e_values)
    if not k_total:
        return set()
    order = sorted(range(k_total), key=lambda i: e_values[i], reverse=True)
    keep = 0
    for k, i in enumerate(order, start=1):
        if e_values[i] >= k_total / (alpha * k):
            keep = k
    return set(order[:keep])


def segment_rho(spec: DecisionSpec) -> float:
    """ρ of the mixture, fixed before any data: tuned to a segment's expected size."""
    return rho_for(max(int(spec.tuning_units * SEGMENT_TUNING_SHARE), 50), spec.alpha)


def _compare(g: GuardrailSpec, metric: Metric, cand: "dict[str, np.ndarray] | ArmSummary",
             base: "dict[str, np.ndarray] | ArmSummary",
             spec: DecisionSpec, alpha: float, rho: float) -> tuple[float | None, float | None, tuple | None,
                                                                     float | None, float, MetricVerdict, str, int, int]:
    """(cand, base, interval, margin, e, provisional verdict, note, n cand, n base) for one segment and guardrail.

    The test is the engine's for the metric's kind (``engine.judge``); its evidence of harm is the
    normal-mixture e-value of the harm statistic, and for a share also the any-n mixture e-value — the
    mean of two e-values is an e-value, and before the burn-in only the any-n one counts.
    """
    cs = cand if isinstance(cand, ArmSummary) else summarise_columns(cand)
    bs = base if isinstance(base, ArmSummary) else summarise_columns(base)
    nc, nb = cs.units, bs.units
    if nc < MIN_SEGMENT_UNITS or nb < MIN_SEGMENT_UNITS:
        return (None, None, None, None, 0.0, MetricVerdict.NO_DATA,
                f"too few units: {nc}/{nb}, needs {MIN_SEGMENT_UNITS} per arm", nc, nb)
    ctx = StageContext(StageSpec("segment", 0, min_units=0, min_dwell_s=0), 0.0, has_control=True)
    tuned = replace(spec, tuning_units=max(int(spec.tuning_units * SEGMENT_TUNING_SHARE), 25))
    j = judge(g, metric, cs, bs, ctx, tuned, alpha)
    if j.interval is None and j.log_e_exact is None:
        return (j.candidate, j.baseline, None, j.threshold, 0.0, MetricVerdict.NO_DATA,
                j.note or "too few events for an interval — never a pass", nc, nb)
    e_asym = harm_e_value(j.h_hat, j.h_var, nc + nb, 0.0, True, rho) if j.h_var and not j.burn_in else 0.0
    if j.log_e_exact is not None:
        e_exact = math.exp(min(j.log_e_exact, 700.0))
        e = e_exact if j.burn_in else 0.5 * (e_exact + e_asym)
    else:
        e = e_asym
    verdict = j.verdict if j.verdict is not MetricVerdict.SUPERIOR else MetricVerdict.NON_INFERIOR
    return j.candidate, j.baseline, j.interval, j.threshold, e, verdict, j.note, nc, nb


def readout_from_columns(
    spec: DecisionSpec,
    cand: dict[str, np.ndarray],
    base: dict[str, np.ndarray],
    cand_labels: dict[str, np.ndarray],
    base_labels: dict[str, np.ndarray],
    attributes: Sequence[str],
    excluded: Sequence[tuple[str, str]] = (),
) -> SegmentReadout:
    """The segment readout from per-unit columns of each arm and each unit's segment labels.

    ``cand_labels[attr]`` holds one label per candidate unit (``MISSING`` where a unit lacks it).
    """
    def labels(attr: str) -> tuple[np.ndarray, np.ndarray]:
        lc, lb = cand_labels.get(attr), base_labels.get(attr)
        lc = lc if lc is not None else np.full(len(cand["requests"]), MISSING, dtype=object)
        lb = lb if lb is not None else np.full(len(base["requests"]), MISSING, dtype=object)
        return lc, lb

    def values(attr: str) -> set[str]:
        lc, lb = labels(attr)
        return {str(v) for v in np.concatenate([lc, lb]).tolist()}

    def missing(attr: str) -> int:
        lc, lb = labels(attr)
        return int(np.sum(lc == MISSING) + np.sum(lb == MISSING))

    def arms(attr: str, value: str):
        lc, lb = labels(attr)
        return ({f: v[lc == value] for f, v in cand.items()}, {f: v[lb == value] for f, v in base.items()})

    return _readout(spec, attributes, excluded, values, missing, arms)


def _readout(spec: DecisionSpec, attributes: Sequence[str], excluded: Sequence[tuple[str, str]],
             values_of: Callable, missing_of: Callable, arms_of: Callable) -> SegmentReadout:
    """Every (segment value, metric) row, e-BH over the family at its share of the stage's α."""
    # the segment family takes one share of the stage's α, like any other blocking test
    alpha = alpha_budget(spec, segments=True).per_test
    rho = segment_rho(spec)
    drafts: list[dict] = []
    notes: list[str] = []
    tests = list(spec.guardrails)
    if spec.primary is not None and all(g.metric != spec.primary.metric for g in tests):
        # the primary metric worse than its margin in a segment is harm there too
        tests.insert(0, GuardrailSpec(spec.primary.metric, spec.primary.margin, spec.primary.margin_kind))
    for attr in attributes:
        # an excluded segment's units are no longer compared, but the segment keeps its rows
        values = sorted((values_of(attr) - {MISSING}) | {v for a, v in excluded if a == attr})
        missing = missing_of(attr)
        if missing:
            notes.append(f"{missing} units carry no {attr!r} attribute and are in no {attr} segment")
        if not values:
            notes.append(f"no unit carries the segment attribute {attr!r}: its readout has no data — never a pass")
            for g in tests:
                drafts.append(dict(attribute=attr, value=MISSING, metric=g.metric, candidate=None, baseline=None,
                                   interval=None, margin=None, n_candidate=0, n_baseline=0, e_value=0.0,
                                   verdict=MetricVerdict.NO_DATA, critical=g.critical,
                                   note="the source gives no such attribute"))
            continue
        for value in values:
            c, b = arms_of(attr, value)
            is_excluded = (attr, value) in excluded
            for g in tests:
                metric = lookup(g.metric)
                if metric is None or metric.kind is MetricKind.QUANTILE:
                    continue  # quantiles need histograms per segment, which unit columns do not carry
                cv, bv, interval, margin, e, verdict, note, nc, nb = _compare(g, metric, c, b, spec, alpha, rho)
                if is_excluded:
                    e, verdict, note = 0.0, MetricVerdict.NO_DATA, "excluded from the candidate"
                drafts.append(dict(attribute=attr, value=value, metric=g.metric, candidate=cv,
                                   baseline=bv, interval=interval, margin=margin, n_candidate=nc,
                                   n_baseline=nb, e_value=e, verdict=verdict, critical=g.critical, note=note))
    rejected = e_bh([d["e_value"] for d in drafts], alpha)
    k = len(drafts)
    rows = []
    for i, d in enumerate(drafts):
        if i in rejected:
            d["verdict"] = MetricVerdict.HARM
        elif d["verdict"] is MetricVerdict.HARM:
            # the row's own interval shows harm, but not once the whole family is accounted for
            d["verdict"] = MetricVerdict.INCONCLUSIVE
            extra = f"not significant over {k} segment tests"
            d["note"] = f"{d['note']}; {extra}" if d["note"] else extra
        rows.append(SegmentRow(**d))
    return SegmentReadout(rows, alpha, k, notes)


def readout_from_groups(
    spec: DecisionSpec,
    groups: Sequence[GroupSummary],
    attributes: Sequence[str],
    is_comparable: Callable[[GroupSummary], bool] | None = None,
    excluded: Sequence[tuple[str, str]] = (),
) -> SegmentReadout:
    """The segment readout from per-arm summaries grouped by (at least) the segment ``attributes``.

    The rule's comparable-unit predicate keeps the comparable groups; each segment value's arms are the
    sums of their groups, so a source that aggregates where its data lives never hands over unit records.
    """
    if any(g.summary.request_level for g in groups):
        return SegmentReadout([], alpha_budget(spec, segments=True).per_test, 0, [
            "the metrics source counts requests, not units: segments need unit-level data — no segment readout "
            "(never a pass)"])
    pool = [g for g in groups if g.arm in (Arm.CANDIDATE, Arm.BASELINE)
            and (is_comparable is None or is_comparable(g))]
    cand_groups = [g for g in pool if g.arm is Arm.CANDIDATE]
    base_groups = [g for g in pool if g.arm is Arm.BASELINE]

    def total(rows: Sequence[GroupSummary], attr: str, value: str) -> ArmSummary:
        out = ArmSummary()
        for g in rows:
            if g.attributes.get(attr, MISSING) == value:
                out.add(g.summary)
        return out

    readout = _readout(spec, attributes, excluded,
                       lambda attr: {g.attributes.get(attr, MISSING) for g in pool},
                       lambda attr: sum(g.summary.units for g in pool if g.attributes.get(attr, MISSING) == MISSING),
                       lambda attr, value: (total(cand_groups, attr, value), total(base_groups, attr, value)))
    if not pool:
        readout.notes.insert(0, "no comparable units yet — every segment reads no data")
    return readout


def segment_readout(
    spec: DecisionSpec,
    attributes: Sequence[str],
    units: list[UnitRecord] | None,
    is_comparable: Callable[[UnitRecord], bool] | None = None,
    has_control: bool = True,
    excluded: Sequence[tuple[str, str]] = (),
) -> SegmentReadout:
    """Candidate vs baseline per value of each pre-registered attribute, on every guardrail."""
    if units is None:
        return SegmentReadout([], alpha_budget(spec, segments=True).per_test, 0, ["the metrics source counts requests, not units: segments need "
                                                  "unit-level data — no segment readout (never a pass)"])
    if not has_control:
        return SegmentReadout([], alpha_budget(spec, segments=True).per_test, 0, ["no concurrent baseline at this stage: segments cannot be compared"])
    pool = [u for u in units if is_comparable(u)] if is_comparable is not None else list(units)
    pool = [u for u in pool if u.arm in (Arm.CANDIDATE, Arm.BASELINE)]
    cols = {c: np.array([float(getattr(u, c)) for u in pool]) for c in COLUMNS}
    arm = np.array([u.arm is Arm.CANDIDATE for u in pool], dtype=bool)
    cand = {f: v[arm] for f, v in cols.items()}
    base = {f: v[~arm] for f, v in cols.items()}
    labels = {a: np.array([str(u.segment.get(a, MISSING)) for u in pool], dtype=object) for a in attributes}
    readout = readout_from_columns(spec, cand, base, {a: v[arm] for a, v in labels.items()},
                                   {a: v[~arm] for a, v in labels.items()}, attributes, excluded)
    if not pool:
        readout.notes.insert(0, "no comparable units yet — every segment reads no data")
    return readout


__all__ = ["SegmentRow", "SegmentReadout", "segment_readout", "readout_from_columns", "readout_from_groups", "harm_e_value", "e_bh",
           "MIN_SEGMENT_UNITS", "format_e", "format_p"]
