"""LaunchDarkly: the adapter and its stream against the local LaunchDarkly fake, and the fake's
fidelity proven by LaunchDarkly's official Python server-side SDK (``launchdarkly-server-sdk``)
streaming from it and evaluating what routedeck wrote.

No external server is needed (the fake runs in threads of this process).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from typing import Iterator

import httpx
import pytest

from adapters.flags.launchdarkly import (
    INTERNAL,
    SCOPE,
    SEMANTIC_PATCH,
    TOKEN_ENV,
    LaunchDarklyPlatform,
    state_property,
)
from adapters.flags.launchdarkly_stream import SdkStream
from console.core.errors import BadInput, ConflictError
from console.core.models import RolloutState, Stage
from tests.contract.implementations import BASELINE, CANDIDATE, FLAG, seed_flag
from tests.fakes.launchdarkly_server import FakeLaunchDarkly

UNITS = 10_000
ENV = "production"
SCOPE_ATTRS = {"scope": "english_support_chat"}


@pytest.fixture
def fake() -> Iterator[FakeLaunchDarkly]:
    server = FakeLaunchDarkly().start()
    yield server
    server.stop()


def open_platform(fake: FakeLaunchDarkly, **options) -> LaunchDarklyPlatform:
    return LaunchDarklyPlatform(fake.url, fake.token, fake.project, ENV, stream_url=fake.url,
                                sdk_key=fake.sdk_key(ENV), **options)


@pytest.fixture
def platform(fake: FakeLaunchDarkly) -> Iterator[LaunchDarklyPlatform]:
    p = open_platform(fake)
    p.create_flag(seed_flag())
    yield p
    p.close()


def set_stage(platform: LaunchDarklyPlatform, bp: int, internal: bool = True, key: str = FLAG):
    flag = platform.read_flag(key)
    return platform.set_allocation(
        key, flag.allocation.model_copy(update={"candidate_bp": bp, "internal_enabled": internal}), flag.revision)


def wait_for(check, timeout_s: float = 3.0, step_s: float = 0.005) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if check():
            return time.perf_counter() - started
        time.sleep(step_s)
    raise AssertionError(f"not true within {timeout_s} s: {check}")


def someone_else(fake: FakeLaunchDarkly) -> httpx.Client:
    """Someone acting directly on LaunchDarkly's REST API with their own access token."""
    return httpx.Client(base_url=f"{fake.url}/api/v2/flags/{fake.project}",
                        headers={"Authorization": fake.add_token("someone-else")}, timeout=5)


def semantic(client: httpx.Client, key: str, *instructions: dict, comment: str = "by hand") -> httpx.Response:
    return client.patch(f"/{key}", headers={"Content-Type": SEMANTIC_PATCH},
                        content=json.dumps({"environmentKey": ENV, "comment": comment, "instructions": list(instructions)}))


# ---- fidelity: the official SDK streams from the fake and evaluates what routedeck wrote --------


@pytest.fixture
def sdk(fake: FakeLaunchDarkly, platform: LaunchDarklyPlatform):
    from ldclient.client import LDClient
    from ldclient.config import Config

    logging.getLogger("ldclient").setLevel(logging.WARNING)
    client = LDClient(Config(fake.sdk_key(ENV), base_uri=fake.url, stream_uri=fake.url, events_uri=fake.url,
                             send_events=False, diagnostic_opt_out=True), start_wait=5)
    try:
        assert client.is_initialized(), "the SDK did not initialise from the fake's stream"
        yield client
    finally:
        fake.drop_streams()
        client.close()


def context(key: str, **attrs: str):
    from ldclient import Context

    builder = Context.builder(key)
    for name, value in attrs.items():
        builder.set(name, value)
    return builder.build()


def routes(client, units: range, key: str = FLAG, prefix: str = "unit", **attrs: str) -> dict[str, str]:
    out = {}
    for i in units:
        value = client.variation(key, context(f"{prefix}-{i}", **attrs), None)
        out[f"{prefix}-{i}"] = value["route"] if isinstance(value, dict) else repr(value)
    return out


def within_sampling_error(hits: int, n: int, p: float) -> bool:
    return abs(hits / n - p) <= 4 * math.sqrt(p * (1 - p) / n)  # 4 sd: a false failure once in ~16,000 runs


