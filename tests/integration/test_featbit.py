"""FeatBit: the adapter and its stream against the local FeatBit fake, and the fake's fidelity proven
by FeatBit's official Python SDK (``fb-python-sdk``) syncing from it and evaluating what routedeck set.

No external server is needed (the fake runs in threads of this process), so nothing here carries
the ``servers`` mark.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Iterator

import httpx
import pytest

from adapters.flags.featbit import EXCLUDE, INTERNAL, SCOPE, FeatBitPlatform
from adapters.flags.featbit_stream import FlagStream, stream_token
from console.core.errors import BadInput, ConflictError
from console.core.models import RolloutState, Stage
from tests.contract.implementations import BASELINE, CANDIDATE, FLAG, seed_flag
from tests.fakes.featbit_server import FakeFeatBit, decode_stream_token

UNITS = 10_000


@pytest.fixture
def fake() -> Iterator[FakeFeatBit]:
    server = FakeFeatBit().start()
    yield server
    server.stop()


@pytest.fixture
def platform(fake: FakeFeatBit) -> Iterator[FeatBitPlatform]:
    p = FeatBitPlatform(fake.url, fake.token, fake.env_id, stream_url=fake.stream_url, secret=fake.secret)
    p.create_flag(seed_flag())
    yield p
    p.close()


def set_stage(platform: FeatBitPlatform, bp: int, internal: bool = True):
    flag = platform.read_flag(FLAG)
    return platform.set_allocation(
        FLAG, flag.allocation.model_copy(update={"candidate_bp": bp, "internal_enabled": internal}), flag.revision)


def wait_for(check, timeout_s: float = 3.0, step_s: float = 0.005) -> float:
    """Seconds until ``check()`` held (fails the test after ``timeout_s``)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if check():
            return time.perf_counter() - started
        time.sleep(step_s)
    raise AssertionError(f"not true within {timeout_s} s: {check}")


def foreign_http(fake: FakeFeatBit) -> httpx.Client:
    """Someone else, acting directly on FeatBit's Open API with their own access token."""
    return httpx.Client(base_url=f"{fake.url}/api/v1/envs/{fake.env_id}/feature-flags",
                        headers={"Authorization": fake.add_token("someone-else")}, timeout=5)


# ---- fidelity: the official SDK syncs from the fake and evaluates what routedeck set -------------


@pytest.fixture
def sdk(fake: FakeFeatBit, platform: FeatBitPlatform):
    from fbclient.client import FBClient
    from fbclient.config import Config
    from fbclient.event_processor import NullEventProcessor

    logging.getLogger("fbclient").setLevel(logging.WARNING)  # it logs every evaluation at INFO
    client = FBClient(Config(fake.secret, fake.url, fake.stream_url, event_processor_imp=NullEventProcessor),
                      start_wait=5)
    try:
        assert client.initialize and client.is_flag_known(FLAG), "the SDK did not sync from the fake's stream"
        yield client
    finally:
        # closing from the server side first: the SDK's own stop waits ~6 s for an idle socket to wake
        fake.stream_enabled = False
        fake.drop_streams(1001)
        client.stop()


def routes(client, units: range, **attrs: str) -> dict[str, str]:
    out = {}
    for i in units:
        value = client.variation(FLAG, {"key": f"unit-{i}", "name": f"unit-{i}", **attrs}, None)
        out[f"unit-{i}"] = value["route"] if isinstance(value, dict) else repr(value)
    return out


def within_sampling_error(hits: int, n: int, p: float) -> bool:
    return abs(hits / n - p) <= 4 * math.sqrt(p * (1 - p) / n)  # 4 sd: a false failure once in ~16,000 runs


def test_sdk_evaluates_the_split_with_nested_cohorts_and_sees_rollback_within_a_second(
        fake: FakeFeatBit, platform: FeatBitPlatform, sdk) -> None:
    scope = {"scope": "english_support_chat"}
    assert set(routes(sdk, range(200), **scope).values()) == {BASELINE}  # seeded: nobody on the candidate
    assert fake.stream_log[:2] == ["open", "sync:full"]

    set_stage(platform, 500)
    wait_for(lambda: sdk.variation(FLAG, {"key": "i", "name": "i", "audience": "internal_support_team"}, None)
             ["route"] == CANDIDATE)
    at5 = routes(sdk, range(UNITS), **scope)
    cohort5 = {u for u, r in at5.items() if r == CANDIDATE}
    assert set(at5.values()) == {BASELINE, CANDIDATE}
    assert within_sampling_error(len(cohort5), UNITS, 0.05), len(cohort5)
    # outside the eligible scope nobody gets the candidate, inside the internal audience everybody does
    assert set(routes(sdk, range(2000), scope="billing_chat").values()) == {BASELINE}
    assert set(routes(sdk, range(500), audience="internal_support_team").values()) == {CANDIDATE}

    set_stage(platform, 2000)
    wait_for(lambda: sum(r == CANDIDATE for r in routes(sdk, range(400), **scope).values()) > len(
        [u for u in cohort5 if int(u.split("-")[1]) < 400]))
    at20 = routes(sdk, range(UNITS), **scope)
    cohort20 = {u for u, r in at20.items() if r == CANDIDATE}
    assert within_sampling_error(len(cohort20), UNITS, 0.20), len(cohort20)
    assert cohort5 <= cohort20, f"{len(cohort5 - cohort20)} units left the candidate going from 5% to 20%"

    probe = {"key": sorted(cohort5)[0], "name": "probe", **scope}
    assert sdk.variation(FLAG, probe, None)["route"] == CANDIDATE
    platform.rollback_to_baseline(FLAG)
    seen = wait_for(lambda: sdk.variation(FLAG, probe, None)["route"] == BASELINE, timeout_s=1.0, step_s=0.002)
    assert seen < 1.0
    assert set(routes(sdk, range(UNITS), **scope).values()) == {BASELINE}
    assert set(routes(sdk, range(200), audience="internal_support_team").values()) == {BASELINE}


def test_sdk_token_and_ping_are_understood_by_the_fake(fake: FakeFeatBit, sdk) -> None:
    from fbclient.utils import build_token

    assert decode_stream_token(build_token(fake.secret), int(time.time() * 1000)) == fake.secret
    assert "4003" not in fake.stream_log and fake.open_streams == 1


def test_the_fake_refuses_an_sdk_with_a_wrong_secret_with_4003_and_the_sdk_stops(fake: FakeFeatBit) -> None:
    from fbclient.client import FBClient
    from fbclient.config import Config
    from fbclient.event_processor import NullEventProcessor

    wrong = FakeFeatBit().secret  # well formed, not this environment's
    client = FBClient(Config(wrong, fake.url, fake.stream_url, event_processor_imp=NullEventProcessor), start_wait=3)
    try:
        assert not client.initialize
        # the SDK's streaming thread ends its connect loop on 4003: once it has, it cannot come back
        wait_for(lambda: not client._update_processor.is_alive(), timeout_s=10)
        assert fake.stream_log == ["4003"]
    finally:
        client.stop()


# ---- the stream client ----------------------------------------------------------------------


def test_token_envelope_round_trips_and_expires(fake: FakeFeatBit) -> None:
    now = int(time.time() * 1000)
    for r in (0.0, 0.3, 0.999):
        assert decode_stream_token(stream_token(fake.secret, now, rng=lambda: r), now) == fake.secret
    assert decode_stream_token(stream_token(fake.secret, now - 31_000), now) is None
    assert fake.secret.rstrip("=") not in stream_token(fake.secret)  # the timestamp splits it


def test_stream_full_then_patch_brings_a_foreign_change_within_a_second(
        fake: FakeFeatBit, platform: FeatBitPlatform) -> None:
    changed: list[list[str]] = []
    got = threading.Event()
    stream = platform.watch_changes(lambda keys: (changed.append(keys), got.set()))
    assert stream is not None
    assert stream.synced.wait(3) and FLAG in stream.flags
    platform.read_flag(FLAG)
    with foreign_http(fake) as http:
        r = http.put(f"/{FLAG}/description", json={"description": flag_description(fake) + "\nnote"})
        assert r.status_code == 200
    # nothing polls here: only the stream can bring the change (its latency: benchmarks/featbit_stream.py)
    assert got.wait(10), "the change did not arrive over the stream"
    assert changed == [[FLAG]]
    assert stream.flags[FLAG]["revision"] == fake.raw(FLAG)["revision"]
    assert fake.stream_log[:2] == ["open", "sync:full"]


def flag_description(fake: FakeFeatBit) -> str:
    return fake.raw(FLAG)["description"]


