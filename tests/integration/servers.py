"""Start and stop the real servers the integration tests talk to: PostgreSQL, Unleash, Prometheus.

Each runs on 127.0.0.1 on a free port (or the port asked for: scripts/local-backends.py starts
them for a person with these functions), is declared ready by polling (never by sleeping a fixed
time) and is stopped by its PID. ``Servers`` starts each at most once per test session; its
``stop_all`` runs at session end (and at interpreter exit, should the session die first).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Callable

import httpx

ROOT = Path(__file__).resolve().parents[2]
UNLEASH_DIR = ROOT / "servers" / "unleash"
PROM_CONFIG = ROOT / "servers" / "prometheus" / "prometheus.yml.tmpl"
PG_BIN = Path(os.environ.get("ROUTEDECK_PG_BIN", "/usr/lib/postgresql/15/bin"))
CLICKHOUSE_DIR = ROOT / "servers" / "clickhouse"
#: the cluster the ClickHouse config declares: two shards on the one server, databases shard1 and shard2
CLICKHOUSE_CLUSTER = "routedeck_two_shards"


class Unavailable(Exception):
    """A server cannot be installed or started here; the message says why (the tests needing it fail with it)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    """Poll ``check`` every 50 ms until it is true; fail with the log's tail if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise Unavailable(f"{what} exited with code {proc.returncode}: {_tail(log)}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.05)
    raise Unavailable(f"{what} not ready within {timeout_s:g} s: {_tail(log)}")


def _tail(log: Path | None, lines: int = 5) -> str:
    if log is None or not log.exists():
        return "(no log)"
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive (a child that exited is reaped here, so it does not linger as a zombie)."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    """Signal ``pid`` and wait for it to go; SIGKILL if it lingers."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return
        except ChildProcessError:  # not our child (postgres daemonises): poll for existence
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


@dataclass
class Postgres:
    port: int
    data_dir: Path
    pid: int

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"


@dataclass
class Unleash:
    url: str
    admin_token: str
    client_token: str
    pid: int


@dataclass
class Prometheus:
    url: str
    pid: int
    data_dir: Path


@dataclass
class ClickHouse:
    url: str
    pid: int
    #: the password of the "routedeck" user (the "default" user has none; both are loopback only)
    password: str

    def query(self, sql: str, body: bytes | None = None) -> str:
        """Run ``sql`` as the default user; raise with the server's message when it fails."""
        params = {"query": sql} if body is not None else None
        response = httpx.post(self.url + "/", params=params, content=body if body is not None else sql.encode(),
                              timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"ClickHouse refused {sql[:80]!r}: {response.text[:300]}")
        return response.text


