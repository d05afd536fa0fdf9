"""The rollout screen: a healthy candidate walked from internal to promoted with confirmed actions,
greyed actions that explain themselves, cancel that changes nothing, and an override that needs a reason."""

from __future__ import annotations

import time
from pathlib import Path

from adapters.flags.flagd_file import FlagdFilePlatform
from adapters.metrics.simulated import SimulatedMetricsSource
from console.app import RouteDeckApp
from console.commands.demo import DEMO_RULE, prepare_state_dir
from console.core.journal import Journal, journal_path, read_entries
from console.core.rules import parse_rule
from console.core.simulator.evaluator import FlagdFileEvaluator
from console.screens.confirm import ConfirmScreen
from console.screens.help import HelpScreen
from console.screens.rollout import RolloutScreen

from .helpers import sim_source, wait_for
from widgets.status_header import header_lines
from console.core import availability as av

FLAG = "support-answer-route"


def rollout_app(state_dir: Path, *, scenario: str = "steady", fresh: bool = True) -> RouteDeckApp:
    path = prepare_state_dir(state_dir, fresh=fresh)
    platform = FlagdFilePlatform(path)
    flags = {k: platform.read_flag(k) for k in platform.list_flags()}
    rule = parse_rule(DEMO_RULE.read_text(), "rule-demo.yaml")
    if fresh:  # every stage starts on the simulator's clock: a fixed epoch keeps runs identical
        metrics = sim_source(path, scenario)
    else:  # the demo's stage started at the file's creation: simulated time must start after it, as in the demo
        metrics = SimulatedMetricsSource(FlagdFileEvaluator(path), scenario, seed=7, sim_epoch=time.time() + 1,
                                         clock=lambda: 0.0, warmup_s=300)
    return RouteDeckApp(platform, metrics, flags=flags, rule=rule,
                        journal=Journal(journal_path(state_dir)), clock=lambda: 100.0)


def stored(state_dir: Path):
    return FlagdFilePlatform(state_dir / "flags.json").read_flag(FLAG)


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


async def fresh_verdict(app, pilot) -> None:
    """Ask for a look now and wait for its answer."""
    before = app.session.decision
    app.poll_verdicts()
    await wait_for(pilot, lambda: app.session.decision is not before and (app.session.decision is not None or app.session.verdict_error), 20)


async def confirm(app, pilot, key: str, reason: str = "") -> None:
    """Press ``key``, check the dialog opened with Cancel focused, type ``reason``, confirm, wait for the write."""
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 20)
    assert app.focused is not None and app.focused.id == "cancel"
    if reason:
        app.screen.query_one("#reason").value = reason
    app.screen.query_one("#confirm").press()
    await wait_for(pilot, lambda: not (app.session.pending or app.session.writes) and not isinstance(app.screen, ConfirmScreen), 20)


async def test_a_healthy_candidate_walks_from_internal_to_promoted(tmp_path):
    app = rollout_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("o")
        assert isinstance(app.screen, RolloutScreen)
        await fresh_verdict(app, pilot)
        seen_stages = []
        for _ in range(240):  # one look per simulated minute; the demo rule needs about 90
            flag = stored(tmp_path)
            stage = flag.rollout.stage_label or flag.rollout.stage.value
            if stage == "promoted":
                break
            if not seen_stages or seen_stages[-1] != stage:
                seen_stages.append(stage)
            if av.rollout_why_not(app.session, "acknowledge") is None:
                await confirm(app, pilot, "K")
            elif av.rollout_why_not(app.session, "advance") is None:
                await confirm(app, pilot, "A", reason=f"walk from {stage}")
            elif av.rollout_why_not(app.session, "promote") is None:
                await confirm(app, pilot, "P")
            else:
                assert app.session.decision.verdict.value != "ROLLBACK", app.session.decision.reasons
                app.session.metrics.advance_by(60)
            await fresh_verdict(app, pilot)
        assert seen_stages == ["baseline", "internal", "5%", "20%", "full"]
        final = stored(tmp_path)
        assert final.rollout.stage.value == "promoted" and final.baseline == "balanced_core_v2"
        assert "promoted" in str(app.screen.query_one("#ladder").render())
    entries = list(read_entries(tmp_path / "journal.jsonl"))
    advances = [e for e in entries if e.action == "advance"]
    assert [e.kind for e in advances] == ["intent", "outcome"] * 4
    assert advances[0].reason == "walk from baseline" and advances[1].status == "confirmed"
    assert [e.kind for e in entries if e.action == "promote"] == ["intent", "outcome"], [(e.kind, e.action) for e in entries]
    acks = [e for e in entries if e.action == "acknowledge" and e.kind == "intent"]
    assert len(acks) == 5  # the demo rule's one checklist item, at each stage from baseline to full


