"""One timeline: journal entries and platform history merged, routedeck's own writes recognised,
changes made elsewhere shown with who and when; filters, time ranges and the detail view."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from console.core.audit.timeline import (
    TimelineFilter,
    allocation_changes,
    apply_filter,
    build_timeline,
    gather_history,
    pair_platform_events,
    parse_time_range,
    read_journal_records,
)
from console.core.journal import Journal, verify
from console.core.models import Allocation, ChangeEvent

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
FLAG = "support-answer-route"
AT5 = Allocation(internal_audience="staff", internal_enabled=True, eligible_scope="chat", candidate_bp=500)
AT20 = AT5.model_copy(update={"candidate_bp": 2000})
AT0 = AT5.rolled_back()


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def step(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def summary(alloc: Allocation, baseline: str = "fast", candidate: str = "balanced") -> dict:
    """What the flagd file platform's history stores for a flag."""
    return {"describe": alloc.describe(), "baseline": baseline, "candidate": candidate,
            "allocation": alloc.model_dump(mode="json", exclude_none=True)}


def write(journal: Journal, clock: Clock, action: str, before: Allocation, after: Allocation, *,
          verdict=None, reason="verdict ADVANCE", status="confirmed") -> tuple[datetime, int]:
    """An intent and its outcome around a platform write; returns the write's time and the outcome seq."""
    intent = journal.append(kind="intent", action=action, flag=FLAG, before=before.model_dump(mode="json"),
                            after=after.model_dump(mode="json"), reason=reason, verdict=verdict, rule_hash="r1")
    written = clock.step(0.2)
    clock.step(0.2)
    outcome = journal.append(kind="outcome", action=action, flag=FLAG, status=status, intent_seq=intent.seq,
                             before=before.model_dump(mode="json"),
                             after=after.model_dump(mode="json") if status == "confirmed" else None,
                             error=None if status == "confirmed" else "platform said no", rule_hash="r1")
    clock.step(60)
    return written, outcome.seq


@pytest.fixture
def session(tmp_path: Path):
    """A journal with an advance and a rollback by routedeck, and the platform's history of them
    plus one change made by someone else in between."""
    clock = Clock(T0)
    journal = Journal(tmp_path / "journal.jsonl", operator_name="ana", clock=clock)
    verdict = {"verdict": "ADVANCE", "stage": "5%", "metrics": [
        {"name": "p95_latency", "candidate": 2.1, "baseline": 2.0, "interval": [-0.1, 0.3], "threshold": 0.5,
         "n": [120, 2400], "verdict": "non-inferior", "critical": True}], "health": [], "reasons": ["all good"]}
    advanced_at, advance_seq = write(journal, clock, "advance", AT5, AT20, verdict=verdict)
    foreign_at = clock.step(30)
    clock.step(60)
    rolled_at, rollback_seq = write(journal, clock, "rollback", AT20, AT0, reason="R pressed")
    events = [
        ChangeEvent(at=advanced_at, actor="ana", flag=FLAG, action="write", detail="5% → 20%",
                    before=summary(AT5), after=summary(AT20)),
        ChangeEvent(at=foreign_at, actor="bob", flag=FLAG, action="edited outside routedeck",
                    detail="flags.json changed since routedeck last wrote it: now 50%", after=summary(
                        AT5.model_copy(update={"candidate_bp": 5000}))),
        ChangeEvent(at=rolled_at, actor="ana", flag=FLAG, action="write", detail="50% → 0%",
                    before=summary(AT20), after=summary(AT0)),
    ]
    return tmp_path / "journal.jsonl", {FLAG: list(reversed(events))}, advance_seq, rollback_seq


def test_journal_and_platform_merge_in_time_order(session):
    path, history, advance_seq, rollback_seq = session
    timeline = build_timeline(path, history)
    assert [(r.source, r.kind, r.action) for r in timeline.records] == [
        ("routedeck", "intent", "advance"), ("platform", "change", "write"), ("routedeck", "outcome", "advance"),
        ("platform", "change", "edited outside routedeck"),
        ("routedeck", "intent", "rollback"), ("platform", "change", "write"), ("routedeck", "outcome", "rollback"),
    ]
    assert [r.at for r in timeline.records] == sorted(r.at for r in timeline.records)
    assert timeline.entries == 4 and len(timeline) == 7


def test_routedecks_own_writes_are_paired_and_a_change_made_elsewhere_is_foreign(session):
    path, history, advance_seq, rollback_seq = session
    platform = [r for r in build_timeline(path, history).records if r.source == "platform"]
    assert [(r.origin, r.paired_seq) for r in platform] == [
        ("paired", advance_seq), ("outside", None), ("paired", rollback_seq)]
    foreign = platform[1]
    assert foreign.foreign and foreign.actor == "bob"
    assert foreign.time.startswith("2026-11-23T08:01:30")
    assert "not journalled by routedeck" in foreign.summary
    assert "journal seq" in platform[0].summary