def test_sdk_serves_the_share_routedeck_wrote_with_nested_cohorts_and_sees_rollback(
        fake: FakeLaunchDarkly, platform: LaunchDarklyPlatform, sdk) -> None:
    assert set(routes(sdk, range(300), **SCOPE_ATTRS).values()) == {BASELINE}  # seeded: nobody on the candidate
    assert fake.stream_log == [f"open:{ENV}"]

    written = set_stage(platform, 500).after.allocation
    assert written.candidate_bp == 500 and written.internal_enabled
    wait_for(lambda: sdk.variation(FLAG, context("i", audience="internal_support_team"), None)["route"] == CANDIDATE)
    at5 = routes(sdk, range(UNITS), **SCOPE_ATTRS)
    cohort5 = {u for u, r in at5.items() if r == CANDIDATE}
    assert within_sampling_error(len(cohort5), UNITS, written.candidate_share), len(cohort5)
    assert set(routes(sdk, range(2000), scope="billing_chat").values()) == {BASELINE}
    assert set(routes(sdk, range(500), audience="internal_support_team").values()) == {CANDIDATE}
    # the value served is the route profile routedeck wrote, field for field
    served = sdk.variation(FLAG, context(sorted(cohort5)[0], **SCOPE_ATTRS), None)
    assert served == seed_flag().variations[CANDIDATE].to_wire()

    written = set_stage(platform, 2000).after.allocation
    probe = sorted(set(at5) - cohort5)
    wait_for(lambda: sum(sdk.variation(FLAG, context(u, **SCOPE_ATTRS), None)["route"] == CANDIDATE
                         for u in probe[:400]) > 0)
    at20 = routes(sdk, range(UNITS), **SCOPE_ATTRS)
    cohort20 = {u for u, r in at20.items() if r == CANDIDATE}
    assert within_sampling_error(len(cohort20), UNITS, written.candidate_share), len(cohort20)
    assert cohort5 <= cohort20, f"{len(cohort5 - cohort20)} units left the candidate going from 5% to 20%"

    member = sorted(cohort5)[0]
    platform.rollback_to_baseline(FLAG)
    seen = wait_for(lambda: sdk.variation(FLAG, context(member, **SCOPE_ATTRS), None)["route"] == BASELINE,
                    timeout_s=1.0, step_s=0.002)
    assert seen < 1.0
    assert set(routes(sdk, range(UNITS), **SCOPE_ATTRS).values()) == {BASELINE}
    assert set(routes(sdk, range(200), audience="internal_support_team").values()) == {BASELINE}


def ld_bucket(flag_key: str, salt: str, value: str) -> float:
    """LaunchDarkly's documented bucketing: SHA-1 of "key.salt.value", first 15 hex digits over 0xFFFFFFFFFFFFFFF."""
    digest = hashlib.sha1(f"{flag_key}.{salt}.{value}".encode()).hexdigest()[:15]
    return int(digest, 16) / float(0xFFFFFFFFFFFFFFF)


def test_every_unit_gets_what_routedeck_computes_from_the_rollout_it_wrote(
        fake: FakeLaunchDarkly, platform: LaunchDarklyPlatform, sdk) -> None:
    """Unit by unit, not only in share: the cohort the SDK serves is the one routedeck's own reading of
    the stored rollout (weights in variation order, the environment's salt) predicts."""
    set_stage(platform, 1500, internal=False)
    wait_for(lambda: sum(r == CANDIDATE for r in routes(sdk, range(200), **SCOPE_ATTRS).values()) > 0)
    raw = fake.raw(FLAG)
    env = raw["environments"][ENV]
    rule = next(r for r in env["rules"] if r["description"] == SCOPE)
    names = [v["name"] for v in raw["variations"]]
    served = routes(sdk, range(3000), **SCOPE_ATTRS)
    for unit, route in served.items():
        bucket, total, predicted = ld_bucket(FLAG, env["salt"], unit), 0, None
        for w in rule["rollout"]["variations"]:
            total += w["weight"] / 100_000
            if bucket < total:
                predicted = names[w["variation"]]
                break
        assert route == predicted, unit