def start_clickhouse(base: Path) -> ClickHouse:
    exe = shutil.which("clickhouse-server") or ("/usr/sbin/clickhouse-server"
                                                if Path("/usr/sbin/clickhouse-server").exists() else None)
    if exe is None:
        raise Unavailable("clickhouse-server is not installed — run scripts/install-servers.sh "
                          "(apt-get install clickhouse-server)")
    base.mkdir(parents=True, exist_ok=True)
    http_port, tcp_port = free_port(), free_port()
    password = secrets.token_hex(12)
    for name in ("config", "users"):
        text = Template((CLICKHOUSE_DIR / f"{name}.xml.tmpl").read_text()).substitute(
            base=str(base), http_port=http_port, tcp_port=tcp_port, password=password)
        (base / f"{name}.xml").write_text(text)
    log = base / "clickhouse.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, f"--config-file={base / 'config.xml'}"], cwd=base, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{http_port}"
    try:
        wait_until(lambda: httpx.get(url + "/ping", timeout=1).text.strip() == "Ok.", 60, "ClickHouse", proc,
                   base / "clickhouse.err.log")
    except Unavailable:
        stop_pid(proc.pid)
        raise
    return ClickHouse(url, proc.pid, password)


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run ``cmd`` as the postgres user when we are root (initdb refuses to run as root)."""
    if os.geteuid() != 0:
        return cmd
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{c}'" for c in cmd)]


def start_postgres(base: Path, port: int | None = None) -> Postgres:
    initdb = PG_BIN / "initdb"
    if not initdb.exists():
        raise Unavailable(f"PostgreSQL is not installed ({initdb} missing) — run scripts/install-servers.sh")
    data = base / "pg"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
        os.chmod(base, 0o755)
    log = base / "pg.log"
    log.touch()
    if os.geteuid() == 0:
        shutil.chown(log, "postgres")
    run = subprocess.run(_as_postgres([str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                         capture_output=True, text=True)
    if run.returncode:
        raise Unavailable(f"initdb failed: {(run.stderr or run.stdout).strip().splitlines()[-1:]}")
    port = port or free_port()
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off -c full_page_writes=off"
    run = subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "start"]),
                         capture_output=True, text=True)
    if run.returncode:
        raise Unavailable(f"PostgreSQL did not start: {_tail(log)}")
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    return Postgres(port, data, pid)


def start_unleash(base: Path, pg: Postgres, port: int | None = None) -> Unleash:
    if shutil.which("node") is None:
        raise Unavailable("node is not installed — unleash-server needs it")
    if not (UNLEASH_DIR / "node_modules" / "unleash-server").exists():
        raise Unavailable("unleash-server is not installed — run scripts/install-servers.sh (npm ci in servers/unleash)")
    port = port or free_port()
    admin = "*:*." + secrets.token_hex(16)
    client = "default:development." + secrets.token_hex(16)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(base),
        "DATABASE_URL": pg.url,
        "DATABASE_SSL": "false",
        "INIT_ADMIN_API_TOKENS": admin,
        "INIT_BACKEND_API_TOKENS": client,
        "UNLEASH_PORT": str(port),
        "NODE_ENV": "production",
    }
    log = base / "unleash.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["node", "start.mjs"], cwd=UNLEASH_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/health", timeout=1).json().get("health") == "GOOD", 60, "Unleash", proc, log)
    except Unavailable:
        stop_pid(proc.pid)
        raise
    return Unleash(url, admin, client, proc.pid)


def remove_unleash_flag(http: httpx.Client, key: str) -> None:
    """Delete flag ``key`` from an Unleash server (``http`` carries an admin token): archive it, then delete it.

    Unleash 8.2 records an archived flag's lifecycle stage after it has answered the archive request, checking
    first that the flag still exists; a delete landing between its check and its insert failed that insert,
    and with nothing catching it the server process exited. So the delete waits for the stage to be recorded.
    """
    archived = http.delete(f"/api/admin/projects/default/features/{key}")
    if archived.is_success:
        def stage_recorded() -> bool:
            stages = http.get(f"/api/admin/projects/default/features/{key}/lifecycle").json()
            return any(s.get("stage") == "archived" for s in stages)

        wait_until(stage_recorded, 10, f"Unleash recording that {key} was archived")
        http.delete(f"/api/admin/archive/{key}").raise_for_status()
    else:  # not a live flag: an archived one (from a run cut short) is deleted, none at all is fine
        http.delete(f"/api/admin/archive/{key}")


def start_prometheus(base: Path, targets: list[str], data_dir: Path | None = None,
                     port: int | None = None, rule_files: list[Path] | None = None) -> Prometheus:
    exe = shutil.which("prometheus")
    if exe is None:
        raise Unavailable("prometheus is not installed — run scripts/install-servers.sh (apt-get install prometheus)")
    base.mkdir(parents=True, exist_ok=True)
    config = base / "prometheus.yml"
    config.write_text(Template(PROM_CONFIG.read_text()).substitute(
        scrape_targets=", ".join(f"'{t}'" for t in targets))
        + ("rule_files:\n" + "".join(f"  - '{f}'\n" for f in rule_files) if rule_files else ""))
    data = data_dir or (base / "tsdb")
    port = port or free_port()
    log = base / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe, f"--config.file={config}", f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{port}",
             "--storage.tsdb.retention.time=30d", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/-/ready", timeout=1).status_code == 200, 30, "Prometheus", proc, log)
    except Unavailable:
        stop_pid(proc.pid)
        raise
    return Prometheus(url, proc.pid, data)


def backfill(openmetrics: str, data_dir: Path) -> None:
    """Write ``openmetrics`` text as TSDB blocks into ``data_dir`` (history a fresh Prometheus serves at once)."""
    exe = shutil.which("promtool")
    if exe is None:
        raise Unavailable("promtool is not installed — run scripts/install-servers.sh")
    data_dir.mkdir(parents=True, exist_ok=True)
    src = data_dir.parent / "backfill.om"
    src.write_text(openmetrics)
    run = subprocess.run([exe, "tsdb", "create-blocks-from", "openmetrics", str(src), str(data_dir)],
                         capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"promtool could not backfill: {run.stderr.strip()[-300:]}")


@dataclass
class Servers:
    """The session's servers, each started on first use and stopped by ``stop_all``."""

    base: Path | None = None
    _pg: Postgres | None = None
    _unleash: Unleash | None = None
    _clickhouse: ClickHouse | None = None
    _failed: dict[str, str] = field(default_factory=dict)
    _pids: list[int] = field(default_factory=list)

    def _dir(self) -> Path:
        """The session's scratch directory, made on first use (none is left behind when nothing starts)."""
        if self.base is None:
            self.base = Path(tempfile.mkdtemp(prefix="routedeck-servers-"))
        return self.base

    def unleash(self) -> Unleash:
        """A running Unleash (with its PostgreSQL), started once; Unavailable says why not."""
        if "unleash" in self._failed:
            raise Unavailable(self._failed["unleash"])
        if self._unleash is None:
            try:
                if self._pg is None:
                    self._pg = start_postgres(self._dir())
                    self._pids.append(self._pg.pid)
                self._unleash = start_unleash(self._dir(), self._pg)
                self._pids.insert(0, self._unleash.pid)  # stop Unleash before its database
            except Unavailable as exc:
                self._failed["unleash"] = str(exc)
                raise
        elif not _running(self._unleash.pid):
            # say why every later test fails: a server that died mid-session is not "connection refused"
            self._failed["unleash"] = f"Unleash (pid {self._unleash.pid}) died during the session: {_tail(self._dir() / 'unleash.log', 15)}"
            raise Unavailable(self._failed["unleash"])
        return self._unleash

    def clickhouse(self) -> ClickHouse:
        """A running ClickHouse server, started once; Unavailable says why not."""
        if "clickhouse" in self._failed:
            raise Unavailable(self._failed["clickhouse"])
        if self._clickhouse is None:
            try:
                self._clickhouse = start_clickhouse(self._dir() / "clickhouse")
            except Unavailable as exc:
                self._failed["clickhouse"] = str(exc)
                raise
            self._pids.insert(0, self._clickhouse.pid)
        return self._clickhouse

    def unavailable(self) -> dict[str, str]:
        """Servers that could not start this session, with the reason."""
        return dict(self._failed)

    def prometheus(self, name: str, targets: list[str], data_dir: Path | None = None,
                   rule_files: list[Path] | None = None) -> Prometheus:
        """A new Prometheus scraping ``targets``; stopped with the others (or earlier by ``stop``)."""
        try:
            prom = start_prometheus(self._dir() / name, targets, data_dir, rule_files=rule_files)
        except Unavailable as exc:
            self._failed["prometheus"] = str(exc)
            raise
        self._pids.insert(0, prom.pid)
        return prom

    def stop(self, pid: int) -> None:
        stop_pid(pid)
        if pid in self._pids:
            self._pids.remove(pid)

    def stop_all(self) -> None:
        for pid in list(self._pids):
            # SIGINT is PostgreSQL's "fast" shutdown; the others take SIGTERM
            stop_pid(pid, signal.SIGINT if self._pg is not None and pid == self._pg.pid else signal.SIGTERM)
        self._pids.clear()
        self._pg = self._unleash = self._clickhouse = None
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None  # a later start gets a clean tree


_SESSION: Servers | None = None


def session_servers() -> Servers:
    """The process-wide ``Servers`` (shared by the integration fixtures and the contract suite)."""
    global _SESSION
    if _SESSION is None:
        _SESSION = Servers()
        atexit.register(_SESSION.stop_all)
        _stop_on_termination(_SESSION)
    return _SESSION


def _stop_on_termination(servers: Servers) -> None:
    """A test run ended by SIGTERM or SIGHUP (a timeout, a closed terminal) stops its servers too:
    Python's default handling of those signals skips ``atexit``, leaving them running unowned."""

    def stop_then_die(signum, frame) -> None:
        servers.stop_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, stop_then_die)
