"""The verdict: health gates first, then every guardrail and the primary metric, then the stage's minimums.

Semantics:
- ROLLBACK — a guardrail whose trigger is rollback shows harm beyond its margin, or a gate whose action is
  rollback fails;
- HOLD — harm on a guardrail whose trigger is hold, a hold gate fails or waits for data, any guardrail,
  gate or the primary metric *not judged yet* (inconclusive, burn-in, no interval, no data — all worded
  "not judged yet"), the stage's minimum units or dwell not reached, a checklist item unacknowledged,
  the rule changed;
- ADVANCE — none of the above: every blocking readout is judged, and the primary metric shows what the
  rule asks. Signal metrics (trigger warn) are shown and journalled and never block.

Each metric is tested by its registry kind, never by what its values look like: proportions by the
sequences of ``proportions`` (valid at any n for harm; asymptotic after a burn-in in expected events for
non-inferiority), costs (means and ratios) by the asymptotic confidence sequence with the delta method,
quantiles by the time-uniform bucket bounds of ``quantiles``. A relative margin m is tested as
cand − (1 + m)·base (or (1 − m)·base − cand when higher is better), whose variance carries the
baseline's own uncertainty (× (1 + m)²).

The rule's α is split evenly (Bonferroni) over every blocking test of a look — each guardrail and the
primary metric, the sample-ratio gate, the join gate's floor and gap tests, and the segment family
when the rule reads segments (``alpha_budget``). Each test spends its share on the harm side only, so
the chance that an identical candidate is rolled back at a stage, however often anyone looks, stays
within the stage's α; a rollout whose stages restart their sequences spends it once per stage (or shares
it, with ``alpha_scope: rollout``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from ..errors import BadInput
from ..registry import Metric, MetricKind, lookup
from ..telemetry import Arm, RouteCounters, UnitRecord
from . import quantiles
from .gates import crossover_gate, gate_blocks, join_gate, no_traffic_gate, srm_gate
from .proportions import (
    DEFAULT_BURN_IN_EVENTS,
    expected_events,
    one_sample_bounds,
    restricted,
    share_counts,
)
from .sequences import MIN_CONTRIBUTING_UNITS, MIN_DENOMINATOR, RatioEstimate, cs_half_width, fixed_half_width, summary_estimate
from .spec import (
    AlphaBudget,
    AlphaScope,
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
    SLO_COLUMN,
    PrimaryTest,
    StageContext,
    Trigger,
    Verdict,
    slo_mismatch,
)
from .summary import COLUMNS, ArmSummary, summarise_counters, summarise_units

UNIT_FIELDS = COLUMNS
#: share of a proportion's α spent on the sequence that is valid at any n (the rest: the asymptotic one)
EXACT_SHARE = 0.25
#: blocking tests the gates add to a look: sample ratio, and the join gate's floor and gap
GATE_TESTS = 3
#: the words every unjudged readout's reason uses, wherever it is shown
NOT_JUDGED = "not judged yet"


def split_units(units: list[UnitRecord], is_comparable: Callable[[UnitRecord], bool] | None,
                has_control: bool) -> tuple[ArmSummary, ArmSummary]:
    """(candidate, baseline) summaries of the units that may be compared (eligible scope, not the internal audience).

    At the internal stage (no control) every candidate unit is judged on its own, and the baseline is
    only its comparable units (used by guardrails without an absolute limit there).
    """
    keep = is_comparable if is_comparable is not None else (lambda u: True)
    cand = summarise_units(u for u in units if u.arm is Arm.CANDIDATE and (keep(u) or not has_control))
    base = summarise_units(u for u in units if u.arm is Arm.BASELINE and keep(u))
    return cand, base


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


def arm_estimate(summary: ArmSummary | None, metric: Metric) -> RatioEstimate:
    """One arm's value of ``metric`` from its summary: the delta method with the unit as the observation."""
    if summary is None or summary.units == 0:
        return RatioEstimate(None, None, 0, 0.0, 0.0)
    return summary_estimate(summary, metric.numerator, metric.denominator)


def _in_words(line: str) -> str:
    """A readout's table row quoted in a reason: its column padding would read as gaps in a sentence."""
    return " ".join(line.split())


def _clock(seconds: float) -> str:
    """A duration as the dwell shows it: 4m05s, 1h10m (never rounded up to the minimum it has not reached)."""
    whole = int(max(seconds, 0.0))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def eta_words(seconds: float | None) -> str:
    """≈ 25 min, ≈ 2 h 10 min, < 1 min."""
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return "< 1 min"
    minutes = int(round(seconds / 60))
    return f"≈ {minutes} min" if minutes < 90 else f"≈ {minutes // 60} h {minutes % 60:02d} min"


