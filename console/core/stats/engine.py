"""The verdict: health gates first, then every guardrail and the primary metric, then the stage's minimums.

Semantics:
- ROLLBACK — a critical guardrail shows harm beyond its margin, or a gate whose action is rollback fails;
- HOLD — harm on a non-critical guardrail, a hold gate fails or is still waiting for data, a guardrail
  or the primary metric is inconclusive or has no data, the p95 tripwire is beyond its limit, the
  stage's minimum units or dwell are not reached, a checklist item is unacknowledged, the rule changed;
- ADVANCE — none of the above, and the primary metric shows what the rule asks.

The rule's α is split evenly (Bonferroni) over every metric and statistical gate tested at a look,
so the chance that an identical candidate is rolled back at a stage — however often anyone looks —
stays within α: each test uses a two-sided anytime-valid confidence sequence at its share of α
(harm is one side of it, so a guardrail's false-harm rate is at most half its share). The bound holds
per stage; a rollout whose stages restart their sequences spends α once per stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Callable

import numpy as np

from ..errors import BadInput
from ..registry import Metric, MetricKind, lookup
from ..telemetry import LATENCY_BOUNDS_MS, Arm, RouteCounters, UnitRecord, histogram_quantile
from .gates import crossover_gate, gate_blocks, join_gate, no_traffic_gate, srm_gate
from .sequences import (
    MIN_DENOMINATOR,
    RatioEstimate,
    binomial_estimate,
    difference,
    one_sample,
    ratio_estimate,
)
from .spec import (
    Decision,
    DecisionSpec,
    GateAction,
    GateReadout,
    GateStatus,
    GuardrailSpec,
    MarginKind,
    MetricReadout,
    MetricVerdict,
    PrimarySpec,
    PrimaryTest,
    StageContext,
    Verdict,
)

UNIT_FIELDS = ("requests", "successes", "exposures", "outcomes", "resolved", "escalated", "corrected", "complaints",
               "errors", "rate_limited", "timeouts", "fallbacks", "slo_met", "cost_usd", "mature_exposures",
               "mature_outcomes")


@dataclass
class Arms:
    """Per-unit columns for each arm (unit-level) — built once per look."""

    cand: dict[str, np.ndarray]
    base: dict[str, np.ndarray]
    crossed: int
    units: int


#: "crossed" rides along as the last column so one pass over the records builds every array
_ROW = attrgetter(*UNIT_FIELDS, "crossed")


def columns(units: list[UnitRecord]) -> dict[str, np.ndarray]:
    """Per-unit columns, one array per counter plus ``crossed`` (one pass over the records)."""
    k = len(UNIT_FIELDS) + 1
    table = np.fromiter(chain.from_iterable(map(_ROW, units)), dtype=float, count=len(units) * k).reshape(-1, k)
    return {f: table[:, i] for i, f in enumerate((*UNIT_FIELDS, "crossed"))}


def split_arms(units: list[UnitRecord], is_comparable: Callable[[UnitRecord], bool] | None, has_control: bool) -> Arms:
    """Candidate and baseline units that may be compared (eligible scope, not the internal audience)."""
    # no control at the internal stage: every candidate unit is judged on its own
    pool = [u for u in units if is_comparable(u)] if has_control and is_comparable is not None else units
    cols = columns(pool)
    arm = np.array([u.arm for u in pool], dtype=object)
    # compare against object arrays: numpy would turn a bare str-enum into a string scalar and match nothing
    cand_mask = arm == np.array([Arm.CANDIDATE], dtype=object)
    # units of neither arm (OTHER) are never compared
    base_mask = arm == np.array([Arm.BASELINE], dtype=object) if has_control else np.zeros(len(pool), dtype=bool)
    cand = {f: v[cand_mask] for f, v in cols.items()}
    base = {f: v[base_mask] for f, v in cols.items()}
    crossed = int(cand["crossed"].sum() + base["crossed"].sum())
    return Arms(cand, base, crossed, int(cand_mask.sum() + base_mask.sum()))


@dataclass(frozen=True)
class UnitCounts:
    """Comparable units per arm counted by a request-level source (it has no per-unit records).

    ``crossed`` counts the units of each arm that were also seen on the other, so a unit served both
    arms counts once on each; None when the source does not count them. ``missing`` says why the
    comparable units cannot be counted ("" when they can).
    """

    candidate: int = 0
    baseline: int = 0
    crossed: int | None = None
    missing: str = ""
    #: something about the counts the operator should know (shown as a note with the verdict)
    note: str = ""


def arm_estimate(arms: Arms | None, totals: dict[Arm, RouteCounters] | None, arm: Arm, metric: Metric) -> RatioEstimate:
    """One arm's value of ``metric``: unit-level delta method, or request-level binomial from totals."""
    if arms is not None:
        cols = arms.cand if arm is Arm.CANDIDATE else arms.base
        if not len(cols["requests"]):
            return RatioEstimate(None, None, 0, 0.0, 0.0)
        return ratio_estimate(cols[metric.numerator], cols[metric.denominator])
    c = (totals or {}).get(arm)
    if c is None:
        return RatioEstimate(None, None, 0, 0.0, 0.0)
    num, den = getattr(c, metric.numerator), getattr(c, metric.denominator)
    if metric.kind is MetricKind.PROPORTION:
        return binomial_estimate(num, den)
    if metric.numerator == "cost_usd" and c.cost_sq_usd > 0:
        return cost_estimate(c, metric)
    return RatioEstimate(num / den if den else None, None, int(den), num, den)