def test_bucketing_attribute_keeps_a_whole_account_on_one_route(fake: FakeLaunchDarkly, sdk) -> None:
    p = open_platform(fake, bucket_by="account")
    try:
        p.create_flag(seed_flag("by-account"))
        set_stage(p, 5000, internal=False, key="by-account")
        rule = next(r for r in fake.raw("by-account")["environments"][ENV]["rules"] if r["description"] == SCOPE)
        assert rule["rollout"]["bucketBy"] == "account"
        # the SDK must hold the flag as staged, not only as created: an update arriving halfway through the
        # loop below would split accounts across the two versions
        staged = fake.raw("by-account")["environments"][ENV]["version"]
        wait_for(lambda: sdk.all_flags_state(context("x")).to_json_dict()
                 .get("$flagsState", {}).get("by-account", {}).get("version") == staged)
        by_account: dict[str, set[str]] = {}
        for i in range(600):
            account = f"acct-{i % 40}"
            value = sdk.variation("by-account", context(f"user-{i}", account=account, **SCOPE_ATTRS), None)
            by_account.setdefault(account, set()).add(value["route"])
        assert all(len(r) == 1 for r in by_account.values()), "users of one account got different routes"
        assert {next(iter(r)) for r in by_account.values()} == {BASELINE, CANDIDATE}
        assert p.read_flag("by-account").foreign_targeting is None
        # read through a platform that buckets by key, the same flag says so instead of passing as ours
        other = open_platform(fake)
        assert "buckets by account" in (other.read_flag("by-account").foreign_targeting or "")
        other.close()
    finally:
        p.close()


# ---- the stream -----------------------------------------------------------------------------


def test_stream_reports_a_change_made_in_launchdarkly_within_a_second(fake: FakeLaunchDarkly,
                                                                      platform: LaunchDarklyPlatform) -> None:
    got: list[list[str]] = []
    stream = platform.watch_changes(got.append)
    assert isinstance(stream, SdkStream)
    assert stream.synced.wait(3), stream.status
    raw = fake.raw(FLAG)
    rule = next(r for r in raw["environments"][ENV]["rules"] if r["description"] == SCOPE)
    ids = [v["_id"] for v in raw["variations"]]
    with someone_else(fake) as http:
        started = time.perf_counter()
        answer = semantic(http, FLAG, {"kind": "updateRuleVariationOrRollout", "ruleId": rule["_id"],
                                       "rolloutWeights": {ids[1]: 30_000, ids[0]: 70_000}})
        assert answer.status_code == 200, answer.text
    wait_for(lambda: got == [[FLAG]], timeout_s=1.0)
    assert time.perf_counter() - started < 1.0
    after = platform.read_flag(FLAG)
    assert after.allocation.candidate_bp == 3000 and after.foreign_targeting is None
    # a stream that ends is reconnected and catches up with a fresh put
    fake.drop_streams()
    wait_for(lambda: stream.connections == 2 and fake.open_streams == 1, timeout_s=5)
    platform.stop_watching()
    assert not stream.running


def test_a_refused_sdk_key_stops_the_stream_for_good_without_the_key(fake: FakeLaunchDarkly) -> None:
    wrong = "sdk-" + "0" * 36
    p = LaunchDarklyPlatform(fake.url, fake.token, fake.project, ENV, stream_url=fake.url, sdk_key=wrong)
    said: list[tuple[str, bool]] = []
    stream = p.watch_changes(lambda keys: None, lambda text, final: said.append((text, final)))
    wait_for(lambda: not stream.running, timeout_s=3)
    finals = [t for t, final in said if final]
    assert len(finals) == 1 and "HTTP 401" in finals[0] and "ROUTEDECK_LAUNCHDARKLY_SDK_KEY" in finals[0]
    assert all(wrong not in t for t, _ in said)
    assert fake.stream_log == ["401"]
    p.close()


def test_watch_changes_needs_a_stream_url_and_sdk_key(fake: FakeLaunchDarkly) -> None:
    p = LaunchDarklyPlatform(fake.url, fake.token, fake.project, ENV)
    assert p.watch_changes(lambda keys: None) is None
    p.close()


# ---- versions, conflicts and refusals --------------------------------------------------------


