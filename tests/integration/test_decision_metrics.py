"""docs/alerts.yml and docs/grafana-dashboard.json against routedeck's decision metrics: promtool checks
the rules and runs their unit tests; a real Prometheus scrapes a decision-metrics endpoint, loads the
rules and fires on a rollback; every dashboard query is valid PromQL on real data and names only series
routedeck exports. A missing Prometheus or promtool is a failure, never a skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from console.core.decision_metrics import DecisionMetrics, stage_index
from console.core.stats.spec import (Decision, GateAction, GateReadout, GateStatus, MetricReadout, MetricVerdict,
                                     Verdict)
from tests.integration.servers import free_port, wait_until

ROOT = Path(__file__).parents[2]
ALERTS = ROOT / "docs" / "alerts.yml"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
FLAG = "support-answer-route"
STAGES = ["internal", "5%", "20%", "full"]


def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed — run scripts/install-servers.sh (apt-get install prometheus)")
    return exe


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "SUCCESS: 8 rules found" in done.stdout, done.stdout + done.stderr
    done = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"], cwd=ROOT / "tests" / "alerts",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def decision(verdict: Verdict, upper: float, harm: bool = False, gate_fails: bool = False) -> Decision:
    error = MetricReadout("error_rate", 0.012, 0.010, (upper - 0.01, upper), 0.03, 800, 15000,
                          MetricVerdict.HARM if harm else MetricVerdict.NON_INFERIOR, critical=True)
    gate = GateReadout("crossover", GateStatus.FAIL if gate_fails else GateStatus.PASS, "…", GateAction.HOLD)
    return Decision(verdict, "5%", [gate], [error], [], units_candidate=800, units_baseline=15000)


@pytest.mark.servers
def test_a_real_prometheus_scrapes_the_decisions_loads_the_rules_and_fires_on_a_rollback(servers) -> None:
    metrics = DecisionMetrics()
    port = free_port()
    server = metrics.serve("127.0.0.1", port)
    try:
        metrics.observe(FLAG, stage_index("5%", STAGES), "5%", decision(Verdict.ADVANCE, 0.01))
        page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert f'routedeck_rollout_stage{{flag="{FLAG}",stage="5%"}} 2.0' in page
        assert f'routedeck_verdict{{flag="{FLAG}",verdict="ADVANCE"}} 1.0' in page
        headroom = re.search(rf'routedeck_guardrail_headroom{{flag="{FLAG}",metric="error_rate"}} (\S+)', page)
        assert headroom and abs(float(headroom.group(1)) - 0.02) < 1e-9  # margin 0.03 − upper bound 0.01
        assert f'routedeck_rollbacks_total{{cause="verdict",flag="{FLAG}"}} 0.0' in page
        assert "_created" not in page
        prom = servers.prometheus("decisions", [f"127.0.0.1:{port}"], rule_files=[ALERTS])

        def query(expr: str) -> dict:
            answer = httpx.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=5).json()
            assert answer["status"] == "success", (expr, answer)
            return answer["data"]

        wait_until(lambda: query("routedeck_looks_total")["result"], 30, "the first scrape")
        rules = httpx.get(f"{prom.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        loaded = {r["name"]: r for g in rules for r in g["rules"]}
        assert len(loaded) == 8 and all(r["health"] in ("ok", "unknown") for r in loaded.values()), loaded
        # the guard rolls back: the next scrapes see the counter move and the alert fires
        metrics.observe(FLAG, stage_index("rolled_back", STAGES), "rolled_back",
                        decision(Verdict.ROLLBACK, 0.05, harm=True, gate_fails=True))
        metrics.rolled_back(FLAG, "verdict")

        def firing() -> set[str]:
            alerts = httpx.get(f"{prom.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
            return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

        wait_until(lambda: "RouteDeckRolledBack" in firing(), 30, "RouteDeckRolledBack to fire")
        alert = next(a for a in httpx.get(f"{prom.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
                     if a["labels"]["alertname"] == "RouteDeckRolledBack")
        assert alert["labels"]["flag"] == FLAG and alert["labels"]["cause"] == "verdict"
        stage = query(f'routedeck_rollout_stage{{flag="{FLAG}"}}')["result"]
        assert [(r["metric"]["stage"], r["value"][1]) for r in stage] == [("rolled_back", "-1")]
        # every dashboard query runs on real data, and names only what routedeck exports
        exported = set(re.findall(r"^(routedeck_[a-z_]+?)(?:\{| )", page, re.MULTILINE))
        board = json.loads(DASHBOARD.read_text())
        exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
        assert len(exprs) >= 10
        for expr in exprs:
            concrete = expr.replace("$flag", ".*").replace("$metric", ".*").replace("$__range", "5m")
            query(concrete)
            for name in re.findall(r"routedeck_[a-z_]+", expr):
                assert name in exported, f"{name} in the dashboard is not exported"
        for var in board["templating"]["list"][1:]:
            for name in re.findall(r"routedeck_[a-z_]+", var["query"]):
                assert name in exported
        assert any(r["value"][1] == "1" for r in query('routedeck_gate_failing{gate="crossover"}')["result"])
    finally:
        server.shutdown()