async def test_a_greyed_action_explains_itself_on_its_key_and_in_help(tmp_path):
    app = rollout_app(tmp_path, fresh=False)  # mid-rollout at 5%, just started: far from its minimum units
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("o")
        await fresh_verdict(app, pilot)
        assert app.session.decision.verdict.value == "HOLD"
        await pilot.press("A")
        await pilot.pause()
        said = [m for m in messages(app) if m.startswith("advance:")]
        assert said and "HOLD" in said[-1] and "minimum units" in " ".join(app.session.decision.reasons)
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("P")
        await pilot.pause()
        assert any(m.startswith("promote: at stage 5%: promote only from the last stage (full)") for m in messages(app))
        await pilot.press("question_mark")
        await pilot.pause()
        rows = {label.split(" — ")[0]: status for _, label, status in app.screen.rows()}
        assert isinstance(app.screen, HelpScreen)
        assert rows["Advance"].startswith("unavailable: HOLD — ")
    assert stored(tmp_path).allocation.candidate_bp == 500


async def test_cancel_changes_nothing_and_override_needs_a_reason(tmp_path):
    app = rollout_app(tmp_path, fresh=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("o")
        await fresh_verdict(app, pilot)
        before = stored(tmp_path)
        await pilot.press("O")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 20)
        change = str(app.screen.query_one("#change").render())
        assert "5% of english_support_chat" in change and "20% of english_support_chat" in change
        await pilot.press("escape")
        await wait_for(pilot, lambda: not (app.session.pending or app.session.writes))
        assert stored(tmp_path).revision == before.revision
        assert any("cancelled: nothing changed" in m for m in messages(app))

        await pilot.press("O")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 20)
        app.screen.query_one("#confirm").press()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)  # no reason, no override
        assert "reason is required" in str(app.screen.query_one("#problem").render())
        assert stored(tmp_path).revision == before.revision
        app.screen.query_one("#reason").value = "capacity test agreed with the owners"
        app.screen.query_one("#confirm").press()
        await wait_for(pilot, lambda: not (app.session.pending or app.session.writes) and not isinstance(app.screen, ConfirmScreen), 20)
    after = stored(tmp_path)
    assert after.rollout.stage_label == "20%" and after.allocation.candidate_bp == 2000
    assert after.rollout.overrides[-1].reason == "capacity test agreed with the owners"
    overrides = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "override"]
    assert overrides[0].reason == "capacity test agreed with the owners" and overrides[0].verdict["verdict"] == "HOLD"


async def test_hold_is_recorded_with_its_evidence_and_writes_nothing(tmp_path):
    app = rollout_app(tmp_path, fresh=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("o")
        await fresh_verdict(app, pilot)
        before = stored(tmp_path)
        await confirm(app, pilot, "H", reason="waiting for the weekly traffic peak")
    assert stored(tmp_path).revision == before.revision
    holds = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "hold"]
    assert len(holds) == 1 and holds[0].reason == "waiting for the weekly traffic peak"
    assert holds[0].verdict["verdict"] == "HOLD" and holds[0].verdict["metrics"]


async def test_latency_regression_rolls_back_on_its_own_with_the_reason_on_the_rollout_screen(tmp_path):
    app = rollout_app(tmp_path, scenario="latency-regression", fresh=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("o")
        for _ in range(60):
            if stored(tmp_path).allocation.candidate_bp == 0:
                break
            app.session.metrics.advance_by(60)
            await fresh_verdict(app, pilot)
        await wait_for(pilot, lambda: not app.session.writes, 20)
        await wait_for(pilot, lambda: app.session.flags[FLAG].rollout.stage.value == "rolled_back", 20)
        app.screen.redraw()
        await pilot.pause()
        ladder = str(app.screen.query_one("#ladder").render())
        verdict = str(app.screen.query_one("#verdict").render())
        assert "ROLLED BACK" in ladder
        assert any("AUTO-ROLLBACK" in m for m in messages(app))
    assert stored(tmp_path).allocation.candidate_bp == 0
    rollbacks = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "rollback"]
    assert rollbacks[0].reason.startswith("auto-rollback: rollback:") and rollbacks[1].status == "confirmed"
    assert "rolled back" in verdict or "ROLLBACK" in verdict


async def test_tab_cycles_through_every_flag_with_a_candidate(tmp_path):
    app = rollout_app(tmp_path, fresh=False)
    platform = FlagdFilePlatform(tmp_path / "flags.json")
    hard = platform.read_flag("hard-case-route")
    # a second flag with a candidate, without a rule: its ladder, allocation and live numbers still show
    platform.write_flag(hard.model_copy(update={"candidate": "fallback_baseline_v1"}), hard.revision)
    app.session.flags["hard-case-route"] = platform.read_flag("hard-case-route")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("o")
        await pilot.pause()
        assert FLAG in str(app.screen.query_one("#flagline").render())
        await pilot.press("tab")
        await pilot.pause()
        assert "hard-case-route" in str(app.screen.query_one("#flagline").render())
        assert "no decision rule for this flag" in str(app.screen.query_one("#verdict").render())
        # R is about the flag in view: it serves no candidate, so R says so instead of acting on another flag
        target, why = av.rollback_target(app.session)
        assert target is None and why.startswith("hard-case-route already serves 100% baseline"), why


HARD_RULE = """
llm_route_decision:
  flag_key: hard-case-route
  candidate_route: fallback_baseline_v1
  baseline_route: premium_hard_cases_v1
  first_audience: internal_support_team
  eligible_scope: english_support_chat
  primary_metric: resolved_without_escalation
  guardrails: [fallback_rate]
"""


