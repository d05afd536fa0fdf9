"""FeatBit's evaluation-server stream, as a server-side SDK follows it: a background thread that
asks for a full data-sync, then applies the patches FeatBit pushes on every flag change.

Protocol (FeatBit's evaluation server): connect to ``/streaming?type=server&version=2&token=T``
where T is the environment secret wrapped in FeatBit's token envelope (it carries a timestamp,
so a fresh token is built for every connection); send ``data-sync`` with the newest ``updatedAt``
seen (0 = full); send ``ping`` every ``ping_every_s`` (the server answers ``pong``). A close with
code 4003 means the request or secret is invalid: the thread stops and says so. Any other close
or failure reconnects after an exponential backoff with jitter, reset after a connection that
synced.

The secret travels in the URL: messages name the stream by scheme, host, port and path only,
and the websocket library's own logger is silenced (its debug lines print the request path).
"""

from __future__ import annotations

import json
import logging
import random
import ssl as ssl_module
import threading
import time
from datetime import datetime
from math import floor
from typing import Any, Callable
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import connect

from console.core.redact import redact

CLOSE_INVALID = 4003
_DIGITS = "QBWSPHDXZU"  # FeatBit's token alphabet: digit d is written as _DIGITS[d]

_WIRE_LOG = logging.getLogger("routedeck.featbit.wire")
_WIRE_LOG.disabled = True  # the websocket library logs the request path, which holds the secret


def stream_token(secret: str, now_ms: int | None = None, rng: Callable[[], float] = random.random) -> str:
    """The secret in FeatBit's token envelope (position and length header, timestamp spliced in)."""
    def encode(number: int, width: int) -> str:
        return "".join(_DIGITS[int(c)] for c in str(number).rjust(width, "0")[-width:])

    text = secret.rstrip("=")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    stamp = encode(now, len(str(now)))
    start = max(floor(rng() * len(text)), 2)
    return encode(start, 3) + encode(len(stamp), 2) + text[:start] + stamp + text[start:]


def _updated_ms(flag: dict[str, Any]) -> int:
    try:
        return int(datetime.fromisoformat(str(flag.get("updatedAt")).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return 0


class FlagStream:
    """A thread following one environment's flags. ``flags`` holds the latest document per key."""

    def __init__(
        self,
        stream_url: str,
        secret: str,
        on_change: Callable[[list[str]], None],
        *,
        on_status: Callable[[str, bool], None] | None = None,
        ping_every_s: float = 10.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        open_timeout_s: float = 5.0,
        ssl: "ssl_module.SSLContext | None" = None,
    ) -> None:
        parts = urlsplit(stream_url.rstrip("/"))
        self._base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        #: where the stream is, safe to show (no token)
        self.where = redact(f"{self._base}/streaming")
        self._secret = secret
        self.on_change = on_change
        self.on_status = on_status
        self.ping_every_s = ping_every_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.open_timeout_s = open_timeout_s
        self._ssl = ssl if parts.scheme == "wss" else None
        self.flags: dict[str, dict[str, Any]] = {}
        self.version = 0  # newest updatedAt seen, in ms
        self.status = "connecting"
        self.stopped_reason: str | None = None
        self.connections = 0
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._ws = None
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="featbit-stream", daemon=True)

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> "FlagStream":
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.close(1000, "client stops")
            except Exception:  # closing a dying socket: nothing left to do
                pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _say(self, status: str, final: bool = False) -> None:
        """Record the stream's state; ``final`` when it stopped for good on the server's word."""
        self.status = self._scrub(status)
        if self.on_status is not None:
            try:
                self.on_status(self.status, final)
            except Exception:  # a broken listener must not kill the stream
                pass

    def _scrub(self, text: str) -> str:
        """``text`` with the secret (bare or in any token) and token query values removed."""
        text = redact(text)
        for part in (self._secret, self._secret.rstrip("=")):
            if part:
                text = text.replace(part, "***")
        return text

    # ---- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            code = self._connect_once()
            if self._stop.is_set():
                break
            if code == CLOSE_INVALID:
                self.stopped_reason = (
                    f"FeatBit stream at {self.where} refused the connection (close 4003: invalid request or "
                    "secret) — check ROUTEDECK_FEATBIT_SECRET; not reconnecting"
                )
                self._say(self.stopped_reason, final=True)
                return
            delay = min(self.max_backoff_s, self.backoff_s * (2 ** min(self._failures, 16)))
            delay *= 0.5 + random.random() / 2  # jitter: clients that lost the server together do not return together
            self._failures += 1
            self._say(f"{self.status}; reconnecting in {delay:.1f} s")
            self._stop.wait(delay)
        self._say("stopped")

    def _connect_once(self) -> int | None:
        """One connection: sync, follow, ping. Returns the close code (None when it never opened)."""
        url = f"{self._base}/streaming?type=server&version=2&token={stream_token(self._secret)}"
        try:
            with connect(url, open_timeout=self.open_timeout_s, ping_interval=None, compression=None,
                         logger=_WIRE_LOG, close_timeout=2, ssl=self._ssl) as ws:
                self._ws = ws
                self.connections += 1
                return self._follow(ws)
        except (OSError, WebSocketException, TimeoutError) as exc:
            self._say(f"FeatBit stream at {self.where}: cannot connect ({self._scrub(type(exc).__name__)}: "
                      f"{self._scrub(str(exc))[:120]})")
            return None
        finally:
            self._ws = None

    def _follow(self, ws) -> int:
        """Sync, then apply what arrives and ping when quiet, until the connection closes."""
        try:
            ws.send(json.dumps({"messageType": "data-sync", "data": {"timestamp": self.version}}))
            last_ping = time.monotonic()
            while not self._stop.is_set():
                wait = max(0.05, self.ping_every_s - (time.monotonic() - last_ping))
                try:
                    raw = ws.recv(timeout=wait)
                except TimeoutError:
                    ws.send('{"messageType":"ping","data":null}')
                    last_ping = time.monotonic()
                    continue
                self._handle(raw)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            reason = exc.rcvd.reason if exc.rcvd is not None else "no close frame"
            self._say(f"FeatBit stream at {self.where} closed (code {code}: {self._scrub(reason) or 'no reason'})")
            return code if code is not None else 1006
        return 1000

    def _handle(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("messageType") != "data-sync":
            return  # pong and anything newer than this client
        data = message.get("data") or {}
        flags = data.get("featureFlags")
        if data.get("eventType") not in ("full", "patch") or not isinstance(flags, list):
            return
        if data["eventType"] == "full":
            self.flags = {}
        changed = []
        for flag in flags:
            if not isinstance(flag, dict) or "key" not in flag:
                continue
            key = str(flag["key"])
            if flag.get("isArchived"):
                self.flags.pop(key, None)
            else:
                self.flags[key] = flag
            self.version = max(self.version, _updated_ms(flag))
            changed.append(key)
        first = not self.synced.is_set()
        self.synced.set()
        self._failures = 0
        self._say(f"following FeatBit stream at {self.where}")
        if changed and not first:
            try:
                self.on_change(changed)
            except Exception:  # the listener's failure is its own; the stream goes on
                pass
