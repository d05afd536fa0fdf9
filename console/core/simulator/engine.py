"""The traffic simulator: units make requests, the flag picks each request's route, routes answer.

Determinism: tick ``t`` (one simulated second) draws every random number from
``default_rng([seed, t])``, so the events of a tick depend only on the seed, the tick and the
flag configuration at that moment — a shorter run is exactly a prefix of a longer one.

Storage is one columnar request log (numpy), aggregated on demand: the same rows give the
dashboard's bucketed counters and the decision engine's per-unit totals.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..models import RouteProfile
from ..pricing import PricingTable
from ..telemetry import (
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
from .portfolio import ELIGIBLE_SCOPE, INTERNAL_AUDIENCE, WORKFLOW_FLAGS, RouteBehaviour, behaviour_of
from .scenarios import Scenario

def json_key(profile: dict[str, Any]) -> str:
    import json

    return json.dumps(profile, sort_keys=True)


ERR_NONE, ERR_ERROR, ERR_429, ERR_TIMEOUT = 0, 1, 2, 3
ERR_NAMES = {ERR_ERROR: "error", ERR_429: "429", ERR_TIMEOUT: "timeout"}
ARM_CODES = {Arm.BASELINE: 0, Arm.CANDIDATE: 1, Arm.OTHER: 2}
ARMS = {v: k for k, v in ARM_CODES.items()}

WORKFLOWS = ("support_answer", "hard_case", "classify")
PLANS = ("free", "pro", "enterprise")
REGIONS = ("us", "eu", "apac")
DEFAULT_SLO_MS = 2500.0

_COLUMNS: dict[str, Any] = {
    "t": np.int64, "unit": np.int32, "key": np.int16, "fb_route": np.int16, "success": np.bool_,
    "err": np.int8, "fallback": np.bool_, "slo": np.bool_, "latency": np.float32, "ttft": np.float32,
    "tin": np.int32, "tout": np.int32, "cost": np.float64, "prov": np.int16, "fb_prov": np.int16,
    "fb_failed": np.bool_, "new_unit": np.bool_, "joined": np.bool_, "arrival": np.int64,
    "resolved": np.bool_, "corrected": np.bool_, "complaint": np.bool_,
}


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
        wf = WORKFLOWS[self.workflow[i]]
        ctx: dict[str, Any] = {"workflow": wf, "plan": PLANS[self.plan[i]], "region": REGIONS[self.region[i]],
                               "language": "en" if self.english[i] else "other"}
        if self.internal[i]:
            ctx["audience"] = INTERNAL_AUDIENCE
        if wf == "support_answer" and self.english[i]:
            ctx["scope"] = ELIGIBLE_SCOPE
        return ctx

    def segment(self, i: int) -> dict[str, str]:
        return {"plan": PLANS[self.plan[i]], "region": REGIONS[self.region[i]], "workflow": WORKFLOWS[self.workflow[i]],
                "internal": "yes" if self.internal[i] else "no"}


class TrafficSimulator:
    """Generates requests tick by tick and answers aggregate queries over them."""

    def __init__(
        self,
        evaluator: FlagEvaluator,
        scenario: Scenario,
        *,
        seed: int = 7,
        pricing: PricingTable | None = None,
        rate_rps: float = 30.0,
        n_units: int = 20_000,
        start_time: float = 0.0,
        keep_s: float = 4 * 3600,
        slo_ms: float = DEFAULT_SLO_MS,
    ) -> None:
        self.evaluator = evaluator
        self.scenario = scenario
        self.seed = seed
        self.pricing = pricing or PricingTable.defaults()
        self.rate = rate_rps
        self.start_time = float(start_time)
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
        self._assign: dict[tuple[str, int], int] = {}
        self._assign_rev: str | None = None
        self._chunks: deque[dict[str, np.ndarray]] = deque()
        self._log: dict[str, np.ndarray] | None = None
        self._listeners: list[Callable[[dict[str, np.ndarray], "TrafficSimulator"], None]] = []
        self._eff_rows: list[dict[str, Any]] = []
        self._eff_index: dict[tuple[str, str, Arm], int] = {}
        self._eff_table: dict[str, np.ndarray] | None = None
        self._unit_flag = [WORKFLOW_FLAGS[WORKFLOWS[w]] for w in self.pop.workflow.tolist()]

    # ---- time ---------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Simulated time up to which traffic exists."""
        return self.start_time + self.next_tick

    def advance_to(self, t: float) -> None:
        """Generate every whole tick that ends at or before ``t``."""
        while self.start_time + self.next_tick + 1 <= t:
            self._generate_tick(self.next_tick)
            self.next_tick += 1
        self._trim()

    def add_listener(self, fn: Callable[[dict[str, np.ndarray], "TrafficSimulator"], None]) -> None:
        """``fn(rows, sim)`` is called with each tick's request rows (column arrays) as generated."""
        self._listeners.append(fn)

    # ---- generation ---------------------------------------------------------------

    def _index(self, table: list, index: dict, item) -> int:
        found = index.get(item)
        if found is None:
            found = index[item] = len(table)
            table.append(item)
        return found

    def key_of(self, i: int) -> RouteKey:
        return self._keys[i]

    def _behaviour(self, flag: str, profile: dict[str, Any], arm: Arm) -> tuple[RouteBehaviour, dict[str, Any]]:
        sc = self.scenario
        if arm is Arm.CANDIDATE and sc.candidate_as_baseline:
            base = self.evaluator.baseline_profile(flag) or profile
            return behaviour_of(base.get("route", "")), base
        beh = behaviour_of(profile.get("route", ""))
        if arm is Arm.CANDIDATE:
            from dataclasses import replace

            beh = replace(
                beh,
                latency_median_ms=beh.latency_median_ms * sc.latency_factor,
                resolve=min(0.99, max(0.01, beh.resolve + sc.resolve_shift)),
                correction=min(0.99, max(0.0, beh.correction + sc.correction_shift)),
                complaint=min(0.99, max(0.0, beh.complaint + sc.complaint_shift)),
                error_rate=sc.provider_error if sc.provider_error is not None else beh.error_rate,
                tokens_in=beh.tokens_in * sc.token_factor,
                tokens_out=beh.tokens_out * sc.token_factor,
                join_probability=sc.join_probability if sc.join_probability is not None else beh.join_probability,
            )
        return beh, profile

    def _effective(self, flag: str, profile: dict[str, Any], arm: Arm) -> int:
        """Index of the parameter row for requests of ``flag`` assigned ``profile`` on ``arm``."""
        ident = (flag, json_key(profile), arm)
        found = self._eff_index.get(ident)
        if found is not None:
            return found
        beh, prof = self._behaviour(flag, profile, arm)
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

    def _generate_tick(self, tick: int) -> None:
        self.evaluator.refresh()
        rng = np.random.default_rng([self.seed, tick])
        n = int(rng.poisson(self.rate))
        units = np.minimum(np.searchsorted(self.pop.cum_activity, rng.random(n)), len(self.pop.ids) - 1)
        u = rng.random((n, 8))
        z = rng.standard_normal((n, 4))
        pop = self.pop
        rev = self.evaluator.revision
        if rev != self._assign_rev:
            self._assign.clear()
            self._assign_rev = rev
        eff = np.empty(n, dtype=np.int64)
        new_unit = np.zeros(n, dtype=np.bool_)
        for i, unit in enumerate(units.tolist()):
            flag = self._unit_flag[unit]
            idx = self._assign.get((flag, unit))
            if idx is None:
                _variant, assigned, arm = self.evaluator.evaluate(flag, pop.ids[unit], pop.context(unit))
                idx = self._assign[(flag, unit)] = self._effective(flag, assigned, arm)
            eff[i] = idx
            seen = (self._eff_rows[idx]["key"], unit)
            if seen not in self._seen:
                self._seen.add(seen)
                new_unit[i] = True
        T = {k: v[eff] for k, v in self._table().items()} if n else {k: np.zeros(0) for k in self._table()}
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
        t_abs = int(self.start_time) + tick
        cols = {
            "t": np.full(n, t_abs, dtype=np.int64),
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
            "arrival": (t_abs + 5 + (85 * u[:, 6]).astype(np.int64)),
            "resolved": resolved,
            "corrected": resolved & (u[:, 3] < T["correct"]),
            "complaint": u[:, 4] < T["complain"] + np.where(success, 0.0, 0.05),
        }
        self._chunks.append(cols)
        self._log = None
        for fn in self._listeners:
            fn(cols, self)

    def _trim(self) -> None:
        horizon = self.now - self.keep_s
        while self._chunks and len(self._chunks[0]["t"]) and self._chunks[0]["t"][-1] < horizon:
            self._chunks.popleft()
            self._log = None
        # compact many one-tick chunks into one so queries concatenate few arrays
        if len(self._chunks) > 120:
            merged = {k: np.concatenate([c[k] for c in self._chunks]) for k in _COLUMNS}
            self._chunks = deque([merged])
            self._log = merged

    def log(self) -> dict[str, np.ndarray]:
        """All retained request rows as one set of columns."""
        if self._log is None:
            if not self._chunks:
                self._log = {k: np.zeros(0, dtype=dt) for k, dt in _COLUMNS.items()}
            elif len(self._chunks) == 1:
                self._log = self._chunks[0]
            else:
                self._log = {k: np.concatenate([c[k] for c in self._chunks]) for k in _COLUMNS}
        return self._log

    # ---- queries ------------------------------------------------------------------

    def snapshot(self, start: float, end: float, step: float) -> MetricsSnapshot:
        """Counters per route key in buckets of ``step`` seconds over [start, end).

        Requests count in the bucket they were made; outcomes in the bucket they arrived.
        """
        end = min(end, self.now)
        buckets, served = self._aggregate(start, end, max(1.0, float(step)))
        # the totals are one more aggregation over a single bucket: cheaper than adding counters up
        whole, _ = self._aggregate(start, end, max(1.0, end - start))
        return MetricsSnapshot(
            start=start, end=end, as_of=self.now, buckets=buckets,
            totals=whole[0].counters if whole else {}, fallback_served=served,
        )

    def _aggregate(self, start: float, end: float, step: float) -> tuple[list[TimeBucket], dict[tuple[str, str], int]]:
        nb = max(1, math.ceil((end - start) / step))
        log = self.log()
        nk = max(1, len(self._keys))
        buckets = [TimeBucket(start + b * step, min(end, start + (b + 1) * step)) for b in range(nb)]
        t = log["t"]
        m = (t >= start) & (t < end)
        b_idx = ((t[m] - start) // step).astype(np.int64)
        cell = b_idx * nk + log["key"][m]
        size = nb * nk

        def total(col: np.ndarray | None) -> np.ndarray:
            return np.bincount(cell, weights=col, minlength=size) if col is not None else np.bincount(cell, minlength=size)

        err = log["err"][m]
        sums = {
            "requests": total(None),
            "exposures": total(None),
            "new_units": total(log["new_unit"][m].astype(float)),
            "successes": total(log["success"][m].astype(float)),
            "errors": total((err != ERR_NONE).astype(float)),
            "rate_limited": total((err == ERR_429).astype(float)),
            "timeouts": total((err == ERR_TIMEOUT).astype(float)),
            "fallbacks": total(log["fallback"][m].astype(float)),
            "slo_met": total(log["slo"][m].astype(float)),
            "tokens_in": total(log["tin"][m].astype(float)),
            "tokens_out": total(log["tout"][m].astype(float)),
            "cost_usd": total(log["cost"][m]),
        }
        nl = len(LATENCY_BOUNDS_MS) + 1
        lat_idx = np.searchsorted(np.asarray(LATENCY_BOUNDS_MS), log["latency"][m], side="left")
        lat = np.bincount(cell * nl + lat_idx, minlength=size * nl).reshape(size, nl)
        nt = len(TTFT_BOUNDS_MS) + 1
        ttft_idx = np.searchsorted(np.asarray(TTFT_BOUNDS_MS), log["ttft"][m], side="left")
        ttf = np.bincount(cell * nt + ttft_idx, minlength=size * nt).reshape(size, nt)
        # outcomes, by arrival time, only those joined to their exposure
        arr = log["arrival"]
        mo = (arr >= start) & (arr < end) & (arr <= self.now) & log["joined"]
        ocell = ((arr[mo] - start) // step).astype(np.int64) * nk + log["key"][mo]
        resolved = log["resolved"][mo]
        osums = {
            "outcomes": np.bincount(ocell, minlength=size),
            "resolved": np.bincount(ocell, weights=resolved.astype(float), minlength=size),
            "escalated": np.bincount(ocell, weights=(~resolved).astype(float), minlength=size),
            "corrected": np.bincount(ocell, weights=log["corrected"][mo].astype(float), minlength=size),
            "complaints": np.bincount(ocell, weights=log["complaint"][mo].astype(float), minlength=size),
        }
        active = np.nonzero(sums["requests"] + osums["outcomes"])[0]
        prov_errs = self._provider_breakdown(log, m, cell)
        for c in active:
            b, k = divmod(int(c), nk)
            rc = RouteCounters()
            for name, arr_ in sums.items():
                setattr(rc, name, float(arr_[c]) if name == "cost_usd" else int(arr_[c]))
            for name, arr_ in osums.items():
                setattr(rc, name, int(arr_[c]))
            rc.latency_hist = lat[c].tolist()
            rc.ttft_hist = ttf[c].tolist()
            rc.provider_requests, rc.provider_errors = prov_errs.get(int(c), ({}, {}))
            buckets[b].counters[self._keys[k]] = rc
        fb = log["fb_route"][m]
        served: dict[tuple[str, str], int] = {}
        for r, count in zip(*np.unique(fb[fb >= 0], return_counts=True)):
            served[self._routes[int(r)]] = int(count)
        return buckets, served

    def _provider_breakdown(self, log, m, cell) -> dict[int, tuple[dict, dict]]:
        """Per cell: requests by (provider, model), failures by (provider, model, kind)."""
        out: dict[int, tuple[dict, dict]] = {}
        np_ = max(1, len(self._providers))
        for prov_col, err_col in (("prov", None), ("fb_prov", "fb_failed")):
            prov = log[prov_col][m]
            has = prov >= 0
            if not has.any():
                continue
            if err_col is None:
                kinds = log["err"][m]
            else:
                kinds = np.where(log[err_col][m], ERR_ERROR, ERR_NONE)
            code = (cell[has].astype(np.int64) * np_ + prov[has]) * 4 + kinds[has]
            values, counts = np.unique(code, return_counts=True)
            for v, count in zip(values.tolist(), counts.tolist()):
                rest, kind = divmod(v, 4)
                c, p = divmod(rest, np_)
                reqs, errs = out.setdefault(c, ({}, {}))
                pm = self._providers[p]
                reqs[pm] = reqs.get(pm, 0) + count
                if kind:
                    k3 = (pm[0], pm[1], ERR_NAMES[kind])
                    errs[k3] = errs.get(k3, 0) + count
        return out

    def units(self, flag: str, since: float, maturation_s: float = 120.0) -> list[UnitRecord]:
        """Per-unit totals for ``flag`` since ``since`` (unit-level data for the decision engine)."""
        log = self.log()
        keys = np.array([k.flag == flag for k in self._keys] or [False])
        m = (log["t"] >= since) & keys[log["key"]] if len(log["t"]) else np.zeros(0, dtype=bool)
        if not m.any():
            return []
        uid = log["unit"][m]
        uniq, inv = np.unique(uid, return_inverse=True)
        n = len(uniq)

        def s(col: np.ndarray) -> np.ndarray:
            return np.bincount(inv, weights=col.astype(float), minlength=n)

        arm_code = np.array([ARM_CODES[k.arm] for k in self._keys])[log["key"][m]]
        first = np.full(n, -1, dtype=np.int64)
        order = np.arange(len(inv))[::-1]
        first[inv[order]] = order  # earliest row index per unit
        on_baseline = np.bincount(inv, weights=(arm_code == 0).astype(float), minlength=n) > 0
        on_candidate = np.bincount(inv, weights=(arm_code == 1).astype(float), minlength=n) > 0
        err = log["err"][m]
        now = self.now
        joined_arrived = log["joined"][m] & (log["arrival"][m] <= now)
        mature = log["t"][m] <= now - maturation_s
        res = log["resolved"][m]
        cols = {
            "requests": np.bincount(inv, minlength=n),
            "successes": s(log["success"][m]),
            "outcomes": s(joined_arrived),
            "resolved": s(joined_arrived & res),
            "escalated": s(joined_arrived & ~res),
            "corrected": s(joined_arrived & log["corrected"][m]),
            "complaints": s(joined_arrived & log["complaint"][m]),
            "errors": s(err != ERR_NONE),
            "rate_limited": s(err == ERR_429),
            "timeouts": s(err == ERR_TIMEOUT),
            "fallbacks": s(log["fallback"][m]),
            "slo_met": s(log["slo"][m]),
            "mature_exposures": s(mature),
            "mature_outcomes": s(mature & joined_arrived),
        }
        cost = np.bincount(inv, weights=log["cost"][m], minlength=n)
        t_first = log["t"][m][first]
        keys_m = log["key"][m]
        records = []
        for j in range(n):
            unit = int(uniq[j])
            key = self._keys[int(keys_m[first[j]])]
            rec = UnitRecord(
                unit_id=self.pop.ids[unit], flag=flag, arm=key.arm, route=key.route,
                segment=self.pop.segment(unit), first_seen=float(t_first[j]),
                exposures=int(cols["requests"][j]), cost_usd=float(cost[j]),
                crossed=bool(on_baseline[j] and on_candidate[j]),
            )
            for name, arr in cols.items():
                setattr(rec, name, int(arr[j]))
            records.append(rec)
        return records
