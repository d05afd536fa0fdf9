"""The per-arm summary every guardrail test reads: additive aggregates, so groups and buckets sum.

A look never needs raw observations. Each arm of a stage is summarised by, over its randomisation
units (at request level every request is a unit):

- ``units``: how many units;
- ``sums[col]`` = Σ x, ``squares[col]`` = Σ x², ``products[(a, b)]`` = Σ x_a·x_b over units, for
  every column in ``COLUMNS`` and every pair in ``PAIRS`` (a ratio metric's numerator and
  denominator) — enough for the delta-method variance of any registry metric with the unit as the
  observation (Deng, Knoblich & Lu, KDD 2018). A missing key means *unknown*: the test then uses
  the worst case (a missing product) or gives no interval (a missing square), never a guess;
- ``nonzero[col]``: units with x > 0 (how many units contribute to a denominator);
- ``crossed``: units of this arm also seen on the other arm (None: the source cannot tell);
- ``hist[name]``: request counts per histogram bucket (``HISTOGRAMS`` gives the bounds), and, when
  the source knows each unit's histogram, ``hist_squares[name][i]`` = Σ_unit C_u(i)² and
  ``hist_products[name][i]`` = Σ_unit C_u(i)·T_u, where C_u(i) is the unit's requests in buckets
  0..i and T_u its requests in all buckets — the clustering of the quantile tests;
- ``request_level``: the source counts requests, not units.

``GroupSummary`` is one arm's summary for the units that share some pre-exposure attributes (the
ones a source was asked to group by) and a stage label; the core keeps the comparable groups with
the rule's predicate and adds them up (``comparable_arms``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np

from ..telemetry import LATENCY_BOUNDS_MS, TTFT_BOUNDS_MS, Arm, RouteCounters, UnitRecord

#: per-unit counters every summary carries (the unit-level record's fields)
COLUMNS: tuple[str, ...] = (
    "requests", "successes", "exposures", "outcomes", "resolved", "escalated", "corrected", "complaints",
    "errors", "rate_limited", "timeouts", "fallbacks", "slo_met", "cost_usd", "mature_exposures", "mature_outcomes",
)
#: (numerator, denominator) pairs whose per-unit products the tests need: every registry ratio, and the join gate's
PAIRS: tuple[tuple[str, str], ...] = (
    ("resolved", "outcomes"), ("corrected", "outcomes"), ("complaints", "outcomes"),
    ("errors", "requests"), ("rate_limited", "requests"), ("timeouts", "requests"), ("fallbacks", "requests"),
    ("slo_met", "requests"), ("cost_usd", "requests"), ("cost_usd", "resolved"), ("outcomes", "exposures"),
    ("mature_outcomes", "mature_exposures"),
)
#: histogram name → upper bounds of its buckets (the last bucket is open)
HISTOGRAMS: dict[str, tuple[float, ...]] = {"latency_hist": LATENCY_BOUNDS_MS, "ttft_hist": TTFT_BOUNDS_MS}


@dataclass
class ArmSummary:
    """Additive aggregates of one arm (see the module docstring for every field)."""

    units: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    squares: dict[str, float] = field(default_factory=dict)
    products: dict[tuple[str, str], float] = field(default_factory=dict)
    nonzero: dict[str, int] = field(default_factory=dict)
    crossed: int | None = 0
    hist: dict[str, list[int]] = field(default_factory=dict)
    hist_squares: dict[str, list[float]] = field(default_factory=dict)
    hist_products: dict[str, list[float]] = field(default_factory=dict)
    request_level: bool = False

    @property
    def empty(self) -> bool:
        return self.units == 0 and not self.sums and not self.hist

    def add(self, other: "ArmSummary") -> None:
        """Add ``other`` in place. A key known on one side only becomes unknown (missing) in the sum."""
        if other.empty:
            return
        if self.empty:
            self._copy_from(other)
            return
        self.units += other.units
        self.sums = _add_maps(self.sums, other.sums)
        self.squares = _add_maps(self.squares, other.squares)
        self.products = _add_maps(self.products, other.products)
        self.nonzero = _add_maps(self.nonzero, other.nonzero)
        self.crossed = None if self.crossed is None or other.crossed is None else self.crossed + other.crossed
        self.hist = _add_lists(self.hist, other.hist)
        self.hist_squares = _add_lists(self.hist_squares, other.hist_squares)
        self.hist_products = _add_lists(self.hist_products, other.hist_products)
        self.request_level = self.request_level or other.request_level

    def _copy_from(self, other: "ArmSummary") -> None:
        self.units = other.units
        self.sums, self.squares = dict(other.sums), dict(other.squares)
        self.products, self.nonzero = dict(other.products), dict(other.nonzero)
        self.crossed = other.crossed
        self.hist = {k: list(v) for k, v in other.hist.items()}
        self.hist_squares = {k: list(v) for k, v in other.hist_squares.items()}
        self.hist_products = {k: list(v) for k, v in other.hist_products.items()}
        self.request_level = other.request_level

    def only(self, keys: tuple[str, ...]) -> "ArmSummary":
        """This summary restricted to the columns ``keys`` (their sums, squares and cross-products): what a test
        that reads nothing else adds up, without copying every other column on the way."""
        return ArmSummary(units=self.units, sums={k: v for k, v in self.sums.items() if k in keys},
                          squares={k: v for k, v in self.squares.items() if k in keys},
                          products={k: v for k, v in self.products.items() if k[0] in keys and k[1] in keys},
                          crossed=self.crossed, request_level=self.request_level)

    def copy(self) -> "ArmSummary":
        out = ArmSummary()
        out._copy_from(self)
        return out

    def product(self, a: str, b: str) -> float | None:
        """Σ x_a·x_b over units (in either order), or the square when a == b; None when unknown."""
        if a == b:
            return self.squares.get(a)
        found = self.products.get((a, b))
        return found if found is not None else self.products.get((b, a))


def _add_maps(a: Mapping, b: Mapping) -> dict:
    return {k: a[k] + b[k] for k in a.keys() & b.keys()}


def _add_lists(a: Mapping[str, list], b: Mapping[str, list]) -> dict[str, list]:
    return {k: [x + y for x, y in zip(a[k], b[k])] for k in a.keys() & b.keys() if len(a[k]) == len(b[k])}


@dataclass
class GroupSummary:
    """One arm's summary over the units that share ``attributes`` (and the stage label the source saw).

    ``attributes`` holds the values of the attributes the source was asked to group by; a request-level
    source that cannot split its counts gives one group per arm with no attributes (``summary.request_level``).
    """

    arm: Arm
    attributes: dict[str, str]
    stage: str
    summary: ArmSummary

    @property
    def segment(self) -> dict[str, str]:
        """The attributes under the name the rule's predicates read (as on a unit record)."""
        return self.attributes


