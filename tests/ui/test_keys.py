"""No dead keys: every key of the action registry does what `?` and the palette say it does."""

from __future__ import annotations

import html
import re
import time

import pytest
from textual.command import CommandPalette

from adapters.flags.flagd_file import FlagdFilePlatform
from console.actions import ACTIONS, BY_ID, key_label, local_keys_clash
from console.screens.dashboard import DashboardScreen
from console.core.errors import BackendError
from console.core.timeouts import Timeouts, use_timeouts
from console.screens.details import RouteDetailsScreen
from console.screens.help import HelpScreen

from .helpers import demo_app, wait_for, settle
from widgets.status_header import header_lines

FLAG = "support-answer-route"


def screen_cells(app) -> set[str]:
    """The runs of text on screen now (as the terminal shows them), stripped of padding."""
    svg = app.export_screenshot()
    return {html.unescape(t).replace("\xa0", " ").strip() for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)}


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


SCREENS = {"dashboard": (), "rollout": ("o",), "audit": ("a",), "budgets": ("b",), "frontier": ("f",),
           "incident": ("i",), "segments": ("s",)}


async def test_every_registered_key_means_the_same_on_every_screen(tmp_path):
    """R, ?, :, esc and q — every key of the registry — work on every screen, and no screen gives one of
    them a meaning of its own."""
    from console.commands.demo import DEMO_RULE
    from console.core.rules import load_rule

    app = demo_app(tmp_path, rule=load_rule(DEMO_RULE))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        for name, keys in SCREENS.items():
            await pilot.press(*keys)
            await settle(app, pilot)
            assert type(app.screen).__name__.lower().startswith(name), (name, app.screen)
            active = app.active_bindings
            for action in ACTIONS:
                assert action.key in active, f"{action.key} ({action.id}) is not bound on the {name} screen"
                bound = active[action.key].binding
                assert bound.id == action.id, f"{action.key} means {bound.action} on the {name} screen"
            own = [b for b in type(app.screen).BINDINGS if b.id not in BY_ID]
            assert not local_keys_clash(own), (name, local_keys_clash(own))
            footer = {b.binding.key for b in active.values() if b.binding.show}
            assert "R" in footer and "question_mark" in footer, (name, footer)
            if name != "dashboard":  # the bottom screen: esc there only clears a filter
                assert "escape" in footer, f"the {name} screen's footer does not say esc goes back"
            while len(app.screen_stack) > 1:  # the dashboard is the bottom screen
                await pilot.press("escape")  # esc goes back, everywhere
                await pilot.pause()
            assert isinstance(app.screen, DashboardScreen)


