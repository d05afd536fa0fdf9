"""Health gates: checked before any metric. A failed gate holds or rolls back; it never passes.

Sample-ratio mismatch uses the sequential multinomial test of Lindon & Malek (2022, "Anytime-valid
inference for multinomial count data"): a Dirichlet-multinomial Bayes factor against the intended
split, whose reciprocal is an anytime-valid p-value (Ville's inequality), so looking every few
seconds does not add false alarms.
"""

from __future__ import annotations

import math

import numpy as np
from .special import gammaln

from .proportions import beyond, one_sample_bounds, restricted, share_counts
from .summary import ArmSummary
from .spec import GateAction, GateReadout, GateStatus, HealthGateSpec

MIN_UNITS_FOR_SRM = 8  # per arm, as the common practice for SRM checks
MIN_MATURED_EXPOSURES = 50
SRM_CONCENTRATION = 100.0  # prior strength of the Dirichlet mixture


def srm_p_value(counts: list[int], intended: list[float], concentration: float = SRM_CONCENTRATION) -> float:
    """Anytime-valid p-value that ``counts`` were drawn with the ``intended`` shares."""
    x = np.asarray(counts, dtype=float)
    p = np.asarray(intended, dtype=float)
    if np.any(p <= 0):
        return 1.0
    a = concentration * p
    # log Bayes factor: Dirichlet-multinomial marginal likelihood over the multinomial at p
    log_bf = (
        gammaln(a.sum()) - gammaln(a.sum() + x.sum())
        + np.sum(gammaln(a + x) - gammaln(a))
        - np.sum(x * np.log(p))
    )
    return float(min(1.0, math.exp(-log_bf))) if log_bf < 700 else 0.0


def no_traffic_gate(n_cand: int, n_base: int, has_control: bool, spec: HealthGateSpec) -> GateReadout:
    if n_cand == 0 or (has_control and n_base == 0):
        missing = "candidate" if n_cand == 0 else "baseline"
        return GateReadout("traffic", GateStatus.FAIL,
                           f"no {missing} units in this stage yet — missing data is never a pass", spec.no_traffic_action)
    return GateReadout("traffic", GateStatus.PASS, f"{n_cand} candidate / {n_base} baseline units", spec.no_traffic_action)


def srm_gate(n_cand: int, n_base: int, intended_share: float | None, alpha: float, spec: HealthGateSpec) -> GateReadout:
    if intended_share is None or not 0 < intended_share < 1:
        return GateReadout("sample ratio", GateStatus.PASS, "no split to check at this stage", spec.srm_action)
    if min(n_cand, n_base) < MIN_UNITS_FOR_SRM:
        return GateReadout("sample ratio", GateStatus.WAIT,
                           f"needs {MIN_UNITS_FOR_SRM} units per arm (has {n_cand}/{n_base})", spec.srm_action)
    p = srm_p_value([n_cand, n_base], [intended_share, 1 - intended_share])
    seen = n_cand / (n_cand + n_base)
    detail = f"candidate {seen:.2%} of units vs intended {intended_share:.2%} (sequential p={p:.2g}, n={n_cand + n_base})"
    status = GateStatus.FAIL if p < alpha else GateStatus.PASS
    return GateReadout("sample ratio", status, detail, spec.srm_action)


def _matured(s: ArmSummary) -> tuple[float, float, float] | None:
    """(matured exposures, fewest and most outcomes joined to them) of one arm, or None when unknown.

    Unit-level sources know which outcomes belong to matured exposures. Request-level counters do not:
    the outcomes counted so far include some of the newest exposures', so the matured ones are at most
    every outcome (and at most the matured exposures) and at least every outcome less the newer exposures.
    """
    exposures = s.sums.get("mature_exposures")
    if exposures is None:
        return None
    outcomes = s.sums.get("mature_outcomes")
    if outcomes is not None:
        return exposures, outcomes, outcomes
    total_out = s.sums.get("outcomes", 0.0)
    newer = max(0.0, s.sums.get("exposures", exposures) - exposures)
    return exposures, max(0.0, total_out - newer), total_out