def test_a_platform_change_in_the_window_but_with_another_allocation_is_not_routedecks(tmp_path):
    clock = Clock(T0)
    journal = Journal(tmp_path / "j.jsonl", clock=clock)
    written, _ = write(journal, clock, "advance", AT5, AT20)
    records, _, _ = read_journal_records(tmp_path / "j.jsonl")
    other = AT5.model_copy(update={"candidate_bp": 7000})
    sneaky = ChangeEvent(at=written, actor="eve", flag=FLAG, action="write", before=summary(AT5), after=summary(other))
    assert pair_platform_events(records, [sneaky])[0].origin == "outside"
    same = ChangeEvent(at=written, actor="ana", flag=FLAG, action="write", before=summary(AT5), after=summary(AT20))
    assert pair_platform_events(records, [same])[0].origin == "paired"
    late = ChangeEvent(at=written + timedelta(minutes=5), actor="ana", flag=FLAG, action="write",
                       before=summary(AT5), after=summary(AT20))
    assert pair_platform_events(records, [late])[0].origin == "outside"
    other_flag = ChangeEvent(at=written, actor="ana", flag="another-flag", action="write", after=summary(AT20))
    assert pair_platform_events(records, [other_flag])[0].origin == "outside"


def test_a_state_only_change_is_not_called_foreign(tmp_path):
    renewal = ChangeEvent(at=T0, actor="guard", flag=FLAG, action="write", before=summary(AT5), after=summary(AT5))
    record = pair_platform_events([], [renewal])[0]
    assert record.origin == "state" and not record.foreign and "no routing change" in record.summary


def test_events_without_allocation_pair_on_time_alone(tmp_path):
    """Platforms whose history holds raw objects (Unleash strategies) pair by the write's time window."""
    clock = Clock(T0)
    journal = Journal(tmp_path / "j.jsonl", clock=clock)
    written, outcome_seq = write(journal, clock, "advance", AT5, AT20)
    records, _, _ = read_journal_records(tmp_path / "j.jsonl")
    raw = ChangeEvent(at=written + timedelta(seconds=3), actor="admin", flag=FLAG, action="feature-strategy-updated",
                      after={"name": "flexibleRollout", "parameters": {"rollout": "20"}})
    assert pair_platform_events(records, [raw])[0].paired_seq == outcome_seq
    assert pair_platform_events(records, [raw], slack_s=1.0)[0].origin == "outside"


def test_journal_records_carry_summary_reason_status_and_chain_position(session):
    path, history, advance_seq, rollback_seq = session
    timeline = build_timeline(path, history)
    intent = timeline.by_seq(1)
    assert intent.kind == "intent" and intent.actor == "ana" and intent.reason == "verdict ADVANCE"
    assert intent.summary == f"plans {AT5.describe()} → {AT20.describe()}"
    outcome = timeline.by_seq(advance_seq)
    assert outcome.status == "confirmed" and outcome.intent_seq == 1
    assert outcome.summary == f"confirmed: platform holds {AT20.describe()}"


def test_failed_outcome_says_so(tmp_path):
    clock = Clock(T0)
    journal = Journal(tmp_path / "j.jsonl", clock=clock)
    write(journal, clock, "advance", AT5, AT20, status="failed")
    records, _, _ = read_journal_records(tmp_path / "j.jsonl")
    assert records[1].status == "failed" and records[1].summary == "FAILED: platform said no"


def test_detail_reads_the_entry_again_with_its_link_evidence_and_diff(session):
    path, history, advance_seq, _ = session
    timeline = build_timeline(path, history)
    detail = timeline.detail(timeline.by_seq(advance_seq))
    assert detail.entry.seq == advance_seq and detail.linked.seq == 1
    assert detail.after == AT20.model_dump(mode="json")
    assert detail.evidence["metrics"][0]["interval"] == [-0.1, 0.3]  # the intent's evidence, shown with its outcome
    intent = timeline.detail(timeline.by_seq(1))
    assert intent.linked.seq == advance_seq
    changes = {name: (b, a, changed) for name, b, a, changed in allocation_changes(detail.before, detail.after)}
    assert changes["candidate share"] == ("5%", "20%", True)
    assert changes["first audience"] == ("staff", "staff", False)


def test_detail_of_a_platform_change_shows_its_allocations(session):
    path, history, _, _ = session
    timeline = build_timeline(path, history)
    foreign = next(r for r in timeline.records if r.foreign)
    detail = timeline.detail(foreign)
    assert detail.entry is None and detail.after["candidate_bp"] == 5000


