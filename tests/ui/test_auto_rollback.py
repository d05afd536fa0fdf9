"""With a rule, the console judges the rollout and rolls a regression back on its own, with its reasons."""

from __future__ import annotations

import time

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from adapters.metrics.simulated import SimulatedMetricsSource
from console.app import RouteDeckApp
from console.commands.demo import prepare_state_dir
from console.core.journal import Journal, journal_path, read_entries
from console.core.rules import parse_rule
from console.core.simulator.evaluator import FlagdFileEvaluator

from ..cli.test_rollout_commands import RULE
from widgets.status_header import header_lines

FLAG = "support-answer-route"


def app_for(tmp_path, scenario: str) -> RouteDeckApp:
    path = prepare_state_dir(tmp_path)
    platform = FlagdFilePlatform(path)
    flags = {k: platform.read_flag(k) for k in platform.list_flags()}
    # simulated time starts now, like the demo's, so the stage's start (written at creation) is in the past
    metrics = SimulatedMetricsSource(FlagdFileEvaluator(path), scenario, seed=3, sim_epoch=time.time(),
                                     clock=lambda: 0.0, warmup_s=300, rate_rps=60)
    rule = parse_rule(RULE, "rule.yaml")
    return RouteDeckApp(platform, metrics, flags=flags, journal=Journal(journal_path(tmp_path)), rule=rule,
                        clock=lambda: 100.0)


async def wait(pilot, condition, seconds=20.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        await pilot.pause(0.05)
        if condition():
            return True
    return False


@pytest.mark.parametrize("scenario", ["provider-outage", "join-break"])
async def test_regression_is_rolled_back_automatically_with_reasons(tmp_path, scenario):
    app = app_for(tmp_path, scenario)
    async with app.run_test(size=(120, 40)) as pilot:
        app.session.metrics.advance_by(15 * 60)  # fifteen minutes of the 5% stage
        app.poll_verdicts()
        assert await wait(pilot, lambda: FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp == 0)
        assert await wait(pilot, lambda: not app.session.writes)
        header = " ".join(line.plain for line in header_lines(app.session, 200))
        # after it, the header says the rollout was rolled back by this console, and on which verdict
        assert "rolled back by this console — automatic rollback on verdict ROLLBACK: rollback:" in header
        assert any("AUTO-ROLLBACK" in n.message for n in app._notifications)
    rollbacks = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "rollback"]
    assert rollbacks[0].kind == "intent" and rollbacks[0].reason.startswith("auto-rollback: rollback:")
    assert rollbacks[0].verdict["verdict"] == "ROLLBACK" and rollbacks[1].status == "confirmed"


async def test_healthy_candidate_is_left_alone_and_verdict_shown(tmp_path):
    app = app_for(tmp_path, "steady")
    async with app.run_test(size=(120, 40)) as pilot:
        app.session.metrics.advance_by(15 * 60)
        app.poll_verdicts()
        assert await wait(pilot, lambda: app.session.decision is not None)
        assert app.session.decision.verdict.value in ("ADVANCE", "HOLD")
        header = " ".join(line.plain for line in header_lines(app.session, 200))
        assert f"verdict {app.session.decision.verdict.value}" in header
        await pilot.press("v")
        await pilot.pause()
        from console.screens.verdict import VerdictScreen

        assert isinstance(app.screen, VerdictScreen)
        await pilot.press("escape")
    assert FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp == 500


class GoesBlind:
    """Wraps a metrics source: the first reads answer, then every read fails like a source that went away."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.failing = False

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not name.startswith("read") or not callable(attr):
            return attr

        def read(*args, **kwargs):
            if self.failing:
                from console.core.errors import BackendError

                raise BackendError("prometheus:http://127.0.0.1:9 is not answering — check the server")
            return attr(*args, **kwargs)

        return read


async def test_a_candidate_serving_blind_past_the_rules_blind_after_is_rolled_back(tmp_path):
    """The metrics go away while the candidate serves: the console holds, then rolls back once the rule's
    blind_after has passed — through the one rollback, journalled — instead of holding forever."""
    app = app_for(tmp_path, "steady")
    rule = parse_rule(RULE + "  blind_after: 2m\n", "rule.yaml")
    app.session.set_rules([rule])
    source = GoesBlind(app.session.metrics)
    app.session.metrics = source
    async with app.run_test(size=(120, 40)) as pilot:
        app.poll_verdicts()
        assert await wait(pilot, lambda: app.session.decision is not None)
        source.failing = True
        app.poll_verdicts()
        assert await wait(pilot, lambda: "metrics unreadable since" in " ".join(app.session.decision.reasons))
        assert app.session.decision.verdict.value == "HOLD"
        assert FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp == 500
        source.inner.advance_by(150)  # two and a half minutes blind
        app.poll_verdicts()
        assert await wait(pilot, lambda: FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp == 0)
        assert await wait(pilot, lambda: not app.session.writes)
    rollbacks = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "rollback"]
    assert rollbacks[0].reason.startswith("auto-rollback: rollback:") and "blind" in rollbacks[0].reason
    assert rollbacks[1].status == "confirmed"


class ClockGoesToo(GoesBlind):
    """A source whose own clock is read from its data (``events:DIR?clock=data``): when the data goes away,
    asking it the time fails as well."""

    def now(self) -> float:
        if self.failing:
            from console.core.errors import BackendError

            raise BackendError("events:/srv/events: the directory is gone — was it moved or unmounted?")
        return self.inner.now()


async def test_a_source_that_cannot_tell_its_time_is_a_blind_look_not_an_unexpected_error(tmp_path):
    """The look starts by asking the source the time: when that fails, every rule's look is blind (held,
    counted against blind_after, rolled back past it) — not a worker crash that skips the blind clock."""
    app = app_for(tmp_path, "steady")
    rule = parse_rule(RULE + "  blind_after: 2m\n", "rule.yaml")
    app.session.set_rules([rule])
    source = ClockGoesToo(app.session.metrics)
    app.session.metrics = source
    async with app.run_test(size=(80, 24)) as pilot:
        app.poll_verdicts()
        assert await wait(pilot, lambda: app.session.decision is not None)
        source.failing = True
        app.poll_verdicts()
        assert await wait(pilot, lambda: "metrics unreadable since" in " ".join(app.session.decision.reasons))
        assert app.session.decision.verdict.value == "HOLD"
        assert not [n for n in app._notifications if "unexpected error" in n.message]
        app.session.blind[FLAG].since -= 150  # two and a half minutes blind
        app.poll_verdicts()
        assert await wait(pilot, lambda: FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp == 0)
        assert await wait(pilot, lambda: not app.session.writes)
    rollbacks = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "rollback"]
    assert rollbacks[0].reason.startswith("auto-rollback: rollback:") and "blind" in rollbacks[0].reason
