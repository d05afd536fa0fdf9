"""Writes to a real Unleash (and to the FeatBit fake) that are cut short, raced or answered wrongly (issue items 1, 11, 12, 15).

Every test reads the result straight from Unleash (not through the proxy): what the platform holds is
what units get, whatever routedeck printed.
"""

from __future__ import annotations

import json
import signal
import os

import httpx
import pytest

from console.core.errors import BackendError
from console.core.models import RolloutState, Stage

from .helpers import CANDIDATE, direct, cli, spawn, unleash_rollout, wait_for

pytestmark = pytest.mark.servers


def strategies(unleash, key: str) -> list[dict]:
    with httpx.Client(base_url=unleash.url, headers={"Authorization": unleash.admin_token}, timeout=5) as http:
        body = http.get(f"/api/admin/projects/default/features/{key}").json()
    env = next(e for e in body["environments"] if e["name"] == "development")
    return env["strategies"]


def claims_rolled_back_while_serving(flag) -> bool:
    return flag.rollout is not None and flag.rollout.stage is Stage.ROLLED_BACK and flag.allocation.serves_candidate


def test_a_rollback_held_at_its_first_put_never_reads_rolled_back_while_the_candidate_serves(
        unleash, unleash_proxy, tmp_path, capsys, monkeypatch):
    """Item 1. Unleash takes the rollback's first write late (it was held, as by a stopped server) and
    never sees the rest: the stage must not read "rolled back" while the candidate still serves, `check`
    must say the rollback did not complete, and a guard must finish it rather than call it done."""
    r = unleash_rollout(unleash, tmp_path, unleash_proxy.url, stage="20%")
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(r.config))
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", unleash.admin_token)
    held = unleash_proxy.fault("hold", method="PUT", then="forward")  # every write, from the first one
    code, out, err = cli(capsys, "rollback", "--flag", r.key, *r.common(), "--reason", "fault: held writes")
    assert code == 1, out + err
    puts = unleash_proxy.requests("PUT")
    assert puts and all(p.outcome == "held" for p in puts), puts
    unleash_proxy.clear()  # the held writes reach Unleash now, late
    wait_for(lambda: len(unleash_proxy.requests("PUT", outcome="held+")) == len(puts), 10, "the held writes landing")

    platform = direct(unleash)
    try:
        flag = platform.read_flag(r.key)
        assert not claims_rolled_back_while_serving(flag), (flag.rollout, flag.allocation.describe())
        assert flag.allocation.serves_candidate  # only the first write landed: the candidate still serves...
        assert flag.rollout.stage.value == "20%" and flag.rollout.pending is not None  # ...and the state says so
        assert flag.rollout.pending.stage == "rolled_back"
        assert "not confirmed" in err and "now holds" in err, err  # the command said what holds

        code, out, err = cli(capsys, "check", "--rule", r.rule_path, *r.common())
        assert code == 4 and "nothing to decide" not in out, out + err
        assert "not confirmed" in out and "still serves" in out, out

        code, out, err = cli(capsys, "guard", "--rule", r.rule_path, *r.common(), "--interval", "1")
        assert code == 4 and "nothing left to guard" not in out, out + err
        after = platform.read_flag(r.key)
        assert not after.allocation.serves_candidate and after.rollout.stage is Stage.ROLLED_BACK
        assert after.rollout.pending is None
        rollouts = {s["title"]: s["parameters"]["rollout"] for s in strategies(unleash, r.key)}
        assert rollouts == {"routedeck:internal": "0", "routedeck:candidate": "0", "routedeck:baseline": "100"}
    finally:
        platform.close()