def cost_estimate(c: RouteCounters, metric: Metric) -> RatioEstimate:
    """Cost per request or per resolved case from request counters and the sum of squared request costs.

    Per request: the spread of a request's cost gives the mean's variance. Per resolved case
    (cost ÷ resolved, a ratio of two per-request quantities): the delta method needs the covariance of a
    request's cost with its being resolved, which counters cannot give, so the worst case that
    Cauchy–Schwarz allows is used — a wider interval, never a narrower one. Requests are taken as
    independent, as every request-level figure is (the verdict says so).
    """
    n, cost, den = c.requests, c.cost_usd, float(getattr(c, metric.denominator))
    if n < 2 or den <= 0:
        return RatioEstimate(cost / den if den else None, None, int(n), cost, den)
    mean = cost / n
    var_cost = max(c.cost_sq_usd / n - mean * mean, 0.0) * n / (n - 1)
    if metric.denominator == "requests":
        return RatioEstimate(mean, var_cost / n, int(n), cost, den)
    if den < MIN_DENOMINATOR:
        return RatioEstimate(cost / den, None, int(n), cost, den)
    share = min(den / n, 1.0)  # resolved cases per request
    ratio = cost / den
    spread = math.sqrt(var_cost) + ratio * math.sqrt(share * (1 - share))
    return RatioEstimate(ratio, spread * spread / (n * share * share), int(n), cost, den)