def test_stream_pings_and_reconnects_with_backoff_catching_up_by_patch(fake: FakeFeatBit,
                                                                        platform: FeatBitPlatform) -> None:
    keys: list[str] = []
    statuses: list[str] = []
    stream = FlagStream(fake.stream_url, fake.secret, keys.extend, ping_every_s=0.05, backoff_s=0.05,
                        on_status=lambda s, final: statuses.append(s)).start()
    try:
        assert stream.synced.wait(3)
        wait_for(lambda: "ping" in fake.stream_log)
        assert fake.drop_streams(1011) == 1
        set_stage(platform, 500)  # made while the stream is down
        wait_for(lambda: stream.connections == 2 and fake.open_streams == 1)
        wait_for(lambda: FLAG in keys)  # the reconnect's patch sync carries it
        assert fake.stream_log.count("sync:full") == 1 and "sync:patch" in fake.stream_log
        assert stream.running and stream.stopped_reason is None
    finally:
        stream.stop()
    assert not stream.running
    said = " ".join(statuses)
    assert "code 1011" in said and "reconnecting in" in said and f"{fake.stream_url}/streaming" in said
    assert fake.secret.rstrip("=") not in said and "token" not in said


def test_backoff_grows_with_jitter_while_the_server_is_away(fake: FakeFeatBit) -> None:
    fake.stop()
    statuses: list[str] = []
    stream = FlagStream(fake.stream_url, fake.secret, lambda k: None, on_status=lambda s, final: statuses.append(s),
                        backoff_s=0.02, max_backoff_s=0.2).start()
    try:
        wait_for(lambda: sum("reconnecting in" in s for s in statuses) >= 5, timeout_s=5)
    finally:
        stream.stop()
    delays = [float(s.rsplit("reconnecting in ", 1)[1].split()[0]) for s in statuses if "reconnecting in" in s]
    assert delays[-1] > delays[0] and max(delays) <= 0.2
    assert "cannot connect" in statuses[0] and fake.secret not in " ".join(statuses)


def test_close_4003_stops_for_good_with_a_clear_message_and_no_secret(fake: FakeFeatBit) -> None:
    wrong = FakeFeatBit().secret
    finals: list[str] = []
    stream = FlagStream(fake.stream_url, wrong, lambda k: None, backoff_s=0.01,
                        on_status=lambda s, final: final and finals.append(s)).start()
    wait_for(lambda: not stream.running)
    assert finals == [stream.stopped_reason]
    assert "4003" in stream.stopped_reason and "ROUTEDECK_FEATBIT_SECRET" in stream.stopped_reason
    assert "not reconnecting" in stream.stopped_reason
    assert wrong not in stream.stopped_reason and wrong.rstrip("=") not in stream.status
    assert "token=" not in stream.stopped_reason
    stream._thread.join(timeout=5)
    assert not stream._thread.is_alive()  # nothing is left that could reconnect
    assert fake.stream_log == ["4003"]


def test_watch_changes_needs_a_stream_url_and_secret(fake: FakeFeatBit) -> None:
    p = FeatBitPlatform(fake.url, fake.token, fake.env_id)
    assert p.watch_changes(lambda keys: None) is None
    p.close()


# ---- foreign changes made directly through FeatBit -----------------------------------------


def test_a_change_through_featbits_api_is_a_conflict_for_a_stale_write(fake: FakeFeatBit,
                                                                       platform: FeatBitPlatform) -> None:
    seen = platform.read_flag(FLAG)
    raw = fake.raw(FLAG)
    scope_rule = next(r for r in raw["rules"] if r["name"] == SCOPE)
    cand, base = scope_rule["variations"][0]["id"], scope_rule["variations"][1]["id"]
    scope_rule["variations"] = [{"id": cand, "rollout": [0, 0.5], "exptRollout": 1},
                                {"id": base, "rollout": [0.5, 1], "exptRollout": 1}]
    with foreign_http(fake) as http:
        r = http.put(f"/{FLAG}/targeting", json={"revision": raw["revision"], "comment": "by hand", "targeting": {
            "targetUsers": [], "rules": raw["rules"], "fallthrough": raw["fallthrough"],
            "exptIncludeAllTargets": False}})
        assert r.json()["success"] is True
        stale = http.put(f"/{FLAG}/targeting", json={"revision": raw["revision"], "targeting": {
            "targetUsers": [], "rules": [], "fallthrough": raw["fallthrough"], "exptIncludeAllTargets": False}})
        assert stale.status_code == 409 and stale.json() == {"success": False, "errors": ["Conflict"], "data": None}
    now = platform.read_flag(FLAG)
    assert now.allocation.candidate_bp == 5000 and now.foreign_targeting is None  # a share change reads as one
    with pytest.raises(ConflictError) as caught:
        platform.set_allocation(FLAG, seen.allocation.model_copy(update={"candidate_bp": 500}), seen.revision)
    assert "50%" in str(caught.value) and "\n" not in str(caught.value)
    assert platform.read_flag(FLAG).allocation.candidate_bp == 5000  # nothing overwritten
    history = platform.history(FLAG)
    assert history[0].actor == "someone-else" and "50%" in history[0].detail


