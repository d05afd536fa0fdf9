"""A small fault-injecting HTTP/1.1 proxy, put in front of one real server (Unleash, Prometheus) on 127.0.0.1.

Requests pass through unchanged until a test asks for a fault on the requests that match (method,
path): answer slowly, hold the request until released (then pass it on, late, or drop it), answer
with a status of its choosing (401, 500…), with a body that is not what the server would send
(malformed JSON, an answer rewritten), or reset the connection. ``down()`` stops listening, so a
client sees "connection refused" as from a server that is not running; ``up()`` listens again on the
same port. Every request is logged with what was done to it, so a test can say which write was held.

Only what the tests need of HTTP/1.1: requests with a Content-Length body (what httpx and Node's
fetch send), keep-alive, answers read in full from the server and sent with a Content-Length.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade",
               "content-length"}


@dataclass
class Fault:
    """What to do to the requests that match, ``times`` times (None: until cleared)."""

    kind: str  # slow | hold | status | malformed | reset | rewrite | before | after
    method: str | None = None
    path: str | None = None  # a regular expression searched in the request's path and query
    times: int | None = None
    #: let this many matching requests through untouched before the fault applies
    skip: int = 0
    #: status: pass the request on first (it is applied) and answer the status instead of the server's
    forward: bool = False
    #: before / after: run this before the request goes on / once the server has answered it
    action: Callable[[], None] | None = None
    #: the fault applies only while this says so (checked when a request arrives)
    when: Callable[[], bool] | None = None
    delay_s: float = 0.0
    status: int = 500
    body: bytes = b""
    then: str = "forward"  # after a hold: forward (the write lands late) or drop (it never lands)
    rewrite: Callable[[bytes], bytes] | None = None
    released: threading.Event = field(default_factory=threading.Event)
    #: set when the first matching request has arrived (a held write, for instance)
    hit: threading.Event = field(default_factory=threading.Event)
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and method.upper() != self.method.upper():
            return False
        if self.path is not None and re.search(self.path, target) is None:
            return False
        if self.when is not None and not self.when():
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        return True

    def release(self) -> None:
        self.released.set()


@dataclass(frozen=True)
class Logged:
    method: str
    target: str
    outcome: str  # "forwarded 200", "held+forwarded 200", "status 500", "reset", …


class FaultProxy:
    def __init__(self, upstream: str, port: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.log: list[Logged] = []
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopping = False
        self.port = port
        self._bind()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- control -------------------------------------------------------------------------------

    def fault(self, kind: str, **options) -> Fault:
        f = Fault(kind, **options)
        with self._lock:
            self._faults.append(f)
        return f

    def clear(self) -> None:
        with self._lock:
            faults, self._faults = self._faults, []
        for f in faults:
            f.release()

    def down(self) -> None:
        """Refuse connections, and cut the open ones, as a stopped server would."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone would not
            except OSError:
                pass
            listener.close()
        with self._lock:
            conns, self._conns = set(self._conns), set()
        for c in conns:
            _reset(c)

    def up(self) -> None:
        if self._listener is None:
            self._bind()

    def close(self) -> None:
        self._stopping = True
        self.clear()
        self.down()

    def requests(self, method: str | None = None, path: str | None = None, outcome: str | None = None) -> list[Logged]:
        """The logged requests, optionally only those of ``method``, whose path matches ``path`` and whose
        outcome starts with ``outcome``."""
        with self._lock:
            return [r for r in self.log if (method is None or r.method == method)
                    and (path is None or re.search(path, r.target))
                    and (outcome is None or r.outcome.startswith(outcome))]

    # ---- serving -------------------------------------------------------------------------------

    def _bind(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.port = s.getsockname()[1]
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True, name="fault-proxy-accept").start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by down() or close()
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="fault-proxy-conn").start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while True:
                request = _read_request(reader)
                if request is None:
                    return
                method, target, headers, body = request
                keep = self._handle(conn, method, target, headers, body)
                if not keep:
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                reader.close()
                conn.close()
            except OSError:
                pass

    def _match(self, method: str, target: str) -> Fault | None:
        with self._lock:
            faults = list(self._faults)
        for f in faults:  # outside the lock: a ``when`` may look at the log
            if f.matches(method, target):
                f.hits += 1
                f.hit.set()
                return f
        return None

    def _record(self, method: str, target: str, outcome: str) -> None:
        with self._lock:
            self.log.append(Logged(method, target, outcome))

    def _handle(self, conn: socket.socket, method: str, target: str, headers: list[tuple[str, str]],
                body: bytes) -> bool:
        fault = self._match(method, target)
        prefix = ""
        if fault is not None:
            if fault.kind == "reset":
                self._record(method, target, "reset")
                _reset(conn)
                return False
            if fault.kind == "status":
                if fault.forward:
                    try:
                        self._forward(method, target, headers, body)
                    except OSError:
                        pass
                self._record(method, target, f"{'forwarded+' if fault.forward else ''}status {fault.status}")
                _respond(conn, fault.status, fault.body or b'{"error":"injected"}')
                return True
            if fault.kind == "malformed":
                self._record(method, target, "malformed")
                _respond(conn, 200, fault.body or b'{"features": [ {"name": "x", ')
                return True
            if fault.kind == "before" and fault.action is not None:
                fault.action()
                prefix = "before+"
            if fault.kind == "slow":
                time.sleep(fault.delay_s)
                prefix = "slow+"
            if fault.kind == "hold":
                self._record(method, target, "held")
                fault.released.wait()
                if fault.then == "drop" or self._stopping:
                    _reset(conn)
                    return False
                prefix = "held+"
        try:
            status, reason, out_headers, data = self._forward(method, target, headers, body)
        except OSError as exc:
            self._record(method, target, f"{prefix}upstream failed ({exc.__class__.__name__})")
            _reset(conn)
            return False
        if fault is not None and fault.kind == "rewrite" and fault.rewrite is not None:
            data = fault.rewrite(data)
            prefix = "rewritten+"
        if fault is not None and fault.kind == "after" and fault.action is not None:
            fault.action()
            prefix = "after+"
        self._record(method, target, f"{prefix}forwarded {status}")
        _respond(conn, status, data, out_headers, reason)
        return True

    def _forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes):
        upstream = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            # no compression: a rewritten answer must be readable as it comes
            sent = {k: v for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() not in ("host", "accept-encoding")}
            sent["Host"] = f"{self.upstream_host}:{self.upstream_port}"
            sent["Connection"] = "close"
            upstream.request(method, target, body=body if body or method not in ("GET", "HEAD") else None,
                             headers=sent)
            response = upstream.getresponse()
            data = response.read()
            out = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, response.reason, out, data
        finally:
            upstream.close()


def _read_request(reader) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    line = reader.readline(65536)
    if not line:
        return None
    parts = line.decode("latin-1").strip().split(" ")
    if len(parts) != 3:
        return None
    method, target, _ = parts
    headers: list[tuple[str, str]] = []
    length = 0
    while True:
        h = reader.readline(65536)
        if not h or h in (b"\r\n", b"\n"):
            break
        name, _, value = h.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    body = reader.read(length) if length else b""
    return method, target, headers, body


def _respond(conn: socket.socket, status: int, body: bytes, headers: list[tuple[str, str]] | None = None,
             reason: str | None = None) -> None:
    reason = reason or http.client.responses.get(status, "")
    lines = [f"HTTP/1.1 {status} {reason}"]
    names = {k.lower() for k, _ in headers or []}
    for k, v in headers or []:
        lines.append(f"{k}: {v}")
    if "content-type" not in names:
        lines.append("Content-Type: application/json")
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: keep-alive")
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def _reset(conn: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed server or a dropped connection looks."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.shutdown(socket.SHUT_RDWR)  # now, even while another thread still reads from it
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass
