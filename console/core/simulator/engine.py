"""The traffic simulator: units make requests, the flag picks each request's route, routes answer.

Determinism: tick ``t`` (one simulated second) draws every random number from
``default_rng([seed, t])``, so the events of a tick depend only on the seed, the tick and the
flag configuration at that moment — a shorter run is exactly a prefix of a longer one.

Storage is one columnar request log (numpy), aggregated on demand: the same rows give the
dashboard's bucketed counters and the decision engine's per-unit totals.
"""

from __future__ import annotations

import math
import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models import RouteFlag, RouteProfile
from ..pricing import PricingTable
from ..telemetry import (
    DEFAULT_SLO_MS,
    LATENCY_BOUNDS_MS,
    TTFT_BOUNDS_MS,
    Arm,
    MetricsSnapshot,
    RouteCounters,
    RouteKey,
    TimeBucket,
    UnitRecord,
)
from .evaluator import FlagEvaluator
from .events import Listener, OutcomeEvent, RequestEvent, SimEvent
from .portfolio import CODE_DEFAULTS, ELIGIBLE_SCOPE, INTERNAL_AUDIENCE, WORKFLOW_FLAGS, RouteBehaviour, behaviour_of
from .scenarios import Scenario, apply_to_candidate, get_scenario


def request_id(tick_time: int, row: int) -> str:
    """The id of the ``row``-th request of the tick at ``tick_time``: the same in every run of the same seed."""
    return f"{tick_time}-{row}"


def json_key(profile: dict[str, Any]) -> str:
    return json.dumps(profile, sort_keys=True)


ERR_NONE, ERR_ERROR, ERR_429, ERR_TIMEOUT = 0, 1, 2, 3
ERR_NAMES = {ERR_ERROR: "error", ERR_429: "429", ERR_TIMEOUT: "timeout"}
ARM_CODES = {Arm.BASELINE: 0, Arm.CANDIDATE: 1, Arm.OTHER: 2}
ARMS = {v: k for k, v in ARM_CODES.items()}

WORKFLOWS = ("support_answer", "hard_case", "classify")
PLANS = ("free", "pro", "enterprise")
REGIONS = ("us", "eu", "apac")
#: outcomes arrive this many seconds after their request, at least and at most
MIN_OUTCOME_DELAY_S, MAX_OUTCOME_DELAY_S = 5, 89

_COLUMNS: dict[str, Any] = {
    "t": np.int64, "unit": np.int32, "key": np.int16, "fb_route": np.int16, "success": np.bool_,
    "err": np.int8, "fallback": np.bool_, "slo": np.bool_, "latency": np.float32, "ttft": np.float32,
    "tin": np.int32, "tout": np.int32, "cost": np.float64, "prov": np.int16, "fb_prov": np.int16,
    "fb_failed": np.bool_, "new_unit": np.bool_, "joined": np.bool_, "arrival": np.int64,
    "resolved": np.bool_, "corrected": np.bool_, "complaint": np.bool_,
    "lat_b": np.int8, "ttft_b": np.int8,  # histogram bucket of latency and ttft
}


_LAT_BOUNDS = np.asarray(LATENCY_BOUNDS_MS, dtype=np.float32)
_TTFT_BOUNDS = np.asarray(TTFT_BOUNDS_MS, dtype=np.float32)

#: ticks per block of the request log (the unit of trimming and of query selection)
BLOCK_TICKS = 60


@dataclass(frozen=True)
class _Block:
    t_start: int  # first tick covered (simulated seconds)
    t_end: int  # one past the last tick covered
    cols: dict[str, np.ndarray]


def _concat(parts: list[dict[str, np.ndarray]], names=None) -> dict[str, np.ndarray]:
    names = _COLUMNS if names is None else names
    if not parts:
        return {k: np.zeros(0, dtype=_COLUMNS[k]) for k in names}
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in names}


#: rows of the log (every flag's) that ``_flag_chunks`` gathers before a unit summary sums them: ~5 blocks at
#: the demo's rate, a few hundred kB of one flag's columns
UNIT_CHUNK_ROWS = 8_192
#: units whose latency histograms ``unit_summaries`` turns into floats at a time
SUMMARY_CHUNK_UNITS = 1024
#: the per-unit sums ``_unit_columns`` adds beside the request count, in its order
_UNIT_SUMS = ("successes", "outcomes", "resolved", "escalated", "corrected", "complaints", "errors", "rate_limited",
              "timeouts", "fallbacks", "slo_met", "mature_exposures", "mature_outcomes")
#: the request columns a unit's summary reads (``_unit_columns``)
_UNIT_COLUMNS = ("arrival", "complaint", "corrected", "cost", "err", "fallback", "joined", "key", "lat_b", "resolved", "slo", "success", "t", "ttft_b", "unit")


@dataclass(frozen=True)
class Population:
    """A fixed set of units; attributes are fixed before any exposure."""

    ids: list[str]
    workflow: np.ndarray
    plan: np.ndarray
    region: np.ndarray
    english: np.ndarray
    internal: np.ndarray
    difficulty: np.ndarray
    verbosity: np.ndarray
    slowness: np.ndarray
    cum_activity: np.ndarray

    @classmethod
    def generate(cls, seed: int, n: int) -> "Population":
        """``n`` units drawn from ``seed`` alone (the same population whatever the flags say)."""
        rng = np.random.default_rng([seed, 0x5EED])
        activity = rng.lognormal(0.0, 1.0, n)
        cum = np.cumsum(activity)
        return cls(
            ids=[f"u{seed}-{i:05d}" for i in range(n)],
            workflow=rng.choice(3, n, p=[0.6, 0.15, 0.25]),
            plan=rng.choice(3, n, p=[0.5, 0.35, 0.15]),
            region=rng.choice(3, n, p=[0.5, 0.3, 0.2]),
            english=rng.random(n) < 0.8,
            internal=rng.random(n) < 0.01,
            difficulty=rng.standard_normal(n),
            verbosity=rng.lognormal(0.0, 0.25, n),
            slowness=rng.lognormal(0.0, 0.15, n),
            cum_activity=cum / cum[-1],
        )

    def context(self, i: int) -> dict[str, Any]:
        """The evaluation context attributes the application sends for unit ``i``."""
        wf = WORKFLOWS[self.workflow[i]]
        ctx: dict[str, Any] = {"workflow": wf, "plan": PLANS[self.plan[i]], "region": REGIONS[self.region[i]],
                               "language": "en" if self.english[i] else "other"}
        if self.internal[i]:
            ctx["audience"] = INTERNAL_AUDIENCE
        if wf == "support_answer" and self.english[i]:
            ctx["scope"] = ELIGIBLE_SCOPE
        return ctx

    def segment(self, i: int) -> dict[str, str]:
        """Pre-exposure attributes, including the targeting attributes (audience, scope) the flag saw."""
        seg = {"plan": PLANS[self.plan[i]], "region": REGIONS[self.region[i]], "workflow": WORKFLOWS[self.workflow[i]],
               "internal": "yes" if self.internal[i] else "no"}
        ctx = self.context(i)
        for attr in ("audience", "scope", "language"):
            if attr in ctx:
                seg[attr] = ctx[attr]
        return seg