def test_targeting_routedeck_did_not_write_is_reported_and_rollback_replaces_it(fake: FakeFeatBit,
                                                                                platform: FeatBitPlatform) -> None:
    seen = set_stage(platform, 500).after
    raw = fake.raw(FLAG)
    cand = next(v["id"] for v in raw["variations"] if v["name"] == CANDIDATE)
    with foreign_http(fake) as http:
        r = http.patch(f"/{FLAG}", json=[
            {"op": "add", "path": "/targetUsers/-", "value": {"keyIds": ["vip-1", "vip-2"], "variationId": cand}},
            {"op": "add", "path": "/rules/0", "value": {"id": "r1", "name": "beta testers", "dispatchKey": "keyId",
                                                       "includedInExpt": False, "variations": [
                                                           {"id": cand, "rollout": [0, 1], "exptRollout": 1}],
                                                       "conditions": [{"id": "c1", "property": "beta",
                                                                       "op": "IsTrue", "value": ""}]}},
        ])
        assert r.json()["success"] is True
        assert http.put(f"/{FLAG}/toggle/false").json()["success"] is True
    flag = platform.read_flag(FLAG)
    assert "individual targeting sends 2 user(s)" in flag.foreign_targeting
    assert "rules not written by routedeck: beta testers" in flag.foreign_targeting
    assert "the flag is off in FeatBit" in flag.foreign_targeting and BASELINE in flag.foreign_targeting
    result = platform.rollback_to_baseline(FLAG, seen.revision)
    assert result.foreign_change and "5%" in result.foreign_change
    after = fake.raw(FLAG)
    assert after["targetUsers"] == [] and [r["name"] for r in after["rules"]] == [SCOPE] and after["isEnabled"]
    assert platform.read_flag(FLAG).foreign_targeting is None


def test_rollback_re_reads_and_re_applies_when_someone_writes_in_between(fake: FakeFeatBit,
                                                                          platform: FeatBitPlatform,
                                                                          monkeypatch) -> None:
    set_stage(platform, 2000)
    original = platform._apply
    calls = {"n": 0}

    def racing(flag, raw, *, checked):
        calls["n"] += 1
        if calls["n"] == 1:  # someone widens the split just after our read
            other = FeatBitPlatform(fake.url, fake.add_token("racer"), fake.env_id)
            set_stage(other, 5000)
            other.close()
        return original(flag, raw, checked=checked)

    monkeypatch.setattr(platform, "_apply", racing)
    result = platform.rollback_to_baseline(FLAG)
    assert calls["n"] == 2 and result.after.allocation.candidate_bp == 0
    assert fake.raw(FLAG)["rules"][0]["variations"][0]["rollout"] == [0, 0]


# ---- what is stored where ------------------------------------------------------------------


def test_shape_on_featbit_json_strings_ranges_off_variation_and_state_in_description(
        fake: FakeFeatBit, platform: FeatBitPlatform) -> None:
    result = set_stage(platform, 2000)
    platform.set_rollout_state(FLAG, RolloutState(stage=Stage.PCT20, rule_hash="h1"), result.after.revision)
    raw = fake.raw(FLAG)
    assert raw["variationType"] == "json" and raw["tags"] == ["routedeck"]
    by_name = {v["name"]: v for v in raw["variations"]}
    assert all(isinstance(v["value"], str) for v in raw["variations"])
    assert json.loads(by_name[CANDIDATE]["value"])["model"] == "provider-b/balanced"
    assert raw["disabledVariationId"] == by_name[BASELINE]["id"]  # switched off, FeatBit still serves the baseline
    rules = {r["name"]: r for r in raw["rules"]}
    assert [c["property"] for c in rules[INTERNAL]["conditions"]] == ["audience"]
    assert rules[SCOPE]["variations"] == [
        {"id": by_name[CANDIDATE]["id"], "rollout": [0, 0.2], "exptRollout": 1},
        {"id": by_name[BASELINE]["id"], "rollout": [0.2, 1], "exptRollout": 1}]
    assert raw["fallthrough"]["variations"] == [{"id": by_name[BASELINE]["id"], "rollout": [0, 1], "exptRollout": 1}]
    state = json.loads(raw["description"].splitlines()[-1].removeprefix("routedeck:"))
    assert state["rollout"]["stage"] == "20%" and state["rollout"]["rule_hash"] == "h1"
    assert state["baseline"] == BASELINE and state["candidate"] == CANDIDATE