def waits_for_a_person(decision: Decision) -> bool:
    """Whether the estimated ADVANCE also needs the checklist acknowledged or the rule re-confirmed."""
    return decision.eta_s is not None and decision.eta_needs_person


def eta_sentence(decision: Decision) -> str:
    """The estimate in one sentence, said the same way by the console and by `routedeck check`."""
    if decision.eta_s is not None:
        if waits_for_a_person(decision):  # the traffic alone would never bring it: not "if nothing changes"
            return (f"ADVANCE possible in {eta_words(decision.eta_s)}, once the checklist is acknowledged "
                    "or the rule re-confirmed")
        return f"ADVANCE expected in {eta_words(decision.eta_s)} if nothing changes"
    if decision.eta_early:
        return "too little data yet to estimate when" + (f" — {decision.eta_note}" if decision.eta_note else "")
    return "no ADVANCE expected at the current traffic" + (f" — {decision.eta_note}" if decision.eta_note else "")


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


# ---- α -------------------------------------------------------------------------------------------


def blocking_tests(spec: DecisionSpec, segments: bool = False) -> int:
    """Tests that can hold or roll back at a look: guardrails, the primary metric, the gates, the segment family."""
    return len(spec.guardrails) + (1 if spec.primary else 0) + GATE_TESTS + (1 if segments else 0)


def alpha_budget(spec: DecisionSpec, segments: bool = False) -> AlphaBudget:
    stages = max(1, spec.stages)
    stage = spec.alpha / stages if spec.alpha_scope is AlphaScope.ROLLOUT else spec.alpha
    tests = blocking_tests(spec, segments)
    return AlphaBudget(spec.alpha, stage, stage / tests, tests, stages, min(1.0, stage * stages), spec.alpha_scope.value)


def alpha_per_test(spec: DecisionSpec, segments: bool = False) -> float:
    """Each blocking test's share of the stage's α (Bonferroni needs no independence, which these tests lack)."""
    return alpha_budget(spec, segments).per_test


# ---- one metric ----------------------------------------------------------------------------------


@dataclass
class Judgement:
    """What one test says, before it becomes a readout line."""

    verdict: MetricVerdict
    candidate: float | None
    baseline: float | None
    interval: tuple[float, float] | None  # candidate − baseline (or the candidate's own value without a control)
    threshold: float | None
    n_candidate: int
    n_baseline: int
    note: str = ""
    #: the verdict waits for a burn-in (expected events, contributing units) rather than for precision
    burn_in: bool = False
    #: the harm statistic H (> 0 is harm beyond the margin), its variance, and the any-n e-value's log
    h_hat: float | None = None
    h_var: float | None = None
    log_e_exact: float | None = None


@dataclass(frozen=True)
class _Margin:
    """Harm is H = s·(c − k·b) − δ > 0 (oriented; s = −1 when higher is better)."""

    k: float
    delta: float
    offset: float  # the margin in the metric's unit, as shown (m·b̂ or δ)


def _margin(metric: Metric, margin: float, kind: MarginKind, base_value: float | None) -> _Margin:
    if kind is MarginKind.RELATIVE:
        k = 1.0 + margin if metric.worse_is_higher else 1.0 - margin
        return _Margin(k, 0.0, margin * abs(base_value) if base_value is not None else math.nan)
    return _Margin(1.0, margin, margin)


def _to_delta(metric: Metric, h_low: float, h_high: float, offset: float) -> tuple[float, float]:
    """The harm statistic's interval as candidate − baseline in the metric's unit (comparable with ``offset``)."""
    if metric.worse_is_higher:
        return (h_low + offset, h_high + offset)
    return (-offset - h_high, -offset - h_low)


def _verdict_from(h_low: float, h_high: float) -> MetricVerdict:
    if h_low > 0:
        return MetricVerdict.HARM
    if h_high < 0:
        return MetricVerdict.NON_INFERIOR
    return MetricVerdict.INCONCLUSIVE


def _internal_limit(g: GuardrailSpec, metric: Metric, spec: DecisionSpec) -> float | None:
    """The absolute limit without a control: the rule's, else the latency target (p95), else the registry's."""
    if g.absolute_limit is not None:
        return g.absolute_limit
    if metric.kind is MetricKind.QUANTILE and metric.histogram == "latency_hist" and spec.p95_tripwire_ms:
        return spec.p95_tripwire_ms
    if metric.internal_limit is not None:
        return metric.internal_limit
    return metric.warn_above if metric.worse_is_higher else metric.warn_below