async def test_metric_window_details_and_pause_keys_change_state(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        first = app.session.trend_metric
        await pilot.press("m")
        assert app.session.trend_metric != first
        assert app.session.trend_metric in header_lines(app.session, 80)[-1].plain
        await pilot.press("M")
        assert app.session.trend_metric == first
        assert app.session.window_s == 300
        await pilot.press("right_square_bracket")
        assert app.session.window_s == 900
        await settle(app, pilot)
        assert "window 15m" in header_lines(app.session, 80)[-1].plain
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert app.session.window_s == 60
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RouteDetailsScreen)
        assert app.screen.figures.key.arm.value == "candidate"  # the dashboard starts on the candidate row
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("space")
        assert app.session.paused
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_help_shows_every_key_of_the_screen_at_80x24_even_with_a_reason_to_explain(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert dict((k, s) for k, _, s in app.screen.rows())["R"] == "ready"  # the demo starts mid-rollout
        await pilot.press("escape", "R")
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        rows = app.screen.rows()
        keys = [key for key, _, _ in rows]
        # every registry key, and the dashboard's own (details, filter, sort) — from the live bindings
        assert {key_label(a.key) for a in ACTIONS} <= set(keys)
        assert {"enter", "/", "S"} <= set(keys) and len(keys) == len(set(keys))
        assert dict((k, s) for k, _, s in rows)["R"].startswith("unavailable: ")
        # the rendered help, not only the model behind it, names every key
        cells = screen_cells(app)
        for key in keys:
            assert key in cells, f"{key} is not on screen"


async def test_help_on_the_rollout_screen_lists_its_keys_not_the_dashboards(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("o")
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        keys = [key for key, _, _ in app.screen.rows()]
        assert "tab" in keys and "/" not in keys and "S" not in keys and "enter" not in keys


async def test_palette_lists_every_view_and_runs_the_chosen_one(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        options = app.screen.query_one("CommandList")
        wanted = [a.label for a in ACTIONS if a.id not in ("command_palette", "back") and not a.writes]
        await wait_for(pilot, lambda: options.option_count == len(wanted))
        listed = [str(options.get_option_at_index(i).prompt).split("\n")[0] for i in range(options.option_count)]
        assert listed == wanted  # a change of traffic is offered only on its exact name
        await pilot.press(*"pause")
        # fuzzy matching keeps other actions whose words hold the letters; the best match comes first
        await wait_for(pilot, lambda: options.option_count >= 1
                       and str(options.get_option_at_index(0).prompt).startswith("Pause"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.session.paused)


async def test_read_only_offers_no_rollback_in_help_or_palette(tmp_path):
    app = demo_app(tmp_path, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert "R" not in [key for key, _, _ in app.screen.rows()]
        await pilot.press("escape")
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        options = app.screen.query_one("CommandList")
        expected = [a.label for a in ACTIONS if a.id not in ("command_palette", "back") and not a.writes]
        await wait_for(pilot, lambda: options.option_count >= len(expected))  # every discovery hit is in
        listed = [str(options.get_option_at_index(i).prompt).split("\n")[0] for i in range(options.option_count)]
        assert listed == expected
        await pilot.press(*"rollback")
        await pilot.pause(0.3)
        assert not [i for i in range(options.option_count)
                    if str(options.get_option_at_index(i).prompt).startswith("Rollback")]


class BrokenDisk(FlagdFilePlatform):
    """The flag file cannot be written: the rollback fails after the key is pressed."""

    def rollback_to_baseline(self, key, seen_revision=None, rollout=None):
        raise BackendError(f"{self.path}: no space left on device — free space, then press R again")


@pytest.fixture
def quick_rollback():
    """A rollback that cannot be written is retried for the profile's rollback_within (30 s by default):
    half a second here, so the failure is reported within the test."""
    use_timeouts(Timeouts(rollback_within_s=0.5))


async def test_failed_rollback_says_the_state_is_unknown(tmp_path, quick_rollback):
    app = demo_app(tmp_path)
    app.session.platform = BrokenDisk(tmp_path / "flags.json")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("R")
        await settle(app, pilot)
        failed = [n for n in app._notifications if "FAILED" in n.message]
        assert failed and failed[0].severity == "error"
        assert "unknown" in failed[0].message and "no space left" in failed[0].message
        assert not app.session.writes  # R can be pressed again
        assert FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp == 500


async def test_rollback_reports_a_change_made_elsewhere_since_the_last_read(tmp_path):
    app = demo_app(tmp_path, refresh_s=60)  # the console has not re-read the flag when R is pressed
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        other = FlagdFilePlatform(tmp_path / "flags.json")
        flag = other.read_flag(FLAG)
        other.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 2000}), flag.revision)
        await pilot.press("R")
        await settle(app, pilot)
        done = [m for m in messages(app) if "confirmed by read-back" in m]
        assert done and "changed elsewhere" in done[0] and "20%" in done[0]
        assert FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp == 0


class CountingBrokenDisk(BrokenDisk):
    """Counts the flag polls (each lists the flags once)."""

    calls: list[float] = []

    def list_flags(self):
        type(self).calls.append(time.monotonic())
        return super().list_flags()


async def test_failed_rollbacks_do_not_multiply_the_flag_polls(tmp_path, quick_rollback):
    app = demo_app(tmp_path, refresh_s=0.2)
    app.session.platform = CountingBrokenDisk(tmp_path / "flags.json")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        for _ in range(4):  # each failure re-reads the flag at once
            await pilot.press("R")
            await wait_for(pilot, lambda: not app.session.writes)
        await pilot.pause(0.5)
        watched_from = time.monotonic()
        await pilot.pause(1.5)
    polls = [t for t in CountingBrokenDisk.calls if t >= watched_from]
    gaps = [b - a for a, b in zip(polls, polls[1:])]
    # one chain of polls, each 0.2 s after the last one finished: a load can only lengthen the gaps,
    # while a second chain would interleave its polls with the first one's
    assert len(polls) >= 3 and min(gaps) >= 0.15, gaps


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_footer_keys_show_whole_or_not_at_all(tmp_path, size):
    """On every screen each key in the footer is whole inside the terminal (Textual's footer scrolls the rest
    off its edge, cut mid-word). At 80 columns the rollout screen's ten keys need 84: a greyed-out one is left
    out, while Rollback, esc, ? and q stay; at 120 every one shows."""
    from textual.widgets._footer import FooterKey

    from console.commands.demo import DEMO_RULE
    from console.core.rules import load_rule

    app = demo_app(tmp_path, rule=load_rule(DEMO_RULE))
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        for name, keys in SCREENS.items():
            await pilot.press(*keys)
            await settle(app, pilot)
            shown = [k for k in app.screen.query(FooterKey) if k.display]
            for key in shown:
                region = key.region
                assert region.width > 0 and region.right <= size[0], (name, key.key, region)
                assert region.width >= len(key.key_display) + 1 + len(key.description), (name, key.key, region)
            labels = {k.key for k in shown}
            if name == "rollout":
                assert {"R", "escape", "question_mark", "q"} <= labels, labels
                every = {k.key for k in app.screen.query(FooterKey)}
                left_out = every - labels
                if size[0] == 120:
                    assert not left_out
                else:
                    assert left_out and all(k.has_class("-disabled") for k in app.screen.query(FooterKey)
                                            if k.key in left_out), left_out
            while len(app.screen_stack) > 1:
                await pilot.press("escape")
                await pilot.pause()
