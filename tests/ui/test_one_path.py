"""`R` in the console is the CLI's rollback: the same core operation, the same journal, the same anchor."""

from __future__ import annotations

import json
import shutil

from adapters.flags.flagd_file import FlagdFilePlatform
from console.cli import main
from console.commands.demo import DEMO_RULE, prepare_state_dir
from console.core import operations as ops
from console.core.journal import ChainHead, read_entries, verify
from console.core.models import Stage
from console.core.rules import parse_rule

from .helpers import demo_app, sim_source, wait_for

FLAG = "support-answer-route"


async def test_rollback_key_anchors_the_journal_on_the_platform(tmp_path):
    app = demo_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.press("R")
        await wait_for(pilot, lambda: FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp == 0)
        await app.workers.wait_for_complete()
    stored = FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).rollout
    entries = read_entries(tmp_path / "journal.jsonl")
    intent = next(e for e in entries if e.action == "rollback" and e.kind == "intent")
    outcome = next(e for e in entries if e.action == "rollback" and e.kind == "outcome")
    assert stored.stage is Stage.ROLLED_BACK
    # the head of the journal when the write went out (its intent) is kept on the platform, outside the journal
    assert stored.chain_head == ChainHead(intent.seq, intent.hash).to_text()
    assert outcome.status == "confirmed" and outcome.intent_seq == intent.seq
    assert verify(tmp_path / "journal.jsonl", [stored.chain_head]).ok


def promoted_with_a_hand_edit(state) -> None:
    """The demo's flag promoted through the rule's stages, then edited by hand on the platform."""
    path = prepare_state_dir(state, fresh=True)
    platform = FlagdFilePlatform(path)
    rule = parse_rule(DEMO_RULE.read_text(), "rule-demo.yaml")
    metrics = sim_source(path)
    while ops.rollout.next_stage(rule, platform.read_flag(FLAG)) is not None:
        ops.advance(rule, platform, ops.look(rule, platform, metrics), None, "setup", override_reason="set-up",
                    on_metrics_clock=True)
    ops.promote(rule, platform, ops.look(rule, platform, metrics), None, "setup", override_reason="set-up")
    doc = json.loads(path.read_text())
    body = doc["flags"][FLAG]
    # a hand edit sends one region back to the old route: targeting nobody's rule wrote
    body["targeting"] = {"if": [{"==": [{"var": "region"}, "eu"]}, "fast_default_v1", "balanced_core_v2"]}
    path.write_text(json.dumps(doc, indent=2))
    flag = FlagdFilePlatform(path).read_flag(FLAG)
    assert flag.rollout.stage is Stage.PROMOTED and flag.foreign_targeting


async def test_rollback_key_on_a_promoted_flag_does_what_the_cli_does(tmp_path):
    console_state, cli_state = tmp_path / "console", tmp_path / "cli"
    promoted_with_a_hand_edit(console_state)
    shutil.copytree(console_state, cli_state)

    app = demo_app(console_state)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        app.screen.query_one("RouteTable").move_cursor(row=0)  # the flag's heading row
        await pilot.pause()
        await pilot.press("R")
        await wait_for(pilot, lambda: not FlagdFilePlatform(console_state / "flags.json").read_flag(FLAG).foreign_targeting)
        await app.workers.wait_for_complete()
    assert main(["rollback", "--flag", FLAG, "--flags", f"flagd:{cli_state / 'flags.json'}",
                 "--state-dir", str(cli_state), "--reason", "R pressed in the console"]) == 0

    by_console = FlagdFilePlatform(console_state / "flags.json").read_flag(FLAG)
    by_cli = FlagdFilePlatform(cli_state / "flags.json").read_flag(FLAG)
    assert by_console.rollout.stage is Stage.PROMOTED  # not "rolled back": the promoted route is the baseline
    assert (by_console.allocation, by_console.baseline, by_console.candidate, by_console.rollout.stage) == \
           (by_cli.allocation, by_cli.baseline, by_cli.candidate, by_cli.rollout.stage)

    def rollback_entries(state):
        return [(e.kind, e.status, e.before, e.after) for e in read_entries(state / "journal.jsonl")
                if e.action == "rollback"]

    console_entries, cli_entries = rollback_entries(console_state), rollback_entries(cli_state)
    assert [e[:2] for e in console_entries] == [("intent", None), ("outcome", "confirmed")]
    assert [e[:3] for e in console_entries] == [e[:3] for e in cli_entries]
    # the planned and confirmed allocations agree too
    assert console_entries[1][3] == cli_entries[1][3]
