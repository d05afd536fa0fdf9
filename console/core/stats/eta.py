"""When an ADVANCE can be expected if nothing changes: the estimate behind ``Decision.eta_s``.

"If nothing changes" means more units like the ones seen so far, arriving at the rate they have arrived:
each arm's summary scaled by a factor s (every sum, square, product and count times s — the same per-unit
means and spreads, s times the units) is what the stage would hold after s times its elapsed time. The
estimate is the smallest s on a grid at which every blocking readout would be judged non-inferior (or
superior, as the rule asks), together with the minimum units and the minimum dwell. When a readout
would be harmed, or stays unjudged even at 48× the data, no ADVANCE is expected and the note says why —
unless the stage is still short of its minimum units or dwell: the rule itself holds that data too thin to
judge, so seconds of it are no ground for "never" either, and the estimate says that too little is in yet.
"""

from __future__ import annotations

from collections.abc import Callable

from .spec import Decision, MetricReadout, MetricVerdict, StageContext, Verdict
from .summary import ArmSummary

#: data multiples tried, in order (48× the elapsed time is the horizon of an estimate)
SCALES = (1.15, 1.3, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 6.5, 8.0, 11.0, 16.0, 24.0, 32.0, 48.0)


def scaled(s: ArmSummary, factor: float) -> ArmSummary:
    out = s.copy()
    out.units = int(round(s.units * factor))
    out.sums = {k: v * factor for k, v in s.sums.items()}
    out.squares = {k: v * factor for k, v in s.squares.items()}
    out.products = {k: v * factor for k, v in s.products.items()}
    out.nonzero = {k: int(round(v * factor)) for k, v in s.nonzero.items()}
    out.crossed = None if s.crossed is None else int(round(s.crossed * factor))
    out.hist = {k: [int(round(x * factor)) for x in v] for k, v in s.hist.items()}
    out.hist_squares = {k: [x * factor for x in v] for k, v in s.hist_squares.items()}
    out.hist_products = {k: [x * factor for x in v] for k, v in s.hist_products.items()}
    return out


def _names(names) -> str:
    """Metric names, each once (the primary metric is often a guardrail too: two readouts, one name)."""
    return ", ".join(dict.fromkeys(names))


def _ready(m: MetricReadout, primary_wanted: MetricVerdict | None) -> bool | None:
    """True: judged as an ADVANCE needs; False: not yet; None: harmed (no ADVANCE to expect)."""
    if m.verdict is MetricVerdict.HARM:
        return None
    if primary_wanted is not None:
        return m.verdict in (primary_wanted, MetricVerdict.SUPERIOR)
    return m.judged


def _short_of(ctx: StageContext, n_candidate: int) -> str:
    """What the stage still lacks of the rule's minimums, in words ("" when it has both)."""
    from .engine import _clock

    lacks = []
    if n_candidate < ctx.stage.min_units:
        lacks.append(f"{max(n_candidate, 0)} of {ctx.stage.min_units} candidate units")
    if ctx.elapsed_s < ctx.stage.min_dwell_s:
        lacks.append(f"{_clock(ctx.elapsed_s)} of the {_clock(ctx.stage.min_dwell_s)} dwell")
    return ", ".join(lacks) + " so far" if lacks else ""


def estimate(decision: Decision, ctx: StageContext, cand: ArmSummary, base: ArmSummary, n_candidate: int,
             look: Callable[[ArmSummary, ArmSummary], list[MetricReadout]]) -> tuple[float | None, str, bool, bool]:
    """(seconds to an expected ADVANCE or None, what it waits for / why none is expected / what is missing,
    True when too little data is in yet to say, True when the ADVANCE also waits for a person — the checklist
    acknowledged or the rule re-confirmed — which the traffic alone never brings).

    A forecast of "no ADVANCE" needs the data the rule asks for before it judges (its minimum units and
    dwell): before that, an unjudged metric or a harm seen by extrapolating a few units is a lack of data."""
    if decision.verdict is Verdict.ADVANCE:
        return 0.0, "", False, False
    if decision.verdict is Verdict.ROLLBACK:
        return None, "the verdict is ROLLBACK", False, False
    elapsed = ctx.elapsed_s
    short = _short_of(ctx, n_candidate)
    waits: list[tuple[float, str]] = []
    if ctx.elapsed_s < ctx.stage.min_dwell_s:
        waits.append((ctx.stage.min_dwell_s - ctx.elapsed_s, "the minimum dwell"))
    if n_candidate <= 0 and ctx.stage.min_units > 0:
        return None, short, True, False  # every readout and the traffic gate wait for the first unit
    for g in decision.health:
        if g.status.value == "no data" and short:
            return None, short, True, False
        if g.status.value in ("fail", "no data"):
            return None, f"the {g.name} gate is {g.status.value}", False, False
    blocking = [i for i, m in enumerate(decision.metrics) if not m.signal]
    wanted: dict[int, MetricVerdict] = {}  # the primary's readout is already 'inconclusive' until it shows what the rule asks
    pending = [i for i in blocking if not _ready(decision.metrics[i], wanted.get(i))]
    for i in pending:
        if _ready(decision.metrics[i], wanted.get(i)) is None:
            return None, f"{decision.metrics[i].name} is harmed", False, False
    if elapsed <= 0 and (pending or n_candidate < ctx.stage.min_units):
        return None, short or "the stage has just begun: no traffic rate yet", True, False
    if n_candidate < ctx.stage.min_units:
        if n_candidate <= 0:
            return None, short or "no candidate units yet", True, False
        waits.append((elapsed * (ctx.stage.min_units / n_candidate - 1.0), "the minimum units"))
    if pending:
        found = None
        for s in SCALES:
            readouts = look(scaled(cand, s), scaled(base, s))
            states = [_ready(readouts[i], wanted.get(i)) for i in pending]
            if any(state is None for state in states):
                if short:
                    return None, short, True, False
                names = _names(readouts[i].name for i, st in zip(pending, states) if st is None)
                return None, f"{names} would be harmed if it stays where it is", False, False
            if all(states):
                found = s
                break
        if found is None:
            if short:
                return None, short, True, False
            names = _names(decision.metrics[i].name for i in pending)
            return None, f"{names} not judged even with {SCALES[-1]:g}× the data (estimate beyond the margin or too noisy)", False, False
        waits.append((elapsed * (found - 1.0), _names(decision.metrics[i].name for i in pending)))
    person = bool(ctx.pending_checklist or ctx.rule_changed)
    note = "a person must acknowledge the checklist or re-confirm the rule" if person else ""
    if not waits:
        return 0.0, note, False, person
    seconds, what = max(waits)
    return seconds, f"waiting for {what}" + (f" and {note}" if note else ""), False, person