def _planned(spec: DecisionSpec, ctx: StageContext) -> int:
    # the sequence is tuned to the units a stage has when it is judged: both arms with a control,
    # the stage's own (small) sample without one
    return 2 * spec.tuning_units if ctx.has_control else max(ctx.stage.min_units, 20)


def judge(g: GuardrailSpec, metric: Metric, cand: ArmSummary, base: ArmSummary, ctx: StageContext,
          spec: DecisionSpec, alpha: float, *, sequential: bool = True, alpha_ni: float | None = None) -> Judgement:
    """One guardrail judged from the two arms' summaries, by the metric's kind.

    ``alpha`` bounds a false harm (its share of the stage's budget); ``alpha_ni`` a false non-inferiority.
    An ADVANCE needs every guardrail non-inferior — an intersection–union test (Berger 1982), whose level
    is that of each test alone — so the non-inferiority side may use the stage's whole α.
    """
    a_ni = alpha if alpha_ni is None else alpha_ni
    wrong_slo = slo_mismatch(spec) if SLO_COLUMN in (metric.numerator, metric.denominator) else None
    if wrong_slo:
        # counted at another SLO than the rule's: no number of it is the rule's, so none is shown or judged
        return Judgement(MetricVerdict.NO_DATA, None, None, None, None, cand.units, base.units, wrong_slo)
    if metric.kind is MetricKind.QUANTILE:
        return _judge_quantile(g, metric, cand, base, ctx, spec, alpha, a_ni)
    if metric.numerator is None or metric.denominator is None:
        raise BadInput(f"decision rule: {g.metric!r} has no numerator and denominator to test")
    if metric.kind is MetricKind.PROPORTION:
        return _judge_share(g, metric, cand, base, ctx, spec, alpha, a_ni, sequential)
    return _judge_mean(g, metric, cand, base, ctx, spec, alpha, a_ni, sequential)


def _judge_share(g, metric, cand, base, ctx, spec, alpha, alpha_ni, sequential) -> Judgement:
    num, den = metric.numerator, metric.denominator
    flip = not metric.worse_is_higher  # orient: the rate whose increase is harm
    limit = None if ctx.has_control else _internal_limit(g, metric, spec)
    compare = ctx.has_control or limit is None
    # the baseline's units inform the intra-unit correlation even where the test is the candidate's alone
    arms = [cand, base] if compare or base.units else [cand]
    counts = share_counts(arms, num, den, flip)
    c = counts[0]
    est_c = c.rate if not flip or c.rate is None else 1 - c.rate
    nc = cand.units
    if c.trials <= 0:
        return Judgement(MetricVerdict.NO_DATA, None, None, None, None, nc, base.units if compare else 0,
                         "no candidate data — never a pass")
    if not compare:
        # the internal stage: the candidate's own share against the absolute limit, valid at any n
        s, n = c.effective
        r_limit = 1 - limit if flip else limit
        low = one_sample_bounds(s, n, alpha)[0]  # harm: the rate above the limit beyond doubt
        high = one_sample_bounds(s, n, alpha_ni)[1]  # within it beyond doubt
        verdict = (MetricVerdict.HARM if low > r_limit else MetricVerdict.NON_INFERIOR if high < r_limit
                   else MetricVerdict.INCONCLUSIVE)
        interval = (1 - high, 1 - low) if flip else (low, high)
        return Judgement(verdict, est_c, None, interval, limit, nc, 0)
    b = counts[1]
    nb = base.units
    est_b = None if b.rate is None else (1 - b.rate if flip else b.rate)
    if b.trials <= 0:
        return Judgement(MetricVerdict.NO_DATA, est_c, None, None, None, nc, nb, "no baseline data — never a pass")
    m = _margin(metric, g.margin, g.margin_kind, est_b)
    if flip and g.margin_kind is MarginKind.RELATIVE:
        # (1 − m)·p_b in rate terms: r_c > m + (1 − m)·r_b
        k, delta = 1.0 - g.margin, g.margin
    else:
        k, delta = m.k, m.delta
    (sc, ncf), (sb, nbf) = c.effective, b.effective
    point = restricted(sc, ncf, sb, nbf, k, delta)
    rc, rb = c.rate, b.rate
    h_hat = rc - k * rb - delta
    exact_harm = point is not None and h_hat > 0 and point.log_e >= math.log(1 / (EXACT_SHARE * alpha))
    # the asymptotic sequence, its variance floored at the restricted estimate's
    var_c = max(c.variance or 0.0, c.design_effect * point.p_c * (1 - point.p_c) / c.trials) if point else c.variance
    var_b = max(b.variance or 0.0, b.design_effect * point.p_b * (1 - point.p_b) / b.trials) if point else b.variance
    variance = (var_c or 0.0) + k * k * (var_b or 0.0)
    n_total = nc + nb
    expected = expected_events(counts)
    need = float(g.min_events or DEFAULT_BURN_IN_EVENTS)
    burned_in = min(expected) >= need and n_total >= 2
    if variance > 0 and n_total >= 2:
        if sequential:
            half_harm = cs_half_width(variance, n_total, (1 - EXACT_SHARE) * alpha,
                                      _planned(spec, ctx), two_sided=False)
            half_ni = cs_half_width(variance, n_total, alpha_ni, _planned(spec, ctx), two_sided=False)
        else:
            half_harm = half_ni = fixed_half_width(variance, alpha, two_sided=False)
        h_low, h_high = h_hat - half_harm, h_hat + half_ni
    else:
        h_low, h_high = -math.inf, math.inf
    verdict = _verdict_from(h_low, h_high) if burned_in else MetricVerdict.INCONCLUSIVE
    if not sequential:
        exact_harm = False  # the naive comparator has only its fixed-horizon interval
    if exact_harm:
        verdict = MetricVerdict.HARM
    elif verdict is MetricVerdict.HARM and not burned_in:
        verdict = MetricVerdict.INCONCLUSIVE
    note = ""
    if not burned_in and verdict is not MetricVerdict.HARM:
        which = "candidate" if expected[0] <= expected[1] else "baseline"
        note = f"burn-in: {min(expected):.1f} of {need:g} expected events on the {which}"
    interval = None if math.isinf(h_low) or math.isinf(h_high) else _to_delta(metric, h_low, h_high, _offset(g, est_b))
    threshold = _offset(g, est_b)
    return Judgement(verdict, est_c, est_b, interval, threshold, nc, nb, note, burn_in=not burned_in, h_hat=h_hat,
                     h_var=variance if variance > 0 else None,
                     log_e_exact=point.log_e if point is not None and h_hat > 0 else None)


