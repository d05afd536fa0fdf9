"""`routedeck guard --listen`: the guard's decisions as Prometheus metrics while it watches, a rollback
counted and the stage shown rolled back, served a while after the guard ends so the last word is scraped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from console.cli import main
from tests.integration.servers import free_port

from .test_guard import ROOT, at_20, rollout_at_20  # noqa: F401 (fixtures)


def scrape(port: int) -> str | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None


def value(page: str, series: str) -> float | None:
    m = re.search(rf"^{re.escape(series)} (\S+)$", page, re.MULTILINE)
    return float(m.group(1)) if m else None


def test_the_guard_serves_its_decisions_and_the_rollback_it_made(at_20):  # noqa: F811
    rule, common, tmp = at_20
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "guard", "--rule", str(rule), *common, "--metrics",
         "sim:provider-outage?minutes=2&seed=3", "--interval", "60", "--max-looks", "20",
         "--listen", f"127.0.0.1:{port}", "--listen-linger", "30"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"})
    try:
        flag = 'flag="support-answer-route"'
        deadline = time.monotonic() + 120
        page = None
        while time.monotonic() < deadline:
            page = scrape(port)
            if page and value(page, f'routedeck_rollbacks_total{{cause="verdict",{flag}}}') == 1.0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no rollback counted on /metrics: {page}")
        assert value(page, f'routedeck_rollout_stage{{{flag},stage="rolled_back"}}') == -1.0
        assert value(page, f'routedeck_verdict{{{flag},verdict="ROLLBACK"}}') == 1.0
        assert value(page, f'routedeck_looks_total{{{flag}}}') >= 1
        assert value(page, f'routedeck_guardrail_harm{{{flag},metric="fallback_rate"}}') == 1.0
        assert value(page, f'routedeck_data_age_seconds{{{flag}}}') is not None
        assert 'stage="20%"' not in page  # the stage it left is gone, not left behind beside the new one
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "guard rolled back support-answer-route" in out, out + err
    assert f"decision metrics on http://127.0.0.1:{port}/metrics" in err


@pytest.mark.parametrize("listen,words", [("127.0.0.1:notaport", "expected HOST:PORT"), (":70000", "expected HOST:PORT")])
def test_a_bad_listen_address_is_one_line(at_20, capsys, listen, words):  # noqa: F811
    rule, common, _ = at_20
    code = main(["guard", "--rule", str(rule), *common, "--metrics", "sim:steady?minutes=2&seed=3",
                 "--listen", listen, "--max-looks", "1"])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1


def test_a_busy_port_is_one_line(at_20, capsys):  # noqa: F811
    import socket

    rule, common, _ = at_20
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        code = main(["guard", "--rule", str(rule), *common, "--metrics", "sim:steady?minutes=2&seed=3",
                     "--listen", f"127.0.0.1:{s.getsockname()[1]}", "--max-looks", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot listen there" in err and err.count("\n") == 1
