"""The console on LaunchDarkly: a change made through LaunchDarkly's REST API appears within a second,
pushed by the SDK stream through the same hook the FeatBit stream uses; a refused SDK key is said once
and flag reads go on by polling; a write LaunchDarkly refuses leaves the console running."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from adapters.flags.launchdarkly import SCOPE, SEMANTIC_PATCH, LaunchDarklyPlatform
from console.app import RouteDeckApp
from console.commands.demo import prepare_state_dir
from console.core.journal import Journal, journal_path
from tests.contract.implementations import FLAG, seed_flag
from tests.fakes.launchdarkly_server import FakeLaunchDarkly

from .helpers import sim_source, wait_for

ENV = "production"
SUPPORT = "support-answer-route"


def console(platform: LaunchDarklyPlatform, tmp_path: Path, refresh_s: float) -> RouteDeckApp:
    flags = {k: platform.read_flag(k) for k in platform.list_flags()}
    metrics = sim_source(prepare_state_dir(tmp_path / "state"))
    return RouteDeckApp(platform, metrics, flags=flags, journal=Journal(journal_path(tmp_path)),
                        clock=lambda: 100.0, refresh_s=refresh_s)


async def test_a_change_made_in_launchdarkly_is_brought_to_the_console_by_the_stream(tmp_path: Path) -> None:
    fake = FakeLaunchDarkly().start()
    platform = LaunchDarklyPlatform(fake.url, fake.token, fake.project, ENV, stream_url=fake.url,
                                    sdk_key=fake.sdk_key(ENV))
    try:
        platform.create_flag(seed_flag())
        app = console(platform, tmp_path, refresh_s=60.0)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: fake.open_streams == 1)
            await pilot.pause(0.2)
            raw = fake.raw(FLAG)
            rule = next(r for r in raw["environments"][ENV]["rules"] if r["description"] == SCOPE)
            ids = [v["_id"] for v in raw["variations"]]
            with httpx.Client(headers={"Authorization": fake.add_token("someone-else")}) as http:
                answer = http.patch(f"{fake.url}/api/v2/flags/{fake.project}/{FLAG}",
                                    headers={"Content-Type": SEMANTIC_PATCH}, content=json.dumps({
                                        "environmentKey": ENV, "comment": "widen by hand", "instructions": [
                                            {"kind": "updateRuleVariationOrRollout", "ruleId": rule["_id"],
                                             "rolloutWeights": {ids[1]: 30_000, ids[0]: 70_000}}]}))
                assert answer.status_code == 200, answer.text
            # flags are read every 60 s here: only the stream can bring the change (latency: benchmarks/)
            await wait_for(pilot, lambda: FLAG in app.session.foreign, timeout_s=10.0)
            assert "30%" in app.session.foreign[FLAG]
            assert app.session.flags[FLAG].allocation.candidate_bp == 3000
    finally:
        platform.close()
        fake.stop()


async def test_a_refused_sdk_key_is_said_once_and_a_refused_write_keeps_the_console_alive(tmp_path: Path) -> None:
    fake = FakeLaunchDarkly().start()
    wrong = "sdk-" + "1" * 36
    platform = LaunchDarklyPlatform(fake.url, fake.token, fake.project, ENV, stream_url=fake.url, sdk_key=wrong)
    try:
        platform.create_flag(seed_flag(SUPPORT))  # the flag the simulated traffic (and so the route table) shows
        app = console(platform, tmp_path, refresh_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: any("HTTP 401" in str(n.message) for n in app._notifications))
            await pilot.pause(0.3)
            shown = [str(n.message) for n in app._notifications if "HTTP 401" in str(n.message)]
            assert len(shown) == 1 and "ROUTEDECK_LAUNCHDARKLY_SDK_KEY" in shown[0] and wrong not in shown[0]
            flag = platform.read_flag(SUPPORT)
            platform.set_allocation(SUPPORT, flag.allocation.model_copy(update={"candidate_bp": 500}), flag.revision)
            await wait_for(pilot, lambda: app.session.flags[SUPPORT].allocation.candidate_bp == 500, timeout_s=3)
            # the access token is revoked: R still answers, with one line naming the flag, and the app lives
            fake.revoke(fake.token)
            await pilot.press("R")
            await wait_for(pilot, lambda: any("HTTP 401" in str(n.message) and SUPPORT in str(n.message)
                                              and "launchdarkly-token" in str(n.message) for n in app._notifications),
                           timeout_s=5)
            assert app.is_running
            assert fake.token not in " ".join(str(n.message) for n in app._notifications)
    finally:
        platform.close()
        fake.stop()
