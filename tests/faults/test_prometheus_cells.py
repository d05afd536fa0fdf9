"""Prometheus under faults, with real data: `routedeck simulate` serves an application's metrics for a
rollout at 5% on a flag file, a real Prometheus scrapes it every second, and a fault proxy stands between
Prometheus and routedeck. Down, empty, NaN and a restart of Prometheus itself: missing data never passes,
a source that cannot be read is said (exit 1, never 0), and everything reads again once it is back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.integration.servers import free_port, start_prometheus, stop_pid

from .helpers import ROOT, Running, cli, wait_for, write_profile
from .proxy import FaultProxy

pytestmark = pytest.mark.servers

FLAG = "support-answer-route"
RULE = f"""llm_route_decision:
  flag_key: {FLAG}
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  first_audience: internal_support_team
  eligible_scope: english_support_chat
  primary_metric: resolved_without_escalation
  guardrails:
    - correction_rate
    - fallback_rate
  stages:
    - {{name: 5%, share: 5%, internal: false, min_units: 10, min_dwell: 0s}}
    - {{name: 20%, share: 20%, internal: false, min_units: 10, min_dwell: 0s}}
"""


def has_data(prom_url: str) -> bool:
    import httpx

    r = httpx.get(f"{prom_url}/api/v1/query", params={"query": f'sum(routedeck_requests_total{{feature_flag_key="{FLAG}"}})'},
                  timeout=2)
    return bool(r.json()["data"]["result"])


@pytest.fixture(scope="module")
def app(tmp_path_factory, fault_servers):
    """(dir, Prometheus): a rollout at 5% on a flag file, its simulated application scraped by a real Prometheus."""
    tmp = tmp_path_factory.mktemp("prom-app")
    (tmp / "rule.yaml").write_text(RULE)
    flags = ["--flags", f"flagd:{tmp / 'flags.json'}", "--state-dir", str(tmp)]
    from console.cli import main

    assert main(["init", "--rule", str(tmp / "rule.yaml"), *flags]) == 0
    assert main(["advance", "--rule", str(tmp / "rule.yaml"), *flags, "--metrics", "sim:steady?minutes=2",
                 "--override", "--reason", "fault matrix setup"]) == 0
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "console.cli", "simulate", "--flags", f"flagd:{tmp / 'flags.json'}",
                            "--speed", "30", "--listen", f"127.0.0.1:{port}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        prom = fault_servers.prometheus("faults-app", [f"127.0.0.1:{port}"])
        wait_for(lambda: has_data(prom.url), 60, "Prometheus scraping the simulated application")
        yield tmp, prom, port
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.communicate(timeout=30)


@pytest.fixture
def proxied(app, monkeypatch):
    tmp, prom, _ = app
    proxy = FaultProxy(prom.url)
    config = write_profile(tmp, f"flagd:{tmp / 'flags.json'}", f"prometheus:{proxy.url}", tmp / "rule.yaml")
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(config))
    yield tmp, prom, proxy, config
    proxy.close()


def check(capsys, tmp) -> tuple[int, dict | None, str]:
    code, out, err = cli(capsys, "check", "--profile", "faults", "--state-dir", tmp, "--json")
    return code, (json.loads(out) if out.strip() else None), err


def test_healthy_prometheus_gives_data_to_judge(proxied, capsys):
    tmp, _, _, _ = proxied
    code, verdict, err = check(capsys, tmp)
    assert code in (0, 3) and verdict["units"]["baseline"] > 0, (code, err, verdict and verdict["reasons"])


def test_prometheus_down_is_exit_1_naming_it_never_a_pass(proxied, capsys):
    tmp, _, proxy, _ = proxied
    proxy.down()
    code, verdict, err = check(capsys, tmp)
    assert code == 1 and verdict is None and f"Prometheus at {proxy.url}" in err, err


def empty_results(body: bytes) -> bytes:
    doc = json.loads(body)
    if isinstance(doc.get("data"), dict):
        doc["data"]["result"] = []
    return json.dumps(doc).encode()


def nan_values(body: bytes) -> bytes:
    doc = json.loads(body)
    for series in (doc.get("data") or {}).get("result") or []:
        if "value" in series:
            series["value"][1] = "NaN"
        for pair in series.get("values", []):
            pair[1] = "NaN"
    return json.dumps(doc).encode()


@pytest.mark.parametrize("rewrite, words", [(empty_results, "no data"), (nan_values, "NaN")])
def test_empty_or_nan_answers_hold_and_say_why(proxied, capsys, rewrite, words):
    tmp, _, proxy, _ = proxied
    proxy.fault("rewrite", path="/api/v1/", rewrite=rewrite)
    code, verdict, err = check(capsys, tmp)
    assert code == 3, (code, err)  # HOLD: what cannot be read never passes
    assert verdict["units"] == {"candidate": 0, "baseline": 0}, verdict["units"]
    assert verdict["verdict"] == "HOLD"
    assert any(words.lower() in r.lower() for r in verdict["reasons"]) or any(
        m["verdict"] == "no data" for m in verdict["metrics"]), verdict["reasons"]


def test_a_guard_rides_out_a_prometheus_restart(app, proxied, capsys, fault_servers):
    """Prometheus itself is stopped and started again on its port and data (the last test of the module: it
    leaves the restarted one behind): the guard holds meanwhile, says so, and judges again."""
    tmp, prom, proxy, config = proxied
    port = int(prom.url.rsplit(":", 1)[1])
    app_port = app[2]
    g = Running(config, "guard", "--profile", "faults", "--state-dir", tmp, "--interval", "1")
    restarted = None
    try:
        g.wait_line("stage 5%", 30)
        stop_pid(prom.pid)
        g.wait_line("retrying", 20, stream="err")
        restarted = start_prometheus(fault_servers._dir() / "faults-app-again", [f"127.0.0.1:{app_port}"],
                                     prom.data_dir, port=port)
        g.wait_line("answer again", 60, stream="err")
        wait_for(lambda: g.out and "units 0/0" not in g.out[-1], 30, "a look with data after the restart")
        assert g.proc.poll() is None, g.text()
        g.proc.send_signal(signal.SIGTERM)
        assert g.wait(30) == 143
    finally:
        g.stop()
        if restarted is not None:
            stop_pid(restarted.pid)
    blind = [line for line in g.out if " stage 5% " in line and "units 0/0" in line]
    assert blind and not any("ADVANCE" in line for line in blind), g.text()  # it held while it could not see
