"""The simulated application's events as routedeck's event records (console/core/event_format.py).

``EventRecorder`` is a ``TrafficSimulator`` listener: each request becomes an exposure and a call
record, each outcome that telemetry joined becomes an outcome record (an outcome telemetry failed
to join is lost, as it would be in a real pipeline). As one of ``replicas``, it keeps only its share
of the records, chosen by request id, so a unit's requests land in every replica's file and the
replicas' files together hold exactly the records of a single process run on the same seed.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .. import event_format as ef
from .events import OutcomeEvent, RequestEvent, SimEvent

Sink = Callable[[list[dict[str, Any]]], None]


def replica_of(request_id: str, replicas: int, salt: str = "") -> int:
    """Which of ``replicas`` processes writes the record of ``request_id`` (stable across runs)."""
    return zlib.crc32((salt + request_id).encode()) % replicas if replicas > 1 else 0


def exposure_record(e: RequestEvent) -> dict[str, Any]:
    record: dict[str, Any] = {
        ef.TIME: ef.rfc3339(e.time), ef.EVENT: ef.EXPOSURE, ef.FLAG: e.flag, ef.UNIT: e.unit_id,
        ef.VARIANT: e.variant, ef.REQUEST_ID: e.request_id,
    }
    for name, value in e.segment.items():
        record[ef.CONTEXT_PREFIX + name] = str(value)
    return record


def call_record(e: RequestEvent) -> dict[str, Any]:
    record: dict[str, Any] = {
        ef.TIME: ef.rfc3339(e.time), ef.EVENT: ef.CALL, ef.FLAG: e.flag, ef.UNIT: e.unit_id, ef.VARIANT: e.variant,
        ef.REQUEST_ID: e.request_id, ef.ROUTE: e.route, ef.GEN_AI_PROVIDER: e.provider, ef.GEN_AI_MODEL: e.model,
        ef.INPUT_TOKENS: int(e.tokens_in), ef.OUTPUT_TOKENS: int(e.tokens_out),
        ef.DURATION_MS: round(float(e.latency_ms), 3), ef.TTFC_MS: round(float(e.ttft_ms), 3),
        ef.COST_USD: float(e.cost_usd),
    }
    if e.status != "ok":
        record[ef.ERROR_TYPE] = e.status
    if e.fallback:
        record[ef.FALLBACK_ROUTE] = e.served_route
        if not e.success:
            record[ef.FALLBACK_ERROR] = "error"
    return record


def outcome_record(e: OutcomeEvent) -> dict[str, Any]:
    return {
        ef.TIME: ef.rfc3339(e.time), ef.EVENT: ef.OUTCOME, ef.FLAG: e.flag, ef.UNIT: e.unit_id,
        ef.REQUEST_ID: e.request_id, ef.RESOLVED: e.kind == "resolved", ef.CORRECTED: bool(e.corrected),
        ef.COMPLAINT: bool(e.complaint),
    }


class EventRecorder:
    """A simulator listener writing this replica's share of the event records to ``sink``, one call per tick."""

    def __init__(self, sink: Sink, replica: int = 0, replicas: int = 1) -> None:
        if not 0 <= replica < replicas:
            raise ValueError(f"replica {replica} of {replicas}")
        self.sink = sink
        self.replica = replica
        self.replicas = replicas
        self.written = 0

    def __call__(self, events: list[SimEvent]) -> None:
        mine = self._mine
        records: list[dict[str, Any]] = []
        for e in events:
            if isinstance(e, RequestEvent):
                if mine(e.request_id):
                    records.append(exposure_record(e))
                    records.append(call_record(e))
            elif isinstance(e, OutcomeEvent) and e.joined and mine(e.request_id, "outcome:"):
                records.append(outcome_record(e))
        if records:
            self.sink(records)
            self.written += len(records)

    def _mine(self, request_id: str, salt: str = "") -> bool:
        return replica_of(request_id, self.replicas, salt) == self.replica


class JsonLinesFile:
    """A sink appending records to a ``.jsonl`` file, each batch flushed whole (every line ends with a newline)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh: IO[str] = open(self.path, "a", encoding="utf-8")

    def __call__(self, records: list[dict[str, Any]]) -> None:
        self._fh.write("".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in records))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