def test_a_change_in_launchdarkly_makes_a_stale_write_a_conflict_and_nothing_is_overwritten(
        fake: FakeLaunchDarkly, platform: LaunchDarklyPlatform) -> None:
    seen = platform.read_flag(FLAG)
    with someone_else(fake) as http:
        assert semantic(http, FLAG, {"kind": "turnFlagOff"}).status_code == 200
    before = fake.raw(FLAG)
    with pytest.raises(ConflictError) as caught:
        platform.set_allocation(FLAG, seen.allocation.model_copy(update={"candidate_bp": 500}), seen.revision)
    text = str(caught.value)
    assert "\n" not in text and FLAG in text and "reload and retry" in text and fake.token not in text
    assert fake.raw(FLAG) == before
    now = platform.read_flag(FLAG)
    assert "targeting is off in LaunchDarkly" in now.foreign_targeting
    # rollback is never refused: it turns targeting back on and serves the baseline to everyone
    result = platform.rollback_to_baseline(FLAG, seen.revision)
    assert "off in LaunchDarkly" in (result.foreign_change or "") or result.foreign_change
    assert fake.raw(FLAG)["environments"][ENV]["on"] is True
    assert platform.read_flag(FLAG).foreign_targeting is None


def test_an_advance_is_one_semantic_patch_with_a_comment_and_one_audit_entry(
        fake: FakeLaunchDarkly, platform: LaunchDarklyPlatform) -> None:
    entries = len(fake.audit)
    flag = platform.read_flag(FLAG)
    state = RolloutState(stage=Stage.PCT5)
    platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 500, "internal_enabled": True}),
                            flag.revision, rollout=state)
    assert len(fake.audit) == entries + 1, "one operator action must be one change in LaunchDarkly"
    entry = fake.audit[-1]
    assert entry["comment"] == "routedeck: internal_support_team + 5% of english_support_chat (stage 5%)"
    raw = fake.raw(FLAG)
    assert json.loads(raw["customProperties"][state_property(ENV)]["value"][0])["rollout"]["stage"] == "5%"
    assert [r["description"] for r in raw["environments"][ENV]["rules"]] == [INTERNAL, SCOPE]
    # the next stage changes only the scope rule's rollout: the rule keeps its id
    rule_id = raw["environments"][ENV]["rules"][1]["_id"]
    set_stage(platform, 2000)
    assert fake.raw(FLAG)["environments"][ENV]["rules"][1]["_id"] == rule_id
    history = platform.history(FLAG)
    assert history[0].detail.startswith("internal_support_team + 5% of english_support_chat → internal_support_team + 20%")
    assert history[0].actor == "routedeck-operator@example.invalid"
    assert history[0].after["allocation"]["candidate_bp"] == 2000


def test_a_semantic_patch_launchdarkly_refuses_is_one_line_and_changes_nothing(
        fake: FakeLaunchDarkly, platform: LaunchDarklyPlatform, monkeypatch) -> None:
    import adapters.flags.launchdarkly as ld

    real = ld.targeting_instructions

    def with_a_bad_weight(*args, **kwargs):
        out = real(*args, **kwargs)
        for ins in out + [r for i in out for r in i.get("rules") or []]:
            if "rolloutWeights" in ins:  # weights that do not add up to 100000: LaunchDarkly answers 400
                first = next(iter(ins["rolloutWeights"]))
                ins["rolloutWeights"][first] += 1
        return out

    monkeypatch.setattr(ld, "targeting_instructions", with_a_bad_weight)
    before = fake.raw(FLAG)
    with pytest.raises(BadInput) as caught:
        set_stage(platform, 500)
    text = str(caught.value)
    assert text.startswith(f"flag {FLAG}: ") and "refused the change" in text and "nothing was changed" in text
    assert "100000" in text and "\n" not in text
    assert fake.raw(FLAG) == before


def test_unknown_project_and_environment_are_named(fake: FakeLaunchDarkly) -> None:
    for project, env, words in (("nope", ENV, "no project 'nope'"), (fake.project, "staging", "no environment 'staging'")):
        p = LaunchDarklyPlatform(fake.url, fake.token, project, env)
        with pytest.raises(BadInput) as caught:
            p.read_flag(FLAG)
        assert words in str(caught.value) and "?project=" in str(caught.value)
        p.close()


def test_a_revoked_token_is_one_line_naming_the_flag_and_never_the_token(fake: FakeLaunchDarkly,
                                                                          platform: LaunchDarklyPlatform) -> None:
    flag = platform.read_flag(FLAG)
    fake.revoke(fake.token)
    with pytest.raises(BadInput) as caught:
        platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 500}), flag.revision)
    text = str(caught.value)
    assert "HTTP 401" in text and "launchdarkly-token" in text and TOKEN_ENV in text and "nothing was changed" in text
    assert fake.token not in text and "\n" not in text


