"""The event format as documented: README's sample and docs/events.schema.json agree with what routedeck
accepts, record by record (a schema or a sample that drifted from the reader would mislead every team)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from console.core.event_format import problem

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "events.schema.json").read_text())


def readme_sample() -> list[dict]:
    block = re.search(r"```json\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README shows no event sample"
    return [json.loads(line) for line in block.group(1).splitlines() if line.strip()]


def schema_problem(record: dict) -> str | None:
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(record), key=str)
    return errors[0].message if errors else None


def test_readmes_sample_is_one_record_of_each_kind_and_valid_both_ways():
    records = readme_sample()
    assert [r["event.name"] for r in records] == ["feature_flag.evaluation", "routedeck.call", "routedeck.outcome"]
    for record in records:
        assert problem(record) is None
        assert schema_problem(record) is None


@pytest.mark.parametrize("change, field", [
    (lambda r: r.pop("routedeck.request.id"), "routedeck.request.id"),
    (lambda r: r.update({"routedeck.duration_ms": "fast"}), "routedeck.duration_ms"),
    (lambda r: r.update({"event.name": "routedeck.calls"}), "event.name"),
    (lambda r: r.update({"gen_ai.usage.input_tokens": "many"}), "gen_ai.usage.input_tokens"),
])
def test_a_call_the_reader_refuses_is_refused_by_the_schema_too(change, field):
    call = readme_sample()[1]
    change(call)
    assert field in (problem(call) or "")
    assert schema_problem(call) is not None


def test_every_record_the_simulator_writes_is_valid_by_the_schema(tmp_path_factory):
    from .helpers import shared_rollout

    files = sorted(shared_rollout(tmp_path_factory).events_dir.glob("*.jsonl"))
    lines = [line for f in files for line in f.read_text().splitlines()[:3000]]
    kinds = {json.loads(line)["event.name"] for line in lines}
    assert kinds == {"feature_flag.evaluation", "routedeck.call", "routedeck.outcome"}
    for line in lines:
        assert schema_problem(json.loads(line)) is None, line[:200]
