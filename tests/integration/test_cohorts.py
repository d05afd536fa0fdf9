"""Cohorts on restart, on every flag platform, as the platform's own evaluator serves them: after a
rollback, a new rollout that *reuses* the cohort exposes the same units first; one that draws a *new*
cohort exposes other units (overlap at chance), and its cohorts stay nested as the share grows.

Evaluators: flagd's official Python and JavaScript evaluators, FeatBit's and LaunchDarkly's official
Python SDKs against their fakes, and the Unleash SDK against the real server (``servers`` mark).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from console.core import operations
from console.core.ports import FlagPlatform
from console.core.rules import load_rule
from tests.contract.implementations import BASELINE, CANDIDATE, seed_flag
from tests.test_flagd_cross_language import js_evaluate, py_evaluate

RULE = Path(__file__).parents[2] / "console" / "core" / "data" / "rule-demo.yaml"
UNITS = 6000
SCOPE = {"scope": "english_support_chat"}

Cohort = Callable[[int], set[str]]  # bp → the units in scope served the candidate once the platform serves bp


def rule_for(tmp_path: Path, key: str):
    path = tmp_path / f"rule-{key}.yaml"
    path.write_text(RULE.read_text().replace("support-answer-route", key))
    return load_rule(path)


def stage(platform: FlagPlatform, key: str, bp: int) -> None:
    flag = platform.read_flag(key)
    platform.set_allocation(key, flag.allocation.model_copy(update={"candidate_bp": bp}), flag.revision)


def cohorts_across_restarts(platform: FlagPlatform, key: str, rule, cohort: Cohort) -> None:
    stage(platform, key, 500)
    first = cohort(500)
    p = 0.05
    assert abs(len(first) / UNITS - p) <= 4 * math.sqrt(p * (1 - p) / UNITS), len(first)

    operations.rollback(platform, key, None, reason="regression")
    # the evaluator must have seen the rollback before the next stage: an SDK still serving the old 5% would
    # otherwise pass for the new cohort (right share, stable) until its stream brings the change
    assert cohort(0) == set()
    result = operations.restart(rule, platform, None, cohort="reuse")
    assert result.after.allocation.cohort_salt is None
    stage(platform, key, 500)
    assert cohort(500) == first, "reusing the cohort must expose the same units first"

    operations.rollback(platform, key, None, reason="regression again")
    assert cohort(0) == set()
    result = operations.restart(rule, platform, None, cohort="new")
    salt = result.after.allocation.cohort_salt
    assert salt and platform.read_flag(key).allocation.cohort_salt == salt
    stage(platform, key, 500)
    redrawn = cohort(500)
    assert abs(len(redrawn) / UNITS - p) <= 4 * math.sqrt(p * (1 - p) / UNITS), len(redrawn)
    overlap = len(redrawn & first) / len(first)
    assert overlap < 0.2, f"{overlap:.0%} of the first cohort is in the new one (chance: 5%)"
    stage(platform, key, 2000)
    assert redrawn <= cohort(2000), "the new cohort must stay nested as the share grows"
    assert platform.read_flag(key).foreign_targeting is None


def until_share(read: Callable[[], set[str]], bp: int, timeout_s: float = 10.0) -> set[str]:
    """The cohort once the evaluator serves ``bp`` (platforms and SDKs catch up asynchronously)."""
    p = bp / 10_000
    deadline = time.monotonic() + timeout_s
    last: set[str] = set()
    while time.monotonic() < deadline:
        got = read()
        if abs(len(got) / UNITS - p) <= 4 * math.sqrt(p * (1 - p) / UNITS) and got == last:
            return got
        last = got
        time.sleep(0.05)
    raise AssertionError(f"the evaluator did not settle on {bp / 100:g}% within {timeout_s} s")


# ---- flagd: both official evaluators ------------------------------------------------------


@pytest.mark.parametrize("language", ["python", "javascript"])
def test_flagd_cohorts_on_restart(tmp_path: Path, language: str) -> None:
    from adapters.flags.flagd_file import FlagdFilePlatform

    key = "cohort-route"
    path = tmp_path / "flags.json"
    platform = FlagdFilePlatform(path)
    platform.create_flag(seed_flag(key))
    contexts = [{"targetingKey": f"u{i}", **SCOPE} for i in range(UNITS)]

    def cohort(bp: int) -> set[str]:
        import tests.test_flagd_cross_language as x

        old, x.FLAG = x.FLAG, key
        try:
            variants = py_evaluate(path, contexts) if language == "python" else js_evaluate(path, contexts)[1]
        finally:
            x.FLAG = old
        assert set(variants) <= {BASELINE, CANDIDATE}
        return {c["targetingKey"] for c, v in zip(contexts, variants) if v == CANDIDATE}

    cohorts_across_restarts(platform, key, rule_for(tmp_path, key), cohort)


# ---- FeatBit and LaunchDarkly: their official SDKs against the fakes ---------------------------


def test_featbit_cohorts_on_restart(tmp_path: Path) -> None:
    from fbclient.client import FBClient
    from fbclient.config import Config
    from fbclient.event_processor import NullEventProcessor

    from adapters.flags.featbit import FeatBitPlatform
    from tests.fakes.featbit_server import FakeFeatBit

    logging.getLogger("fbclient").setLevel(logging.WARNING)
    key = "cohort-route"
    fake = FakeFeatBit().start()
    platform = FeatBitPlatform(fake.url, fake.token, fake.env_id)
    platform.create_flag(seed_flag(key))
    sdk = FBClient(Config(fake.secret, fake.url, fake.stream_url, event_processor_imp=NullEventProcessor), start_wait=5)
    try:
        assert sdk.initialize

        def cohort(bp: int) -> set[str]:
            return until_share(lambda: {f"u{i}" for i in range(UNITS) if sdk.variation(
                key, {"key": f"u{i}", "name": f"u{i}", **SCOPE}, {})["route"] == CANDIDATE}, bp)

        cohorts_across_restarts(platform, key, rule_for(tmp_path, key), cohort)
    finally:
        fake.stream_enabled = False
        fake.drop_streams(1001)
        sdk.stop()
        platform.close()
        fake.stop()


def test_launchdarkly_cohorts_on_restart(tmp_path: Path) -> None:
    from ldclient import Context
    from ldclient.client import LDClient
    from ldclient.config import Config

    from adapters.flags.launchdarkly import LaunchDarklyPlatform
    from tests.fakes.launchdarkly_server import FakeLaunchDarkly

    logging.getLogger("ldclient").setLevel(logging.WARNING)
    key = "cohort-route"
    fake = FakeLaunchDarkly().start()
    platform = LaunchDarklyPlatform(fake.url, fake.token, fake.project, "production")
    platform.create_flag(seed_flag(key))
    sdk = LDClient(Config(fake.sdk_key(), base_uri=fake.url, stream_uri=fake.url, events_uri=fake.url,
                          send_events=False, diagnostic_opt_out=True), start_wait=5)
    contexts = [Context.builder(f"u{i}").set("scope", SCOPE["scope"]).build() for i in range(UNITS)]
    try:
        assert sdk.is_initialized()

        def cohort(bp: int) -> set[str]:
            return until_share(lambda: {c.key for c in contexts if sdk.variation(key, c, {}).get("route") == CANDIDATE}, bp)

        cohorts_across_restarts(platform, key, rule_for(tmp_path, key), cohort)
        rule = next(r for r in fake.raw(key)["environments"]["production"]["rules"] if r.get("description") == "routedeck:scope")
        assert isinstance(rule["rollout"].get("seed"), int), "a new cohort is LaunchDarkly's rollout seed"
    finally:
        fake.drop_streams()
        sdk.close()
        platform.close()
        fake.stop()


# ---- Unleash: the real server and its SDK ------------------------------------------------------


@pytest.fixture
def unleash_platform(request) -> Iterator:
    from adapters.flags.unleash import UnleashPlatform

    server = request.getfixturevalue("unleash")
    p = UnleashPlatform(server.url, server.admin_token)
    yield server, p
    p.close()


@pytest.mark.servers
def test_unleash_cohorts_on_restart(tmp_path: Path, unleash_platform) -> None:
    from tests.integration.test_unleash import Sdk

    server, platform = unleash_platform
    key = f"cohort-route-{int(time.time() * 1000) % 10**9}"
    platform.create_flag(seed_flag(key))

    def cohort(bp: int) -> set[str]:
        sdk = Sdk(server, key, ["0", str(bp // 100), "100"])
        try:
            served = sdk.variants(key, range(UNITS), **SCOPE)
        finally:
            sdk.close()
        return {u for u, v in served.items() if v == CANDIDATE}

    cohorts_across_restarts(platform, key, rule_for(tmp_path, key), cohort)