def _offset(g: GuardrailSpec, est_b: float | None) -> float | None:
    if g.margin_kind is MarginKind.RELATIVE:
        return None if est_b is None else g.margin * abs(est_b)
    return g.margin


def _judge_mean(g, metric, cand, base, ctx, spec, alpha, alpha_ni, sequential) -> Judgement:
    num, den = metric.numerator, metric.denominator
    limit = None if ctx.has_control else _internal_limit(g, metric, spec)
    compare = ctx.has_control or limit is None
    est_c = arm_estimate(cand, metric)
    est_b = arm_estimate(base, metric) if compare else RatioEstimate(None, None, 0, 0.0, 0.0)
    nc, nb = est_c.n_units, est_b.n_units
    if est_c.value is None:
        return Judgement(MetricVerdict.NO_DATA, None, est_b.value, None, None, nc, nb, "no candidate data — never a pass")
    burn = _burn_in_units(cand, den) if not compare else min(_burn_in_units(cand, den), _burn_in_units(base, den))
    planned = _planned(spec, ctx)
    if not compare:
        if est_c.variance is None:
            return Judgement(MetricVerdict.INCONCLUSIVE, est_c.value, None, None, limit, nc, 0,
                             _no_interval_note(cand, metric, burn), burn_in=burn < MIN_CONTRIBUTING_UNITS)
        sign = 1.0 if metric.worse_is_higher else -1.0
        h_hat = sign * (est_c.value - limit)
        h_low, h_high = _bounds(h_hat, est_c.variance, nc, alpha, alpha_ni, planned, sequential)
        lo, hi = _to_delta(metric, h_low, h_high, limit)
        return Judgement(_verdict_from(h_low, h_high), est_c.value, None,
                         None if math.isinf(h_low) or math.isinf(h_high) else (lo, hi), limit, nc, 0)
    if est_b.value is None:
        return Judgement(MetricVerdict.NO_DATA, est_c.value, None, None, None, nc, nb, "no baseline data — never a pass")
    threshold = _offset(g, est_b.value)
    if est_c.variance is None or est_b.variance is None:
        return Judgement(MetricVerdict.INCONCLUSIVE, est_c.value, est_b.value, None, threshold, nc, nb,
                         _no_interval_note(cand if est_c.variance is None else base, metric, burn),
                         burn_in=burn < MIN_CONTRIBUTING_UNITS)
    m = _margin(metric, g.margin, g.margin_kind, est_b.value)
    sign = 1.0 if metric.worse_is_higher else -1.0
    h_hat = sign * (est_c.value - m.k * est_b.value) - m.delta
    variance = est_c.variance + m.k * m.k * est_b.variance
    h_low, h_high = _bounds(h_hat, variance, nc + nb, alpha, alpha_ni, planned, sequential)
    if math.isinf(h_low) or math.isinf(h_high):
        return Judgement(MetricVerdict.INCONCLUSIVE, est_c.value, est_b.value, None, threshold, nc, nb,
                         "too few units for an interval", burn_in=True)
    return Judgement(_verdict_from(h_low, h_high), est_c.value, est_b.value,
                     _to_delta(metric, h_low, h_high, threshold), threshold, nc, nb, h_hat=h_hat, h_var=variance)