def test_foreign_rules_targets_and_a_changed_default_rule_are_reported(fake: FakeLaunchDarkly,
                                                                       platform: LaunchDarklyPlatform) -> None:
    raw = fake.raw(FLAG)
    ids = [v["_id"] for v in raw["variations"]]
    with someone_else(fake) as http:
        answer = semantic(
            http, FLAG,
            {"kind": "addRule", "description": "beta testers", "variationId": ids[1],
             "clauses": [{"contextKind": "user", "attribute": "beta", "op": "in", "values": ["yes"]}]},
            {"kind": "addTargets", "variationId": ids[1], "values": ["vip-1", "vip-2"]},
        )
        assert answer.status_code == 200, answer.text
    text = platform.read_flag(FLAG).foreign_targeting
    assert "rules not written by routedeck: beta testers" in text and "2 context(s)" in text
    platform.rollback_to_baseline(FLAG)
    after = fake.raw(FLAG)["environments"][ENV]
    assert [r["description"] for r in after["rules"]] == [SCOPE]


def test_excluded_segments_switch_and_a_new_candidate_profile_round_trip(fake: FakeLaunchDarkly,
                                                                         platform: LaunchDarklyPlatform) -> None:
    from console.core.models import RouteProfile

    flag = platform.read_flag(FLAG)
    excluded = flag.allocation.model_copy(update={"candidate_bp": 2000, "excluded_segments": (("region", "eu"),)})
    platform.set_allocation(FLAG, excluded, flag.revision)
    assert platform.read_flag(FLAG).allocation == excluded
    flag = platform.read_flag(FLAG)
    switched = flag.allocation.model_copy(update={"serve_all": BASELINE})
    platform.set_allocation(FLAG, switched, flag.revision)
    assert platform.read_flag(FLAG).allocation == switched
    flag = platform.read_flag(FLAG)
    extra = dict(flag.variations) | {"cheap_v3": RouteProfile(route="cheap_v3", model="provider-c/small")}
    result = platform.write_flag(flag.model_copy(update={"variations": extra, "candidate": "cheap_v3",
                                                         "allocation": flag.allocation.rolled_back()}), flag.revision)
    assert result.after.candidate == "cheap_v3" and "cheap_v3" in result.after.variations


@pytest.mark.parametrize("spec,words", [
    ("launchdarkly:ftp://x?project=p&env=e", "expected launchdarkly:https://"),
    ("launchdarkly:https://app.launchdarkly.com?env=e", "name the project and the environment"),
    ("launchdarkly:https://app.launchdarkly.com?project=p&env=e&color=red", "unknown option 'color'"),
    ("launchdarkly:https://u:sdk-secret@app.launchdarkly.com?project=p&env=e", "no credentials in the URL"),
    ("launchdarkly:https://app.launchdarkly.com?project=p&env=e&stream=https://s?key=sdk-secret", "with no key in it"),
])
def test_bad_specs_get_one_line_naming_the_problem_without_secrets(spec: str, words: str, monkeypatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "api-abc")
    with pytest.raises(BadInput) as caught:
        LaunchDarklyPlatform.from_spec(spec)
    assert words in str(caught.value) and "sdk-secret" not in str(caught.value)


def test_spec_reads_options_and_credentials_from_the_environment(fake: FakeLaunchDarkly, monkeypatch) -> None:
    from console.backends import open_flags

    monkeypatch.setenv(TOKEN_ENV, fake.token)
    monkeypatch.setenv("ROUTEDECK_LAUNCHDARKLY_SDK_KEY", fake.sdk_key(ENV))
    p = open_flags(f"launchdarkly:{fake.url}?project={fake.project}&env={ENV}&stream={fake.url}&bucketBy=account")
    assert isinstance(p, LaunchDarklyPlatform) and p.bucket_by == "account" and p.stream_url == fake.url
    assert fake.token not in p.describe()
    p.create_flag(seed_flag())
    assert p.list_flags() == [FLAG]
    p.close()
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(BadInput, match="launchdarkly-token"):
        open_flags(f"launchdarkly:{fake.url}?project={fake.project}&env={ENV}")
