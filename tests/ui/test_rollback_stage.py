"""After R, the rollout reads as rolled back — not as the stage it was rolled back from."""

from __future__ import annotations

from datetime import datetime, timezone

from adapters.flags.flagd_file import FlagdFilePlatform
from console.core.models import RolloutState, Stage
from console.core.rollout import current_stage_name

from .helpers import demo_app

FLAG = "support-answer-route"


async def test_rollback_key_leaves_no_stage_label_behind(tmp_path):
    app = demo_app(tmp_path)
    platform = FlagdFilePlatform(tmp_path / "flags.json")
    flag = platform.read_flag(FLAG)
    # the rollout at the rule's "5%" stage, as an advance writes it (with the rule's stage name)
    at5 = (flag.rollout or RolloutState()).model_copy(
        update={"stage": Stage.PCT5, "stage_label": "5%", "stage_started_at": datetime.now(timezone.utc)})
    platform.write_flag(flag.model_copy(update={"rollout": at5}), flag.revision)
    app.session.flags[FLAG] = platform.read_flag(FLAG)
    assert current_stage_name(app.session.flags[FLAG]) == "5%"
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.press("R")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
    after = platform.read_flag(FLAG)
    assert after.allocation.candidate_bp == 0
    assert after.rollout.stage is Stage.ROLLED_BACK
    assert current_stage_name(after) == "rolled_back"
    assert current_stage_name(app.session.flags[FLAG]) == "rolled_back"
