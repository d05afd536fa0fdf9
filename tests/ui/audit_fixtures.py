"""A fixed audit session for UI tests and snapshots: a journal with fixed times and operators, and a
flag platform whose history holds routedeck's writes and one change made by someone else."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from textual.app import App

from console.core.journal import Journal
from console.core.models import Allocation, ChangeEvent, RouteFlag
from console.core.errors import BackendError
from console.core.ports import FlagPlatform
from console.core.session import Session
from console.screens.audit import AuditScreen

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
FLAG = "support-answer-route"
OTHER = "hard-case-route"
AT5 = Allocation(internal_audience="internal_support_team", internal_enabled=True,
                 eligible_scope="english_support_chat", candidate_bp=500)
AT20 = AT5.model_copy(update={"candidate_bp": 2000})
AT0 = AT5.rolled_back()
VERDICT = {
    "verdict": "ADVANCE", "stage": "5%", "request_level": False,
    "health": [{"name": "sample ratio", "status": "pass", "detail": "p = 0.41"},
               {"name": "exposure→outcome join", "status": "pass", "detail": "98.2% joined"}],
    "metrics": [
        {"name": "resolved_without_escalation", "candidate": 0.842, "baseline": 0.815, "interval": [0.004, 0.051],
         "threshold": 0.0, "n": [612, 11890], "verdict": "superior", "critical": False},
        {"name": "p95_latency", "candidate": 2.31, "baseline": 2.12, "interval": [-0.05, 0.29], "threshold": 0.5,
         "n": [612, 11890], "verdict": "non-inferior", "critical": True},
        {"name": "fallback_rate", "candidate": 0.011, "baseline": 0.012, "interval": [-0.006, 0.004],
         "threshold": 0.02, "n": [612, 11890], "verdict": "non-inferior", "critical": True},
    ],
    "reasons": ["every guardrail is non-inferior", "the primary metric improves enough to matter"],
}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def step(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def operator(name: str) -> dict:
    return {"name": name, "os_user": name, "host": "ops-1"}


def summary(alloc: Allocation) -> dict:
    return {"describe": alloc.describe(), "baseline": "fast_default_v1", "candidate": "balanced_core_v2",
            "allocation": alloc.model_dump(mode="json", exclude_none=True)}


def write_session(state_dir: Path, extra: int = 0) -> tuple[Path, list[ChangeEvent]]:
    """The journal of a short rollout (and ``extra`` more hold decisions); returns it and the
    platform history that goes with it."""
    clock = Clock()
    path = state_dir / "journal.jsonl"
    journal = Journal(path, clock=clock)
    events: list[ChangeEvent] = []

    def change(action, before, after, who, reason, verdict=None):
        intent = journal.append(kind="intent", action=action, flag=FLAG, operator=operator(who),
                                before=before.model_dump(mode="json"), after=after.model_dump(mode="json"),
                                reason=reason, rule_hash="9f2c4e1a7b3d5c60", verdict=verdict)
        written = clock.step(0.3)
        events.append(ChangeEvent(at=written, actor=who, flag=FLAG, action="write",
                                  detail=f"{before.describe()} → {after.describe()}",
                                  before=summary(before), after=summary(after)))
        clock.step(0.2)
        journal.append(kind="outcome", action=action, flag=FLAG, operator=operator(who), status="confirmed",
                       intent_seq=intent.seq, before=before.model_dump(mode="json"),
                       after=after.model_dump(mode="json"), rule_hash="9f2c4e1a7b3d5c60",
                       detail={"revision": f"rev{intent.seq}"})
        clock.step(240)

    journal.append(kind="event", action="rule_loaded", flag=FLAG, operator=operator("ana"),
                   rule_hash="9f2c4e1a7b3d5c60", reason="console loaded the decision rule",
                   detail={"path": "rule.yaml", "by": "console"})
    clock.step(30)
    change("advance", AT5, AT20, "ana", "verdict ADVANCE", VERDICT)
    foreign_at = clock.step(100)
    events.append(ChangeEvent(at=foreign_at, actor="bob", flag=FLAG, action="edited outside routedeck",
                              detail="flags.json changed since routedeck last wrote it: now 50% of english_support_chat",
                              after=summary(AT5.model_copy(update={"candidate_bp": 5000}))))
    clock.step(5)
    journal.append(kind="event", action="foreign_change", flag=FLAG, operator=operator("ana"),
                   before=AT20.model_dump(mode="json"), after=AT5.model_copy(update={"candidate_bp": 5000}).model_dump(mode="json"),
                   reason="console saw the flag changed outside it",
                   detail={"what": "allocation 20% of english_support_chat → 50% of english_support_chat", "seen_by": "console"})
    clock.step(60)
    for i in range(extra):
        journal.append(kind="event", action="hold", flag=OTHER if i % 3 else FLAG, operator=operator("chen" if i % 2 else "dara"),
                       reason=f"hold number {i}: waiting for more units")
        clock.step(15)
    change("rollback", AT5.model_copy(update={"candidate_bp": 5000}), AT0, "ana", "R pressed in the console")
    return path, events


class HistoryPlatform(FlagPlatform):
    """A flag platform that only has a history (the audit screen reads nothing else)."""

    kind = "fixed"

    def __init__(self, events: list[ChangeEvent]) -> None:
        self.events = events

    def describe(self) -> str:
        return "fixed:history"

    def list_flags(self) -> list[str]:
        return [FLAG]

    def read_flag(self, key: str) -> RouteFlag:
        raise BackendError(f"fixed: no flag {key} (this platform only has a history)")

    def _write_flag(self, flag: RouteFlag, expected_revision: str | None) -> None:
        raise NotImplementedError

    def history(self, key: str, limit: int = 100) -> list[ChangeEvent]:
        return sorted((e for e in self.events if e.flag == key), key=lambda e: e.at, reverse=True)[:limit]


class AuditHost(App):
    """Just the audit screen, on a fixed session."""

    def __init__(self, journal: Path | None, platform: FlagPlatform | None) -> None:
        super().__init__()
        self.journal_file, self.history_platform = journal, platform

    def on_mount(self) -> None:
        session = Session(platform=self.history_platform)
        self.push_screen(AuditScreen(session, self.journal_file, self.history_platform,
                                     [FLAG] if self.history_platform else []))


def audit_host(state_dir: Path, extra: int = 0) -> AuditHost:
    path, events = write_session(state_dir, extra)
    return AuditHost(path, HistoryPlatform(events))


async def loaded(pilot) -> None:
    """Wait until the timeline is drawn and its chain checked."""
    app = pilot.app
    for _ in range(400):
        await pilot.pause(0.02)
        audit = next((s for s in app.screen_stack if isinstance(s, AuditScreen)), None)
        if audit is not None and audit.timeline is not None and (audit.timeline.report is not None
                                                                 or audit.journal is None
                                                                 or not audit.journal.exists()):
            await pilot.pause()
            return
    raise AssertionError("the audit timeline did not load")