def test_a_rollback_of_a_stopped_unleash_leaves_the_state_honest(unleash, unleash_proxy, tmp_path, capsys,
                                                                  monkeypatch):
    """Item 1 with the server itself stopped (SIGSTOP) once the rollback's first write is on its way:
    the command fails within its bound, and when Unleash wakes up and applies what was queued, the
    stage does not claim a rollback that did not happen."""
    r = unleash_rollout(unleash, tmp_path, unleash_proxy.url, stage="20%")
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(r.config))
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", unleash.admin_token)
    before = direct(unleash).read_flag(r.key)
    first_put = unleash_proxy.fault("hold", method="PUT", times=1, then="forward")
    proc = spawn(r.config, "rollback", "--flag", r.key, *r.common(), ROUTEDECK_UNLEASH_TOKEN=unleash.admin_token)
    stopped = False
    try:
        assert first_put.hit.wait(20), "the rollback never wrote"
        os.kill(unleash.pid, signal.SIGSTOP)
        stopped = True
        first_put.release()  # reaches a server that does not answer
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, out + err
    finally:
        if stopped:
            os.kill(unleash.pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    platform = direct(unleash)
    try:
        wait_for(lambda: platform.read_flag(r.key).revision != before.revision, 15, "Unleash applying the queued write")
        flag = platform.read_flag(r.key)
        assert not claims_rolled_back_while_serving(flag), (flag.rollout, flag.allocation.describe())
        assert "not confirmed" in err, err
        code, out, _ = cli(capsys, "check", "--rule", r.rule_path, *r.common())
        assert code == 4 and "not confirmed" in out, out
    finally:
        platform.close()


def test_a_rollback_racing_an_advance_is_applied_again_until_it_holds(unleash, unleash_proxy, tmp_path, capsys,
                                                                     monkeypatch):
    """Item 12. Another writer's advance lands right after the rollback's last write (Unleash has no
    revision to refuse it): the read-back shows the candidate serving again, and the rollback re-reads
    and re-applies instead of failing with the flag left at 20%."""
    r = unleash_rollout(unleash, tmp_path, unleash_proxy.url, stage="5%")
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(r.config))
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", unleash.admin_token)
    racer = direct(unleash)
    seen = racer.read_flag(r.key)

    def advance_lands():
        from .helpers import at_stage

        racer._write_flag(at_stage(seen, r.rule, "20%"), None)  # written from what it read before the rollback

    # the advance lands between the rollback's writes and its read-back
    unleash_proxy.fault("before", method="GET", path=r.key, times=1, action=advance_lands,
                        when=lambda: bool(unleash_proxy.requests("PUT")))
    try:
        code, out, err = cli(capsys, "rollback", "--flag", r.key, *r.common(), "--reason", "fault: racing advance")
        assert code == 0, out + err
        assert "2 attempts" in out, out
        flag = racer.read_flag(r.key)
        assert not flag.allocation.serves_candidate and flag.rollout.stage is Stage.ROLLED_BACK
        outcome = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()][-1]
        assert outcome["status"] == "confirmed" and outcome["detail"]["attempts"] == 2
    finally:
        racer.close()


def test_a_strategy_post_that_was_applied_but_answered_503_is_not_created_twice(unleash, unleash_proxy, tmp_path,
                                                                               capsys, monkeypatch):
    """Item 11. Unleash applies the POST that creates a strategy but the answer is a 503: sending it
    again would add a second strategy. routedeck checks what is there first, and the flag ends with one
    strategy per title."""
    from console.core.rules import load_rule

    from .helpers import new_key, rule_text, write_profile

    key = new_key()
    rule = tmp_path / "rule.yaml"
    rule.write_text(rule_text(key))
    config = write_profile(tmp_path, f"unleash:{unleash_proxy.url}?project=default&environment=development", None,
                           rule)
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(config))
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", unleash.admin_token)
    from console.core import rollout

    from .helpers import PROFILES

    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps({k: v.to_wire() for k, v in PROFILES.items()}))
    unleash_proxy.fault("status", method="POST", path=r"/strategies$", status=503, forward=True, times=1)
    code, out, err = cli(capsys, "init", "--rule", rule, "--profiles", profiles, "--profile", "faults",
                         "--state-dir", tmp_path)
    assert code == 0, out + err
    titles = [s["title"] for s in strategies(unleash, key)]
    assert sorted(titles) == sorted(set(titles)) and len(titles) == 3, titles
    assert any(r.outcome == "forwarded+status 503" for r in unleash_proxy.requests("POST")), unleash_proxy.log
    flag = direct(unleash).read_flag(key)
    assert flag.foreign_targeting is None and flag == rollout.init_flag(load_rule(rule), PROFILES).model_copy(
        update={"revision": flag.revision})
    assert CANDIDATE in flag.variations


