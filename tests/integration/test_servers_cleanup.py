"""A test run that is terminated (a timeout, a closed terminal) stops the servers it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# the run as a terminal starts it: SIGHUP at its default (a suite launched under nohup passes an ignored SIGHUP
# down to its children, and a run that ignores SIGHUP is not what this test is about)
CHILD = """
import signal, sys, time
signal.signal(signal.SIGHUP, signal.SIG_DFL)
from tests.integration.servers import session_servers
prom = session_servers().prometheus("cleanup", [])
print(prom.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for every purpose here
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state != "Z"


@pytest.mark.servers
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminated_run_stops_its_servers(sig) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    pid = None
    try:
        pid = int(child.stdout.readline())
        assert alive(pid)
        child.send_signal(sig)
        child.wait(timeout=30)
        deadline = time.monotonic() + 15
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), f"Prometheus {pid} outlived the run that started it"
        assert child.returncode == -sig  # and the run still ends as the signal says
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if pid is not None and alive(pid):  # the child failed to stop it: this test still does
            os.kill(pid, signal.SIGKILL)
