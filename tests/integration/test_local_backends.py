"""scripts/local-backends.py: the servers a person starts with `make backends`.

The first tests need no server: argument and port errors, the lines it prints (sourced by a real
shell), stop by PID. The last one (marked ``servers``) runs the script for real, uses the printed
token against the Unleash it started, and stops it with Ctrl-C's signal.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from . import servers as srv

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "local-backends.py"


def load_script():
    spec = importlib.util.spec_from_file_location("local_backends", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


lb = load_script()


def fake_backends(base: Path) -> "lb.LocalBackends":
    b = lb.LocalBackends(base, simulate_port=9464)
    b.pg = srv.Postgres(55001, base / "pg", 101)
    b.unleash = srv.Unleash("http://127.0.0.1:4242", "*:*.abc123", "default:development.def456", 102)
    b.prometheus = srv.Prometheus("http://127.0.0.1:9090", 103, base / "tsdb")
    return b


def test_bad_arguments_are_one_line_errors(capsys):
    assert lb.main(["--unleash-port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--unleash-port" in err and "'70000' is not a port number" in err

    assert lb.main(["--prometheus-port", "4242"]) == 2  # the same as Unleash's default
    err = capsys.readouterr().err
    assert err.strip() == "local-backends: --unleash-port and --prometheus-port are both 4242 — give each its own port"

    assert lb.main(["--simulate-port", "9090"]) == 2
    assert "--prometheus-port and --simulate-port are both 9090" in capsys.readouterr().err


def test_a_taken_port_is_named_with_the_option_to_change_it(capsys):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        code = lb.main(["--unleash-port", str(port), "--prometheus-port", str(srv.free_port()), "--no-install"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert f"127.0.0.1:{port} is already in use, so Unleash cannot have it" in err and "--unleash-port N" in err


def test_a_port_left_in_time_wait_by_a_stopped_server_is_free():
    """Restarting right after Ctrl-C must not be refused: closed connections linger in TIME_WAIT."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Node, Go and prometheus-client servers do
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
    client.close()
    assert lb.port_taken(port)  # still listening
    listener.close()
    time.sleep(0.05)
    assert not lb.port_taken(port)


def test_a_busy_simulate_port_is_a_note_not_an_error():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        note = lb.simulate_port_note(port)
    assert note is not None and f"127.0.0.1:{port}" in note and "--simulate-port" in note
    assert lb.simulate_port_note(srv.free_port()) is None


