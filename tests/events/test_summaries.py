"""The events source's in-engine summaries equal the reference (``summarise_units``) on the same traffic, look
after look, while records keep arriving — including late, duplicated and out-of-order ones."""

from __future__ import annotations

import json

import pytest

from console.core import event_format as ef
from console.core.comparable_counts import rule_attributes
from console.core.stats.summary import group_units

from .helpers import FLAG, assert_same_summaries, rollout


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A 20% stage with 6 minutes of traffic written so far, and an events source that has looked at none of it."""
    r = rollout(tmp_path_factory.mktemp("live"), "latency-regression", minutes=6, seed=11)
    source = r.events()
    yield r, source
    source.close()


def test_summaries_equal_the_reference_look_after_look(live):
    r, source = live
    flag = r.platform.read_flag(FLAG)
    since = flag.rollout.stage_started_at.timestamp()
    group_by = tuple(sorted(rule_attributes(r.rule, flag)))
    assert group_by  # the demo rule's predicates read attributes: the groups are split by them
    seen_rows = set()
    for step in range(4):
        got = source.read_summaries(FLAG, since, 120, group_by)
        seen_rows.add(source.last_rows)
        # the simulator's own unit records are the truth; the source's unit records must be the same units
        assert_same_summaries(got, group_units(r.sim.read_units(FLAG, since, 120), group_by))
        assert_same_summaries(got, group_units(source.read_units(FLAG, since, 120), group_by))
        r.sim.advance_by(45 + 30 * step)  # new requests, new outcomes for old ones, exposures maturing
    assert max(seen_rows) <= 8  # a few rows per arm and group, however much traffic


def test_a_fresh_source_and_a_kept_one_agree_with_late_and_duplicate_records(live, tmp_path):
    r, kept = live
    flag = r.platform.read_flag(FLAG)
    since = flag.rollout.stage_started_at.timestamp()
    group_by = ("scope",)
    kept.read_summaries(FLAG, since, 120, group_by)
    # a replica flushing late: records already looked past arrive in a new file, some duplicated
    files = sorted(r.events_dir.glob("*.jsonl"))
    lines = files[0].read_text().splitlines()
    calls = [c for c in map(json.loads, lines) if c[ef.EVENT] == ef.CALL and c[ef.FLAG] == FLAG][-200:]
    late = []
    for i, record in enumerate(calls):
        copy = dict(record, **{ef.REQUEST_ID: f"late-{i}", ef.TIME: ef.rfc3339(ef.parse_time(record[ef.TIME]) - 90)})
        late.append(copy)
        if i % 3 == 0:
            late.append(copy)  # a duplicate counts once
            late.append({ef.TIME: copy[ef.TIME], ef.EVENT: ef.OUTCOME, ef.FLAG: FLAG, ef.UNIT: copy[ef.UNIT],
                         ef.REQUEST_ID: copy[ef.REQUEST_ID], ef.RESOLVED: i % 2 == 0})
    late.extend(json.loads(x) for x in lines[-50:])  # exact duplicates of records already read
    (r.events_dir / "late.jsonl").write_text("".join(json.dumps(x) + "\n" for x in late))
    # and an outcome whose time is still ahead of the source's clock: counted only once the clock passes it
    ahead = dict(late[0], **{ef.EVENT: ef.OUTCOME, ef.TIME: ef.rfc3339(r.sim.now() + 20), ef.RESOLVED: True})
    ahead = {k: v for k, v in ahead.items() if k in (ef.TIME, ef.EVENT, ef.FLAG, ef.UNIT, ef.REQUEST_ID, ef.RESOLVED)}
    ahead[ef.REQUEST_ID] = calls[-1][ef.REQUEST_ID]
    with open(r.events_dir / "late.jsonl", "a") as fh:
        fh.write(json.dumps(ahead) + "\n")
    for _ in range(2):
        got = kept.read_summaries(FLAG, since, 120, group_by)
        fresh = r.events()
        try:
            want = fresh.read_summaries(FLAG, since, 120, group_by)
            assert_same_summaries(got, want)
            assert_same_summaries(got, group_units(fresh.read_units(FLAG, since, 120), group_by))
        finally:
            fresh.close()
        # the late requests are in, each once: the simulator's requests and 200 more
        total = sum(g.summary.sums["requests"] for g in got)
        assert total == sum(u.requests for u in r.sim.read_units(FLAG, since, 120)) + len(calls)
        r.sim.advance_by(30)


def test_a_first_look_that_aggregates_histograms_in_slices_of_units_gives_the_same_summaries(live, monkeypatch):
    """At millions of requests the first look aggregates the units a slice of them at a time; the slices
    together are every unit once (here slices of 300 requests, so this traffic needs several)."""
    from adapters.metrics import events_state

    r, _ = live
    flag = r.platform.read_flag(FLAG)
    since = flag.rollout.stage_started_at.timestamp()
    group_by = tuple(sorted(rule_attributes(r.rule, flag)))
    whole, sliced = r.events(), r.events()
    try:
        want = whole.read_summaries(FLAG, since, 120, group_by)
        monkeypatch.setattr(events_state, "HIST_SLICE_REQUESTS", 300)
        requests = sum(g.summary.sums["requests"] for g in want)
        assert requests > 3 * 300  # several slices
        got = sliced.read_summaries(FLAG, since, 120, group_by)
        assert_same_summaries(got, want)
        # (not the simulator's units: the test before this one added late records the simulator never made)
        assert_same_summaries(got, group_units(whole.read_units(FLAG, since, 120), group_by))
        assert sorted(u.unit_id for u in sliced.read_units(FLAG, since, 120)) == \
            sorted(u.unit_id for u in whole.read_units(FLAG, since, 120))
    finally:
        whole.close()
        sliced.close()


def test_unit_keys_whose_hashes_collide_are_never_merged(live, monkeypatch):
    """Units are keyed by a 64-bit hash of their key inside DuckDB. Two keys with one hash (forced here) are found
    at the first look, or when the second key arrives in a later one, and the window is built again under another
    salt: the summaries are those of the exact keys."""
    from adapters.metrics import events_state

    r, _ = live
    flag = r.platform.read_flag(FLAG)
    since = flag.rollout.stage_started_at.timestamp()
    group_by = tuple(sorted(rule_attributes(r.rule, flag)))
    real = events_state.unit_key

    def exact(source):
        return source.read_summaries(FLAG, since, 120, group_by), sorted(u.unit_id for u in source.read_units(FLAG, since, 120))

    # every unit key collides under the first salt: the first look is built again under the next one
    monkeypatch.setattr(events_state, "unit_key", lambda salt, column="unit": f"(hash({column}) % 3)" if salt == 0
                        else real(salt, column))
    collided, whole = r.events(), None
    try:
        got = exact(collided)
        assert [s.salt for s in collided._states._states.values()] == [1]
        monkeypatch.setattr(events_state, "unit_key", real)
        whole = r.events()
        want = exact(whole)
        assert_same_summaries(got[0], want[0])
        assert got[1] == want[1]
    finally:
        collided.close()
        if whole is not None:
            whole.close()

    # a later look brings a unit whose key's hash is an earlier unit's
    old = want[1][0]
    monkeypatch.setattr(events_state, "unit_key", lambda salt, column="unit": (
        f"(CASE WHEN {column} = 'collider-unit' THEN hash({events_state.q.DUCKDB.quote(old)}) ELSE hash({column}) END)"
        if salt == 0 else real(salt, column)))
    kept = r.events()
    try:
        kept.read_summaries(FLAG, since, 120, group_by)
        lines = sorted(r.events_dir.glob("*.jsonl"))[0].read_text().splitlines()
        call = next(c for c in map(json.loads, reversed(lines)) if c[ef.EVENT] == ef.CALL and c[ef.FLAG] == FLAG)
        new = [dict(call, **{ef.UNIT: "collider-unit", ef.REQUEST_ID: "collider-request"}),
               {ef.TIME: call[ef.TIME], ef.EVENT: ef.EXPOSURE, ef.FLAG: FLAG, ef.UNIT: "collider-unit",
                ef.VARIANT: call[ef.VARIANT], "context.plan": "pro"}]
        (r.events_dir / "collider.jsonl").write_text("".join(json.dumps(x) + "\n" for x in new))
        got = exact(kept)
        assert [s.salt for s in kept._states._states.values()] == [1]
        monkeypatch.setattr(events_state, "unit_key", real)
        fresh = r.events()
        try:
            want = exact(fresh)
        finally:
            fresh.close()
        assert "collider-unit" in want[1] and old in want[1]
        assert_same_summaries(got[0], want[0])
        assert got[1] == want[1]
    finally:
        kept.close()


def test_kept_tables_copied_anew_and_checkpoints_of_new_lines_change_no_summary(live, monkeypatch):
    """DuckDB's automatic checkpoint is off (it rewrote the whole unit table inside a look): each later look's deleted
    rows are left behind by copying a kept table anew (here one table after every look, never both in one look), and
    JSON Lines rows are checkpointed by the source itself (here after every file). Neither changes a figure: look
    after look, the kept state's summaries are a fresh source's."""
    from adapters.metrics import events as events_source
    from adapters.metrics import events_state

    monkeypatch.setattr(events_state, "COMPACT_AT", 0.0)
    monkeypatch.setattr(events_source, "CHECKPOINT_ROWS", 1)
    r, _ = live
    flag = r.platform.read_flag(FLAG)
    since = flag.rollout.stage_started_at.timestamp()
    group_by = tuple(sorted(rule_attributes(r.rule, flag)))
    kept = r.events()
    try:
        threshold = kept.db.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]
        assert "TiB" in threshold or "TB" in threshold  # never reached
        copies = []
        for _ in range(5):
            got = kept.read_summaries(FLAG, since, 120, group_by)
            states = list(kept._states._states.values())
            copies.append(sum(states[0].compactions.values()))
            fresh = r.events()
            try:
                assert_same_summaries(got, fresh.read_summaries(FLAG, since, 120, group_by))
            finally:
                fresh.close()
            r.sim.advance_by(40)  # new requests and outcomes: rows of both kept tables replaced
        (state,) = kept._states._states.values()
        assert copies == [0, 1, 2, 3, 4]  # one table copied after each later look
        assert state.compactions[state.un] >= 1 and state.compactions[state.rq] >= 1
        assert state.rows[state.un] == kept.db.execute(f"SELECT count(*) FROM {state.un}").fetchone()[0]
        assert state.rows[state.rq] == kept.db.execute(f"SELECT count(*) FROM {state.rq}").fetchone()[0]
    finally:
        kept.close()
