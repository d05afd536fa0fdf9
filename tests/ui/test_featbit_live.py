"""The console on FeatBit: a change made through FeatBit's own API appears within a second, pushed by
the stream, long before the next scheduled flag read."""

from __future__ import annotations

from pathlib import Path

import httpx

from adapters.flags.featbit import FeatBitPlatform
from console.app import RouteDeckApp
from console.commands.demo import prepare_state_dir
from console.core.journal import Journal, journal_path
from tests.contract.implementations import FLAG, seed_flag
from tests.fakes.featbit_server import FakeFeatBit

from .helpers import sim_source, wait_for


async def test_a_change_made_in_featbit_shows_in_the_console_within_a_second(tmp_path: Path) -> None:
    fake = FakeFeatBit().start()
    platform = FeatBitPlatform(fake.url, fake.token, fake.env_id, stream_url=fake.stream_url, secret=fake.secret)
    try:
        platform.create_flag(seed_flag())
        flags = {k: platform.read_flag(k) for k in platform.list_flags()}
        metrics = sim_source(prepare_state_dir(tmp_path / "state"))
        # a flag read every 60 s: only the stream can make the change show within a second
        app = RouteDeckApp(platform, metrics, flags=flags, journal=Journal(journal_path(tmp_path)),
                           clock=lambda: 100.0, refresh_s=60.0)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: fake.open_streams == 1 and "sync:full" in fake.stream_log)
            await pilot.pause(0.2)
            raw = fake.raw(FLAG)
            split = next(r for r in raw["rules"] if r["name"] == "routedeck:scope")
            split["variations"][0]["rollout"] = [0, 0.3]
            split["variations"][1]["rollout"] = [0.3, 1]
            with httpx.Client(base_url=f"{fake.url}/api/v1/envs/{fake.env_id}/feature-flags",
                              headers={"Authorization": fake.add_token("someone-else")}) as http:
                answer = http.put(f"/{FLAG}/targeting", json={"revision": raw["revision"], "targeting": {
                    "targetUsers": [], "rules": raw["rules"], "fallthrough": raw["fallthrough"],
                    "exptIncludeAllTargets": False}})
                assert answer.json()["success"]
            # flags are read every 60 s here: only the stream can bring the change (latency: benchmarks/)
            await wait_for(pilot, lambda: FLAG in app.session.foreign, timeout_s=10.0)
            assert "30%" in app.session.foreign[FLAG]
            assert app.session.flags[FLAG].allocation.candidate_bp == 3000
    finally:
        platform.close()
        fake.stop()


async def test_a_refused_stream_is_said_once_without_the_secret_and_flags_still_poll(tmp_path: Path) -> None:
    fake = FakeFeatBit().start()
    wrong = FakeFeatBit().secret
    platform = FeatBitPlatform(fake.url, fake.token, fake.env_id, stream_url=fake.stream_url, secret=wrong)
    try:
        platform.create_flag(seed_flag())
        flags = {k: platform.read_flag(k) for k in platform.list_flags()}
        metrics = sim_source(prepare_state_dir(tmp_path / "state"))
        app = RouteDeckApp(platform, metrics, flags=flags, journal=Journal(journal_path(tmp_path)),
                           clock=lambda: 100.0, refresh_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: any("4003" in str(n.message) for n in app._notifications))
            await pilot.pause(0.3)
            shown = [str(n.message) for n in app._notifications if "4003" in str(n.message)]
            assert len(shown) == 1 and "ROUTEDECK_FEATBIT_SECRET" in shown[0]
            assert wrong not in shown[0] and wrong.rstrip("=") not in shown[0]
            assert fake.stream_log == ["4003"]
            app.save_screenshot(str(tmp_path / "refused.svg"))
            assert wrong.rstrip("=") not in (tmp_path / "refused.svg").read_text()
            # flag reads go on by polling: a write through the platform still shows
            flag = platform.read_flag(FLAG)
            platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 500}), flag.revision)
            await wait_for(pilot, lambda: app.session.flags[FLAG].allocation.candidate_bp == 500, timeout_s=3)
    finally:
        platform.close()
        fake.stop()