def _bounds(h_hat: float, variance: float, n: int, alpha: float, alpha_ni: float, planned: int,
            sequential: bool) -> tuple[float, float]:
    """(harm-side lower bound, non-inferiority-side upper bound) of the harm statistic, each one-sided."""
    if sequential:
        return (h_hat - cs_half_width(variance, n, alpha, planned, two_sided=False),
                h_hat + cs_half_width(variance, n, alpha_ni, planned, two_sided=False))
    return (h_hat - fixed_half_width(variance, alpha, two_sided=False),
            h_hat + fixed_half_width(variance, alpha_ni, two_sided=False))


def _burn_in_units(s: ArmSummary, den: str) -> int:
    return int(s.nonzero.get(den, s.units)) if s.sums.get(den, 0.0) >= MIN_DENOMINATOR else 0


def _no_interval_note(s: ArmSummary, metric: Metric, burn: int) -> str:
    if metric.numerator == "cost_usd" and "cost_usd" not in s.squares:
        return "the source gives no spread of a request's cost: no interval for a cost figure"
    if burn < MIN_CONTRIBUTING_UNITS:
        return f"burn-in: {burn} of {MIN_CONTRIBUTING_UNITS} units with a {metric.denominator} count on each arm"
    return "no interval"


def _judge_quantile(g, metric, cand, base, ctx, spec, alpha, alpha_ni) -> Judgement:
    name, q = metric.histogram, metric.quantile
    limit = None if ctx.has_control else _internal_limit(g, metric, spec)
    compare = ctx.has_control or limit is None
    if not compare:
        bc, bc_ni = quantiles.bounds_at(cand, name, q, (alpha, alpha_ni))
        if bc is None or not bc.requests:
            return Judgement(MetricVerdict.NO_DATA, None, None, None, limit, cand.units, 0,
                             "no latency histogram from the source — never a pass")
        high = bc_ni.high
        verdict = (MetricVerdict.HARM if bc.low >= limit else
                   MetricVerdict.NON_INFERIOR if high <= limit else MetricVerdict.INCONCLUSIVE)
        interval = None if math.isinf(high) else (bc.low, high)
        return Judgement(verdict, bc.point, None, interval, limit, bc.requests, 0)
    bc, nc_ = quantiles.bounds_at(cand, name, q, (alpha / 2, alpha_ni / 2))
    bb, nb_ = quantiles.bounds_at(base, name, q, (alpha / 2, alpha_ni / 2))
    if bc is None or bb is None or not bc.requests or not bb.requests:
        return Judgement(MetricVerdict.NO_DATA, bc.point if bc else None, bb.point if bb else None, None, None,
                         bc.requests if bc else 0, bb.requests if bb else 0,
                         "no latency histogram on one arm — never a pass")
    point_b = bb.point if bb.point is not None else 0.0
    if g.margin_kind is MarginKind.RELATIVE:
        k, delta, offset = 1.0 + g.margin, 0.0, g.margin * point_b
    else:
        k, delta, offset = 1.0, g.margin, g.margin
    h_low = bc.low - k * bb.high - delta
    h_high = nc_.high - k * nb_.low - delta
    verdict = _verdict_from(h_low, h_high)
    interval = None if math.isinf(h_low) or math.isinf(h_high) else (h_low + offset, h_high + offset)
    note = "" if interval is not None else "a quantile in the open last bucket or too few requests: no bound yet"
    design = max(bc.design_effect, bb.design_effect)
    if cand.request_level:
        note = (note + "; " if note else "") + "requests taken as independent"
    elif design > 1.0:
        note = (note + "; " if note else "") + f"design effect {design:.1f}"
    return Judgement(verdict, bc.point, bb.point, interval, offset, bc.requests, bb.requests, note)


# ---- the readout ---------------------------------------------------------------------------------


