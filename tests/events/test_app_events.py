"""The application helper writes valid records, pseudonymises units when asked, and hooks into OpenFeature."""

from __future__ import annotations

import json

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from adapters.app_events import EventLog, ExposureHook, llm_call
from console.backends import open_metrics
from console.core import event_format as ef


def test_hook_call_and_outcome_are_read_back_as_one_unit(tmp_path):
    log = EventLog(tmp_path, key="secret-key")
    api.set_provider(InMemoryProvider({"route": InMemoryFlag("b", {"a": "fast", "b": "balanced"})}))
    api.add_hooks([ExposureHook(log)])
    try:
        client = api.get_client()
        details = client.get_string_details("route", "fast", EvaluationContext("alice@example.com", {"scope": "chat"}))
    finally:
        api.clear_hooks()
    with pytest.raises(TimeoutError):
        with llm_call(log, "route", "alice@example.com", details.variant, "balanced", provider="p", model="m") as call:
            raise TimeoutError
    log.outcome("route", "alice@example.com", call.request_id, resolved=False)
    log.close()
    records = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [r[ef.EVENT] for r in records] == [ef.EXPOSURE, ef.CALL, ef.OUTCOME]
    assert all(ef.problem(r) is None for r in records)
    assert "alice" not in log.path.read_text() and len({r[ef.UNIT] for r in records}) == 1
    assert records[0]["context.scope"] == "chat" and records[1][ef.ERROR_TYPE] == "TimeoutError"
    source = open_metrics(f"events:{tmp_path}", None, arms_of=lambda f: {"b": "candidate", "a": "baseline"})
    try:
        (unit,) = source.read_units("route", 0.0, 0.0)
    finally:
        source.close()
    assert (unit.requests, unit.errors, unit.outcomes, unit.escalated, unit.arm.value) == (1, 1, 1, 1, "candidate")
    assert unit.segment == {"scope": "chat"}
