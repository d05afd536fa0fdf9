"""Run real Unleash (on PostgreSQL) and Prometheus on this machine, for a person to try routedeck on.

    make backends                      # or: .venv/bin/python scripts/local-backends.py [options]

Everything listens on 127.0.0.1 only. It installs what is missing (scripts/install-servers.sh),
starts PostgreSQL, Unleash and a Prometheus that scrapes `routedeck simulate` on --simulate-port,
prints the exact lines to type next, and runs until Ctrl-C: then it stops each server by its PID
and deletes its scratch directory (the Unleash database with it). The tokens it prints are made up
for this run and only open these local servers.
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration import servers as srv  # noqa: E402  (the same start/stop code the integration tests use)

PROG = "local-backends"
RULE = "console/core/data/rule-demo.yaml"
INSTALL = ROOT / "scripts" / "install-servers.sh"


class Problem(Exception):
    """Something a person can fix; printed as one line, never as a traceback."""


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1–65535)")
    return int(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + error
        raise Problem(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unleash-port", type=_port, default=4242, help="Unleash's port (default: 4242)")
    p.add_argument("--prometheus-port", type=_port, default=9090, help="Prometheus's port (default: 9090)")
    p.add_argument("--postgres-port", type=_port, default=None, help="PostgreSQL's port (default: any free one)")
    p.add_argument("--simulate-port", type=_port, default=9464,
                   help="the port `routedeck simulate --listen 127.0.0.1:PORT` will serve /metrics on, "
                        "which Prometheus scrapes (default: 9464)")
    p.add_argument("--no-install", action="store_true", help="never run scripts/install-servers.sh")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parsed options; Problem when two of the servers would share a port."""
    args = build_parser().parse_args(argv)
    named = {"--unleash-port": args.unleash_port, "--prometheus-port": args.prometheus_port,
             "--simulate-port": args.simulate_port}
    if args.postgres_port is not None:
        named["--postgres-port"] = args.postgres_port
    seen: dict[int, str] = {}
    for option, port in named.items():
        if port in seen:
            raise Problem(f"{seen[port]} and {option} are both {port} — give each its own port")
        seen[port] = option
    return args