def test_nothing_installed_and_no_install_says_what_to_run(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(lb.srv, "PG_BIN", tmp_path / "no-postgres")
    assert lb.main(["--unleash-port", str(srv.free_port()), "--prometheus-port", str(srv.free_port()),
                    "--no-install"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"not installed: PostgreSQL ({tmp_path / 'no-postgres'}/initdb)" in err
    assert "bash scripts/install-servers.sh" in err


def test_the_env_file_sources_in_a_real_shell_and_the_specs_open(tmp_path, monkeypatch):
    b = fake_backends(tmp_path)
    env_file = lb.write_env_file(b)
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    (tmp_path / "x:x.abc123").touch()  # an unquoted '*:*.…' token would glob to this file
    shown = subprocess.run(
        ["bash", "-c", f'cd {tmp_path} && source {env_file} && '
                       'printf "%s\\n" "$ROUTEDECK_UNLEASH_TOKEN" "$ROUTEDECK_UNLEASH_CLIENT_TOKEN" "$FLAGS" "$METRICS"'],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert shown == ["*:*.abc123", "default:development.def456",
                     "unleash:http://127.0.0.1:4242?project=default&environment=development",
                     "prometheus:http://127.0.0.1:9090"]

    from adapters.flags.unleash import UnleashPlatform
    from console.backends import open_metrics

    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", shown[0])
    platform = UnleashPlatform.from_spec(shown[2])
    try:
        assert platform.describe() == shown[2] and platform.environment == "development"
    finally:
        platform.close()
    metrics = open_metrics(shown[3], shown[2])
    try:
        assert "127.0.0.1:9090" in metrics.describe()
    finally:
        getattr(metrics, "close", lambda: None)()


def test_next_steps_name_every_server_and_the_commands_to_type(tmp_path):
    b = fake_backends(tmp_path)
    text = lb.next_steps(b, tmp_path / "env.sh")
    assert "PostgreSQL  127.0.0.1:55001  pid 101" in text
    assert "Unleash     http://127.0.0.1:4242  pid 102" in text
    assert "Prometheus  http://127.0.0.1:9090  pid 103  scraping 127.0.0.1:9464" in text
    assert f"source {tmp_path / 'env.sh'}" in text
    assert "export ROUTEDECK_UNLEASH_TOKEN='*:*.abc123'" in text
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith(".venv/bin/routedeck")]
    assert commands == [
        f'.venv/bin/routedeck init --rule {lb.RULE} --flags "$FLAGS"',
        '.venv/bin/routedeck simulate --flags "$FLAGS" --speed 30 --listen 127.0.0.1:9464',
        f'.venv/bin/routedeck --flags "$FLAGS" --metrics "$METRICS" --rule {lb.RULE}',
    ]
    assert (ROOT / lb.RULE).exists()
    from console.cli import build_parser

    for command in commands:  # each parses as routedeck's own command line does
        argv = command.replace('"$FLAGS"', "unleash:x").replace('"$METRICS"', "prometheus:y").split()[1:]
        build_parser().parse_args(argv)


def test_stop_ends_every_process_by_pid_and_removes_the_directory(tmp_path):
    base = tmp_path / "run"
    base.mkdir()
    (base / "env.sh").write_text("export X=1\n")
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    b = lb.LocalBackends(base, simulate_port=9464)
    b.unleash = srv.Unleash("http://127.0.0.1:1", "a", "c", procs[0].pid)
    b.prometheus = srv.Prometheus("http://127.0.0.1:2", procs[1].pid, base / "tsdb")
    assert b.dead() is None
    assert [name for name, _ in b.pids()] == ["Prometheus", "Unleash"]  # last started, first stopped
    b.stop()
    for p in procs:
        with pytest.raises(ProcessLookupError):
            os.kill(p.pid, 0)
    assert not base.exists() and b.pids() == []
    b.stop()  # a second stop (signal after an error) is harmless


def test_a_server_that_exits_on_its_own_is_named(tmp_path):
    proc = subprocess.Popen(["sleep", "0"])
    b = lb.LocalBackends(tmp_path, simulate_port=9464)
    b.unleash = srv.Unleash("http://127.0.0.1:1", "a", "c", proc.pid)
    deadline = time.monotonic() + 5
    seen = None
    while seen is None and time.monotonic() < deadline:
        seen = b.dead()
        time.sleep(0.05)
    assert seen == "Unleash"
    assert b.dead() == "Unleash"  # still named once reaped


@pytest.mark.servers
def start_script(stderr=subprocess.PIPE) -> tuple[subprocess.Popen, str, list[int]]:
    """Run the script on free ports until it prints its next steps: (process, what it printed, ports)."""
    lacking = lb.missing()
    assert not lacking, f"not installed: {', '.join(lacking)} — run scripts/install-servers.sh"
    ports = [srv.free_port() for _ in range(3)]
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--no-install", "--unleash-port", str(ports[0]),
         "--prometheus-port", str(ports[1]), "--simulate-port", str(ports[2])],
        stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT,
    )
    out: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if "--rule" in line and "--metrics" in line:  # the last line of the next steps
            break
    return proc, "".join(out), ports


def test_the_script_starts_real_servers_and_ctrl_c_stops_them(tmp_path):
    proc, text, ports = start_script()
    pids: list[int] = []
    try:
        assert "local backends are up" in text, text
        env_file = Path(re.search(r"source (\S+env\.sh)", text).group(1))
        base = env_file.parent
        values = dict(re.findall(r"export (\w+)=(.*)", env_file.read_text()))
        token = values["ROUTEDECK_UNLEASH_TOKEN"].strip("'")
        pids = [int(p) for p in re.findall(r"pid (\d+)", text)]
        assert len(pids) == 3
        # the printed admin token opens the Unleash it started, on the port asked for
        r = httpx.get(f"http://127.0.0.1:{ports[0]}/api/admin/projects/default/features",
                      headers={"Authorization": token}, timeout=5)
        assert r.status_code == 200, r.text
        # Prometheus scrapes the simulate port it was given (its targets load on a 5 s tick: poll)
        def scrape_urls() -> list[str]:
            targets = httpx.get(f"http://127.0.0.1:{ports[1]}/api/v1/targets", timeout=5).json()
            return [t["scrapeUrl"] for t in targets["data"]["activeTargets"]]

        srv.wait_until(lambda: bool(scrape_urls()), 20, "Prometheus loading its scrape targets")
        assert scrape_urls() == [f"http://127.0.0.1:{ports[2]}/metrics"]
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped;" in rest
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not base.exists()


def test_closing_the_terminal_still_stops_every_server(tmp_path):
    """SIGHUP with the terminal gone: the script's farewell lines fail to print, the clean-up must not."""
    proc, text, _ = start_script(stderr=subprocess.DEVNULL)
    try:
        pids = [int(p) for p in re.findall(r"pid (\d+)", text)]
        base = Path(re.search(r"source (\S+env\.sh)", text).group(1)).parent
        assert len(pids) == 3, text
    finally:
        proc.stdout.close()  # the terminal is gone: every later print hits a closed pipe
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=60)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not base.exists()