def _clock(seconds: float) -> str:
    """A duration as the dwell shows it: 4m05s, 1h10m (never rounded up to the minimum it has not reached)."""
    whole = int(max(seconds, 0.0))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def fmt(metric: Metric | None, value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return "—"
    unit = metric.unit if metric else ""
    sign = "+" if signed and value >= 0 else ""
    if unit == "share":
        return f"{sign}{value * 100:.2f}%" if abs(value) < 0.1 else f"{sign}{value * 100:.1f}%"
    if unit == "USD":
        return f"{sign}${value:.4f}" if value >= 0 or not signed else f"-${-value:.4f}"
    if unit == "ms":
        return f"{sign}{value:.0f}ms"
    return f"{sign}{value:.4g}"


def _margin_abs(margin: float, kind: MarginKind, base_value: float | None) -> float | None:
    if kind is MarginKind.ABSOLUTE:
        return margin
    return None if base_value is None else margin * abs(base_value)


def judge_difference(metric: Metric, low: float, high: float, margin: float) -> MetricVerdict:
    """Harm when the whole interval is worse than the margin; non-inferior when it is all better than it."""
    if metric.worse_is_higher:
        if low > margin:
            return MetricVerdict.HARM
        if high < margin:
            return MetricVerdict.NON_INFERIOR
    else:
        if high < -margin:
            return MetricVerdict.HARM
        if low > -margin:
            return MetricVerdict.NON_INFERIOR
    return MetricVerdict.INCONCLUSIVE


def _line(name: str, metric: Metric, c: float | None, b: float | None, interval, threshold, nc: int, nb: int,
          verdict: MetricVerdict, note: str = "", margin_text: str | None = None) -> str:
    iv = f"Δ [{fmt(metric, interval[0], True)}, {fmt(metric, interval[1], True)}]" if interval else "Δ —"
    thr = f"margin {margin_text or fmt(metric, threshold, True)}" if threshold is not None else "margin —"
    base = f"base {fmt(metric, b)}" if b is not None or nb else "base —"
    text = f"{name:<28} cand {fmt(metric, c):>9}  {base:<15} {iv:<28} {thr:<16} n {nc}/{nb}  {verdict.value}"
    return text + (f" ({note})" if note else "")


def guardrail_readout(g: GuardrailSpec, arms: Arms | None, totals, ctx: StageContext, alpha: float,
                      planned: int, primary: PrimarySpec | None = None, sequential: bool = True) -> MetricReadout:
    """One guardrail (or the primary metric) judged against the baseline, or against its absolute limit without one."""
    metric = lookup(g.metric)
    if metric is None or metric.numerator is None or metric.denominator is None:
        raise BadInput(f"decision rule: guardrail {g.metric!r} is not a rate or ratio metric — quantiles such as "
                       "p95 can only be a tripwire (p95_tripwire_ms)")
    est_c = arm_estimate(arms, totals, Arm.CANDIDATE, metric)
    est_b = arm_estimate(arms, totals, Arm.BASELINE, metric)
    components = {}
    if metric.kind is MetricKind.RATIO:
        req = lookup("cost_per_request")
        res = lookup("resolved_without_escalation")
        components = {
            "cost_per_request": arm_estimate(arms, totals, Arm.CANDIDATE, req).value,
            "resolved_rate": arm_estimate(arms, totals, Arm.CANDIDATE, res).value,
        }
    nc, nb = est_c.n_units, est_b.n_units
    if not ctx.has_control:
        limit = g.absolute_limit if g.absolute_limit is not None else (
            metric.warn_above if metric.worse_is_higher else metric.warn_below)
        if est_c.value is None:
            verdict, interval, note = MetricVerdict.NO_DATA, None, "no candidate data"
        elif limit is None:
            verdict, interval, note = MetricVerdict.INCONCLUSIVE, None, "no absolute limit at the internal stage"
        else:
            lo, hi = one_sample(est_c, alpha, planned, sequential)
            interval = None if math.isinf(lo) else (lo, hi)
            # compare the candidate's own value with the absolute limit (a smoke test)
            verdict = judge_difference(metric, lo - limit, hi - limit, 0.0)
            note = ""
        iv = f"[{fmt(metric, interval[0])}, {fmt(metric, interval[1])}]" if interval else "—"
        lim = f"limit {fmt(metric, limit)}" if limit is not None else "no limit"
        line = (f"{g.metric:<28} cand {fmt(metric, est_c.value):>9}  interval {iv:<22} {lim:<16} n {nc}  {verdict.value}"
                + (f" ({note})" if note else ""))
        return MetricReadout(g.metric, est_c.value, None, interval, limit, nc, 0, verdict, g.critical, components, line)
    diff = difference(est_c, est_b, alpha, planned, sequential)
    margin = _margin_abs(g.margin, g.margin_kind, est_b.value)
    note = ""
    if diff.interval is None or margin is None:
        verdict = MetricVerdict.NO_DATA
        if arms is None and est_c.value is not None:
            note = ("the source gives no spread of a request's cost: no interval for a cost figure"
                    if metric.numerator == "cost_usd" else "the source counts requests only: no interval for a per-unit ratio")
        else:
            note = "no data on one arm — never a pass"
    elif primary is not None and primary.test is PrimaryTest.SUPERIOR:
        better = diff.high < 0 if metric.worse_is_higher else diff.low > 0
        verdict = MetricVerdict.SUPERIOR if better else judge_difference(metric, diff.low, diff.high, margin)
        if verdict is MetricVerdict.NON_INFERIOR:
            verdict, note = MetricVerdict.INCONCLUSIVE, "the rule asks for improvement"
    else:
        verdict = judge_difference(metric, diff.low, diff.high, margin)
    if verdict is MetricVerdict.HARM and g.min_events and est_c.numerator < g.min_events:
        verdict, note = MetricVerdict.INCONCLUSIVE, f"only {est_c.numerator:.0f} events, harm needs {g.min_events}"
    if components:
        comp = ", ".join(f"{k} {fmt(lookup(k), v)}" for k, v in components.items())
        note = f"{note}; {comp}" if note else comp
    shown = f"{g.margin:+.0%}" if g.margin_kind is MarginKind.RELATIVE else None
    line = _line(g.metric, metric, est_c.value, est_b.value, diff.interval, margin, nc, nb, verdict, note, shown)
    return MetricReadout(g.metric, est_c.value, est_b.value, diff.interval, margin, nc, nb, verdict, g.critical,
                         components, line)


def p95_tripwire(spec: DecisionSpec, totals: dict[Arm, RouteCounters] | None) -> MetricReadout | None:
    if spec.p95_tripwire_ms is None:
        return None
    metric = lookup("p95_latency")
    c = (totals or {}).get(Arm.CANDIDATE)
    b = (totals or {}).get(Arm.BASELINE)
    pc = histogram_quantile(c.latency_hist, LATENCY_BOUNDS_MS, 0.95) if c else None
    pb = histogram_quantile(b.latency_hist, LATENCY_BOUNDS_MS, 0.95) if b else None
    if pc is None:
        verdict = MetricVerdict.NO_DATA
    else:
        verdict = MetricVerdict.TRIPPED if pc > spec.p95_tripwire_ms else MetricVerdict.NON_INFERIOR
    nc = c.requests if c else 0
    nb = b.requests if b else 0
    line = _line("p95_latency (tripwire)", metric, pc, pb, None, spec.p95_tripwire_ms, nc, nb, verdict,
                 f"limit {spec.p95_tripwire_ms:.0f}ms; a point estimate that can only hold")
    return MetricReadout("p95_latency", pc, pb, None, spec.p95_tripwire_ms, nc, nb, verdict, False, {}, line)


def evaluate(
    spec: DecisionSpec,
    ctx: StageContext,
    units: list[UnitRecord] | None,
    totals: dict[Arm, RouteCounters] | None,
    is_comparable: Callable[[UnitRecord], bool] | None = None,
    unit_counts: UnitCounts | None = None,
) -> Decision:
    """One look: the verdict, every gate and metric with its numbers, and the reasons in words.

    ``units`` (unit level) is preferred; with only ``totals`` the verdict is request level and says so.
    ``is_comparable`` keeps only units that may be compared (eligible scope, not the internal audience).
    ``unit_counts`` are the comparable units a request-level source counted (sample ratio, crossover).
    """
    return evaluate_with(spec, ctx, units, totals, is_comparable, unit_counts=unit_counts)


def alpha_per_test(spec: DecisionSpec) -> float:
    """The rule's α split evenly (Bonferroni) over every test that can fail at a look.

    Counted: each guardrail, the primary metric, the sample-ratio test, and the join gate's two tests
    (floor and gap between arms). Bonferroni needs no independence, which these tests lack.
    """
    tests = len(spec.guardrails) + (1 if spec.primary else 0) + 3
    return spec.alpha / tests


def evaluate_with(
    spec: DecisionSpec,
    ctx: StageContext,
    units: list[UnitRecord] | None,
    totals: dict[Arm, RouteCounters] | None,
    is_comparable: Callable[[UnitRecord], bool] | None = None,
    sequential: bool = True,
    split_alpha: bool = True,
    arms: Arms | None = None,
    unit_counts: UnitCounts | None = None,
) -> Decision:
    """``evaluate`` with its safety switches exposed, so the naive comparators can turn them off.

    ``arms`` (per-unit columns already split by arm) skips building them from ``units``; the
    benchmark's aggregate path uses it.
    """
    if arms is None and units is not None:
        arms = split_arms(units, is_comparable, ctx.has_control)
    request_level = arms is None
    alpha = alpha_per_test(spec) if split_alpha else spec.alpha
    # without a control (internal stage) the sequence is tuned to the stage's own, small, sample
    planned = spec.tuning_units if ctx.has_control else max(ctx.stage.min_units, 20)
    gspec = spec.gates

    if arms is not None:
        n_c, n_b = len(arms.cand["requests"]), len(arms.base["requests"])
    elif ctx.has_control and unit_counts is not None and not unit_counts.missing:
        # only units in the eligible scope and outside the first audience are split by the stage's share
        n_c, n_b = unit_counts.candidate, unit_counts.baseline
    else:
        n_c = (totals or {}).get(Arm.CANDIDATE, RouteCounters()).new_units
        n_b = (totals or {}).get(Arm.BASELINE, RouteCounters()).new_units
    health: list[GateReadout] = [no_traffic_gate(n_c, n_b, ctx.has_control, gspec)]
    if ctx.has_control:
        if arms is None and unit_counts is not None and unit_counts.missing:
            health.append(GateReadout("sample ratio", GateStatus.NO_DATA, unit_counts.missing, gspec.srm_action))
        else:
            health.append(srm_gate(n_c, n_b, ctx.intended_candidate_share, min(alpha, gspec.srm_alpha), gspec))
    if arms is not None:
        health.append(join_gate(arms.cand["mature_exposures"], arms.cand["mature_outcomes"],
                                arms.base["mature_exposures"] if ctx.has_control else None,
                                arms.base["mature_outcomes"] if ctx.has_control else None, alpha, planned, gspec, sequential))
        if ctx.has_control:
            health.append(crossover_gate(arms.crossed, arms.units, gspec))
    else:
        c = (totals or {}).get(Arm.CANDIDATE)
        if c is not None and c.exposures:
            exp = np.array([float(c.exposures)])
            health.append(join_gate(exp, np.array([float(c.outcomes)]), None, None, alpha, planned, gspec,
                                    sequential))
        if ctx.has_control:
            if unit_counts is not None and not unit_counts.missing and unit_counts.crossed is not None:
                # a crossed unit is in both arms' counts: distinct units are the sum less one count of each
                crossed = (unit_counts.crossed + 1) // 2
                distinct = max(0, n_c + n_b - crossed)
                health.append(crossover_gate(min(crossed, distinct), distinct, gspec))
            else:
                why = (unit_counts.missing if unit_counts is not None and unit_counts.missing
                       else "the source does not count units seen on both arms: crossover cannot be checked")
                health.append(GateReadout("crossover", GateStatus.NO_DATA, why, gspec.crossover_action))

    metrics = [guardrail_readout(g, arms, totals, ctx, alpha, planned, sequential=sequential) for g in spec.guardrails]
    primary_readout = None
    if spec.primary is not None:
        p = spec.primary
        primary_readout = guardrail_readout(GuardrailSpec(p.metric, p.margin, p.margin_kind), arms, totals, ctx, alpha,
                                            planned, primary=p, sequential=sequential)
        primary_readout.line = "primary: " + primary_readout.line
        metrics.insert(0, primary_readout)
    trip = p95_tripwire(spec, totals)
    if trip is not None:
        metrics.append(trip)

    rollback: list[str] = []
    hold: list[str] = []
    for g in health:
        action = gate_blocks(g)
        if action is GateAction.ROLLBACK and g.status is GateStatus.FAIL:
            rollback.append(f"rollback: {g.name}: {g.detail}")
        elif action is not None:
            hold.append(f"hold: {g.name} {g.status.value}: {g.detail}")
    for m in metrics:
        if m is primary_readout:
            continue
        if m.verdict is MetricVerdict.HARM:
            (rollback if m.critical else hold).append(
                f"{'rollback' if m.critical else 'hold'}: {m.name} harmed beyond its margin — {m.line.strip()}")
        elif m.verdict is MetricVerdict.TRIPPED:
            hold.append(f"hold: p95 latency {fmt(lookup('p95_latency'), m.candidate)} is over its {m.threshold:.0f}ms tripwire")
        elif m.verdict in (MetricVerdict.INCONCLUSIVE, MetricVerdict.NO_DATA):
            if ctx.has_control or m.threshold is not None:
                hold.append(f"hold: {m.name} {m.verdict.value} — {m.line.strip()}")
    if primary_readout is not None and ctx.has_control:
        wanted = MetricVerdict.SUPERIOR if spec.primary.test is PrimaryTest.SUPERIOR else MetricVerdict.NON_INFERIOR
        ok = primary_readout.verdict in (wanted, MetricVerdict.SUPERIOR)
        if primary_readout.verdict is MetricVerdict.HARM:
            hold.append(f"hold: primary metric {primary_readout.name} is worse than baseline beyond its margin")
        elif not ok:
            hold.append(f"hold: primary metric {primary_readout.name} does not yet show {wanted.value} "
                        f"({primary_readout.verdict.value})")
    if n_c < ctx.stage.min_units:
        hold.append(f"hold: minimum units {n_c}/{ctx.stage.min_units} on the candidate")
    if ctx.elapsed_s < ctx.stage.min_dwell_s:
        hold.append(f"hold: minimum dwell {_clock(ctx.elapsed_s)} of {_clock(ctx.stage.min_dwell_s)} in stage {ctx.stage.name}")
    for item in ctx.pending_checklist:
        hold.append(f"hold: checklist item not acknowledged: {item}")
    if ctx.rule_changed:
        hold.append("hold: the rule file changed since this stage started — review it and re-confirm")

    verdict = Verdict.ROLLBACK if rollback else Verdict.HOLD if hold else Verdict.ADVANCE
    reasons = rollback + hold if rollback or hold else [f"advance: every gate passes and every guardrail is non-inferior at stage {ctx.stage.name}"]
    if request_level:
        reasons.append("note: the metrics source counts requests, not units — intervals ignore clustering by unit")
    return Decision(verdict, ctx.stage.name, health, metrics, reasons, request_level, n_c, n_b)
