"""A guard that keeps guarding (issue item 2 and #13's blind_after), on real Unleash and Prometheus behind
fault proxies: transient 5xx on either side is ridden out and reported, a lasting failure gives up
loudly after --give-up-after, SIGTERM releases the lease, two guards never both hold it, a killed
guard's lease stops a second one until it lapses, and blind_after bounds how long the candidate
serves while nobody can see it."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta

import pytest

from console.core.models import Lease, Stage

from .helpers import Running, direct, unleash_rollout, wait_for

pytestmark = pytest.mark.servers


def journal_actions(tmp_path) -> list[str]:
    path = tmp_path / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["action"] for line in path.read_text().splitlines() if line.strip()]


def guard(r, unleash, *extra) -> Running:
    return Running(r.config, "guard", "--rule", r.rule_path, *r.common(), "--interval", "1", *extra,
                   ROUTEDECK_UNLEASH_TOKEN=unleash.admin_token)


def lease_of(unleash, key):
    platform = direct(unleash)
    try:
        return platform.read_flag(key).rollout.lease
    finally:
        platform.close()


@pytest.mark.parametrize("side", ["prometheus", "unleash"])
def test_the_guard_rides_out_a_run_of_5xx_and_sigterm_releases_its_lease(side, unleash, unleash_proxy, prom_proxy,
                                                                         tmp_path):
    """A few seconds of HTTP 500 from either backend: the guard retries with backoff, says so on stderr
    and in the journal, keeps its lease, looks again once the backend answers — and SIGTERM, like
    Ctrl-C, releases the lease on its way out."""
    r = unleash_rollout(unleash, tmp_path, unleash_proxy.url, metrics=f"prometheus:{prom_proxy.url}")
    g = guard(r, unleash)
    try:
        g.wait_line("stage 20%", 30)
        holder = lease_of(unleash, r.key).holder
        proxy = prom_proxy if side == "prometheus" else unleash_proxy
        looks_before = len([line for line in g.out if "stage 20%" in line])
        reads_before = len(unleash_proxy.requests("GET", r.key))
        proxy.fault("status", status=500, body=b'{"error":"injected"}')
        g.wait_line("retrying", 20, stream="err")
        g.wait_line("retrying", 20, stream="err")
        if side == "prometheus":  # the platform still answers: the guard keeps reading the flag (and its lease)
            assert len(unleash_proxy.requests("GET", r.key)) > reads_before + 1
        proxy.clear()
        g.wait_line("answer again", 30, stream="err")
        wait_for(lambda: len([line for line in g.out if "stage 20%" in line]) > looks_before + 1, 20, "a look after")
        assert g.proc.poll() is None, g.text()  # still guarding
        assert lease_of(unleash, r.key).holder == holder
        assert "guard_degraded" in journal_actions(tmp_path) and "guard_recovered" in journal_actions(tmp_path)
        g.proc.send_signal(signal.SIGTERM)
        assert g.wait(30) == 143, g.text()
    finally:
        g.stop()
    assert lease_of(unleash, r.key) is None, "SIGTERM must release the lease"
    assert "ADVANCE" not in "\n".join(g.out)  # nothing passed while data was missing


def test_a_lasting_outage_gives_up_after_give_up_after_and_says_nothing_guards(unleash, unleash_proxy, prom_proxy,
                                                                              tmp_path):
    r = unleash_rollout(unleash, tmp_path, unleash_proxy.url, metrics=f"prometheus:{prom_proxy.url}")
    g = guard(r, unleash)
    try:
        g.wait_line("stage 20%", 30)
        unleash_proxy.down()
        code = g.wait(60)
    finally:
        g.stop()
        unleash_proxy.up()
    assert code == 1, g.text()
    err = "\n".join(g.err)
    assert err.count("retrying") >= 2 and "gives up" in err and "nothing guards" in err, err
    actions = journal_actions(tmp_path)
    assert "guard_degraded" in actions and actions[-1] == "guard_gave_up", actions


def test_two_guards_never_both_hold_the_lease(unleash, unleash_proxy, prom_proxy, tmp_path):
    r = unleash_rollout(unleash, tmp_path, unleash_proxy.url, metrics=f"prometheus:{prom_proxy.url}")
    first = guard(r, unleash)
    try:
        first.wait_line("stage 20%", 30)
        second = guard(r, unleash)
        assert second.wait(30) == 5, second.text()
        assert any("lease held by guard:" in line for line in second.err), second.text()
        assert first.proc.poll() is None
    finally:
        first.stop()


def test_a_killed_guard_holds_the_lease_until_it_lapses_then_another_takes_over(unleash, unleash_proxy, prom_proxy,
                                                                               tmp_path):
    r = unleash_rollout(unleash, tmp_path, unleash_proxy.url, metrics=f"prometheus:{prom_proxy.url}")
    first = guard(r, unleash)
    first.wait_line("stage 20%", 30)
    first.proc.send_signal(signal.SIGKILL)
    first.wait(10)
    held = lease_of(unleash, r.key)
    assert held is not None and held.expires_at > datetime.now(UTC)  # a killed guard cannot release it
    second = guard(r, unleash, "--max-looks", "1")
    assert second.wait(30) == 5, second.text()
    # its time passes (the lease is backdated rather than waited for): the next guard takes over
    platform = direct(unleash)
    try:
        flag = platform.read_flag(r.key)
        stale = Lease(holder=held.holder, expires_at=datetime.now(UTC) - timedelta(seconds=1))
        platform.set_rollout_state(r.key, flag.rollout.model_copy(update={"lease": stale}), flag.revision)
    finally:
        platform.close()
    third = guard(r, unleash, "--max-looks", "1")
    assert third.wait(30) == 3, third.text()  # one look, HOLD (no data), then exits with its code
    assert lease_of(unleash, r.key) is None  # and released its own lease


def test_blind_after_rolls_back_a_candidate_nobody_can_see(unleash, unleash_proxy, prom_proxy, tmp_path):
    """#13 item 9: Prometheus is down; after the rule's blind_after the guard rolls back (exit 4), and the
    journal says why."""
    r = unleash_rollout(unleash, tmp_path, unleash_proxy.url, metrics=f"prometheus:{prom_proxy.url}",
                        rule_extra="  blind_after: 3s\n")
    prom_proxy.down()
    g = guard(r, unleash)
    try:
        assert g.wait(60) == 4, g.text()
    finally:
        g.stop()
    out = "\n".join(g.out)
    assert "HOLD" in out and "blind_after 3s (rollback) rolls back in" in out, out  # first it holds, saying when
    assert "ROLLBACK" in out and "blind for" in out, out
    flag = direct(unleash).read_flag(r.key)
    assert flag.rollout.stage is Stage.ROLLED_BACK and not flag.allocation.serves_candidate
    rollback = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()
                if '"action":"rollback"' in line][0]
    assert "blind_after 3s" in rollback["reason"]


def test_blind_after_hold_keeps_holding_and_says_it_is_blind(unleash, unleash_proxy, prom_proxy, tmp_path):
    r = unleash_rollout(unleash, tmp_path, unleash_proxy.url, metrics=f"prometheus:{prom_proxy.url}",
                        rule_extra="  blind_after: {after: 2s, action: hold}\n")
    prom_proxy.down()
    g = guard(r, unleash)
    try:
        g.wait_line("blind past the rule's blind_after 2s (hold)", 30)
        assert g.proc.poll() is None
    finally:
        g.proc.send_signal(signal.SIGTERM)
        g.wait(30)
        g.stop()
    flag = direct(unleash).read_flag(r.key)
    assert flag.allocation.serves_candidate and flag.rollout.stage.value == "20%"  # held, not rolled back
