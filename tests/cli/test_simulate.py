"""`routedeck simulate` as a process: the simulated application on a flag file, scraped on /metrics."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.flags.flagd_file import FlagdFilePlatform
from adapters.metrics import prom_contract as c
from console.core.models import Allocation, RouteFlag, RouteProfile

FLAG = "support-answer-route"
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


def flag_file(path: Path, candidate_bp: int) -> Path:
    platform = FlagdFilePlatform(path)
    flag = platform.create_flag(route_flag()).after
    platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": candidate_bp}), flag.revision)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simulate(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "console.cli", "simulate", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def scrape(port: int, timeout_s: float = 15.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def requests_by_arm(text: str, flag: str) -> dict[str, float]:
    """Requests per arm: the exporter labels each with the variant, which is the arm's variation on this flag."""
    arm_of = {BASELINE: "baseline", CANDIDATE: "candidate"}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == c.REQUESTS and s.labels.get(c.FLAG) == flag:
                arm = arm_of.get(s.labels[c.VARIANT], "other")
                out[arm] = out.get(arm, 0.0) + s.value
    return out


def test_simulate_exports_the_contract_and_the_allocation(tmp_path):
    flags = flag_file(tmp_path / "flags.json", candidate_bp=2000)
    port = free_port()
    proc = simulate("--flags", f"flagd:{flags}", "--scenario", "steady", "--seed", "3", "--speed", "200",
                    "--listen", f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        text = scrape(port)
        while sum(requests_by_arm(text, FLAG).values()) <= 4000 and time.monotonic() < deadline:
            time.sleep(0.2)  # traffic accumulates: wait for enough of it to judge the share
            text = scrape(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert err == ""
    assert out.count("\n") == 1 and f"flagd:{flags}" in out and f"127.0.0.1:{port}/metrics" in out

    names = {s.name for s in samples(text)}
    for counter in (c.REQUESTS, c.EXPOSURES, c.UNITS, c.OUTCOMES, c.JOINED_OUTCOMES, c.COST):
        assert counter in names, counter
    for histogram in (c.DURATION, c.TOKEN_USAGE, c.TTFT):
        assert histogram + "_bucket" in names, histogram

    arms = requests_by_arm(text, FLAG)
    total = sum(arms.values())
    assert total > 2000
    assert set(arms) <= {"baseline", "candidate"}
    share = arms.get("candidate", 0) / total
    # 20 % of the units in scope; requests are weighted by each unit's activity, hence the wide band
    assert 0.2 * ENGLISH_SHARE * 0.6 <= share <= 0.2 * ENGLISH_SHARE * 1.4, arms


def test_simulate_stops_after_duration(tmp_path):
    flags = flag_file(tmp_path / "flags.json", candidate_bp=500)
    proc = simulate("--flags", f"flagd:{flags}", "--speed", "20", "--listen", f"127.0.0.1:{free_port()}",
                    "--duration", "1")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.startswith("simulating steady")


@pytest.mark.parametrize("argv, needle", [
    (["--listen", "0.0.0.0:9100"], "only 127.0.0.1"),
    (["--listen", "127.0.0.1"], "expected 127.0.0.1:PORT"),
    (["--listen", "127.0.0.1:9100", "--speed", "0"], "--speed"),
    (["--listen", "127.0.0.1:9100", "--scenario", "nope"], "unknown scenario"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, needle):
    flags = flag_file(tmp_path / "flags.json", candidate_bp=500)
    proc = simulate("--flags", f"flagd:{flags}", *argv)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("routedeck: ") and needle in err, err


def test_missing_flag_file_is_one_line(tmp_path):
    proc = simulate("--flags", f"flagd:{tmp_path / 'absent.json'}", "--listen", "127.0.0.1:9100")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