_ROW = attrgetter(*COLUMNS)


def _unit_table(records: Sequence[UnitRecord]) -> dict[str, np.ndarray]:
    k = len(COLUMNS)
    # one pass over the records: a flat iterator of every field (a hot path on every look)
    table = np.fromiter(chain.from_iterable(map(_ROW, records)), dtype=float, count=len(records) * k).reshape(-1, k)
    return {c: table[:, i] for i, c in enumerate(COLUMNS)}


def summarise_columns(cols: Mapping[str, np.ndarray], crossed: int | None = 0,
                      hists: Mapping[str, np.ndarray] | None = None) -> ArmSummary:
    """The summary of per-unit columns (one array per column; ``hists[name]`` is units × buckets)."""
    n = len(cols["requests"]) if "requests" in cols else 0
    s = ArmSummary(units=int(n), crossed=crossed)
    for c, x in cols.items():
        if c not in COLUMNS:
            continue
        s.sums[c] = float(x.sum())
        s.squares[c] = float(np.dot(x, x))
        s.nonzero[c] = int(np.count_nonzero(x > 0))
    for a, b in PAIRS:
        if a in cols and b in cols:
            s.products[(a, b)] = float(np.dot(cols[a], cols[b]))
    for name, h in (hists or {}).items():
        if h.ndim != 2:
            continue
        s.hist[name] = [int(v) for v in h.sum(axis=0)]
        cum = np.cumsum(h, axis=1, dtype=float)
        total = cum[:, -1] if cum.shape[1] else np.zeros(len(cum))
        s.hist_squares[name] = [float(v) for v in np.einsum("ui,ui->i", cum, cum)]
        s.hist_products[name] = [float(v) for v in cum.T @ total]
    return s