def test_excluded_segments_and_the_switch_round_trip(platform: FeatBitPlatform, fake: FakeFeatBit) -> None:
    flag = set_stage(platform, 500).after
    excluded = flag.allocation.model_copy(update={"excluded_segments": (("region", "eu"),)})
    flag = platform.set_allocation(FLAG, excluded, flag.revision).after
    assert flag.allocation.excluded_segments == (("region", "eu"),) and flag.foreign_targeting is None
    assert fake.raw(FLAG)["rules"][0]["name"] == f"{EXCLUDE} region=eu"
    switched = platform.set_allocation(FLAG, flag.allocation.model_copy(update={"serve_all": BASELINE}),
                                       flag.revision).after
    assert switched.allocation.serve_all == BASELINE and switched.allocation.candidate_bp == 500
    assert fake.raw(FLAG)["rules"] == []
    restored = platform.set_allocation(FLAG, switched.allocation.held(), switched.revision).after
    assert restored.allocation == flag.allocation


def test_history_comes_from_featbits_audit_log(platform: FeatBitPlatform) -> None:
    r1 = set_stage(platform, 500)
    platform.set_rollout_state(FLAG, RolloutState(stage=Stage.PCT5), r1.after.revision)
    events = platform.history(FLAG)
    assert [e.action for e in events][-1] == "Create"
    assert events[0].detail == "rollout state: stage 5%"
    # the split's write in three entries, newest first: state stored, the targeting, the marker that began it
    assert events[1].detail.startswith("state stored after the write to internal_support_team + 5%")
    assert events[2].detail.endswith("→ internal_support_team + 5% of english_support_chat")
    assert events[3].detail.startswith("a write to internal_support_team + 5% of english_support_chat")
    assert events[0].actor == "routedeck-operator"
    assert events[0].before is not None and events[0].after["key"] == FLAG


# ---- spec, tokens and errors -----------------------------------------------------------------


def test_spec_reads_env_stream_and_tokens_from_the_environment(fake: FakeFeatBit, monkeypatch) -> None:
    monkeypatch.setenv("ROUTEDECK_FEATBIT_TOKEN", fake.token)
    monkeypatch.setenv("ROUTEDECK_FEATBIT_SECRET", fake.secret)
    p = FeatBitPlatform.from_spec(f"featbit:{fake.url}?env={fake.env_id}&stream={fake.stream_url}")
    try:
        assert p.describe() == f"featbit:{fake.url}?env={fake.env_id}"
        assert p.stream_url == fake.stream_url
        assert p.list_flags() == []
    finally:
        p.close()


@pytest.mark.parametrize("spec, words", [
    ("featbit:localhost:5000", "expected featbit:http://HOST:PORT"),
    ("featbit:http://h:1?env=nope", "GUID"),
    ("featbit:http://h:1?env=00000000-0000-0000-0000-000000000001&project=x", "unknown option 'project'"),
    ("featbit:http://h:1?env=00000000-0000-0000-0000-000000000001&stream=ws://h:2?token=SEKRET",
     "no token in it"),
    ("featbit:http://u:SEKRET@h:1?env=00000000-0000-0000-0000-000000000001", "no credentials in the URL"),
])
def test_bad_specs_get_one_line_naming_the_problem_without_secrets(spec: str, words: str, monkeypatch) -> None:
    monkeypatch.setenv("ROUTEDECK_FEATBIT_TOKEN", "api-x")
    with pytest.raises(BadInput) as caught:
        FeatBitPlatform.from_spec(spec)
    assert words in str(caught.value) and "SEKRET" not in str(caught.value) and "\n" not in str(caught.value)


def test_missing_token_names_the_variable(monkeypatch) -> None:
    monkeypatch.delenv("ROUTEDECK_FEATBIT_TOKEN", raising=False)
    with pytest.raises(BadInput, match="ROUTEDECK_FEATBIT_TOKEN"):
        FeatBitPlatform.from_spec("featbit:http://h:1?env=00000000-0000-0000-0000-000000000001")


def test_a_wrong_token_is_one_line_without_the_token(fake: FakeFeatBit) -> None:
    p = FeatBitPlatform(fake.url, "api-WRONGTOKEN", fake.env_id)
    with pytest.raises(Exception) as caught:
        p.list_flags()
    text = str(caught.value)
    assert "HTTP 401" in text and "ROUTEDECK_FEATBIT_TOKEN" in text and "WRONGTOKEN" not in text and "\n" not in text
    p.close()


def test_unknown_flag_and_existing_key(platform: FeatBitPlatform) -> None:
    with pytest.raises(BadInput, match="no flag 'nope'"):
        platform.read_flag("nope")
    with pytest.raises(BadInput, match="already exists"):
        platform.create_flag(seed_flag())
