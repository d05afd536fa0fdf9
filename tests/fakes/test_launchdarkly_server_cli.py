"""The LaunchDarkly fake as a newcomer starts it: `python -m tests.fakes.launchdarkly_server --seed-demo`
prints a SPEC and credentials that work with routedeck's own commands, and a curl line whose change
routedeck then reads (and, with the SDK key, hears on the stream)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from adapters.flags.launchdarkly import LaunchDarklyPlatform
from console.core.credentials import needed_credentials
from tests.fakes.test_featbit_server_cli import free_port

ROOT = Path(__file__).parents[2]


def start(*args: str) -> tuple[subprocess.Popen, dict[str, str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.launchdarkly_server", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "# the flag as LaunchDarkly holds it" in line:  # the last line of the banner
            break
    text = "".join(lines)
    fields = {m.group(1): m.group(2) for m in re.finditer(r"^  (flags SPEC|access token|SDK key)\s+(\S+)$",
                                                         text, re.MULTILINE)}
    return proc, fields, text


def test_the_printed_spec_works_with_routedeck_and_the_curl_line_is_heard_on_the_stream(tmp_path: Path) -> None:
    port = free_port()
    proc, fields, banner = start("--port", str(port), "--seed-demo")
    try:
        spec = fields["flags SPEC"]
        assert spec == f"launchdarkly:http://127.0.0.1:{port}?project=default&env=production&stream=http://127.0.0.1:{port}"
        assert [c.name for c in needed_credentials(spec)] == ["launchdarkly-token", "launchdarkly-sdk-key"]
        assert f"export ROUTEDECK_LAUNCHDARKLY_TOKEN='{fields['access token']}'" in banner
        # routedeck's own command, as the banner says to run it
        env = {**os.environ, "ROUTEDECK_LAUNCHDARKLY_TOKEN": fields["access token"],
               "ROUTEDECK_LAUNCHDARKLY_SDK_KEY": fields["SDK key"], "XDG_STATE_HOME": str(tmp_path / "state"),
               "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
        rule = ROOT / "console/core/data/rule-demo.yaml"
        done = subprocess.run([sys.executable, "-m", "console.cli", "advance", "--flags", spec, "--metrics",
                               "prometheus:http://127.0.0.1:9", "--rule", str(rule), "--reason", "start"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "confirmed by read-back: support-answer-route now at stage internal" in done.stdout
        assert fields["access token"] not in done.stdout + done.stderr
        platform = LaunchDarklyPlatform.from_spec(spec, token=fields["access token"], sdk_key=fields["SDK key"])
        try:
            assert platform.list_flags() == ["classify-route", "hard-case-route", "support-answer-route"]
            assert platform.read_flag("support-answer-route").allocation.internal_enabled
            heard: list[list[str]] = []
            stream = platform.watch_changes(heard.append)
            assert stream is not None and stream.synced.wait(5), stream.status if stream else None
            curl = next(line for line in banner.splitlines() if "curl -s -X PATCH" in line).strip()
            argv = shlex.split(curl)
            headers = dict(h.split(": ", 1) for h in (argv[i + 1] for i, a in enumerate(argv) if a == "-H"))
            answer = httpx.patch(argv[-1], headers=headers, content=argv[argv.index("-d") + 1], timeout=5)
            assert answer.status_code == 200, answer.text
            deadline = time.monotonic() + 10
            while not heard and time.monotonic() < deadline:
                time.sleep(0.05)
            assert heard == [["support-answer-route"]]
            assert "targeting is off in LaunchDarkly" in (platform.read_flag("support-answer-route").foreign_targeting or "")
            assert platform.history("support-answer-route")[0].actor == "someone-else@example.invalid"
        finally:
            platform.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "fake LaunchDarkly stopped" in out, err


def test_a_busy_port_is_one_line_and_exit_1() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tests.fakes.launchdarkly_server", "--port", str(port)],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "choose another with --port" in done.stderr