def _line(name: str, metric: Metric, j: Judgement, margin_text: str | None, has_base: bool) -> str:
    verdict = j.verdict.value
    if not has_base:
        iv = f"[{fmt(metric, j.interval[0])}, {fmt(metric, j.interval[1])}]" if j.interval else "—"
        lim = f"limit {fmt(metric, j.threshold)}" if j.threshold is not None else "no limit"
        text = f"{name:<28} cand {fmt(metric, j.candidate):>9}  interval {iv:<22} {lim:<16} n {j.n_candidate}  {verdict}"
    else:
        iv = f"Δ [{fmt(metric, j.interval[0], True)}, {fmt(metric, j.interval[1], True)}]" if j.interval else "Δ —"
        thr = f"margin {margin_text or fmt(metric, j.threshold, True)}" if j.threshold is not None else "margin —"
        base = f"base {fmt(metric, j.baseline)}" if j.baseline is not None or j.n_baseline else "base —"
        text = (f"{name:<28} cand {fmt(metric, j.candidate):>9}  {base:<15} {iv:<28} {thr:<16} "
                f"n {j.n_candidate}/{j.n_baseline}  {verdict}")
    return text + (f" ({j.note})" if j.note else "")


def readout(g: GuardrailSpec, cand: ArmSummary, base: ArmSummary, ctx: StageContext, spec: DecisionSpec,
            alpha: float, *, primary: PrimarySpec | None = None, sequential: bool = True,
            signal: bool = False, alpha_ni: float | None = None) -> MetricReadout:
    """One guardrail (or the primary metric, or a signal) as a readout with its line and action."""
    metric = lookup(g.metric)
    if metric is None:
        raise BadInput(f"decision rule: unknown metric {g.metric!r}")
    g = g.at_stage(ctx.stage.name)
    j = judge(g, metric, cand, base, ctx, spec, alpha, sequential=sequential, alpha_ni=alpha_ni)
    has_base = ctx.has_control or (metric.kind is not MetricKind.QUANTILE and j.baseline is not None
                                   and _internal_limit(g, metric, spec) is None)
    if not has_base and j.threshold is None and j.verdict is not MetricVerdict.NO_DATA:
        j.verdict, j.note = MetricVerdict.INCONCLUSIVE, "no absolute limit for the internal stage — set absolute_limit"
    if primary is not None and primary.test is PrimaryTest.SUPERIOR and has_base and j.verdict is not MetricVerdict.HARM:
        zero = judge(replace(g, margin=0.0, margin_kind=MarginKind.ABSOLUTE), metric, cand, base, ctx, spec, alpha,
                     sequential=sequential, alpha_ni=alpha_ni)
        # the margin-0 harm statistic below zero beyond doubt: better than the baseline
        if zero.verdict is MetricVerdict.NON_INFERIOR:
            j.verdict = MetricVerdict.SUPERIOR
        elif j.verdict is MetricVerdict.NON_INFERIOR:
            j.verdict, j.note = MetricVerdict.INCONCLUSIVE, "the rule asks for improvement"
    components = {}
    if metric.kind is MetricKind.RATIO and metric.numerator == "cost_usd":
        components = {
            "cost_per_request": arm_estimate(cand, lookup("cost_per_request")).value,
            "resolved_rate": arm_estimate(cand, lookup("resolved_without_escalation")).value,
        }
    shown = f"{g.margin:+.0%}" if g.margin_kind is MarginKind.RELATIVE and has_base else None
    action = Trigger.WARN if signal else (Trigger.HOLD if primary is not None else g.trigger)
    note = j.note
    if components:
        comp = ", ".join(f"{k} {fmt(lookup(k), v)}" for k, v in components.items())
        j.note = f"{j.note}; {comp}" if j.note else comp  # the line shows the components beside the ratio
    line = _line(g.metric, metric, j, shown, has_base)
    j.note = note
    r = MetricReadout(g.metric, j.candidate, j.baseline if has_base else None, j.interval, j.threshold,
                      j.n_candidate, j.n_baseline if has_base else 0, j.verdict, g.critical and not signal, components,
                      line, action=action.value, note=j.note, signal=signal)
    return r


# ---- the look ------------------------------------------------------------------------------------


def evaluate(
    spec: DecisionSpec,
    ctx: StageContext,
    units: list[UnitRecord] | None,
    totals: dict[Arm, RouteCounters] | None,
    is_comparable: Callable[[UnitRecord], bool] | None = None,
    unit_counts: UnitCounts | None = None,
) -> Decision:
    """One look from unit records (preferred) or request-level totals; see ``decide``."""
    return evaluate_with(spec, ctx, units, totals, is_comparable, unit_counts=unit_counts)


