"""End to end on real servers: Prometheus scrapes `routedeck simulate`, whose application evaluates a
real Unleash flag (on PostgreSQL) with the official SDK; `routedeck init` / `advance` move the rollout
to 5% then 20% and the candidate's share, measured through Prometheus, follows; `routedeck rollback`
works with Prometheus stopped, and the simulated application stops sending traffic to the candidate.
A second application whose candidate provider fails a third of its calls is judged ROLLBACK from the
same real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from adapters.flags.unleash import UnleashPlatform
from adapters.metrics.prometheus import PrometheusSource
from console.cli import main
from console.core.telemetry import Arm

from .servers import Unavailable, free_port, remove_unleash_flag, wait_until
from .test_simulate_unleash import requests_by_arm, scrape
from .test_unleash import served_rollouts

pytestmark = pytest.mark.servers

FLAG = "support-answer-route"  # the flag the simulated application evaluates
#: the eligible scope is English support chat: 80 % of the support-answer units (see the simulator's population)
ENGLISH_SHARE = 0.8
#: extended form, small minimum units and no dwell so the test can move within seconds; no first-audience
#: cohort, so the candidate's share is the stage's share of the scope and nothing else
RULE = """
llm_route_decision:
  flag_key: support-answer-route
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  first_audience: internal_support_team
  eligible_scope: english_support_chat
  primary_metric: resolved_without_escalation
  guardrails:
    - p95_latency
    - {metric: cost_per_resolved_case, margin: 35%, severity: normal}
    - correction_rate
    - fallback_rate
  rollback_when:
    - provider errors or fallback rate breach the incident threshold
  stages:
    - {name: 5%, share: 5%, internal: false, min_units: 5, min_dwell: 0s}
    - {name: 20%, share: 20%, internal: false, min_units: 10, min_dwell: 0s}
    - {name: full, share: 95%, internal: false, min_units: 20, min_dwell: 0s}
