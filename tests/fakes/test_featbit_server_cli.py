"""The FeatBit fake as a newcomer starts it: `python -m tests.fakes.featbit_server --seed-demo` prints
a SPEC and credentials that work, and a curl line whose change routedeck then reads."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from adapters.flags.featbit import FeatBitPlatform
from console.core.credentials import needed_credentials

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args: str) -> tuple[subprocess.Popen, dict[str, str], str]:
    """Start the fake; its banner's fields, and the banner itself."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.featbit_server", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "toggle/true" in line:  # the curl lines come last
            lines.append(proc.stdout.readline())
            break
    text = "".join(lines)
    fields = {m.group(1): m.group(2) for m in re.finditer(r"^  (environment id|flags SPEC|Open API token|stream secret)"
                                                         r"\s+(\S+)$", text, re.MULTILINE)}
    return proc, fields, text


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, out + err


def test_the_printed_spec_and_credentials_reach_the_seeded_flags_and_the_curl_line_changes_one() -> None:
    port, stream_port = free_port(), free_port()
    proc, fields, banner = start("--port", str(port), "--stream-port", str(stream_port), "--seed-demo")
    try:
        spec = fields["flags SPEC"]
        assert spec == (f"featbit:http://127.0.0.1:{port}?env={fields['environment id']}"
                        f"&stream=ws://127.0.0.1:{stream_port}")
        assert [c.name for c in needed_credentials(spec)] == ["featbit-token", "featbit-secret"]
        assert f"export ROUTEDECK_FEATBIT_TOKEN='{fields['Open API token']}'" in banner
        platform = FeatBitPlatform.from_spec(spec, token=fields["Open API token"], secret=fields["stream secret"])
        try:
            assert platform.list_flags() == ["classify-route", "hard-case-route", "support-answer-route"]
            flag = platform.read_flag("support-answer-route")
            assert flag.allocation.candidate_bp == 0 and flag.candidate == "balanced_core_v2"
            stream = platform.watch_changes(lambda keys: None)
            assert stream is not None and stream.synced.wait(5), stream.status if stream else None
            # the banner's first curl line, as a person would paste it (someone else's token)
            curl = next(line for line in banner.splitlines() if "toggle/false" in line).strip()
            argv = shlex.split(curl)
            header = argv[argv.index("-H") + 1].partition(": ")[2]
            answer = httpx.put(argv[-1], headers={"Authorization": header}, timeout=5)
            assert answer.json()["success"] is True
            assert "the flag is off in FeatBit" in (platform.read_flag("support-answer-route").foreign_targeting or "")
            history = platform.history("support-answer-route")
            assert history[0].actor == "someone-else"
        finally:
            platform.close()
    finally:
        code, out = stop(proc)
    assert code == 0 and "fake FeatBit stopped" in out


def test_a_busy_port_is_one_line_and_bad_flags_are_refused() -> None:
    port = free_port()
    first, _, _ = start("--port", str(port), "--stream-port", str(free_port()))
    try:
        busy = subprocess.run([sys.executable, "-m", "tests.fakes.featbit_server", "--port", str(port)],
                              cwd=ROOT, check=False,
                              capture_output=True, text=True, timeout=20)
        assert busy.returncode == 1 and busy.stderr.count("\n") == 1 and "--port" in busy.stderr
    finally:
        stop(first)
    for bad in (["--env", "not-a-guid"], ["--secret", "short"]):
        refused = subprocess.run([sys.executable, "-m", "tests.fakes.featbit_server", *bad],
                                 cwd=ROOT, check=False,
                                 capture_output=True, text=True, timeout=20)
        assert refused.returncode == 2 and bad[0] in refused.stderr


def test_the_walkthrough_with_credentials_in_a_keyring(tmp_path: Path, monkeypatch, capsys) -> None:
    """README's FeatBit walkthrough with a keyring: login stores both credentials, and the profile then
    reads flags, follows the stream, advances and rolls back with no environment variable set."""
    import io

    import keyring

    from console.cli import main
    from console.core.config import load_config
    from console.profiles import activate
    from tests.fakes.featbit_server import FakeFeatBit, seed_demo
    from tests.test_no_secret_anywhere import MemoryKeyring

    fake = FakeFeatBit().start()
    before = keyring.get_keyring()
    store = MemoryKeyring()
    keyring.set_keyring(store)
    try:
        seed_demo(fake)
        for var in ("ROUTEDECK_FEATBIT_TOKEN", "ROUTEDECK_FEATBIT_SECRET"):
            monkeypatch.delenv(var, raising=False)
        config = tmp_path / "config.toml"
        config.write_text(f'default_profile = "fb"\n[profiles.fb]\n'
                          f'flags = "featbit:{fake.url}?env={fake.env_id}&stream={fake.stream_url}"\n'
                          f'metrics = "prometheus:http://127.0.0.1:{free_port()}"\n')
        (tmp_path / "rule.yaml").write_text((ROOT / "console/core/data/rule-demo.yaml").read_text())
        with config.open("a") as f:
            f.write('rule = "rule.yaml"\n')
        monkeypatch.setenv("ROUTEDECK_CONFIG", str(config))
        state = ["--state-dir", str(tmp_path / "state")]
        for which, value in (("featbit-token", fake.token), ("featbit-secret", fake.secret)):
            monkeypatch.setattr("sys.stdin", io.StringIO(value + "\n"))
            assert main(["login", "fb", "--which", which]) == 0
        assert store.get_password("routedeck", "fb:featbit-secret") == fake.secret
        assert main(["profiles", "--no-check"]) == 0
        assert "featbit-token: keyring · featbit-secret: keyring" in capsys.readouterr().out

        activate(load_config().get("fb"))
        platform = FeatBitPlatform.from_spec(load_config().get("fb").flags)  # both from the keyring
        try:
            stream = platform.watch_changes(lambda keys: None)
            assert stream is not None and stream.synced.wait(5), stream.status if stream else None
        finally:
            platform.close()
            activate(None)

        assert main(["advance", "--profile", "fb", *state]) == 0
        assert "confirmed by read-back: support-answer-route now at stage internal" in capsys.readouterr().out
        assert main(["rollback", "--profile", "fb", "--flag", "support-answer-route", "--reason", "walkthrough",
                     *state]) == 0
        out = capsys.readouterr().out
        assert "confirmed" in out and fake.token not in out and fake.secret not in out
    finally:
        keyring.set_keyring(before)
        activate(None)
        fake.stop()
