"""Two naive comparators, with the same call shape as ``engine.evaluate``; the console never acts on them.

- ``naive_threshold``: rolls back the moment a guardrail's current point estimate is worse than
  its threshold (baseline plus margin, or the absolute limit without a control) — no interval at all.
- ``fixed_horizon_peeking``: the engine with fixed-horizon z-intervals at the full α for every test,
  looked at on every refresh as if each look were the only one.
"""

from __future__ import annotations

from typing import Callable

from ..registry import MetricKind, lookup
from ..telemetry import Arm, RouteCounters, UnitRecord
from .engine import arm_estimate, evaluate_with, fmt, split_units
from .spec import Decision, DecisionSpec, MarginKind, MetricReadout, MetricVerdict, StageContext, Verdict
from .summary import ArmSummary, summarise_counters


def _summaries(ctx, units, totals, is_comparable) -> tuple[ArmSummary, ArmSummary]:
    if units is not None:
        return split_units(units, is_comparable, ctx.has_control)
    totals = totals or {}
    return (summarise_counters(totals[Arm.CANDIDATE]) if Arm.CANDIDATE in totals else ArmSummary(),
            summarise_counters(totals[Arm.BASELINE]) if Arm.BASELINE in totals else ArmSummary())


def naive_threshold(
    spec: DecisionSpec,
    ctx: StageContext,
    units: list[UnitRecord] | None,
    totals: dict[Arm, RouteCounters] | None,
    is_comparable: Callable[[UnitRecord], bool] | None = None,
) -> Decision:
    """ROLLBACK as soon as any guardrail's current value is worse than its threshold; ADVANCE once the stage minimums are met."""
    cand, base = _summaries(ctx, units, totals, is_comparable)
    readouts: list[MetricReadout] = []
    reasons: list[str] = []
    for g in spec.guardrails:
        metric = lookup(g.metric)
        if metric is None or metric.kind is MetricKind.QUANTILE:
            continue
        c = arm_estimate(cand, metric)
        b = arm_estimate(base, metric)
        if ctx.has_control:
            if b.value is None:
                threshold = None
            else:
                margin = g.margin * abs(b.value) if g.margin_kind is MarginKind.RELATIVE else g.margin
                threshold = b.value + margin if metric.worse_is_higher else b.value - margin
        else:
            threshold = g.absolute_limit if g.absolute_limit is not None else (
                metric.warn_above if metric.worse_is_higher else metric.warn_below)
        if c.value is None or threshold is None:
            verdict = MetricVerdict.NO_DATA
        elif (c.value > threshold) if metric.worse_is_higher else (c.value < threshold):
            verdict = MetricVerdict.HARM
            reasons.append(f"rollback: {g.metric} is {fmt(metric, c.value)}, worse than {fmt(metric, threshold)}")
        else:
            verdict = MetricVerdict.NON_INFERIOR
        line = f"{g.metric:<28} cand {fmt(metric, c.value):>9}  threshold {fmt(metric, threshold)}  {verdict.value}"
        readouts.append(MetricReadout(g.metric, c.value, b.value, None, threshold, c.n_units, b.n_units, verdict,
                                      g.critical, {}, line))
    n_c, n_b = cand.units, base.units
    if reasons:
        verdict = Verdict.ROLLBACK
    elif n_c < ctx.stage.min_units or ctx.elapsed_s < ctx.stage.min_dwell_s:
        verdict = Verdict.HOLD
        reasons.append(f"hold: minimum units {n_c}/{ctx.stage.min_units} or dwell "
                       f"{ctx.elapsed_s / 60:.0f}/{ctx.stage.min_dwell_s / 60:.0f} min not reached")
    else:
        verdict = Verdict.ADVANCE
        reasons.append("advance: every guardrail's current value is within its threshold")
    return Decision(verdict, ctx.stage.name, [], readouts, reasons, cand.request_level, n_c, n_b)


def fixed_horizon_peeking(
    spec: DecisionSpec,
    ctx: StageContext,
    units: list[UnitRecord] | None,
    totals: dict[Arm, RouteCounters] | None,
    is_comparable: Callable[[UnitRecord], bool] | None = None,
) -> Decision:
    """The engine's verdict with fixed-horizon z-intervals and no α split: valid for one look, not for many."""
    return evaluate_with(spec, ctx, units, totals, is_comparable, sequential=False, split_alpha=False)