"""
ROOT = Path(__file__).resolve().parents[2]
WINDOW_S = 8.0  # real seconds of traffic measured per stage (≈ 1,600 simulated seconds at --speed 200)


def remove_flag(unleash) -> None:
    """Start from no flag (an earlier test or run on this server may have created it): archive, then delete."""
    with httpx.Client(base_url=unleash.url, headers={"Authorization": unleash.admin_token}, timeout=5) as http:
        if http.get(f"/api/admin/projects/default/features/{FLAG}").status_code == 404:
            return
        remove_unleash_flag(http, FLAG)
    wait_until(lambda: served_rollouts(unleash, FLAG) is None, 15, f"client API no longer serving {FLAG}")


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def candidate_share(prom_url: str, start: float, end: float, stage: str) -> tuple[float, float, dict]:
    """(candidate share of requests, of the stage's comparable units, [requests, units] by arm) for [start, end),
    read through Prometheus.

    Comparable units are the ones the stage's share applies to: in the eligible scope, outside the first
    audience, counted by the application under ``stage``.
    """
    # routedeck init names each variant after its route; the arms are the rule's
    variants = {"fast_default_v1": ("baseline", "fast_default_v1"), "balanced_core_v2": ("candidate", "balanced_core_v2")}
    source = PrometheusSource(prom_url, variants_of=lambda flag: variants if flag == FLAG else {})
    try:
        snap = source.read(start, end, end - start)
    finally:
        source.close()
    by_arm: dict[Arm, list[float]] = {}
    for key, counters in snap.totals.items():
        if key.flag == FLAG:
            by_arm.setdefault(key.arm, [0.0, 0.0])[0] += counters.requests
    for g in snap.unit_groups or []:
        if g.key.flag == FLAG and g.stage == stage and g.segment["scope"] == "english_support_chat" \
                and not g.segment["audience"]:
            by_arm.setdefault(g.key.arm, [0.0, 0.0])[1] += g.units
    requests = sum(v[0] for v in by_arm.values())
    units = sum(v[1] for v in by_arm.values())
    cand = by_arm.get(Arm.CANDIDATE, [0.0, 0.0])
    arms = {a.value: v for a, v in by_arm.items()} | ({"gaps": snap.gaps} if snap.gaps else {})
    return cand[0] / max(requests, 1.0), cand[1] / max(units, 1.0), arms


def prometheus_has_data_until(prom_url: str, t: float) -> bool:
    r = httpx.get(f"{prom_url}/api/v1/query", params={"query": "max(timestamp(routedeck_requests_total))"}, timeout=2)
    result = r.json()["data"]["result"]
    return bool(result) and float(result[0]["value"][1]) >= t


def application_at_stage(prom_url: str, stage: str) -> bool:
    """The simulated application has fetched the change: it counts units under the new stage."""
    query = f'sum(routedeck_units_total{{feature_flag_key="{FLAG}",stage="{stage}"}})'
    r = httpx.get(f"{prom_url}/api/v1/query", params={"query": query}, timeout=2)
    return bool(r.json()["data"]["result"])


def measure(prom_url: str, unleash, rollout: str, proc) -> tuple[float, float, dict]:
    """Wait until the client API serves ``rollout`` and the application's SDK has it, then measure a window."""
    wait_until(lambda: served_rollouts(unleash, FLAG) is not None and rollout in served_rollouts(unleash, FLAG),
               15, f"client API serving {FLAG} at {rollout}%")
    # the SDK refreshes every second, but a busy machine can delay it: wait for the application to show it
    wait_until(lambda: application_at_stage(prom_url, f"{rollout}%"), 30, f"the application at {rollout}%", proc)
    start = time.time() + 2.0  # every request after the next scrape is served at the new stage
    end = start + WINDOW_S
    wait_until(lambda: prometheus_has_data_until(prom_url, end), WINDOW_S + 20, "Prometheus scraping the window", proc)
    return candidate_share(prom_url, start, end, f"{rollout}%")


def test_rollout_end_to_end_on_real_servers(unleash, servers, tmp_path, capsys, monkeypatch):
    remove_flag(unleash)
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE)
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", unleash.admin_token)
    flags = f"unleash:{unleash.url}?project=default&environment=development"
    common = ["--flags", flags, "--state-dir", tmp_path]

    code, out, err = cli(capsys, "init", "--rule", rule, *common)
    assert code == 0 and "created support-answer-route" in out, out + err
    platform = UnleashPlatform(unleash.url, unleash.admin_token)

    port = free_port()
    env = {**os.environ, "ROUTEDECK_UNLEASH_CLIENT_TOKEN": unleash.client_token}
    env.pop("ROUTEDECK_UNLEASH_TOKEN", None)
    sim = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "simulate", "--flags", f"unleash:{unleash.url}?refresh=1",
         "--seed", "5", "--speed", "200", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    try:
        prom = servers.prometheus("prom-e2e", [f"127.0.0.1:{port}"])
        metrics = ["--metrics", f"prometheus:{prom.url}"]
        wait_until(lambda: prometheus_has_data_until(prom.url, time.time() - 1), 30, "Prometheus scraping simulate", sim)

        # baseline → 5%: nothing to judge yet, the verdict is ADVANCE
        code, out, err = cli(capsys, "advance", "--rule", rule, *common, *metrics)
        assert code == 0 and "stage: baseline → 5%" in out, out + err
        assert platform.read_flag(FLAG).allocation.candidate_bp == 500
        req5, units5, arms5 = measure(prom.url, unleash, "5", sim)
        expected5 = 0.05 * ENGLISH_SHARE
        # requests are weighted by each unit's activity, hence the wide bands
        assert expected5 * 0.5 <= req5 <= expected5 * 1.6, arms5
        assert arms5["candidate"][1] > 0, arms5  # units do reach the candidate (see candidate_share on unit shares)

        assert 0.05 * 0.6 <= units5 <= 0.05 * 1.4, arms5  # the stage's share of the units it applies to

        # the verdict from real Prometheus data: steady traffic must not ask for a rollback, and the health
        # gates that need units (sample ratio, crossover) are decided from the application's unit counters
        code, out, err = cli(capsys, "check", "--rule", rule, *common, *metrics, "--json")
        assert code in (0, 3), out + err  # ADVANCE or HOLD: never a rollback on steady traffic
        verdict = json.loads(out)
        gates = {g["name"]: g for g in verdict["health"]}
        assert gates["sample ratio"]["status"] == "pass", gates
        assert gates["crossover"]["status"] == "pass", gates
        # whatever holds is the amount of evidence, never a figure the source cannot give
        assert not [m["line"] for m in verdict["metrics"] if m["verdict"] == "no data"], verdict["metrics"]
        # and the verdict says it is request-level, with unit counts that one process kept
        assert verdict["request_level"] is True
        assert any("counted by each application process" in r for r in verdict["reasons"]), verdict["reasons"]
        # 5% → 20%: forced past a HOLD if the few minutes of traffic cannot decide yet (recorded with a reason)
        code, out, err = cli(capsys, "advance", "--rule", rule, *common, *metrics,
                             "--override", "--reason", "end-to-end test: a few simulated minutes only")
        assert code == 0 and "stage: 5% → 20%" in out, out + err
        assert platform.read_flag(FLAG).allocation.candidate_bp == 2000
        req20, units20, arms20 = measure(prom.url, unleash, "20", sim)
        with capsys.disabled():
            print(f"\nshares of requests / comparable units: 5% {req5:.3f}/{units5:.3f}, 20% {req20:.3f}/{units20:.3f}")
        expected20 = 0.2 * ENGLISH_SHARE  # ≈ 16 % of the support requests
        assert expected20 * 0.6 <= req20 <= expected20 * 1.4, arms20
        assert 0.2 * 0.8 <= units20 <= 0.2 * 1.2, arms20
        assert req20 > 2 * req5, (arms5, arms20)
        code, out, err = cli(capsys, "check", "--rule", rule, *common, *metrics, "--json")
        gates = {g["name"]: g for g in json.loads(out)["health"]}
        assert code in (0, 3) and gates["sample ratio"]["status"] == "pass", gates
        assert gates["crossover"]["status"] == "pass", gates

        # rollback needs no metrics: it works with Prometheus down
        servers.stop(prom.pid)
        with pytest.raises(httpx.TransportError):
            httpx.get(prom.url + "/-/ready", timeout=1)
        code, out, err = cli(capsys, "rollback", "--flag", FLAG, *common, "--reason", "end-to-end test")
        assert code == 0 and "serves 100% fast_default_v1" in out, out + err
        flag = platform.read_flag(FLAG)
        assert flag.allocation.candidate_bp == 0 and not flag.allocation.internal_enabled
        assert flag.rollout.stage.value == "rolled_back"

        # the application follows: its exported candidate requests stop growing
        wait_until(lambda: served_rollouts(unleash, FLAG) is not None
                   and all(r in ("0", "100") for r in served_rollouts(unleash, FLAG)), 15, "client API serving 0%")
        seen: list[tuple[float, float]] = []  # (monotonic time, candidate requests exported)

        def candidate_stopped() -> bool:
            value = requests_by_arm(scrape(port)).get("candidate", 0.0)
            now = time.monotonic()
            seen.append((now, value))
            older = [v for t, v in seen if t <= now - 2.0]
            return bool(older) and older[-1] == value  # unchanged over ≥ 2 s (≈ 400 simulated seconds)

        try:
            wait_until(candidate_stopped, 20, "simulated candidate traffic to stop", sim)
        except Unavailable as exc:
            raise AssertionError(f"{exc}: candidate requests over time {seen}") from None
        baseline_before = requests_by_arm(scrape(port))["baseline"]
        wait_until(lambda: requests_by_arm(scrape(port))["baseline"] > baseline_before, 10, "baseline traffic", sim)
        assert requests_by_arm(scrape(port)).get("candidate", 0.0) == seen[-1][1]
    finally:
        platform.close()
        sim.send_signal(signal.SIGTERM)
        out, err = sim.communicate(timeout=30)
    assert sim.returncode == 0, err
    assert unleash.client_token not in out + err