def join_gate(cand: ArmSummary, base: ArmSummary | None, alpha: float, spec: HealthGateSpec) -> GateReadout:
    """Matured exposures joined to an outcome: a floor on each arm, and the gap between arms in both directions.

    Each test is one-sided and valid at any n (the beta-binomial mixture of ``proportions`` on the share
    of matured exposures left unjoined, clustered units as effective counts); request-level counters enter
    with the bound on the joined outcomes that is least favourable to a failure. The floor tests share half
    the gate's α, the two directions of the gap the other half.
    """
    name = "exposure→outcome join"
    mc = _matured(cand)
    if mc is None:
        return GateReadout(name, GateStatus.NO_DATA, "the source does not count matured exposures", spec.join_action)
    exp_c, lo_c, hi_c = mc
    if exp_c < MIN_MATURED_EXPOSURES:
        return GateReadout(name, GateStatus.WAIT,
                           f"{exp_c:.0f} candidate exposures older than {spec.maturation_s:.0f}s (needs {MIN_MATURED_EXPOSURES})",
                           spec.join_action)
    if lo_c > exp_c + 3 * math.sqrt(exp_c) + 5:
        # more outcomes than exposures beyond doubt: the counters disagree, and no metric built on them is a fact
        return GateReadout(name, GateStatus.WAIT,
                           f"candidate: more outcomes than exposures ({lo_c:.0f} for {exp_c:.0f} matured) — the telemetry is "
                           "inconsistent (outcomes from before the stage, or counters that restarted?)", spec.join_action)
    arms = [cand] + ([base] if base is not None and _matured(base) is not None else [])
    counts = share_counts(arms, "mature_outcomes" if cand.sums.get("mature_outcomes") is not None else "outcomes",
                          "mature_exposures", flip=True)
    d_c = counts[0].design_effect
    cov_c = min(hi_c, exp_c) / exp_c
    text = f"candidate {cov_c:.1%} of {exp_c:.0f} matured exposures joined"
    floor_alpha = alpha / 4  # two arms' floors in half the gate's α
    unjoined_c = exp_c - min(hi_c, exp_c)  # least favourable to a failure
    if unjoined_c / exp_c > 1 - spec.join_floor and beyond(unjoined_c / d_c, exp_c / d_c, 1 - spec.join_floor,
                                                          floor_alpha):
        lo_miss, _ = one_sample_bounds(unjoined_c / d_c, exp_c / d_c, floor_alpha)
        return GateReadout(name, GateStatus.FAIL,
                           f"telemetry cannot join exposure to outcome: {text}, below the {spec.join_floor:.0%} floor "
                           f"(at most {1 - lo_miss:.1%})", spec.join_action)
    waiting = cov_c < spec.join_floor
    if len(arms) == 2:
        exp_b, lo_b, hi_b = _matured(base)
        if exp_b >= MIN_MATURED_EXPOSURES:
            d_b = counts[1].design_effect
            cov_b = min(hi_b, exp_b) / exp_b
            text += f", baseline {cov_b:.1%}"
            unjoined_b = exp_b - min(hi_b, exp_b)
            if unjoined_b / exp_b > 1 - spec.join_floor and beyond(unjoined_b / d_b, exp_b / d_b,
                                                                  1 - spec.join_floor, floor_alpha):
                lo_miss_b, _ = one_sample_bounds(unjoined_b / d_b, exp_b / d_b, floor_alpha)
                return GateReadout(name, GateStatus.FAIL,
                                   f"telemetry cannot join exposure to outcome: {text}; the baseline is below the "
                                   f"{spec.join_floor:.0%} floor (at most {1 - lo_miss_b:.1%}) — the arms cannot be "
                                   "compared", spec.join_action)
            waiting = waiting or cov_b < spec.join_floor
            gap_alpha = alpha / 4
            # candidate joins less: its unjoined share exceeds the baseline's by more than the gap (and the reverse)
            for label, (sa, na, da), (sb, nb, db) in (
                ("less", (exp_c - min(hi_c, exp_c), exp_c, d_c), (exp_b - min(lo_b, exp_b), exp_b, d_b)),
                ("more", (exp_b - min(hi_b, exp_b), exp_b, d_b), (exp_c - min(lo_c, exp_c), exp_c, d_c)),
            ):
                point = restricted(sa / da, na / da, sb / db, nb / db, 1.0, spec.join_max_gap)
                if point is not None and sa / na - sb / nb > spec.join_max_gap and point.log_e >= math.log(1 / gap_alpha):
                    return GateReadout(name, GateStatus.FAIL,
                                       f"telemetry cannot join exposure to outcome: {text}; the candidate joins "
                                       f"{label} than baseline by more than {spec.join_max_gap:.0%}", spec.join_action)
            waiting = waiting or abs(cov_c - cov_b) > spec.join_max_gap
    if waiting:
        # beyond a limit but not yet beyond doubt: hold for more matured data, never pass
        return GateReadout(name, GateStatus.WAIT, f"{text} (beyond a limit, not yet conclusive)", spec.join_action)
    return GateReadout(name, GateStatus.PASS, text, spec.join_action)


def crossover_gate(crossed: int, units: int, spec: HealthGateSpec) -> GateReadout:
    if units < 100:
        return GateReadout("crossover", GateStatus.WAIT, f"needs 100 units (has {units})", spec.crossover_action)
    share = crossed / units
    detail = f"{crossed} of {units} units ({share:.2%}) were served both arms (limit {spec.crossover_max:.0%})"
    status = GateStatus.FAIL if share > spec.crossover_max else GateStatus.PASS
    return GateReadout("crossover", status, detail, spec.crossover_action)


def gate_blocks(g: GateReadout) -> GateAction | None:
    """What a gate's state asks of the verdict: ROLLBACK/HOLD for a failure, HOLD while waiting."""
    if g.status is GateStatus.FAIL or g.status is GateStatus.NO_DATA:
        return g.action
    if g.status is GateStatus.WAIT:
        return GateAction.HOLD
    return None
