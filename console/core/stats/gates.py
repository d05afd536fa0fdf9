"""Health gates: checked before any metric. A failed gate holds or rolls back; it never passes.

Sample-ratio mismatch uses the sequential multinomial test of Lindon & Malek (2022, "Anytime-valid
inference for multinomial count data"): a Dirichlet-multinomial Bayes factor against the intended
split, whose reciprocal is an anytime-valid p-value (Ville's inequality), so looking every few
seconds does not add false alarms.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from .sequences import difference, one_sample, ratio_estimate
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


def join_gate(cand_exp: np.ndarray, cand_out: np.ndarray, base_exp: np.ndarray | None, base_out: np.ndarray | None,
              alpha: float, planned_n: int, spec: HealthGateSpec, sequential: bool = True) -> GateReadout:
    """Matured exposures joined to an outcome, per arm: a floor, and the gap between arms."""
    name = "exposure→outcome join"
    matured = float(np.sum(cand_exp))
    if matured < MIN_MATURED_EXPOSURES:
        return GateReadout(name, GateStatus.WAIT,
                           f"{matured:.0f} candidate exposures older than {spec.maturation_s:.0f}s (needs {MIN_MATURED_EXPOSURES})",
                           spec.join_action)
    cand = ratio_estimate(cand_out, cand_exp)
    low, high = one_sample(cand, alpha, planned_n, sequential)
    text = f"candidate {cand.value:.1%} of {matured:.0f} matured exposures joined"
    if high < spec.join_floor:
        return GateReadout(name, GateStatus.FAIL,
                           f"telemetry cannot join exposure to outcome: {text}, below the {spec.join_floor:.0%} floor "
                           f"(at most {high:.1%})", spec.join_action)
    joined = float(np.sum(cand_out))
    # request-level totals (one cell) carry no interval: there, more than a few standard deviations over is enough
    too_many = low > 1.0 if len(cand_exp) > 1 else joined > matured + 3 * math.sqrt(matured) + 5
    if too_many:
        # more outcomes than exposures, beyond doubt: the counters disagree, and no metric built on them is a fact
        return GateReadout(name, GateStatus.WAIT,
                           f"{text}: more outcomes than exposures — the telemetry is inconsistent (outcomes from "
                           "before the stage, or counters that restarted?)", spec.join_action)
    if cand.value is not None and cand.value < spec.join_floor:
        # below the floor but not yet beyond doubt: hold for more matured data, never pass
        return GateReadout(name, GateStatus.WAIT, f"{text}, under the {spec.join_floor:.0%} floor (not yet conclusive)",
                           spec.join_action)
    if base_exp is not None and base_out is not None and float(np.sum(base_exp)) >= MIN_MATURED_EXPOSURES:
        base = ratio_estimate(base_out, base_exp)
        diff = difference(cand, base, alpha, planned_n, sequential)
        text += f", baseline {base.value:.1%}"
        if diff.interval is not None and diff.high < -spec.join_max_gap:
            return GateReadout(name, GateStatus.FAIL,
                               f"telemetry cannot join exposure to outcome: {text}; the candidate joins at least "
                               f"{-diff.high:.1%} less than baseline (limit {spec.join_max_gap:.0%})", spec.join_action)
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
