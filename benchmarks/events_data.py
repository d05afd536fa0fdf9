"""Synthetic event records for benchmarks/events.py, written as Parquet files in routedeck's event format.

A fresh population each run (the seed is drawn unless given): units with an activity level, a plan,
a scope and an audience; a flag splitting eligible units 80/20 between its baseline and candidate
variants by a hash of the unit; requests arriving as a Poisson process over the span, each an
exposure, a call (duration, time to first chunk, tokens, cost, 1.2% failures of which half are
rescued by a fallback) and, for 88% of them, an outcome 5–120 s later. Records are generated and
written one hour at a time, so generating 10M events needs little memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from console.core import event_format as ef

FLAG = "support-answer-route"
BASELINE, CANDIDATE = "fast_default_v1", "balanced_core_v2"
ARMS = {BASELINE: "baseline", CANDIDATE: "candidate"}
#: records per request on average: exposure + call + 0.88 outcome
RECORDS_PER_REQUEST = 2.88
REQUESTS_PER_UNIT = 12.0
SCOPES = np.array(["english_support_chat", "other_chat"])
AUDIENCES = np.array(["", "internal_support_team"])
PLANS = np.array(["free", "pro", "enterprise"])


@dataclass
class Population:
    ids: pa.Array  # unit ids (strings)
    weight: np.ndarray  # relative activity
    candidate: np.ndarray  # bool: the unit's variant is the candidate
    scope: np.ndarray
    audience: np.ndarray
    plan: np.ndarray


def population(rng: np.random.Generator, units: int) -> Population:
    ids = pc.binary_join_element_wise(pa.scalar("u"), pa.array(np.arange(units)).cast(pa.string()), "")
    weight = rng.gamma(0.8, 1.0, units)
    scope = SCOPES[(rng.random(units) > 0.8).astype(int)]
    audience = AUDIENCES[(rng.random(units) < 0.02).astype(int)]
    eligible = (scope == SCOPES[0]) & (audience == "")
    candidate = eligible & (rng.random(units) < 0.2)
    return Population(ids, weight / weight.sum(), candidate, scope, audience, PLANS[rng.integers(0, 3, units)])


def _hour(rng: np.random.Generator, pop: Population, t0: float, seconds: float, rate: float,
          first_rid: int) -> tuple[pa.Table, int]:
    n = int(rng.poisson(rate * seconds))
    t = np.sort(t0 + rng.random(n) * seconds)
    unit = rng.choice(len(pop.ids), size=n, p=pop.weight)
    cand = pop.candidate[unit]
    rid = pa.array(np.arange(first_rid, first_rid + n)).cast(pa.string())
    slow = np.where(cand, 0.97, 1.0)
    dur = np.round(rng.lognormal(math.log(1100), 0.45, n) * slow, 3)
    ttfc = np.round(dur * rng.uniform(0.2, 0.5, n), 3)
    tin = rng.integers(200, 3000, n)
    tout = rng.integers(50, 900, n)
    cost = np.round((tin * np.where(cand, 0.45, 0.40) + tout * np.where(cand, 1.8, 1.6)) / 1e6, 9)
    fails = rng.random(n)
    err = np.where(fails < 0.004, "429", np.where(fails < 0.012, "error", None))
    fallback = (fails < 0.012) & (rng.random(n) < 0.5)
    out = rng.random(n) < 0.88
    t_out = t + rng.uniform(5, 120, n)
    resolved = rng.random(n) < np.where(cand, 0.75, 0.72)
    variant = np.where(cand, CANDIDATE, BASELINE)
    units = pop.ids.take(pa.array(unit))
    exposure = {
        ef.TIME: t, ef.EVENT: np.full(n, ef.EXPOSURE), ef.FLAG: np.full(n, FLAG), ef.UNIT: units, ef.VARIANT: variant,
        ef.REQUEST_ID: rid, "context.scope": pop.scope[unit], "context.audience": pop.audience[unit],
        "context.plan": pop.plan[unit],
    }
    call = {
        ef.TIME: t, ef.EVENT: np.full(n, ef.CALL), ef.FLAG: np.full(n, FLAG), ef.UNIT: units, ef.VARIANT: variant,
        ef.REQUEST_ID: rid, ef.ROUTE: variant, ef.GEN_AI_PROVIDER: np.where(cand, "provider-b", "provider-a"),
        ef.GEN_AI_MODEL: np.where(cand, "provider-b/balanced", "provider-a/standard"), ef.INPUT_TOKENS: tin,
        ef.OUTPUT_TOKENS: tout, ef.DURATION_MS: dur, ef.TTFC_MS: ttfc, ef.ERROR_TYPE: err, ef.COST_USD: cost,
        ef.FALLBACK_ROUTE: np.where(fallback, "fallback_baseline_v1", None),
    }
    k = int(out.sum())
    outcome = {
        ef.TIME: t_out[out], ef.EVENT: np.full(k, ef.OUTCOME), ef.FLAG: np.full(k, FLAG), ef.UNIT: units.filter(out),
        ef.REQUEST_ID: rid.filter(out), ef.RESOLVED: resolved[out], ef.CORRECTED: rng.random(k) < 0.04,
        ef.COMPLAINT: rng.random(k) < 0.005,
    }
    tables = [_table(exposure, n), _table(call, n), _table(outcome, k)]
    table = pa.concat_tables(tables, promote_options="default")
    return table.sort_by(ef.TIME), first_rid + n


SCHEMA = pa.schema([
    (ef.TIME, pa.timestamp("ms", tz="UTC")), (ef.EVENT, pa.string()), (ef.FLAG, pa.string()), (ef.UNIT, pa.string()),
    (ef.VARIANT, pa.string()), (ef.REQUEST_ID, pa.string()), (ef.ROUTE, pa.string()), (ef.GEN_AI_PROVIDER, pa.string()),
    (ef.GEN_AI_MODEL, pa.string()), (ef.INPUT_TOKENS, pa.int64()), (ef.OUTPUT_TOKENS, pa.int64()),
    (ef.DURATION_MS, pa.float64()), (ef.TTFC_MS, pa.float64()), (ef.ERROR_TYPE, pa.string()), (ef.COST_USD, pa.float64()),
    (ef.FALLBACK_ROUTE, pa.string()), (ef.RESOLVED, pa.bool_()), (ef.CORRECTED, pa.bool_()), (ef.COMPLAINT, pa.bool_()),
    ("context.scope", pa.string()), ("context.audience", pa.string()), ("context.plan", pa.string()),
])


def _table(columns: dict, n: int) -> pa.Table:
    arrays = []
    for field in SCHEMA:
        value = columns.get(field.name)
        if value is None:
            arrays.append(pa.nulls(n, field.type))
        elif field.name == ef.TIME:
            arrays.append(pa.array((np.asarray(value) * 1000).round().astype("int64")).cast(field.type))
        else:
            arrays.append(pa.array(value, type=field.type) if not isinstance(value, (pa.Array, pa.ChunkedArray))
                          else value)
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


@dataclass
class Dataset:
    directory: Path
    t0: float
    t_end: float
    events: int
    next_rid: int
    seed: int


def write(directory: Path, events: int, seed: int, *, t0: float = 1_790_000_000.0, hours: float = 6.0) -> Dataset:
    """About ``events`` records over ``hours``, one Parquet file per hour, in ``directory``."""
    rng = np.random.default_rng(seed)
    requests = events / RECORDS_PER_REQUEST
    pop = population(rng, max(100, int(requests / REQUESTS_PER_UNIT)))
    rate = requests / (hours * 3600)
    directory.mkdir(parents=True, exist_ok=True)
    rid, written = 0, 0
    for h in range(math.ceil(hours)):
        span = min(3600.0, hours * 3600 - h * 3600)
        table, rid = _hour(rng, pop, t0 + h * 3600, span, rate, rid)
        pq.write_table(table, directory / f"events-{h:03d}.parquet")
        written += table.num_rows
    state = Dataset(directory, t0, t0 + hours * 3600, written, rid, seed)
    state._pop, state._rng, state._rate = pop, rng, rate  # type: ignore[attr-defined]
    return state


def append_minute(data: Dataset, name: str) -> int:
    """One more minute of records in a new file (what arrives between two looks); returns how many."""
    table, data.next_rid = _hour(data._rng, data._pop, data.t_end, 60.0, data._rate, data.next_rid)  # type: ignore[attr-defined]
    pq.write_table(table, data.directory / name)
    data.t_end += 60.0
    data.events += table.num_rows
    return table.num_rows