class TrafficSimulator:
    """Generates requests tick by tick and answers aggregate queries over them."""

    def __init__(
        self,
        evaluator: FlagEvaluator,
        flags_info: Mapping[str, RouteFlag] | Sequence[RouteFlag] | Scenario | str | None = None,
        scenario: Scenario | str | None = None,
        seed: int = 7,
        pricing: PricingTable | None = None,
        *,
        rate_rps: float = 30.0,
        n_units: int = 20_000,
        start_time: float = 0.0,
        keep_s: float = 4 * 3600,
        slo_ms: float = DEFAULT_SLO_MS,
    ) -> None:
        """``flags_info`` (optional) are the route flags as routedeck knows them: their baseline
        profiles stand in when the evaluator cannot name one. ``scenario`` is a Scenario or its name.
        For brevity ``TrafficSimulator(evaluator, scenario, ...)`` is accepted too."""
        if isinstance(flags_info, (Scenario, str)) and scenario is None:
            flags_info, scenario = None, flags_info
        if flags_info is None:
            flags_info = {}
        elif not isinstance(flags_info, Mapping):
            flags_info = {f.key: f for f in flags_info}
        self.flags_info: dict[str, RouteFlag] = dict(flags_info)
        self.evaluator = evaluator
        self.scenario = get_scenario(scenario) if isinstance(scenario, str) else (scenario or get_scenario("steady"))
        self.seed = seed
        self.pricing = pricing or PricingTable.defaults()
        self.rate = rate_rps
        self.start_time = float(int(start_time))
        self.keep_s = keep_s
        self.slo_ms = slo_ms
        self.pop = Population.generate(seed, n_units)
        self.next_tick = 0
        self._keys: list[RouteKey] = []
        self._key_index: dict[RouteKey, int] = {}
        self._routes: list[tuple[str, str]] = []  # (flag, route) a fallback served
        self._route_index: dict[tuple[str, str], int] = {}
        self._providers: list[tuple[str, str]] = []
        self._provider_index: dict[tuple[str, str], int] = {}
        self._seen: set[tuple[int, int]] = set()  # (key index, unit) pairs already counted as new units
        #: (flag, unit) → parameter row; valid for one evaluator revision (the evaluation is deterministic)
        self._assign: dict[tuple[str, int, int], int] = {}
        self._assign_rev: str | None = None
        #: (flag, unit) → the variant name the evaluator served, for the same revision as ``_assign``
        self._variant_of: dict[tuple[str, int], str] = {}
        #: (flag, variant, arm, hit) → parameter row, for the same revision as ``_assign``
        self._row_of_variant: dict[tuple[str, str, Arm, bool], int] = {}
        #: (flag, route) → the variant that routes there (an outcome's variant is its request's)
        self._variant_of_route: dict[tuple[str, str], str] = {}
        #: the request log: merged blocks of BLOCK_TICKS ticks, oldest first, then this block's ticks
        self._blocks: deque[_Block] = deque()
        self._open: list[dict[str, np.ndarray]] = []
        self._open_from = int(self.start_time)
        self._listeners: list[Listener] = []
        #: the last ticks' rows, whose outcomes may still be on their way (for listeners)
        self._in_flight: deque[dict[str, np.ndarray]] = deque(maxlen=MAX_OUTCOME_DELAY_S + 1)
        self._eff_rows: list[dict[str, Any]] = []
        self._eff_index: dict[tuple[str, str, Arm, bool], int] = {}
        self._eff_table: dict[str, np.ndarray] | None = None
        self._defaults: dict[str, dict[str, Any]] = {}
        self._segments: dict[int, dict[str, str]] = {}
        self._unit_flag = [WORKFLOW_FLAGS[WORKFLOWS[w]] for w in self.pop.workflow.tolist()]
        #: (step, bucket start) -> (dense arrays, counters) of a bucket that ended: it never changes again
        self._memo: dict[tuple[float, float], tuple[dict[str, np.ndarray], dict[RouteKey, RouteCounters]]] = {}
        self._memo_shape: tuple[int, int] | None = None
        #: step -> the widest window read on that grid: older buckets of it are never asked for again by the
        #: same reads, and holding hours of them (small objects mixed with short-lived ones) fragments the heap
        self._memo_span: dict[float, float] = {}
        #: block start -> (its latest outcome arrival, its rows' counters packed in one vector): a one-bucket read
        #: that holds the whole block and all its outcomes counts exactly these, whatever its window. One entry
        #: per retained block (dropped with it)
        self._block_memo: dict[int, tuple[int, np.ndarray]] = {}

    # ---- time ---------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Simulated time up to which traffic exists."""
        return self.start_time + self.next_tick

    def advance_to(self, t: float) -> None:
        """Generate every whole tick that ends at or before ``t``, up to a block of ticks at a time."""
        while self.start_time + self.next_tick + 1 <= t:
            due = int(math.floor(t - self.start_time - self.next_tick))
            count = min(due, BLOCK_TICKS)
            self._generate_ticks(self.next_tick, count)
            self.next_tick += count
        self._trim()

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(events)`` once per generated tick with that tick's RequestEvents, then the
        OutcomeEvents that arrived during it. Listeners run on the generating thread: keep them quick."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        """Stop calling ``fn``."""
        self._listeners.remove(fn)

    # ---- generation ---------------------------------------------------------------

    def _index(self, table: list, index: dict, item) -> int:
        found = index.get(item)
        if found is None:
            found = index[item] = len(table)
            table.append(item)
        return found

    def key_of(self, i: int) -> RouteKey:
        """The RouteKey behind a ``key`` column value of the request log."""
        return self._keys[i]

    def _behaviour(self, flag: str, profile: dict[str, Any], arm: Arm,
                   hit: bool = True) -> tuple[RouteBehaviour, dict[str, Any]]:
        sc = self.scenario
        if arm is Arm.CANDIDATE and sc.candidate_as_baseline:
            base = self.evaluator.baseline_profile(flag) or self._known_baseline(flag) or profile
            return behaviour_of(base.get("route", "")), base
        beh = behaviour_of(profile.get("route", ""))
        if arm is Arm.CANDIDATE and hit:
            beh = apply_to_candidate(beh, sc)
        return beh, profile

    def _code_default(self, flag: str) -> dict[str, Any]:
        found = self._defaults.get(flag)
        if found is None:
            known = CODE_DEFAULTS.get(flag)
            found = self._defaults[flag] = self._known_baseline(flag) or (known.to_wire() if known else {"route": "code_default"})
        return found

    def _known_baseline(self, flag: str) -> dict[str, Any] | None:
        info = self.flags_info.get(flag)
        profile = info.variations.get(info.baseline) if info else None
        return profile.to_wire() if profile else None

    def _effective(self, flag: str, profile: dict[str, Any], arm: Arm, hit: bool = True) -> int:
        """Index of the parameter row for requests of ``flag`` assigned ``profile`` on ``arm``
        (``hit``: the scenario reaches this unit — false outside a region-bound scenario's region)."""
        ident = (flag, json_key(profile), arm, hit)
        found = self._eff_index.get(ident)
        if found is not None:
            return found
        beh, prof = self._behaviour(flag, profile, arm, hit)
        route = profile.get("route", "?")
        fb_name = prof.get("fallback")
        fb = behaviour_of(fb_name) if fb_name else None
        price = self.pricing.price_for(RouteProfile(route=prof.get("route", route), model=prof.get("model") or beh.model))
        fb_price = self.pricing.price_for(RouteProfile(route=fb_name, model=fb.model)) if fb else None
        row = {
            "key": self._index(self._keys, self._key_index, RouteKey(flag, route, arm)),
            "prov": self._index(self._providers, self._provider_index, (beh.provider, beh.model)),
            "lat_med": beh.latency_median_ms, "lat_sig": beh.latency_sigma, "ttft_share": beh.ttft_share,
            "tin": beh.tokens_in, "tout": beh.tokens_out, "p_err": beh.error_rate, "p_429": beh.rate_limit_rate,
            "resolve": beh.resolve, "correct": beh.correction, "complain": beh.complaint, "join": beh.join_probability,
            "timeout": float(prof.get("timeoutMs") or 30_000), "max_out": float(prof.get("maxOutputTokens") or 4096),
            "in_price": price.input_per_mtok / 1e6 if price else 0.0,
            "out_price": price.output_per_mtok / 1e6 if price else 0.0,
            "has_fb": fb is not None,
            "fb_route": self._index(self._routes, self._route_index, (flag, fb_name)) if fb else -1,
            "fb_prov": self._index(self._providers, self._provider_index, (fb.provider, fb.model)) if fb else -1,
            "fb_lat_med": fb.latency_median_ms if fb else 0.0, "fb_lat_sig": fb.latency_sigma if fb else 0.0,
            "fb_ttft_share": fb.ttft_share if fb else 0.0, "fb_p_err": fb.error_rate if fb else 1.0,
            "fb_tin": fb.tokens_in if fb else 0.0, "fb_tout": fb.tokens_out if fb else 0.0,
            "fb_in_price": fb_price.input_per_mtok / 1e6 if fb_price else 0.0,
            "fb_out_price": fb_price.output_per_mtok / 1e6 if fb_price else 0.0,
        }
        self._eff_rows.append(row)
        self._eff_table = None
        found = self._eff_index[ident] = len(self._eff_rows) - 1
        return found

    def _table(self) -> dict[str, np.ndarray]:
        if self._eff_table is None:
            self._eff_table = {k: np.array([r[k] for r in self._eff_rows]) for k in self._eff_rows[0]}
        return self._eff_table

    def _generate_ticks(self, first: int, count: int) -> None:
        """Generate ``count`` ticks from tick ``first``. Each tick draws from its own generator, in the same order
        whatever the batch, so the traffic does not depend on how ticks are grouped; the arithmetic then runs
        once over the batch (the demo's first read generates 120 ticks: per tick, numpy's call overhead was
        most of it)."""
        self.evaluator.refresh()
        pop = self.pop
        draws = []
        for tick in range(first, first + count):
            rng = np.random.default_rng([self.seed, tick])
            n = int(rng.poisson(self.rate))
            units = np.minimum(np.searchsorted(pop.cum_activity, rng.random(n)), len(pop.ids) - 1)
            draws.append((n, units, rng.random((n, 8)), rng.standard_normal((n, 4))))
        sizes = [d[0] for d in draws]
        n = sum(sizes)
        units = np.concatenate([d[1] for d in draws])
        u = np.concatenate([d[2] for d in draws]).reshape(n, 8)
        z = np.concatenate([d[3] for d in draws]).reshape(n, 4)
        t_abs = np.repeat(np.arange(first, first + count, dtype=np.int64) + int(self.start_time), sizes)
        rev = self.evaluator.revision
        if rev != self._assign_rev:
            self._assign.clear()
            self._variant_of.clear()
            self._row_of_variant.clear()
            self._assign_rev = rev
        eff = np.empty(n, dtype=np.int64)
        new_unit = np.zeros(n, dtype=np.bool_)
        # a fleet of services with different bucketing rules: each request lands on one of them
        services = getattr(self.evaluator, "services", 1)
        service_of = (u[:, 7] * services).astype(np.int64).tolist() if services > 1 else None
        for i, unit in enumerate(units.tolist()):
            flag = self._unit_flag[unit]
            service = service_of[i] if service_of is not None else 0
            idx = self._assign.get((flag, unit, service))
            if idx is None:
                variant, assigned, arm = self.evaluator.evaluate(
                    flag, pop.ids[unit], pop.context(unit), self._code_default(flag),
                    **({"service": service} if service_of is not None else {})
                )
                self._variant_of[(flag, unit)] = variant
                hit = self.scenario.region is None or REGIONS[pop.region[unit]] == self.scenario.region
                # one revision serves one profile per variant: its row is found once, not per unit
                idx = self._row_of_variant.get((flag, variant, arm, hit))
                if idx is None:
                    idx = self._row_of_variant[(flag, variant, arm, hit)] = self._effective(flag, assigned, arm, hit)
                self._assign[(flag, unit, service)] = idx
            eff[i] = idx
            seen = (self._eff_rows[idx]["key"], unit)
            if seen not in self._seen:
                self._seen.add(seen)
                new_unit[i] = True
        T = {k: v[eff] for k, v in self._table().items()} if n else {k: np.zeros(0) for k in self._table()}
        cols = self._request_columns(T, units, u, z, t_abs, new_unit)
        at = 0
        for k, size in enumerate(sizes):
            self._tick_done(first + k, {name: col[at:at + size] for name, col in cols.items()})
            at += size

    def _request_columns(self, T: dict[str, np.ndarray], units: np.ndarray, u: np.ndarray, z: np.ndarray,
                         t_abs: np.ndarray, new_unit: np.ndarray) -> dict[str, np.ndarray]:
        """The request log's columns for requests whose route parameters are ``T`` and draws ``u``/``z``."""
        pop = self.pop
        n = len(units)
        slow, verb = pop.slowness[units], pop.verbosity[units]
        latency = T["lat_med"] * slow * np.exp(T["lat_sig"] * z[:, 0])
        tin = T["tin"] * verb * np.exp(0.3 * z[:, 1])
        tout = np.minimum(T["tout"] * verb * np.exp(0.35 * z[:, 2]), T["max_out"])
        d = u[:, 0]
        err = np.select(
            [d < T["p_err"], d < T["p_err"] + T["p_429"], latency > T["timeout"]],
            [ERR_ERROR, ERR_429, ERR_TIMEOUT], ERR_NONE,
        ).astype(np.int8)
        spent = np.select([err == ERR_ERROR, err == ERR_429, err == ERR_TIMEOUT],
                          [latency * 0.3, np.full(n, 60.0), T["timeout"]], latency)
        tin_c = np.where(err == ERR_429, 0.0, tin)
        tout_c = np.select([err == ERR_NONE, err == ERR_TIMEOUT], [tout, tout * 0.5], 0.0)
        cost = tin_c * T["in_price"] + tout_c * T["out_price"]
        fallback = (err != ERR_NONE) & T["has_fb"].astype(bool)
        fb_latency = T["fb_lat_med"] * slow * np.exp(T["fb_lat_sig"] * z[:, 3])
        fb_failed = fallback & (u[:, 1] < T["fb_p_err"])
        fb_tin = np.where(fallback, T["fb_tin"] * verb, 0.0)
        fb_tout = np.where(fallback & ~fb_failed, T["fb_tout"] * verb, 0.0)
        cost = cost + fb_tin * T["fb_in_price"] + fb_tout * T["fb_out_price"]
        success = (err == ERR_NONE) | (fallback & ~fb_failed)
        total_latency = np.where(fallback, spent + fb_latency, spent)
        ttft = np.where(fallback, spent + fb_latency * T["fb_ttft_share"], latency * T["ttft_share"])
        ttft = np.where(success, ttft, total_latency)
        p_resolve = np.where(success, T["resolve"] - 0.08 * pop.difficulty[units], 0.0)
        resolved = u[:, 2] < p_resolve
        return {
            "t": t_abs,
            "unit": units.astype(np.int32),
            "key": T["key"].astype(np.int16),
            "fb_route": np.where(fallback, T["fb_route"], -1).astype(np.int16),
            "success": success,
            "err": err,
            "fallback": fallback,
            "slo": success & (total_latency <= self.slo_ms),
            "latency": total_latency.astype(np.float32),
            "ttft": ttft.astype(np.float32),
            "tin": (tin_c + fb_tin).astype(np.int32),
            "tout": (tout_c + fb_tout).astype(np.int32),
            "cost": cost,
            "prov": T["prov"].astype(np.int16),
            "fb_prov": np.where(fallback, T["fb_prov"], -1).astype(np.int16),
            "fb_failed": fb_failed,
            "new_unit": new_unit,
            "joined": u[:, 5] < T["join"],
            "arrival": t_abs + MIN_OUTCOME_DELAY_S
            + ((MAX_OUTCOME_DELAY_S - MIN_OUTCOME_DELAY_S + 1) * u[:, 6]).astype(np.int64),
            "resolved": resolved,
            "corrected": resolved & (u[:, 3] < T["correct"]),
            "complaint": u[:, 4] < T["complain"] + np.where(success, 0.0, 0.05),
            "lat_b": np.searchsorted(_LAT_BOUNDS, total_latency.astype(np.float32), side="left").astype(np.int8),
            "ttft_b": np.searchsorted(_TTFT_BOUNDS, ttft.astype(np.float32), side="left").astype(np.int8),
        }

    def _tick_done(self, tick: int, cols: dict[str, np.ndarray]) -> None:
        """File one tick's requests in the log and hand them to the listeners."""
        t_abs = int(self.start_time) + tick
        self._open.append(cols)
        if len(self._open) >= BLOCK_TICKS:
            self._blocks.append(_Block(self._open_from, t_abs + 1, _concat(self._open)))
            self._open = []
            self._open_from = t_abs + 1
        self._in_flight.append(cols)
        if self._listeners:
            events = self._events(cols, t_abs)
            for fn in list(self._listeners):
                fn(events)

    def _events(self, cols: dict[str, np.ndarray], t_abs: int) -> list[SimEvent]:
        """This tick's requests, then the outcomes arriving in it, as plain records."""
        pop = self.pop
        events: list[SimEvent] = []
        variants = self._variant_of_route
        for r in range(len(cols["t"])):
            unit = int(cols["unit"][r])
            key = self._keys[int(cols["key"][r])]
            provider, model = self._providers[int(cols["prov"][r])]
            fb = int(cols["fb_route"][r])
            err = int(cols["err"][r])
            events.append(RequestEvent(
                time=float(t_abs), flag=key.flag, unit_id=pop.ids[unit], segment=pop.segment(unit), arm=key.arm,
                route=key.route, served_route=self._routes[fb][1] if fb >= 0 else key.route,
                provider=provider, model=model, status=ERR_NAMES.get(err, "ok"), fallback=bool(cols["fallback"][r]),
                success=bool(cols["success"][r]), latency_ms=float(cols["latency"][r]), ttft_ms=float(cols["ttft"][r]),
                tokens_in=int(cols["tin"][r]), tokens_out=int(cols["tout"][r]), cost_usd=float(cols["cost"][r]),
                new_unit=bool(cols["new_unit"][r]), request_id=request_id(t_abs, r),
                variant=self._variant_of.get((key.flag, unit), ""),
            ))
            variants[(key.flag, key.route)] = events[-1].variant
        for past in self._in_flight:
            for r in np.nonzero(past["arrival"] == t_abs)[0].tolist():
                key = self._keys[int(past["key"][r])]
                events.append(OutcomeEvent(
                    time=float(t_abs), request_time=float(past["t"][r]), flag=key.flag,
                    unit_id=pop.ids[int(past["unit"][r])], arm=key.arm, route=key.route,
                    kind="resolved" if past["resolved"][r] else "escalated", corrected=bool(past["corrected"][r]),
                    complaint=bool(past["complaint"][r]), joined=bool(past["joined"][r]),
                    request_id=request_id(int(past["t"][r]), r), variant=variants.get((key.flag, key.route), ""),
                ))
        return events

    def _trim(self) -> None:
        """Drop per-request detail older than ``keep_s`` (whole blocks, so memory stays bounded)."""
        horizon = self.now - self.keep_s
        while self._blocks and self._blocks[0].t_end <= horizon:
            self._block_memo.pop(self._blocks.popleft().t_start, None)

    @property
    def retained_from(self) -> float:
        """The oldest simulated second whose requests are still held."""
        return float(self._blocks[0].t_start if self._blocks else self._open_from)

    def log(self, since: float | None = None, until: float | None = None) -> dict[str, np.ndarray]:
        """Retained request rows as one set of columns: all of them, or at least those made in
        [since, until) (whole blocks are returned, so callers still mask by time)."""
        return _concat(self._parts(since, until))

    def _parts(self, since: float | None = None, until: float | None = None) -> list[dict[str, np.ndarray]]:
        """The retained blocks (and the open one's parts) holding rows made in [since, until)."""
        lo = -math.inf if since is None else since
        hi = math.inf if until is None else until
        parts = [b.cols for b in self._blocks if b.t_end > lo and b.t_start < hi]
        if self._open and self._open_from < hi:
            parts.extend(self._open)
        return parts

    def _flag_chunks(self, flag: str, since: float, names: tuple[str, ...] = _UNIT_COLUMNS):
        """The retained rows of ``flag`` made since ``since``, in their order, a few retained blocks at a time
        (about ``UNIT_CHUNK_ROWS`` rows of the log each): a look over a long stage holds one chunk of rows,
        never hours of every flag's requests, every column."""
        keys = np.array([k.flag == flag for k in self._keys] or [False])
        wanted = tuple(dict.fromkeys(("t", "key", *names)))
        held: list[dict[str, np.ndarray]] = []
        rows = 0
        parts = self._parts(since)
        for i, cols in enumerate(parts):
            held.append(cols)
            rows += len(cols["t"])
            if rows < UNIT_CHUNK_ROWS and i + 1 < len(parts):
                continue
            chunk = _concat(held, wanted)
            held, rows = [], 0
            m = (chunk["t"] >= since) & keys[chunk["key"]]
            if m.any():
                yield {name: chunk[name][m] for name in names}

    # ---- queries ------------------------------------------------------------------

    def snapshot(self, start: float, end: float, step: float) -> MetricsSnapshot:
        """Counters per route key in buckets of ``step`` seconds over [start, end).

        Requests count in the bucket they were made; outcomes in the bucket they arrived. A bucket that
        ended by ``now`` never changes again (an outcome's arrival is drawn with its request), so its
        counters are kept and the next snapshot on the same grid aggregates only the newer rows.
        """
        end = min(end, self.now)
        step = max(1.0, float(step))
        nb = max(1, math.ceil((end - start) / step))
        nk = max(1, len(self._keys))
        shape = (nk, len(self._providers), len(self._routes))
        if self._memo_shape != shape:
            self._memo.clear()  # a new route or provider widens every array: start the memo again
            self._block_memo.clear()
            self._memo_shape = shape
        if nb == 1:
            return self._one_bucket(start, end, step, nk)
        first = 0
        # a kept bucket stands for its traffic while that is retained; until any is dropped (the first keep_s),
        # that includes the buckets before the simulation's start, which had none (a window reaching back
        # before the start would otherwise aggregate every bucket on every read)
        untrimmed = self.retained_from <= self.start_time
        while (first < nb and (step, start + first * step) in self._memo
               and (untrimmed or start + first * step >= self.retained_from)):
            first += 1
        sub_start = start + first * step
        # outcomes arriving in the window belong to requests made up to MAX_OUTCOME_DELAY_S before it
        log = self.log(since=sub_start - MAX_OUTCOME_DELAY_S, until=end)
        grid = self._aggregate(log, sub_start, end, step, nb - first, nk) if first < nb else None
        kept = [self._memo[(step, start + b * step)] for b in range(first)]
        buckets = [TimeBucket(start + b * step, min(end, start + (b + 1) * step)) for b in range(nb)]
        for b, (_arrays, counters) in enumerate(kept):
            buckets[b].counters = dict(counters)
        names = grid.keys() if grid is not None else kept[0][0].keys()
        for b in range(first, nb):
            arrays = {name: grid[name][b - first] for name in names}
            buckets[b].counters = self._counters({k: v for k, v in arrays.items() if k != "fb_served"})
            if buckets[b].end == start + (b + 1) * step and buckets[b].end <= self.now:
                self._memo[(step, buckets[b].start)] = (arrays, buckets[b].counters)
        summed = {name: sum(k[0][name] for k in kept) + (grid[name].sum(axis=0) if grid is not None else 0)
                  for name in names}
        served_by_route = summed.pop("fb_served")
        totals = self._counters(summed)
        horizon = self.now - self.keep_s
        span = self._memo_span[step] = max(self._memo_span.get(step, 0.0), end - start)
        oldest = end - span - step  # a read of the widest window on this grid starts after it
        for key in [k for k in self._memo if k[1] < horizon or (k[0] == step and k[1] < oldest)]:
            del self._memo[key]
        return self._snapshot_of(start, end, buckets, totals, served_by_route)

    def _snapshot_of(self, start: float, end: float, buckets: list[TimeBucket], totals: dict[RouteKey, RouteCounters],
                     served_by_route: np.ndarray) -> MetricsSnapshot:
        served = {self._routes[int(r)]: int(round(served_by_route[r])) for r in np.nonzero(served_by_route)[0]}
        gaps = []
        if start < self.retained_from and start < self.now:
            gaps.append(
                f"the simulator keeps {self.keep_s / 3600:g} h of request detail: "
                f"traffic before {self.retained_from:.0f} is not counted"
            )
        return MetricsSnapshot(
            start=start, end=end, as_of=self.now, buckets=buckets, totals=totals, fallback_served=served, gaps=gaps
        )

    def _one_bucket(self, start: float, end: float, step: float, nk: int) -> MetricsSnapshot:
        """``snapshot`` of a window read as one bucket (a look's stage-wide read, whose window grows at every
        look): the retained blocks one at a time, each block that lies whole in the window with all its
        outcomes arrived taken from ``_block_memo``. Never the whole log at once, so a look over hours of
        traffic holds one block's temporaries (not hours of rows) and aggregates only the blocks that are new.

        The same numbers as one aggregation over the whole log, to the last bit: every count is a sum of
        whole numbers (exact in any order), and the cost, a sum of fractions, is carried from block to block
        in the order of the rows (``_carry_cost``)."""
        lo, hi = start - MAX_OUTCOME_DELAY_S, end  # as ``log(since=…, until=…)`` selects them
        # where each of the aggregation's arrays sits in a packed vector (one allocation per kept block)
        layout: list[tuple[str, tuple[int, ...], int, int]] = []
        offset = 0
        for name, arr in self._aggregate(_concat([]), start, end, step, 1, nk).items():
            layout.append((name, arr.shape[1:], offset, offset + arr[0].size))
            offset += arr[0].size
        total = np.zeros(offset)
        cost = np.zeros(nk)
        parts = [(b.t_start, b.t_end, b.cols) for b in self._blocks if b.t_end > lo and b.t_start < hi]
        if self._open and self._open_from < hi:
            parts.append((None, None, _concat(self._open)))
        for t_start, t_end, cols in parts:
            whole = t_start is not None and t_start >= start and t_end <= end
            kept = self._block_memo.get(t_start) if whole else None
            if kept is not None and kept[0] < end:
                packed = kept[1]
            else:
                grid = self._aggregate(cols, start, end, step, 1, nk)
                packed = np.concatenate([grid[name][0].ravel().astype(np.float64) for name, *_ in layout])
                last = int(cols["arrival"].max()) if len(cols["arrival"]) else -1
                if whole and last < end:
                    self._block_memo[t_start] = (last, packed)
            total += packed
            cost = self._carry_cost(cost, cols, start, end, nk)
        arrays = {name: total[a:b].reshape(shape) for name, shape, a, b in layout}
        arrays["cost_usd"] = cost
        served_by_route = arrays.pop("fb_served")
        totals = self._counters(arrays)
        bucket = TimeBucket(start, min(end, start + step))
        bucket.counters = dict(totals)  # the one bucket is the totals: built once (nothing changes them in place)
        horizon = self.now - self.keep_s
        for key in [k for k in self._memo if k[1] < horizon]:
            del self._memo[key]
        return self._snapshot_of(start, end, [bucket], totals, served_by_route)

    @staticmethod
    def _carry_cost(carried: np.ndarray, cols: dict[str, np.ndarray], start: float, end: float,
                    nk: int) -> np.ndarray:
        """``carried`` plus the cost of ``cols``' rows made in [start, end), by key, added row after row in
        their order — as one ``bincount`` over the whole log adds them (each key's sum starts from what the
        earlier blocks carried), so the total is that of one pass to the last bit."""
        t = cols["t"]
        m = (t >= start) & (t < end)
        cells = np.concatenate([np.arange(nk), cols["key"][m].astype(np.int64)])
        return np.bincount(cells, weights=np.concatenate([carried, cols["cost"][m]]), minlength=nk)

    def _aggregate(
        self, log: dict[str, np.ndarray], start: float, end: float, step: float, nb: int, nk: int
    ) -> dict[str, np.ndarray]:
        """Dense counts per (bucket, key[, histogram bin or provider×kind]) for [start, end)."""
        t = log["t"]
        m = (t >= start) & (t < end)
        cell = ((t[m] - start) // step).astype(np.int64) * nk + log["key"][m]
        size = nb * nk

        def count(weights: np.ndarray | None = None) -> np.ndarray:
            w = None if weights is None else weights.astype(np.float64)
            return np.bincount(cell, weights=w, minlength=size).reshape(nb, nk)

        err = log["err"][m]
        grid = {
            "requests": count(),
            "new_units": count(log["new_unit"][m]),
            "successes": count(log["success"][m]),
            "errors": count(err != ERR_NONE),
            "rate_limited": count(err == ERR_429),
            "timeouts": count(err == ERR_TIMEOUT),
            "fallbacks": count(log["fallback"][m]),
            "slo_met": count(log["slo"][m]),
            "tokens_in": count(log["tin"][m]),
            "tokens_out": count(log["tout"][m]),
            "cost_usd": count(log["cost"][m]),
        }
        grid["exposures"] = grid["requests"]
        # requests a fallback route served for another, by that route (the dashboard's "fb N")
        nr = max(1, len(self._routes))
        fbr = log["fb_route"][m]
        grid["fb_served"] = np.bincount(((t[m][fbr >= 0] - start) // step).astype(np.int64) * nr + fbr[fbr >= 0],
                                        minlength=nb * nr).reshape(nb, nr)
        nl, nt = len(LATENCY_BOUNDS_MS) + 1, len(TTFT_BOUNDS_MS) + 1
        grid["latency_hist"] = np.bincount(cell * nl + log["lat_b"][m], minlength=size * nl).reshape(nb, nk, nl)
        grid["ttft_hist"] = np.bincount(cell * nt + log["ttft_b"][m], minlength=size * nt).reshape(nb, nk, nt)
        # provider calls: the assigned route's call, then the fallback's call when there was one
        npv = max(1, len(self._providers))
        fbm = log["fb_prov"][m] >= 0
        prov_cell = np.concatenate([cell * npv + log["prov"][m], cell[fbm] * npv + log["fb_prov"][m][fbm]])
        kinds = np.concatenate([err, np.where(log["fb_failed"][m][fbm], ERR_ERROR, ERR_NONE)]).astype(np.int64)
        grid["providers"] = np.bincount(prov_cell * 4 + kinds, minlength=size * npv * 4).reshape(nb, nk, npv, 4)
        # the provider whose failed call sent a request to its fallback
        grid["provider_fallbacks"] = np.bincount(cell[fbm] * npv + log["prov"][m][fbm],
                                                 minlength=size * npv).reshape(nb, nk, npv)
        # outcomes, by arrival time, only those joined to their exposure
        arr = log["arrival"]
        mo = (arr >= start) & (arr < end) & (arr < self.now) & log["joined"]
        ocell = ((arr[mo] - start) // step).astype(np.int64) * nk + log["key"][mo]
        resolved = log["resolved"][mo]

        def ocount(weights: np.ndarray | None = None) -> np.ndarray:
            w = None if weights is None else weights.astype(np.float64)
            return np.bincount(ocell, weights=w, minlength=size).reshape(nb, nk)

        grid["outcomes"] = ocount()
        grid["resolved"] = ocount(resolved)
        grid["escalated"] = ocount(~resolved)
        grid["corrected"] = ocount(log["corrected"][mo])
        grid["complaints"] = ocount(log["complaint"][mo])
        return grid

    def _counters(self, cells: dict[str, np.ndarray]) -> dict[RouteKey, RouteCounters]:
        """RouteCounters for every key with traffic, from one bucket's (or the totals') dense arrays."""
        out: dict[RouteKey, RouteCounters] = {}
        active = np.nonzero(cells["requests"] + cells["outcomes"])[0]
        if not len(active):
            return out
        scalars = {
            name: arr[active].tolist() if name == "cost_usd" else np.rint(arr[active]).astype(np.int64).tolist()
            for name, arr in cells.items()
            if name not in ("latency_hist", "ttft_hist", "providers", "provider_fallbacks")
        }
        for j, k in enumerate(active.tolist()):
            rc = RouteCounters()
            for name, values in scalars.items():
                setattr(rc, name, values[j])
            rc.latency_hist = cells["latency_hist"][k].astype(int).tolist()
            rc.ttft_hist = cells["ttft_hist"][k].astype(int).tolist()
            prov = cells["providers"][k]
            for p, kind in zip(*np.nonzero(prov)):
                pm = self._providers[int(p)]
                n = int(prov[p, kind])
                rc.provider_requests[pm] = rc.provider_requests.get(pm, 0) + n
                if kind:
                    k3 = (pm[0], pm[1], ERR_NAMES[int(kind)])
                    rc.provider_errors[k3] = rc.provider_errors.get(k3, 0) + n
            for p in np.nonzero(cells["provider_fallbacks"][k])[0]:
                pm = self._providers[int(p)]
                rc.provider_fallbacks[pm] = rc.provider_fallbacks.get(pm, 0) + int(cells["provider_fallbacks"][k][p])
            out[self._keys[k]] = rc
        return out

    def units(self, flag: str, since: float, maturation_s: float = 120.0) -> list[UnitRecord]:
        """Per-unit totals for ``flag`` since ``since`` (unit-level data for the decision engine).

        Outcomes count once arrived and joined; ``mature_*`` count exposures older than
        ``maturation_s`` and the outcomes joined to them."""
        found = self._unit_columns(flag, since, maturation_s)
        if found is None:
            return []
        uniq, first_keys, t_first, cost, crossed_units, cols, lat_b, ttft_b = found
        # plain lists: indexing numpy scalars one by one costs more than the arithmetic above
        lists = {name: np.rint(arr).astype(np.int64).tolist() for name, arr in cols.items()}
        crossed = crossed_units.tolist()
        lat_hist, ttft_hist = lat_b.tolist(), ttft_b.tolist()
        records = []
        for j, (unit, key, seen, spent) in enumerate(zip(uniq.tolist(), first_keys, t_first.tolist(), cost.tolist())):
            rec = UnitRecord(
                unit_id=self.pop.ids[unit], flag=flag, arm=key.arm, route=key.route,
                segment=self._segment(unit), first_seen=float(seen), cost_usd=spent, crossed=crossed[j],
                latency_hist=lat_hist[j], ttft_hist=ttft_hist[j],
            )
            for name, values in lists.items():
                setattr(rec, name, values[j])
            rec.exposures = rec.requests
            records.append(rec)
        return records

    def unit_summaries(self, flag: str, since: float, maturation_s: float = 120.0,
                       group_by: tuple[str, ...] = ()) -> list:
        """``group_units(self.units(flag, since, maturation_s), group_by)`` without a record per unit: the same
        groups in the same order, each summarised from the same per-unit table (same values, same layout, so
        the same sums to the last bit — tests/core/test_simulator.py checks it)."""
        from ..stats.summary import COLUMNS, ArmSummary, GroupSummary, summarise_columns

        found = self._unit_columns(flag, since, maturation_s)
        if found is None:
            return []
        uniq, first_keys, _, cost, crossed_units, cols, lat_b, ttft_b = found
        groups: dict[tuple, list[int]] = {}
        for j, (unit, key) in enumerate(zip(uniq.tolist(), first_keys)):
            segment = self._segments.get(unit) or self._segment(unit)
            groups.setdefault((key.arm, tuple(str(segment.get(a, "")) for a in group_by)), []).append(j)
        out = []
        for (arm, values), rows in groups.items():
            idx = np.asarray(rows, dtype=np.int64)
            # what summarise_units builds from the group's records: one row per unit, the COLUMNS as floats (the
            # counts rounded to whole numbers, as a record holds them)
            sub = np.empty((len(idx), len(COLUMNS)), dtype=float)
            for i, c in enumerate(COLUMNS):
                sub[:, i] = (cost if c == "cost_usd" else np.rint(cols["requests" if c == "exposures" else c]))[idx]
            summary = summarise_columns({c: sub[:, i] for i, c in enumerate(COLUMNS)},
                                        sum(1 for j in rows if crossed_units[j]))
            # the histograms' aggregates a few thousand units at a time (as floats they are the group's largest
            # arrays): each is a sum of whole numbers, the same in any order
            hists = ArmSummary()
            for part in range(0, len(idx), SUMMARY_CHUNK_UNITS):
                some = idx[part:part + SUMMARY_CHUNK_UNITS]
                hists.add(summarise_columns({}, 0, {"latency_hist": lat_b[some].astype(float),
                                                    "ttft_hist": ttft_b[some].astype(float)}))
            summary.hist, summary.hist_squares, summary.hist_products = \
                hists.hist, hists.hist_squares, hists.hist_products
            out.append(GroupSummary(arm, {a: v for a, v in zip(group_by, values) if v != ""}, "", summary))
        return out

    def _unit_columns(self, flag: str, since: float, maturation_s: float):
        """The per-unit arrays behind ``units`` (None when ``flag`` has no unit since ``since``).

        Summed chunk by chunk of the log (``_flag_chunks``) into one row per unit seen, in unit order: the
        same arrays as one pass over all the rows, to the last bit — the counts are sums of whole numbers,
        and each unit's cost is carried from chunk to chunk in the order of its rows."""
        units = np.zeros(len(self.pop.ids), dtype=bool)
        for rows in self._flag_chunks(flag, since, ("unit",)):
            units[rows["unit"]] = True
        uniq = np.flatnonzero(units)
        n = len(uniq)
        if not n:
            return None
        index = np.full(len(units), -1, dtype=np.int64)
        index[uniq] = np.arange(n)
        del units
        arm_codes = np.array([ARM_CODES[k.arm] for k in self._keys])
        nl, nt = len(LATENCY_BOUNDS_MS) + 1, len(TTFT_BOUNDS_MS) + 1
        now = self.now
        requests = np.zeros(n, dtype=np.int64)
        cols = {name: np.zeros(n) for name in _UNIT_SUMS}
        cost = np.zeros(n)
        seen = np.zeros(n, dtype=bool)
        t_first = np.zeros(n, dtype=np.int64)
        key_first = np.zeros(n, dtype=np.int64)
        on_baseline = np.zeros(n, dtype=bool)
        on_candidate = np.zeros(n, dtype=bool)
        # counts of a unit's requests per latency bucket: int32 holds them (the old int64 doubled the largest arrays)
        lat_hist = np.zeros((n, nl), dtype=np.int32)
        ttft_hist = np.zeros((n, nt), dtype=np.int32)
        for log in self._flag_chunks(flag, since):
            # this chunk's units (``at``: their rows in the result) and each row's unit among them
            at, inv = np.unique(index[log["unit"]], return_inverse=True)
            m = len(at)

            def s(col: np.ndarray) -> np.ndarray:
                return np.bincount(inv, weights=col.astype(float), minlength=m)

            first = np.full(m, -1, dtype=np.int64)
            order = np.arange(len(inv))[::-1]
            first[inv[order]] = order  # earliest row index per unit in this chunk
            new = ~seen[at]
            t_first[at[new]] = log["t"][first[new]]
            key_first[at[new]] = log["key"][first[new]]
            seen[at] = True
            arm_code = arm_codes[log["key"]]
            on_baseline[at] |= np.bincount(inv, weights=(arm_code == 0).astype(float), minlength=m) > 0
            on_candidate[at] |= np.bincount(inv, weights=(arm_code == 1).astype(float), minlength=m) > 0
            err = log["err"]
            joined_arrived = log["joined"] & (log["arrival"] < now)  # an outcome exists once its tick ran
            mature = log["t"] <= now - maturation_s
            res = log["resolved"]
            requests[at] += np.bincount(inv, minlength=m)
            for name, col in (
                ("successes", log["success"]),
                ("outcomes", joined_arrived),
                ("resolved", joined_arrived & res),
                ("escalated", joined_arrived & ~res),
                ("corrected", joined_arrived & log["corrected"]),
                ("complaints", joined_arrived & log["complaint"]),
                ("errors", err != ERR_NONE),
                ("rate_limited", err == ERR_429),
                ("timeouts", err == ERR_TIMEOUT),
                ("fallbacks", log["fallback"]),
                ("slo_met", log["slo"]),
                ("mature_exposures", mature),
                ("mature_outcomes", mature & joined_arrived),
            ):
                cols[name][at] += s(col)
            # each unit's cost goes on from what the earlier chunks summed, row after row
            cost[at] = np.bincount(np.concatenate([np.arange(m), inv]),
                                   weights=np.concatenate([cost[at], log["cost"]]), minlength=m)
            lat_hist[at] += np.bincount(inv * nl + log["lat_b"], minlength=m * nl).reshape(m, nl)
            ttft_hist[at] += np.bincount(inv * nt + log["ttft_b"], minlength=m * nt).reshape(m, nt)
        first_keys = [self._keys[k] for k in key_first.tolist()]
        return uniq, first_keys, t_first, cost, on_baseline & on_candidate, {"requests": requests, **cols}, \
            lat_hist, ttft_hist

    def _segment(self, unit: int) -> dict[str, str]:
        """The unit's segment (computed once: it is fixed); callers get their own copy."""
        found = self._segments.get(unit)
        if found is None:
            found = self._segments[unit] = self.pop.segment(unit)
        return dict(found)
