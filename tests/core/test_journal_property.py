"""Properties: any sequence of appends verifies; any byte changed in an entry is found on its line."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.core.journal import Journal, read_entries, verify

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
fields = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["intent", "event"]),
        "action": st.sampled_from(["advance", "hold", "rollback", "promote", "route_switch", "acknowledge"]),
        "flag": st.none() | st.text(min_size=1, max_size=12),
        "reason": st.text(max_size=40),  # any unicode, newlines and lone surrogates included
        "verdict": json_values,
        "before": st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    }
)

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.lists(fields, min_size=1, max_size=8))
def test_any_sequence_of_appends_verifies_and_reads_back(batch: list[dict]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.jsonl"
        journal = Journal(path)
        written = [journal.append(f) for f in batch]
        report = verify(path, anchors=[written[0].anchor, written[-1].anchor])
        assert report.ok and report.torn is None, report.summary()
        assert report.entries == len(batch) and report.head == journal.head == written[-1].anchor
        assert list(read_entries(path)) == written


@PROPERTY
@given(st.lists(fields, min_size=2, max_size=5), st.data())
def test_changing_any_byte_of_an_entry_is_found_on_that_line(batch: list[dict], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.jsonl"
        journal = Journal(path)
        for f in batch:
            journal.append(f)
        lines = path.read_bytes().splitlines(keepends=True)
        index = data.draw(st.integers(0, len(lines) - 2), label="line")  # not the last: that one may read as torn
        # not the newline: a second-to-last line merged into the last reads as a torn write (anchors catch that)
        position = data.draw(st.integers(0, len(lines[index]) - 2), label="byte")
        new = data.draw(st.integers(0, 255).filter(lambda b: b != lines[index][position]), label="value")
        line = bytearray(lines[index])
        line[position] = new
        lines[index] = bytes(line)
        path.write_bytes(b"".join(lines))
        report = verify(path)
        assert not report.ok
        assert report.first_bad is not None and report.first_bad.line == index + 1