def port_taken(port: int) -> bool:
    """True when something already listens on (or holds) 127.0.0.1:PORT."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as the servers do: connections of a server stopped a moment ago (TIME_WAIT) do not hold the port
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def check_ports(args: argparse.Namespace) -> None:
    """Problem naming the first server port that is already in use."""
    wanted = [("Unleash", "--unleash-port", args.unleash_port), ("Prometheus", "--prometheus-port", args.prometheus_port)]
    if args.postgres_port is not None:
        wanted.append(("PostgreSQL", "--postgres-port", args.postgres_port))
    for what, option, port in wanted:
        if port_taken(port):
            raise Problem(f"127.0.0.1:{port} is already in use, so {what} cannot have it — "
                          f"stop what listens there (`ss -ltnp 'sport = :{port}'`) or pass {option} N")


def simulate_port_note(port: int) -> str | None:
    """A warning when the port Prometheus will scrape already serves something (a simulate left running?)."""
    if port_taken(port):
        return (f"note: 127.0.0.1:{port} is already in use — Prometheus will scrape whatever serves it; "
                "if that is not `routedeck simulate`, pass --simulate-port N")
    return None


def missing() -> list[str]:
    """What is not installed yet, as the install script would name it."""
    out = []
    if not (srv.PG_BIN / "initdb").exists():
        out.append(f"PostgreSQL ({srv.PG_BIN}/initdb)")
    if not (srv.UNLEASH_DIR / "node_modules" / "unleash-server").exists():
        out.append("unleash-server (servers/unleash/node_modules)")
    if shutil.which("node") is None:
        out.append("node")
    if shutil.which("prometheus") is None:
        out.append("prometheus")
    return out


def ensure_installed(allow_install: bool) -> None:
    """Run scripts/install-servers.sh when something is missing; Problem if it is still missing after."""
    lacking = missing()
    if not lacking:
        return
    if not allow_install:
        raise Problem(f"not installed: {', '.join(lacking)} — run `bash scripts/install-servers.sh` (or drop --no-install)")
    print(f"{PROG}: installing {', '.join(lacking)} with scripts/install-servers.sh …", flush=True)
    subprocess.run(["bash", str(INSTALL)], check=False)
    still = missing()
    if still:
        raise Problem(f"still not installed: {', '.join(still)} — see the install-servers lines above "
                      "(it needs root, a Debian package mirror and the npm registry)")


@dataclass
class LocalBackends:
    """The servers this run started, stopped in reverse order of starting by ``stop``."""

    base: Path
    simulate_port: int
    pg: srv.Postgres | None = None
    unleash: srv.Unleash | None = None
    prometheus: srv.Prometheus | None = None
    _stopped: bool = field(default=False, repr=False)

    def start(self, args: argparse.Namespace) -> None:
        self.pg = srv.start_postgres(self.base, port=args.postgres_port)
        self.unleash = srv.start_unleash(self.base, self.pg, port=args.unleash_port)
        self.prometheus = srv.start_prometheus(self.base / "prometheus", [f"127.0.0.1:{self.simulate_port}"],
                                               port=args.prometheus_port)

    def pids(self) -> list[tuple[str, int]]:
        """(name, pid) of every running server, last started first."""
        out = []
        if self.prometheus is not None:
            out.append(("Prometheus", self.prometheus.pid))
        if self.unleash is not None:
            out.append(("Unleash", self.unleash.pid))
        if self.pg is not None:
            out.append(("PostgreSQL", self.pg.pid))
        return out

    def dead(self) -> str | None:
        """The name of a server that has exited on its own, if any."""
        for name, pid in self.pids():
            try:
                waited, _ = os.waitpid(pid, os.WNOHANG)
                if waited == pid:
                    return name
            except ChildProcessError:  # PostgreSQL is not our child (pg_ctl daemonises it)
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return name
        return None

    def stop(self) -> None:
        """Stop every server by PID (PostgreSQL last, with its fast shutdown) and delete the scratch directory."""
        if self._stopped:
            return
        self._stopped = True
        for name, pid in self.pids():
            srv.stop_pid(pid, signal.SIGINT if name == "PostgreSQL" else signal.SIGTERM)
        self.prometheus = self.unleash = self.pg = None
        shutil.rmtree(self.base, ignore_errors=True)


def env_lines(b: LocalBackends) -> list[str]:
    """The shell lines that point routedeck at these servers."""
    assert b.unleash is not None and b.prometheus is not None
    flags = f"unleash:{b.unleash.url}?project=default&environment=development"
    return [
        f"export ROUTEDECK_UNLEASH_TOKEN={shlex.quote(b.unleash.admin_token)}",
        f"export ROUTEDECK_UNLEASH_CLIENT_TOKEN={shlex.quote(b.unleash.client_token)}",
        f"export FLAGS={shlex.quote(flags)}",
        f"export METRICS={shlex.quote('prometheus:' + b.prometheus.url)}",
    ]


def next_steps(b: LocalBackends, env_file: Path) -> str:
    """What to print once everything is up: where each server is, what to export, what to type."""
    assert b.pg is not None and b.unleash is not None and b.prometheus is not None
    sim = f"127.0.0.1:{b.simulate_port}"
    lines = [
        "local backends are up (127.0.0.1 only; Ctrl-C stops them and deletes the Unleash database):",
        f"  PostgreSQL  127.0.0.1:{b.pg.port}  pid {b.pg.pid}",
        f"  Unleash     {b.unleash.url}  pid {b.unleash.pid}  (web UI: admin / unleash4all)",
        f"  Prometheus  {b.prometheus.url}  pid {b.prometheus.pid}  scraping {sim} every second",
        "",
        f"in each other shell, from {ROOT}:",
        f"  source {env_file}",
        "or type:",
        *(f"  {line}" for line in env_lines(b)),
        "",
        "then:",
        f"  .venv/bin/routedeck init --rule {RULE} --flags \"$FLAGS\"",
        f"  .venv/bin/routedeck simulate --flags \"$FLAGS\" --speed 30 --listen {sim}",
        f"  .venv/bin/routedeck --flags \"$FLAGS\" --metrics \"$METRICS\" --rule {RULE}",
    ]
    return "\n".join(lines)


def write_env_file(b: LocalBackends) -> Path:
    path = b.base / "env.sh"
    path.write_text("\n".join(env_lines(b)) + "\n")
    path.chmod(0o600)
    return path


def wait_for_stop(b: LocalBackends, stop: threading.Event) -> str | None:
    """Block until ``stop`` is set (a signal) or a server dies; the dead server's name, if one did."""
    while not stop.wait(1.0):
        name = b.dead()
        if name is not None:
            return name
    return None


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        check_ports(args)
        ensure_installed(not args.no_install)
    except Problem as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    note = simulate_port_note(args.simulate_port)
    if note is not None:
        print(f"{PROG}: {note}", file=sys.stderr)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    backends = LocalBackends(Path(tempfile.mkdtemp(prefix="routedeck-backends-")), args.simulate_port)
    code = 0
    try:
        print(f"{PROG}: starting PostgreSQL, Unleash and Prometheus in {backends.base} …", flush=True)
        backends.start(args)
        if stop.is_set():
            return 130
        print(next_steps(backends, write_env_file(backends)), flush=True)
        died = wait_for_stop(backends, stop)
        if died is not None:
            print(f"{PROG}: {died} exited on its own — stopping the others", file=sys.stderr)
            code = 1
    except srv.Unavailable as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        code = 1
    finally:
        try:
            if backends.pids():
                say(f"{PROG}: stopping " + ", ".join(f"{n} (pid {p})" for n, p in backends.pids()) + " …")
        finally:
            backends.stop()  # whatever happened to the terminal: no server outlives this script
            for s, handler in previous.items():
                signal.signal(s, handler)
        say(f"{PROG}: stopped; {backends.base} removed")
    return code


def say(text: str) -> None:
    """Print a line; a closed terminal or pipe (the window was closed) must not stop the clean-up."""
    try:
        print(text, flush=True)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
