"""`routedeck simulate` against a real Unleash server: the official SDK routes the simulated units."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.flags.unleash import UnleashPlatform
from adapters.metrics import prom_contract as c
from console.core.errors import BadInput
from console.core.models import Allocation, RouteFlag, RouteProfile

from .servers import free_port, wait_until
from .test_unleash import served_rollouts

pytestmark = pytest.mark.servers

FLAG = "support-answer-route"  # a flag the simulated application evaluates
BASELINE, CANDIDATE = "fast_default_v1", "balanced_core_v2"
#: the eligible scope is English support chat: 80 % of the support-answer units (see the simulator's population)
ENGLISH_SHARE = 0.8


def route_flag() -> RouteFlag:
    return RouteFlag(
        key=FLAG,
        variations={
            BASELINE: RouteProfile(route=BASELINE, model="provider-a/standard", timeout_ms=6000),
            CANDIDATE: RouteProfile(route=CANDIDATE, model="provider-b/balanced", max_output_tokens=900),
        },
        baseline=BASELINE,
        candidate=CANDIDATE,
        allocation=Allocation(internal_audience="internal_support_team", eligible_scope="english_support_chat"),
    )


def at_20_percent(unleash) -> None:
    platform = UnleashPlatform(unleash.url, unleash.admin_token)
    try:
        try:
            flag = platform.create_flag(route_flag()).after
        except BadInput:  # created by an earlier run on this server
            flag = platform.read_flag(FLAG)
        allocation = flag.allocation.model_copy(update={"internal_enabled": False, "candidate_bp": 2000})
        if flag.allocation != allocation:
            platform.set_allocation(FLAG, allocation, flag.revision)
    finally:
        platform.close()
    wait_until(lambda: served_rollouts(unleash, FLAG) == ["0", "20", "100"], 15, f"client API serving {FLAG} at 20%")


def scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text


def requests_by_arm(text: str) -> dict[str, float]:
    """Requests per arm: the exporter labels each with the variant, which is the arm's variation on this flag."""
    arm_of = {BASELINE: "baseline", CANDIDATE: "candidate"}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == c.REQUESTS and s.labels.get(c.FLAG) == FLAG:
                arm = arm_of.get(s.labels[c.VARIANT], "other")
                out[arm] = out.get(arm, 0.0) + s.value
    return out


def test_simulate_on_unleash_serves_the_allocation(unleash):
    at_20_percent(unleash)
    port = free_port()
    env = {**os.environ, "ROUTEDECK_UNLEASH_CLIENT_TOKEN": unleash.client_token}
    env.pop("ROUTEDECK_UNLEASH_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "simulate", "--flags", f"unleash:{unleash.url}?refresh=1",
         "--seed", "3", "--speed", "200", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        def has_traffic() -> bool:
            try:
                return sum(requests_by_arm(scrape(port)).values()) > 5000
            except httpx.TransportError:
                return False

        wait_until(has_traffic, 60, "simulate exporting traffic", proc)
        text = scrape(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert unleash.client_token not in out + err
    assert out.count("\n") == 1 and "Unleash SDK" in out
    arms = requests_by_arm(text)
    assert set(arms) == {"baseline", "candidate"}, arms
    share = arms["candidate"] / sum(arms.values())
    # 20 % of the units in scope; requests are weighted by each unit's activity, hence the wide band
    assert 0.2 * ENGLISH_SHARE * 0.6 <= share <= 0.2 * ENGLISH_SHARE * 1.4, arms