def summarise_units(records: Iterable[UnitRecord]) -> ArmSummary:
    """The reference summary of unit records (every source's summary must equal it on the same units).

    Per-unit histograms count only when every record carries them; otherwise ``hist`` is left unknown.
    """
    records = list(records)
    cols = _unit_table(records)
    hists: dict[str, np.ndarray] = {}
    for name, bounds in HISTOGRAMS.items():
        rows = [getattr(r, name, None) for r in records]
        if records and all(row is not None and len(row) == len(bounds) + 1 for row in rows):
            hists[name] = np.asarray(rows, dtype=float)
    crossed = sum(1 for r in records if r.crossed)
    return summarise_columns(cols, crossed, hists)


def summarise_counters(c: RouteCounters, matured: RouteCounters | None = None) -> ArmSummary:
    """A request-level summary from one arm's counters: every request is a unit.

    Each request's counters are 0 or 1 (an outcome per request at most), so a column's squares equal its
    sums and its product with a per-request denominator equals the numerator. Cost per request has a
    spread only when the source gives Σ cost² (``cost_sq_usd``); the covariance of cost with a resolved
    outcome is unknown (missing: the test assumes the worst case). ``matured`` are the counters of the
    exposures older than the join window: their exposures are the matured ones; which outcomes belong to
    them is unknown at request level (``mature_outcomes`` missing, the join gate bounds it).
    """
    n = int(c.requests)
    s = ArmSummary(units=n, crossed=None, request_level=True)
    for col in COLUMNS:
        if col in ("mature_exposures", "mature_outcomes"):
            continue
        value = float(getattr(c, col, 0) or 0)
        s.sums[col] = value
        s.nonzero[col] = int(min(value, n)) if col != "cost_usd" else n
        if col == "cost_usd":
            if c.cost_sq_usd > 0:
                s.squares[col] = float(c.cost_sq_usd)
        else:
            s.squares[col] = value
    for a, b in PAIRS:
        if a == "cost_usd":
            if b == "requests":
                s.products[(a, b)] = s.sums["cost_usd"]
            continue
        if a.startswith("mature_"):
            continue
        # b is a 0/1 indicator per request and a ≤ b request by request
        s.products[(a, b)] = s.sums[a]
    if matured is not None:
        s.sums["mature_exposures"] = float(matured.exposures)
        s.squares["mature_exposures"] = float(matured.exposures)
        s.nonzero["mature_exposures"] = int(matured.exposures)
    s.hist = {"latency_hist": list(c.latency_hist), "ttft_hist": list(c.ttft_hist)}
    return s


def comparable_arms(groups: Iterable[GroupSummary], is_comparable: Callable[[Any], bool] | None,
                    stage: str | None = None, control: bool = True) -> tuple[ArmSummary, ArmSummary]:
    """(candidate, baseline) summed over the groups the rule compares.

    With ``control`` the rule's predicate keeps the comparable groups (request-level groups, which carry
    no attributes, are kept as they are); without it (the internal stage) every candidate group counts.
    Groups labelled with the current ``stage`` are preferred, when any is: units the application counted
    before it saw the stage change were split by the previous share.
    """
    groups = [g for g in groups if g.arm in (Arm.CANDIDATE, Arm.BASELINE)]
    if stage is not None and any(g.stage == stage for g in groups):
        groups = [g for g in groups if g.stage == stage]
    cand, base = ArmSummary(), ArmSummary()
    for g in groups:
        keep = g.summary.request_level or is_comparable is None or is_comparable(g)
        if g.arm is Arm.CANDIDATE:
            if keep or not control:
                cand.add(g.summary)
        elif keep:
            base.add(g.summary)
    return cand, base


def group_units(records: Iterable[UnitRecord], group_by: Sequence[str]) -> list[GroupSummary]:
    """Unit records grouped by arm and the values of ``group_by`` (the default ``read_summaries``)."""
    buckets: dict[tuple, list[UnitRecord]] = {}
    for r in records:
        key = (r.arm, tuple(str(r.segment.get(a, "")) for a in group_by))
        buckets.setdefault(key, []).append(r)
    out = []
    for (arm, values), rows in buckets.items():
        attrs = {a: v for a, v in zip(group_by, values) if v != ""}
        out.append(GroupSummary(arm, attrs, "", summarise_units(rows)))
    return out


__all__ = ["ArmSummary", "GroupSummary", "COLUMNS", "PAIRS", "HISTOGRAMS", "summarise_units", "summarise_counters",
           "summarise_columns", "comparable_arms", "group_units"]