async def test_several_flags_each_with_its_rule_are_judged_and_acted_on_separately(tmp_path):
    app = rollout_app(tmp_path, fresh=False)
    platform = FlagdFilePlatform(tmp_path / "flags.json")
    hard = platform.read_flag("hard-case-route")
    platform.write_flag(hard.model_copy(update={"candidate": "fallback_baseline_v1"}), hard.revision)
    app.session.flags["hard-case-route"] = platform.read_flag("hard-case-route")
    app.session.set_rules([*app.session.rules.values(), parse_rule(HARD_RULE, "hard.yaml")])
    async with app.run_test(size=(120, 40)) as pilot:
        app.poll_verdicts()
        await wait_for(pilot, lambda: set(app.session.decisions) == {FLAG, "hard-case-route"}, 20)
        header = [line.plain for line in header_lines(app.session, 200)]
        assert any(line.startswith(f"{FLAG} · verdict") for line in header)
        assert any(line.startswith("hard-case-route · verdict") for line in header)
        await pilot.press("o")
        await pilot.pause()
        assert app.session.rule.flag_key == FLAG
        await pilot.press("tab")
        await pilot.pause()
        # the flag in view decides which rule, verdict and actions apply
        assert app.session.rule.flag_key == "hard-case-route" and app.session.decision is app.session.decisions["hard-case-route"]
        assert "not started" in str(app.screen.query_one("#ladder").render())
        await pilot.press("A")  # not started: the verdict is ADVANCE and the first stage is internal
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 20)
        assert "Advance hard-case-route?" in str(app.screen.query_one("#title").render())
        app.screen.query_one("#confirm").press()
        await wait_for(pilot, lambda: not (app.session.pending or app.session.writes) and not isinstance(app.screen, ConfirmScreen), 20)
    flags = FlagdFilePlatform(tmp_path / "flags.json")
    assert flags.read_flag("hard-case-route").rollout.stage_label == "internal"
    assert flags.read_flag(FLAG).allocation.candidate_bp == 500  # the other rollout is untouched


async def test_the_new_stage_starts_when_the_operator_confirms_not_when_the_dialog_opened(tmp_path):
    app = rollout_app(tmp_path)  # fresh: not started, the verdict allows the first advance
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("o")
        await fresh_verdict(app, pilot)
        await pilot.press("A")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 20)
        app.session.metrics.advance_by(600)  # ten simulated minutes pass while the dialog is open
        confirmed_at = app.session.metrics.now()
        app.screen.query_one("#confirm").press()
        await wait_for(pilot, lambda: not (app.session.pending or app.session.writes) and not isinstance(app.screen, ConfirmScreen), 20)
    started = stored(tmp_path).rollout.stage_started_at.timestamp()
    assert confirmed_at <= started < confirmed_at + 5  # traffic served before the write is not the stage's


async def test_a_rolled_back_rollout_starts_again_with_n_only_once_it_has_ended(tmp_path):
    app = rollout_app(tmp_path, fresh=False)  # mid-rollout at 5%
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("o")
        await fresh_verdict(app, pilot)
        await pilot.press("N")
        await pilot.pause()
        assert any("the rollout is at stage 5%: a new one starts only after" in m for m in messages(app)), messages(app)
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("R")
        await wait_for(pilot, lambda: stored(tmp_path).rollout.stage.value == "rolled_back", 20)
        await wait_for(pilot, lambda: app.session.flags[FLAG].rollout.stage.value == "rolled_back", 20)
        await wait_for(pilot, lambda: "N starts a new rollout" in str(app.screen.query_one("#ladder").render()))
        await pilot.press("A")
        await pilot.pause()
        assert any("rolled back: nothing to advance — N starts a new one" in m for m in messages(app))
        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 20)
        dialog = app.screen
        dialog.query_one("#reason").value = "second attempt after the fix"
        dialog.query_one("#confirm").press()  # no cohort picked: nothing is picked for the operator
        await pilot.pause()
        assert app.screen is dialog and "choose cohort first" in str(dialog.query_one("#problem").render())
        dialog.query_one("#choice-cohort").value = "new"
        dialog.query_one("#confirm").press()
        await wait_for(pilot, lambda: not (app.session.pending or app.session.writes)
                       and not isinstance(app.screen, ConfirmScreen), 20)
        flag = stored(tmp_path)
        assert flag.allocation.cohort_salt is not None  # a new cohort: other units come first this time
        assert flag.rollout.stage.value == "baseline" and flag.allocation.candidate_bp == 0
        assert not flag.allocation.internal_enabled and flag.candidate == "balanced_core_v2"
        await fresh_verdict(app, pilot)
        assert av.rollout_why_not(app.session, "advance") is None  # the first stage can start again
    restarts = [e for e in read_entries(tmp_path / "journal.jsonl") if e.action == "restart"]
    assert [e.kind for e in restarts] == ["intent", "outcome"] and restarts[0].reason == "second attempt after the fix"
    assert restarts[1].status == "confirmed"
