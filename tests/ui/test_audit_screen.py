"""The audit screen as a reviewer uses it: open it with `a`, move, search, filter, open a record;
the console journals the rule it loaded and a change made outside it."""

from __future__ import annotations

import errno
import json
import time

from adapters.flags.flagd_file import FlagdFilePlatform
from adapters.metrics.simulated import SimulatedMetricsSource
from console.app import RouteDeckApp
from console.commands.demo import prepare_state_dir
from console.core.audit import writer as writer_module
from console.core.journal import Journal, journal_path, read_entries
from console.core.rules import parse_rule
from console.core.simulator.evaluator import FlagdFileEvaluator
from console.screens.audit import AuditDetailScreen, AuditScreen
from widgets.audit_list import AuditList

from ..cli.test_rollout_commands import RULE
from .audit_fixtures import FLAG, OTHER, AuditHost, audit_host, loaded, write_session
from .helpers import demo_app, wait_for, settle


def audit_of(app) -> AuditScreen:
    return next(s for s in app.screen_stack if isinstance(s, AuditScreen))


def header(app) -> str:
    return str(audit_of(app).query_one("#audit-header").render())


def shown(app) -> list:
    screen = audit_of(app)
    return [screen.timeline.records[i] for i in screen.shown]


def current(app):
    return audit_of(app).query_one(AuditList).highlighted


# ---- opening it --------------------------------------------------------------------------


async def test_a_opens_the_timeline_of_a_demo_session_from_the_dashboard(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("R")
        await settle(app, pilot)
        await pilot.press("a")
        await loaded(pilot)
        assert isinstance(app.screen, AuditScreen)
        records = shown(app)
        journal = [(r.kind, r.action) for r in records if r.source == "routedeck"]
        # the demo's set-up journals the three flags it creates, then the rollback
        assert journal == [("intent", "init"), ("outcome", "init")] * 3 + [("intent", "rollback"), ("outcome", "rollback")]
        assert not [r for r in records if r.foreign]  # nothing here was made outside routedeck
        paired = [r for r in records if r.origin == "paired"]
        assert paired[-1].paired_seq == 8  # the platform's record of the rollback is routedeck's
        assert "chain verified (seq 8)" in header(app)
        assert current(app) is records[-1]  # opens on the newest record
        await pilot.press("escape")  # esc goes back; q quits the console, as on every screen
        await pilot.pause()
        assert not isinstance(app.screen, AuditScreen)


async def test_the_palette_offers_the_audit_screen_in_a_read_only_console(tmp_path):
    from textual.command import CommandPalette

    app = demo_app(tmp_path, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        options = app.screen.query_one("CommandList")
        await pilot.press(*"audit")
        await wait_for(pilot, lambda: options.option_count >= 1
                       and str(options.get_option_at_index(0).prompt).startswith("Audit"))
        await pilot.press("enter")
        await loaded(pilot)
        assert isinstance(app.screen, AuditScreen)
        # only the demo's set-up is journalled: its three flags, each paired with the platform's record
        assert audit_of(app).timeline.entries == 6
        assert {r.action for r in shown(app) if r.source == "routedeck"} == {"init"}
        assert not [r for r in shown(app) if r.foreign] and "chain verified (seq 6)" in header(app)


async def test_without_a_journal_the_screen_says_so(tmp_path):
    app = demo_app(tmp_path, journal=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("a")
        await loaded(pilot)
        assert "no audit journal" in header(app)


# ---- moving ------------------------------------------------------------------------------


async def test_j_k_g_G_and_arrows_move_through_the_records(tmp_path):
    app = audit_host(tmp_path, extra=40)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        records = shown(app)
        assert current(app) is records[-1]
        await pilot.press("g")
        assert current(app) is records[0]
        await pilot.press("j", "j", "down")
        assert current(app) is records[3]
        await pilot.press("k", "up")
        assert current(app) is records[1]
        await pilot.press("G")
        assert current(app) is records[-1]
        await pilot.press("j")  # past the end stays at the end
        assert current(app) is records[-1]
        await pilot.press("pageup")
        listing = audit_of(app).query_one(AuditList)
        assert listing.cursor == len(records) - listing.size.height
        assert listing.scroll_offset.y <= listing.cursor < listing.scroll_offset.y + listing.size.height


async def test_only_the_lines_on_screen_are_widgets_however_long_the_journal(tmp_path):
    small = audit_host(tmp_path / "small")
    (tmp_path / "big").mkdir()
    big = audit_host(tmp_path / "big", extra=600)
    counts = []
    for app in (small, big):
        (tmp_path / "small").mkdir(exist_ok=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            counts.append((len(list(app.screen.query("*"))), len(shown(app))))
    assert counts[1][1] > counts[0][1] + 500
    assert counts[0][0] == counts[1][0]


# ---- searching and filtering ---------------------------------------------------------------


async def test_slash_searches_reason_actor_action_and_summary(tmp_path):
    app = audit_host(tmp_path, extra=12)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        total = len(shown(app))
        await pilot.press("slash", *"R PRESSED", "enter")
        await pilot.pause()
        assert [(r.kind, r.action) for r in shown(app)] == [("intent", "rollback")]
        assert "/R PRESSED" in header(app) and f"showing 1 of {total}" in header(app)
        await pilot.press("slash", *"not in any record", "enter")
        await pilot.pause()
        assert shown(app) == [] and "no record matches" in audit_of(app).query_one(AuditList).empty_text
        await pilot.press("escape")
        await pilot.pause()
        assert len(shown(app)) == total and "filters:" not in header(app)


async def test_filters_by_flag_who_action_and_time_show_in_the_header_and_escape_clears_them(tmp_path):
    app = audit_host(tmp_path, extra=12)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        total = len(shown(app))
        await pilot.press("F", *"hard", "enter")
        await pilot.pause()
        assert shown(app) and {r.flag for r in shown(app)} == {OTHER}
        await pilot.press("w", *"chen", "enter")
        await pilot.pause()
        assert shown(app) and {(r.flag, r.actor) for r in shown(app)} == {(OTHER, "chen")}
        await pilot.press("t", *"hold", "enter")
        await pilot.pause()
        assert {r.action for r in shown(app)} == {"hold"}
        text = header(app)
        assert "flag~hard" in text and "who~chen" in text and "action~hold" in text
        await pilot.press("escape")
        await pilot.pause()
        assert len(shown(app)) == total
        await pilot.press("d", *"2026-11-23T08:00..2026-11-23T08:05", "enter")
        await pilot.pause()
        assert {r.action for r in shown(app)} == {"rule_loaded", "advance", "write"}
        assert "time 2026-11-23 08:00..2026-11-23 08:05" in header(app)
        await pilot.press("escape", "escape")  # clear, then close
        await pilot.pause()
        assert not any(isinstance(s, AuditScreen) for s in app.screen_stack)


async def test_a_bad_time_range_is_one_line_and_the_prompt_stays(tmp_path):
    app = audit_host(tmp_path)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await loaded(pilot)
        await pilot.press("d", *"yesterday", "enter")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("time range: time 'yesterday': use ISO 8601" in m for m in messages)
        assert audit_of(app)._prompting == "range"
        await pilot.press("escape")
        await pilot.pause()
        assert audit_of(app)._prompting is None and isinstance(app.screen, AuditScreen)


# ---- the detail ---------------------------------------------------------------------------


def detail_text(app) -> str:
    from rich.console import Console

    console = Console(width=110, record=True, file=open("/dev/null", "w"))
    console.print(app.screen.body())
    return console.export_text()


async def test_enter_opens_the_decision_with_diff_evidence_who_and_chain(tmp_path):
    app = audit_host(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("slash", *"verdict advance", "enter", "enter")
        await pilot.pause()
        assert isinstance(app.screen, AuditDetailScreen)
        text = detail_text(app)
        assert "advance · support-answer-route · 2026-11-23T08:00:30" in text
        assert "who: ana (ana@ops-1)" in text and "reason: verdict ADVANCE" in text
        assert "rule hash: 9f2c4e1a7b3d5c60" in text
        assert "outcome: confirmed" in text
        assert "chain: verified" in text
        assert "▸ candidate share" in text and "5%" in text and "20%" in text
        assert "resolved_without_escalation" in text and "[0.004, 0.051]" in text and "612/11,890" in text
        assert "p95_latency *" in text and "sample ratio" in text
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, AuditScreen)


async def test_a_change_made_elsewhere_says_who_and_when_and_routedecks_own_write_says_so(tmp_path):
    app = audit_host(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        records = shown(app)
        foreign = next(r for r in records if r.foreign)
        assert foreign.actor == "bob" and "not journalled" in foreign.summary
        assert "1 not journalled" in header(app)
        listing = audit_of(app).query_one(AuditList)
        listing.move_to(records.index(foreign))
        await pilot.press("enter")
        await pilot.pause()
        text = detail_text(app)
        assert "made by bob at 2026-11-23T08:06:10" in text and "no journal entry covers it" in text
        assert "▸ candidate share" in text and "50%" in text
        await pilot.press("escape")
        paired = next(r for r in records if r.origin == "paired" and r.action == "write")
        listing.move_to(records.index(paired))
        await pilot.press("enter")
        await pilot.pause()
        text = detail_text(app)
        assert f"made by routedeck: the journal's write at seq {paired.paired_seq}" in text
        assert f"the journal's write at seq {paired.paired_seq} covers it: verified" in text


async def test_an_edited_journal_shows_as_not_verified(tmp_path):
    path, events = write_session(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("verdict ADVANCE", "verdict ADVANCE!")
    path.write_text("".join(lines))
    from .audit_fixtures import HistoryPlatform

    app = AuditHost(path, HistoryPlatform(events))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert "NOT VERIFIED" in header(app) and "line 2" in header(app)
        audit_of(app).query_one(AuditList).move_to(len(shown(app)) - 1)
        await pilot.press("enter")
        await pilot.pause()
        assert "chain: NOT verified: the chain breaks at line 2" in detail_text(app)


# ---- what the console journals --------------------------------------------------------------


def _hand_edit(path, key: str) -> None:
    """Someone edits the flag file by hand: a new token limit on the candidate."""
    doc = json.loads(path.read_text())
    variants = doc["flags"][key]["variants"]
    name = sorted(variants)[0]
    variants[name]["maxOutputTokens"] = 123
    path.write_text(json.dumps(doc, indent=2))


async def test_a_foreign_change_is_journalled_and_shows_in_the_timeline(tmp_path):
    app = demo_app(tmp_path, refresh_s=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("R")  # routedeck writes once, so the platform's history knows its last write
        await settle(app, pilot)
        _hand_edit(tmp_path / "flags.json", FLAG)
        await wait_for(pilot, lambda: any(e.action == "foreign_change"
                                          for e in read_entries(tmp_path / "journal.jsonl")))
        (seen,) = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "foreign_change"]
        assert seen.kind == "event" and seen.flag == FLAG and "edited" in seen.detail["what"]
        await pilot.press("a")
        await loaded(pilot)
        records = shown(app)
        assert any(r.action == "foreign_change" and r.source == "routedeck" for r in records)
        outside = [r for r in records if r.foreign]
        assert outside and outside[-1].action == "edited outside routedeck" and outside[-1].flag == FLAG


async def test_an_unwritable_journal_warns_and_the_console_goes_on(tmp_path, monkeypatch):
    app = demo_app(tmp_path, refresh_s=0.1)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(app, pilot)

        def full(fd, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(writer_module.os, "write", full)
        _hand_edit(tmp_path / "flags.json", FLAG)
        await wait_for(pilot, lambda: any("audit journal:" in n.message for n in app._notifications))
        note = next(n.message for n in app._notifications if "audit journal:" in n.message)
        assert "free space" in note and "foreign_change not recorded" in note
        assert app.is_running and FLAG in app.session.foreign


async def test_the_console_journals_the_rule_it_loaded(tmp_path):
    path = prepare_state_dir(tmp_path)
    platform = FlagdFilePlatform(path)
    flags = {k: platform.read_flag(k) for k in platform.list_flags()}
    metrics = SimulatedMetricsSource(FlagdFileEvaluator(path), "steady", seed=3, sim_epoch=time.time(),
                                     clock=lambda: 0.0, warmup_s=60)
    rule = parse_rule(RULE, "rule.yaml")
    app = RouteDeckApp(platform, metrics, flags=flags, journal=Journal(journal_path(tmp_path)), rule=rule,
                       clock=lambda: 100.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: any(e.action == "rule_loaded" for e in read_entries(tmp_path / "journal.jsonl")))
    loaded_ = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action.startswith("rule_")]
    assert loaded_[0].action == "rule_loaded" and loaded_[0].rule_hash == rule.rule_hash
    assert loaded_[0].detail == {"path": "rule.yaml", "by": "console"}
    stored = flags[rule.flag_key].rollout.rule_hash if flags[rule.flag_key].rollout else None
    changed = [e for e in loaded_ if e.action == "rule_changed"]
    assert len(changed) == (1 if stored and stored != rule.rule_hash else 0)


def test_evidence_keeps_every_figure_in_a_narrow_terminal():
    from rich.console import Console

    from widgets.audit_detail import evidence_renderable

    from .audit_fixtures import VERDICT

    for width in (74, 118):
        console = Console(width=width, record=True, file=open("/dev/null", "w"))
        console.print(evidence_renderable(VERDICT))
        text = console.export_text()
        assert all(len(line.rstrip()) <= width for line in text.splitlines())
        for m in VERDICT["metrics"]:
            assert m["name"] in text and m["verdict"] in text
            assert f"[{m['interval'][0]:.4g}, {m['interval'][1]:.4g}]" in text
        assert text.count("612/11,890") == 3 and "sample ratio" in text and "every guardrail is non-inferior" in text
