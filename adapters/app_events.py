"""For applications: write routedeck's event records (docs/events.md) from your own request path.

    from adapters.app_events import EventLog, ExposureHook, llm_call

    log = EventLog("/var/log/myapp/events", key=os.environ.get("ROUTEDECK_UNIT_KEY"))  # key: pseudonymise units
    api.add_hooks([ExposureHook(log)])                       # OpenFeature: one exposure per evaluation
    with llm_call(log, flag, unit_id, variant, route, provider="openai", model="gpt-x") as call:
        answer = client.chat(...)
        call.tokens(answer.usage.input_tokens, answer.usage.output_tokens)
    log.outcome(flag, unit_id, call.request_id, resolved=True)

One ``.jsonl`` file per process (``events-<host>-<pid>.jsonl``), every record one line written whole.
With ``key`` the unit id in every record is replaced by an HMAC-SHA256 of it: the files then hold no
user identifier, yet the same user still maps to the same unit, so joins and counts stay right.
Nothing here imports Textual or the console.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.core import event_format as ef


class EventLog:
    """Appends event records to this process's file in ``directory`` (thread-safe)."""

    def __init__(self, directory: str | Path, *, key: str | bytes | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"events-{socket.gethostname()}-{os.getpid()}.jsonl"
        self._key = key.encode() if isinstance(key, str) else key
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8")

    def unit(self, unit_id: str) -> str:
        """The unit key as written: the id itself, or its keyed hash when a key was given."""
        if not self._key:
            return unit_id
        return "h:" + hmac.new(self._key, unit_id.encode(), hashlib.sha256).hexdigest()[:32]

    def write(self, record: dict[str, Any]) -> None:
        why = ef.problem(record)
        if why:
            raise ValueError(f"not a valid event record: {why}")
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()

    def exposure(self, flag: str, unit_id: str, variant: str, attributes: dict[str, Any] | None = None,
                 request_id: str | None = None) -> None:
        record = {ef.TIME: ef.rfc3339(time.time()), ef.EVENT: ef.EXPOSURE, ef.FLAG: flag,
                  ef.UNIT: self.unit(unit_id), ef.VARIANT: variant}
        if request_id:
            record[ef.REQUEST_ID] = request_id
        for name, value in (attributes or {}).items():
            record[ef.CONTEXT_PREFIX + name] = str(value)
        self.write(record)

    def outcome(self, flag: str, unit_id: str, request_id: str, *, resolved: bool, corrected: bool = False,
                complaint: bool = False) -> None:
        self.write({ef.TIME: ef.rfc3339(time.time()), ef.EVENT: ef.OUTCOME, ef.FLAG: flag, ef.UNIT: self.unit(unit_id),
                    ef.REQUEST_ID: request_id, ef.RESOLVED: resolved, ef.CORRECTED: corrected, ef.COMPLAINT: complaint})

    def close(self) -> None:
        with self._lock:
            self._fh.close()


@dataclass
class Call:
    """What the application fills in during an LLM call (``llm_call``)."""

    request_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    first_chunk_at: float | None = None

    def tokens(self, input_tokens: int, output_tokens: int) -> None:
        self.fields[ef.INPUT_TOKENS], self.fields[ef.OUTPUT_TOKENS] = int(input_tokens), int(output_tokens)

    def cost(self, usd: float) -> None:
        self.fields[ef.COST_USD] = float(usd)

    def first_chunk(self) -> None:
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()

    def fell_back(self, route: str, error_type: str | None = None) -> None:
        self.fields[ef.FALLBACK_ROUTE] = route
        if error_type:
            self.fields[ef.FALLBACK_ERROR] = error_type

    def failed(self, error_type: str) -> None:
        self.fields[ef.ERROR_TYPE] = error_type


@contextmanager
def llm_call(log: EventLog, flag: str, unit_id: str, variant: str, route: str, *, provider: str | None = None,
             model: str | None = None, request_id: str | None = None) -> Iterator[Call]:
    """Time one request and write its call record when it ends; an exception is recorded as its
    ``error.type`` (the exception's class name) and raised again."""
    call = Call(request_id or uuid.uuid4().hex)
    started_wall, started = time.time(), time.perf_counter()
    try:
        yield call
    except BaseException as exc:
        call.fields.setdefault(ef.ERROR_TYPE, type(exc).__name__)
        raise
    finally:
        record = {ef.TIME: ef.rfc3339(started_wall), ef.EVENT: ef.CALL, ef.FLAG: flag, ef.UNIT: log.unit(unit_id),
                  ef.VARIANT: variant, ef.REQUEST_ID: call.request_id, ef.ROUTE: route,
                  ef.DURATION_MS: round((time.perf_counter() - started) * 1000, 3)}
        if provider:
            record[ef.GEN_AI_PROVIDER] = provider
        if model:
            record[ef.GEN_AI_MODEL] = model
        if call.first_chunk_at is not None:
            record[ef.TTFC_MS] = round((call.first_chunk_at - started) * 1000, 3)
        record.update(call.fields)
        log.write(record)


class ExposureHook:
    """An OpenFeature hook that writes one exposure record per flag evaluation (after it succeeds).

    Only the evaluation context's string, number and boolean attributes are written, as ``context.*``."""

    def __init__(self, log: EventLog, flags: set[str] | None = None) -> None:
        self.log = log
        self.flags = flags

    # the OpenFeature hook interface: before / after / error / finally_after / supports_flag_value_type
    def before(self, hook_context, hints):  # noqa: D102
        return None

    def after(self, hook_context, details, hints) -> None:
        key = hook_context.flag_key
        if self.flags is not None and key not in self.flags:
            return
        context = hook_context.evaluation_context
        unit = getattr(context, "targeting_key", None)
        if not unit or not details.variant:
            return  # no unit, or a default served without a variant: nothing to attribute
        attrs = {k: v for k, v in (getattr(context, "attributes", None) or {}).items()
                 if isinstance(v, (str, int, float, bool))}
        self.log.exposure(key, unit, details.variant, attrs)

    def error(self, hook_context, exception, hints) -> None:
        return None

    def finally_after(self, hook_context, details, hints) -> None:
        return None

    def supports_flag_value_type(self, flag_type) -> bool:
        return True