def evaluate_with(
    spec: DecisionSpec,
    ctx: StageContext,
    units: list[UnitRecord] | None,
    totals: dict[Arm, RouteCounters] | None,
    is_comparable: Callable[[UnitRecord], bool] | None = None,
    sequential: bool = True,
    split_alpha: bool = True,
    unit_counts: UnitCounts | None = None,
) -> Decision:
    """``evaluate`` with its safety switches exposed, so the naive comparators can turn them off."""
    if units is not None:
        cand, base = split_units(units, is_comparable, ctx.has_control)
        if totals and not cand.hist:
            # unit records without per-unit histograms: the arm's request histograms (every unit of the arm)
            for arm_summary, arm in ((cand, Arm.CANDIDATE), (base, Arm.BASELINE)):
                c = totals.get(arm)
                if c is not None and arm_summary.units:
                    arm_summary.hist = {"latency_hist": list(c.latency_hist), "ttft_hist": list(c.ttft_hist)}
    else:
        cand = summarise_counters(totals[Arm.CANDIDATE]) if totals and Arm.CANDIDATE in totals else ArmSummary()
        base = summarise_counters(totals[Arm.BASELINE]) if totals and Arm.BASELINE in totals else ArmSummary()
        if totals:
            for arm_summary, arm in ((cand, Arm.CANDIDATE), (base, Arm.BASELINE)):
                c = totals.get(arm)
                if c is not None:
                    arm_summary.sums["mature_exposures"] = float(c.exposures)
                    arm_summary.squares["mature_exposures"] = float(c.exposures)
        if unit_counts is None or unit_counts.missing:
            new = {arm: c.new_units for arm, c in (totals or {}).items()}
            units_c, units_b = new.get(Arm.CANDIDATE, 0), new.get(Arm.BASELINE, 0)
            return decide(spec, ctx, cand, base, unit_counts, sequential=sequential, split_alpha=split_alpha,
                          request_units=(units_c, units_b))
    return decide(spec, ctx, cand, base, unit_counts, sequential=sequential, split_alpha=split_alpha)