def test_a_provider_outage_is_rolled_back_on_real_servers(unleash, servers, tmp_path, capsys, monkeypatch):
    """The candidate's provider fails a third of its calls: the verdict read from real Prometheus is ROLLBACK,
    on the guardrails that see it, and the rollback is confirmed on Unleash."""
    remove_flag(unleash)
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE)
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", unleash.admin_token)
    common = ["--flags", f"unleash:{unleash.url}?project=default&environment=development", "--state-dir", tmp_path]
    code, out, err = cli(capsys, "init", "--rule", rule, *common)
    assert code == 0, out + err
    port = free_port()
    env = {**os.environ, "ROUTEDECK_UNLEASH_CLIENT_TOKEN": unleash.client_token}
    env.pop("ROUTEDECK_UNLEASH_TOKEN", None)
    sim = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "simulate", "--flags", f"unleash:{unleash.url}?refresh=1",
         "--scenario", "provider-outage", "--seed", "11", "--speed", "200", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    platform = UnleashPlatform(unleash.url, unleash.admin_token)
    try:
        prom = servers.prometheus("prom-outage", [f"127.0.0.1:{port}"])
        metrics = ["--metrics", f"prometheus:{prom.url}"]
        wait_until(lambda: prometheus_has_data_until(prom.url, time.time() - 1), 30, "Prometheus scraping simulate", sim)
        code, out, err = cli(capsys, "advance", "--rule", rule, *common, *metrics)
        assert code == 0 and "stage: baseline → 5%" in out, out + err
        measure(prom.url, unleash, "5", sim)
        code, out, err = cli(capsys, "check", "--rule", rule, *common, *metrics, "--json")
        verdict = json.loads(out)
        harmed = {m["name"] for m in verdict["metrics"] if m["verdict"] == "harm"}
        assert code == 4 and verdict["verdict"] == "ROLLBACK", verdict["reasons"]
        assert {"fallback_rate", "error_rate"} & harmed, verdict["reasons"]
        code, out, err = cli(capsys, "rollback", "--flag", FLAG, *common, "--reason", "provider outage")
        assert code == 0 and platform.read_flag(FLAG).allocation.candidate_bp == 0, out + err
    finally:
        platform.close()
        sim.send_signal(signal.SIGTERM)
        out, err = sim.communicate(timeout=30)
    assert sim.returncode == 0, err