def test_chain_status_follows_the_verify_report(session):
    path, history, advance_seq, _ = session
    timeline = build_timeline(path, history)
    record = timeline.by_seq(1)
    assert timeline.chain_status(record) == "chain not checked yet"
    timeline.report = verify(path)
    assert timeline.chain_status(record).startswith("verified")
    paired = next(r for r in timeline.records if r.origin == "paired")
    assert "covers it: verified" in timeline.chain_status(paired)
    assert timeline.chain_status(next(r for r in timeline.records if r.foreign)).startswith("not in the journal")
    # an edited entry: it and everything after it are no longer vouched for
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"ana"', '"mallory"')
    path.write_text("".join(lines))
    timeline.report = verify(path)
    assert timeline.chain_status(record).startswith("verified")
    assert timeline.chain_status(timeline.by_seq(advance_seq)).startswith("NOT verified")


def test_unreadable_and_torn_lines_are_counted_not_hidden(tmp_path):
    clock = Clock(T0)
    journal = Journal(tmp_path / "j.jsonl", clock=clock)
    write(journal, clock, "advance", AT5, AT20)
    with open(tmp_path / "j.jsonl", "a") as fh:
        fh.write("garbage\n{\"seq\": 9, \"half")
    timeline = build_timeline(tmp_path / "j.jsonl")
    assert timeline.entries == 2 and timeline.unreadable_lines == 1 and timeline.torn_tail


def test_missing_journal_and_failing_history_are_reported(tmp_path):
    def history(key):
        if key == "broken":
            raise RuntimeError("platform answered 503")
        return [ChangeEvent(at=T0, actor="bob", flag=key, action="write", after=summary(AT5))]

    events, errors = gather_history(["ok", "broken"], history)
    timeline = build_timeline(tmp_path / "none.jsonl", events, history_errors=errors)
    assert timeline.entries == 0 and len(timeline) == 1
    assert timeline.history_errors == {"broken": "platform answered 503"}
    assert build_timeline(None).records == []


def test_filters_by_text_flag_actor_action_and_time(session):
    path, history, _, _ = session
    records = build_timeline(path, history).records
    assert apply_filter(records, TimelineFilter()) == list(range(len(records)))
    assert [records[i].actor for i in apply_filter(records, TimelineFilter(actor="BOB"))] == ["bob"]
    assert {records[i].action for i in apply_filter(records, TimelineFilter(action="roll"))} == {"rollback"}
    pressed = apply_filter(records, TimelineFilter(text="r pressed"))  # the reason, case-insensitive
    assert [(records[i].kind, records[i].reason) for i in pressed] == [("intent", "R pressed")]
    assert len(apply_filter(records, TimelineFilter(flag="nothing-like-it"))) == 0
    since = T0 + timedelta(seconds=90)
    late = apply_filter(records, TimelineFilter(since=since))
    assert late and all(records[i].at >= since.timestamp() for i in late)
    early = apply_filter(records, TimelineFilter(until=since))
    assert sorted(early + late) == list(range(len(records)))
    both = apply_filter(records, TimelineFilter(actor="ana", action="advance", text="platform holds"))
    assert [records[i].kind for i in both] == ["outcome"]


def test_filter_describes_itself_for_the_header():
    f = TimelineFilter(text="x", flag="support", since=T0)
    assert f.describe() == "/x · flag~support · time 2026-11-23 08:00..now"
    assert TimelineFilter().describe() == "" and TimelineFilter().empty


def test_time_ranges():
    now = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
    assert parse_time_range("2h", now) == (now - timedelta(hours=2), None)
    assert parse_time_range("2026-11-23T08:00..2026-11-23T09:30", now) == (
        datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc), datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc))
    assert parse_time_range("2026-11-23", now) == (
        datetime(2026, 11, 23, tzinfo=timezone.utc), datetime(2026, 11, 24, tzinfo=timezone.utc))
    assert parse_time_range("..2026-11-22", now) == (None, datetime(2026, 11, 23, tzinfo=timezone.utc))
    assert parse_time_range("  ", now) == (None, None)
    with pytest.raises(ValueError, match="use ISO 8601"):
        parse_time_range("yesterday", now)
    with pytest.raises(ValueError, match="not after the start"):
        parse_time_range("2026-11-23T09:00..2026-11-23T08:00", now)


def test_pairing_finds_the_right_write_among_many(tmp_path):
    clock = Clock(T0)
    journal = Journal(tmp_path / "j.jsonl", clock=clock)
    written = [write(journal, clock, "advance", AT5, AT20 if i % 2 else AT0) for i in range(40)]
    records, _, _ = read_journal_records(tmp_path / "j.jsonl")
    events = [ChangeEvent(at=at, actor="ana", flag=FLAG, action="write", after=summary(AT20 if i % 2 else AT0))
              for i, (at, _) in enumerate(written)]
    events.append(ChangeEvent(at=written[7][0] + timedelta(seconds=30), actor="eve", flag=FLAG, action="write",
                              after=summary(AT20)))
    paired = pair_platform_events(records, events)
    assert [r.paired_seq for r in paired[:-1]] == [seq for _, seq in written]
    assert paired[-1].origin == "outside"