def decide(
    spec: DecisionSpec,
    ctx: StageContext,
    cand: ArmSummary,
    base: ArmSummary,
    unit_counts: UnitCounts | None = None,
    *,
    sequential: bool = True,
    split_alpha: bool = True,
    request_units: tuple[int, int] | None = None,
    with_eta: bool = True,
) -> Decision:
    """One look from the two arms' summaries: the verdict, every gate and metric with its numbers, the
    reasons in words, the time to an ADVANCE if nothing changes, and the α accounting."""
    request_level = cand.request_level or base.request_level or (cand.empty and base.empty and request_units is not None)
    budget = alpha_budget(spec, ctx.segments)
    alpha = budget.per_test if split_alpha else spec.alpha
    # non-inferiority (what an ADVANCE needs of every readout) is an intersection–union test: the stage's α
    alpha_ni = budget.stage if split_alpha else spec.alpha
    gspec = spec.gates

    if not request_level:
        n_c, n_b = cand.units, base.units if ctx.has_control else 0
    elif ctx.has_control and unit_counts is not None and not unit_counts.missing:
        # only units in the eligible scope and outside the first audience are split by the stage's share
        n_c, n_b = unit_counts.candidate, unit_counts.baseline
    elif request_units is not None:
        n_c, n_b = request_units
    else:
        n_c, n_b = 0, 0
    health: list[GateReadout] = [no_traffic_gate(n_c, n_b, ctx.has_control, gspec)]
    if ctx.has_control:
        if request_level and unit_counts is not None and unit_counts.missing:
            health.append(GateReadout("sample ratio", GateStatus.NO_DATA, unit_counts.missing, gspec.srm_action))
        else:
            health.append(srm_gate(n_c, n_b, ctx.intended_candidate_share, min(alpha, gspec.srm_alpha), gspec))
    if not cand.empty:
        health.append(join_gate(cand, base if ctx.has_control else None, alpha, gspec))
    if ctx.has_control:
        if not request_level:
            crossed = (cand.crossed or 0) + (base.crossed or 0)
            health.append(crossover_gate(crossed, n_c + n_b, gspec))
        elif unit_counts is not None and not unit_counts.missing and unit_counts.crossed is not None:
            # a crossed unit is in both arms' counts: distinct units are the sum less one count of each
            crossed = (unit_counts.crossed + 1) // 2
            distinct = max(0, n_c + n_b - crossed)
            health.append(crossover_gate(min(crossed, distinct), distinct, gspec))
        else:
            why = (unit_counts.missing if unit_counts is not None and unit_counts.missing
                   else "the source does not count units seen on both arms: crossover cannot be checked")
            health.append(GateReadout("crossover", GateStatus.NO_DATA, why, gspec.crossover_action))

    def look_metrics(c: ArmSummary, b: ArmSummary) -> tuple[list[MetricReadout], MetricReadout | None]:
        out = [readout(g, c, b, ctx, spec, alpha, sequential=sequential, alpha_ni=alpha_ni) for g in spec.guardrails]
        prim = None
        if spec.primary is not None:
            p = spec.primary
            prim = readout(GuardrailSpec(p.metric, p.margin, p.margin_kind, stage_margins=p.stage_margins), c, b,
                           ctx, spec, alpha, primary=p,
                           sequential=sequential, alpha_ni=alpha_ni)
            prim.line = "primary: " + prim.line
            out.insert(0, prim)
        out += [readout(g, c, b, ctx, spec, alpha, sequential=sequential, signal=True, alpha_ni=alpha_ni)
                for g in spec.signals]
        return out, prim

    metrics, primary_readout = look_metrics(cand, base)

    rollback: list[str] = []
    hold: list[str] = []
    notes: list[str] = []
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
            text = f"{m.name} harmed beyond its margin — {_in_words(m.line)}"
            if m.signal or m.action == Trigger.WARN.value:
                notes.append(f"warn: {text} (a signal: it never blocks)")
            elif m.action == Trigger.ROLLBACK.value:
                rollback.append(f"rollback: {text}")
            else:
                hold.append(f"hold: {text}")
        elif not m.judged and not m.signal:
            hold.append(f"hold: {m.name} {NOT_JUDGED} ({m.note or m.verdict.value}) — {_in_words(m.line)}")
    if primary_readout is not None and (ctx.has_control or primary_readout.n_baseline):
        wanted = MetricVerdict.SUPERIOR if spec.primary.test is PrimaryTest.SUPERIOR else MetricVerdict.NON_INFERIOR
        ok = primary_readout.verdict in (wanted, MetricVerdict.SUPERIOR)
        if primary_readout.verdict is MetricVerdict.HARM:
            hold.append(f"hold: primary metric {primary_readout.name} is worse than baseline beyond its margin")
        elif not ok:
            why = primary_readout.note or primary_readout.verdict.value
            hold.append(f"hold: primary metric {primary_readout.name} {NOT_JUDGED} — it does not yet show "
                        f"{wanted.value} ({why})")
    elif primary_readout is not None and not primary_readout.judged:
        hold.append(f"hold: primary metric {primary_readout.name} {NOT_JUDGED} "
                    f"({primary_readout.note or primary_readout.verdict.value})")
    if n_c < ctx.stage.min_units:
        hold.append(f"hold: minimum units {n_c}/{ctx.stage.min_units} on the candidate")
    if ctx.elapsed_s < ctx.stage.min_dwell_s:
        hold.append(f"hold: minimum dwell {_clock(ctx.elapsed_s)} of {_clock(ctx.stage.min_dwell_s)} in stage {ctx.stage.name}")
    for item in ctx.pending_checklist:
        hold.append(f"hold: checklist item not acknowledged: {item}")
    if ctx.rule_changed:
        hold.append("hold: the rule file changed since this stage started — review it and re-confirm")

    verdict = Verdict.ROLLBACK if rollback else Verdict.HOLD if hold else Verdict.ADVANCE
    reasons = rollback + hold if rollback or hold else [
        f"advance: every gate passes and every guardrail is judged non-inferior at stage {ctx.stage.name}"]
    reasons += notes
    if request_level:
        reasons.append("note: the metrics source counts requests, not units — intervals ignore clustering by unit")
    decision = Decision(verdict, ctx.stage.name, health, metrics, reasons, request_level, n_c, n_b, alpha=budget)
    wrong_slo = slo_mismatch(spec)
    if with_eta and verdict is Verdict.HOLD and wrong_slo and any(m.note == wrong_slo and not m.signal for m in metrics):
        # more data never judges a metric counted at another SLO: only opening the source at the rule's does
        decision.eta_s, decision.eta_note = None, wrong_slo
        decision.reasons.append(f"note: no ADVANCE expected until the metrics source counts the rule's SLO "
                                f"({spec.latency_slo_ms:g} ms)")
    elif with_eta:
        from .eta import estimate

        (decision.eta_s, decision.eta_note, decision.eta_early,
         decision.eta_needs_person) = estimate(decision, ctx, cand, base, n_c, lambda c, b: look_metrics(c, b)[0])
        if verdict is Verdict.HOLD:
            decision.reasons.append(f"note: {eta_sentence(decision)}")
    return decision


__all__ = ["evaluate", "evaluate_with", "decide", "readout", "judge", "alpha_budget", "alpha_per_test", "UnitCounts",
           "split_units", "arm_estimate", "fmt", "judge_difference", "eta_words", "eta_sentence", "waits_for_a_person", "NOT_JUDGED", "UNIT_FIELDS"]