def test_malformed_json_from_unleash_is_one_line_naming_it(unleash, unleash_proxy, tmp_path, capsys, monkeypatch):
    """Item 15. An answer that is not JSON names the backend and its URL; no traceback, no `unexpected error`."""
    r = unleash_rollout(unleash, tmp_path, unleash_proxy.url, stage="5%")
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(r.config))
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", unleash.admin_token)
    unleash_proxy.fault("malformed", method="GET", path=r.key)
    code, out, err = cli(capsys, "check", "--rule", r.rule_path, *r.common())
    assert code == 1 and err.count("\n") == 1, out + err
    assert "Unleash at http://127.0.0.1:" in err and "not JSON" in err and "unexpected" not in err, err
    unleash_proxy.clear()
    unleash_proxy.fault("malformed", method="GET", path=r.key, body=b"[" * 200_000)
    code, out, err = cli(capsys, "check", "--rule", r.rule_path, *r.common())
    assert code == 1 and "Unleash at http://127.0.0.1:" in err and "unexpected" not in err, err


@pytest.mark.parametrize("fault, options, code, words", [
    ("down", {}, 1, "cannot connect"),
    ("slow", {"delay_s": 3.0}, 1, "no answer within 2 s"),
    ("slow", {"delay_s": 0.5}, 3, None),  # slower than usual, inside the profile's timeout: it just works
    ("status", {"status": 401, "body": b'{"message": "unauthorized"}'}, 1, "check the API token"),
    ("status", {"status": 500}, 1, "HTTP 500"),
])
def test_platform_faults_are_one_line_naming_unleash_and_never_a_pass(unleash, unleash_proxy, prometheus, tmp_path,
                                                                      capsys, monkeypatch, fault, options, code, words):
    """The passing cells of the platform column: down, slow, 401, 5xx (malformed above) — `check` exits 1
    with one line naming Unleash and what to do, never 0, and never shows the token."""
    r = unleash_rollout(unleash, tmp_path, unleash_proxy.url, stage="5%", metrics=f"prometheus:{prometheus.url}")
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(r.config))
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", unleash.admin_token)
    if fault == "down":
        unleash_proxy.down()
    else:
        unleash_proxy.fault(fault, path=r.key, **options)
    got, out, err = cli(capsys, "check", "--rule", r.rule_path, *r.common())
    unleash_proxy.up()
    if words is None:  # the verdict itself: HOLD (Prometheus holds no data for this flag)
        assert got == code and "verdict HOLD" in out, out + err
        return
    assert got == code and err.count("\n") == 1 and "Unleash at http://127.0.0.1:" in err, out + err
    assert words in err and unleash.admin_token not in out + err


def test_an_advance_on_featbit_cut_before_its_state_leaves_the_marker_and_holds():
    """FeatBit (its fake: no real server runs here) also takes a write in several requests: cut before the
    state line is stored, the flag says a write to 20% did not complete, and the verdict holds."""
    from adapters.flags.featbit import FeatBitPlatform
    from console.core import operations
    from tests.fakes.featbit_server import FakeFeatBit
    from tests.integration.test_featbit import seed_flag

    from .proxy import FaultProxy

    fake = FakeFeatBit().start()
    proxy = FaultProxy(fake.url)
    direct_fb = FeatBitPlatform(fake.url, fake.token, fake.env_id)
    proxied = FeatBitPlatform(proxy.url, fake.token, fake.env_id)
    try:
        created = direct_fb.create_flag(seed_flag()).after
        at5 = created.model_copy(update={"allocation": created.allocation.model_copy(update={"candidate_bp": 500}),
                                         "rollout": RolloutState(stage=Stage.PCT5)})
        direct_fb.write_flag(at5, created.revision)
        seen = direct_fb.read_flag(created.key)
        at20 = seen.model_copy(update={"allocation": seen.allocation.model_copy(update={"candidate_bp": 2000}),
                                       "rollout": RolloutState(stage=Stage.PCT20)})
        proxy.fault("status", method="PUT", path=r"/description$", skip=1, status=503)  # the marker goes through
        with pytest.raises(BackendError):
            proxied.write_flag(at20, seen.revision)
        flag = direct_fb.read_flag(created.key)
        assert flag.allocation.candidate_bp == 2000 and flag.rollout.stage is Stage.PCT5  # the routing moved...
        assert flag.rollout.pending is not None and flag.rollout.pending.stage == "20%"  # ...and it says so
        verdict = operations.unsettled(flag)
        assert verdict is not None and verdict.verdict.value == "HOLD" and "not confirmed" in verdict.reasons[0]
    finally:
        proxied.close()
        direct_fb.close()
        proxy.close()
        fake.stop()
