"""Text from a file, a platform or an operator is shown as text: control characters as pictures, markup never read.

A flag key, a route profile, a rule's free text and a reason each carry an OSC title change, a BEL,
a screen clear and Rich markup; every screen that shows them must show them literally.
"""

from __future__ import annotations

import json

from adapters.flags.flagd_file import FlagdFilePlatform
from console.app import RouteDeckApp
from console.commands.demo import prepare_state_dir
from console.core.journal import Journal, journal_path
from console.core.rules import parse_rule
from console.screens.audit import AuditDetailScreen, AuditScreen
from console.screens.rollout import RolloutScreen
from console.screens.verdict import VerdictScreen

from ..cli.test_rollout_commands import RULE
from .helpers import sim_source, wait_for
from .test_keys import screen_cells, settle

FLAG = "support-answer-route"
OSC = "\x1b]0;pwned\x07"  # retitles the terminal
CLEAR = "\x1b[2J"  # blanks the screen
EVIL_KEY = f"evil[bold magenta]KEY[/]{OSC}"
#: what the operator must see instead: the pictures of ESC and BEL, the brackets as typed
SHOWN_OSC = "␛]0;pwned␇"


def evil_app(state_dir, **kw) -> RouteDeckApp:
    path = prepare_state_dir(state_dir)
    doc = json.loads(path.read_text())
    body = doc["flags"][FLAG]
    candidate = body["variants"]["balanced_core_v2"]
    candidate["provider"] = f"prov{CLEAR}ider"
    candidate["model"] = "[red]model[/red]"
    doc["flags"][EVIL_KEY] = json.loads(json.dumps(doc["flags"]["classify-route"]).replace("classify-route", EVIL_KEY))
    path.write_text(json.dumps(doc, indent=2))
    platform = FlagdFilePlatform(path)
    flags = {k: platform.read_flag(k) for k in platform.list_flags()}
    # a double-quoted YAML line: \e is ESC and \a is BEL in the rule file itself
    text = RULE.replace("- telemetry cannot join exposure to outcome",
                        '- "telemetry cannot join exposure to outcome \\e]0;pwned\\a [bold]now[/bold]"')
    rule = parse_rule(text, "rule.yaml")
    journal = Journal(journal_path(state_dir))
    journal.append(kind="event", action="hold", flag=FLAG, reason=f"waiting {OSC}[bold]for[/bold] units{CLEAR}")
    return RouteDeckApp(platform, sim_source(path), flags=flags, rule=rule, journal=journal, clock=lambda: 100.0, **kw)


def shows_literally(app, *wanted: str) -> None:
    svg = app.export_screenshot()
    assert "\x1b" not in svg and "\x07" not in svg, "a control character reached the screen"
    cells = " ".join(screen_cells(app))
    for text in wanted:
        assert text in cells, f"{text!r} is not on screen"


async def test_a_flag_key_is_shown_as_typed_on_the_dashboard_and_in_a_change_notice(tmp_path):
    app = evil_app(tmp_path, refresh_s=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        shows_literally(app, f"evil[bold magenta]KEY[/]{SHOWN_OSC}")
        # a change made elsewhere to that flag: the notice names it literally (markup was obeyed here before)
        platform = FlagdFilePlatform(tmp_path / "flags.json")
        flag = platform.read_flag(EVIL_KEY)
        platform.write_flag(flag.model_copy(update={"baseline": "fast_default_v1"}), flag.revision)
        await wait_for(pilot, lambda: any("changed outside this console" in n.text for n in app.session.notices))
        await pilot.pause()
        notice = next(n for n in app.session.notices if "changed outside this console" in n.text)
        assert notice.text.startswith(f"evil[bold magenta]KEY[/]{SHOWN_OSC} changed outside this console")
        shows_literally(app, "evil[bold", "Foreign change")


async def test_a_route_profile_and_the_rules_own_words_on_the_rollout_and_verdict_screens(tmp_path):
    app = evil_app(tmp_path)
    async with app.run_test(size=(150, 60)) as pilot:
        await settle(app, pilot)
        await pilot.press("o")
        await settle(app, pilot)
        assert isinstance(app.screen, RolloutScreen)
        shows_literally(app, "prov␛[2Jider", "[red]model[/red]")
        app.screen.query_one("#body").scroll_end(animate=False)  # the rule, at the end of the screen
        await pilot.pause()
        shows_literally(app, f"{SHOWN_OSC} [bold]now[/bold]")
        app.poll_verdicts()
        await wait_for(pilot, lambda: app.session.decision is not None, 20)
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(app.screen, VerdictScreen)
        shows_literally(app, f"{SHOWN_OSC} [bold]now[/bold]")


async def test_a_reason_in_the_journal_on_the_audit_screen_and_its_detail(tmp_path):
    app = evil_app(tmp_path)
    async with app.run_test(size=(150, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen.timeline is not None)
        await pilot.pause()
        shows_literally(app, f"waiting {SHOWN_OSC}[bold]for[/bold] units␛[2J")
        records = app.screen.timeline.records
        app.screen.query_one("AuditList").move_to(next(i for i, r in enumerate(records) if r.action == "hold"))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, AuditDetailScreen)
        shows_literally(app, f"reason: waiting {SHOWN_OSC}[bold]for[/bold] units␛[2J")


async def test_a_pasted_reason_shows_its_control_characters_and_is_journalled_as_shown(tmp_path):
    from textual import events

    from console.core.journal import read_entries
    from console.core.safe_text import visible
    from console.screens.confirm import ConfirmScreen

    app = evil_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("o")
        app.poll_verdicts()
        await wait_for(pilot, lambda: app.session.decision is not None, 20)
        await pilot.press("H")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 20)
        pasted = f"hold {OSC}[blink]please[/blink]"
        field = app.screen.query_one("#reason")
        field.focus()
        field.post_message(events.Paste(pasted))
        await pilot.pause()
        assert field.value == visible(pasted)
        shows_literally(app, f"hold {SHOWN_OSC}[blink]please[/blink]")
        app.screen.query_one("#confirm").press()
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen) and not app.session.writes, 20)
    holds = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "hold" and e.reason.startswith("hold ")]
    assert holds and holds[-1].reason == visible(pasted)  # what the operator saw and confirmed, nothing else
