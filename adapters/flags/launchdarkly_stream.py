"""LaunchDarkly's server-side SDK stream, followed as an SDK does: a background thread reading the
server-sent events of ``GET {stream}/all`` (authorised by the environment's SDK key) — ``put`` with
every flag, then ``patch`` or ``delete`` naming one flag at each change.

A 401 or 403 means the SDK key is wrong or revoked: the thread stops and says so (LaunchDarkly's
SDKs treat it as final too). Any other failure, a closed stream or a silence longer than
``read_timeout_s`` (LaunchDarkly sends a heartbeat comment every few minutes) reconnects after an
exponential backoff with jitter, reset after a connection that received its ``put``.

The SDK key travels in a header, never in the URL; messages name the stream by its URL only.
"""

from __future__ import annotations

import json
import random
import socket
import ssl as ssl_module
import threading
from typing import Any, Callable

import httpx

from console.core.redact import redact

FINAL_STATUSES = frozenset({401, 403})


class SdkStream:
    """A thread following one environment's flags. ``versions`` holds the latest version per flag key."""

    def __init__(
        self,
        stream_url: str,
        sdk_key: str,
        on_change: Callable[[list[str]], None],
        *,
        on_status: Callable[[str, bool], None] | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        read_timeout_s: float = 300.0,
        verify: "ssl_module.SSLContext | bool" = True,
    ) -> None:
        self.where = redact(f"{stream_url.rstrip('/')}/all")
        self._url = f"{stream_url.rstrip('/')}/all"
        self._key = sdk_key
        self.on_change = on_change
        self.on_status = on_status
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.read_timeout_s = read_timeout_s
        self._verify = verify
        self.versions: dict[str, int] = {}
        self.status = "connecting"
        self.stopped_reason: str | None = None
        self.connections = 0
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._socket: socket.socket | None = None
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="launchdarkly-stream", daemon=True)

    def start(self) -> "SdkStream":
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        sock = self._socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read at once
            except OSError:
                pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _say(self, status: str, final: bool = False) -> None:
        self.status = redact(status).replace(self._key, "***")
        if self.on_status is not None:
            try:
                self.on_status(self.status, final)
            except Exception:  # a broken listener must not kill the stream
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            status = self._connect_once()
            if self._stop.is_set():
                break
            if status in FINAL_STATUSES:
                self.stopped_reason = (
                    f"LaunchDarkly stream at {self.where} refused the SDK key (HTTP {status}) — check "
                    "ROUTEDECK_LAUNCHDARKLY_SDK_KEY; not reconnecting")
                self._say(self.stopped_reason, final=True)
                return
            delay = min(self.max_backoff_s, self.backoff_s * (2 ** min(self._failures, 16)))
            delay *= 0.5 + random.random() / 2  # jitter: clients that lost the stream together do not return together
            self._failures += 1
            self._say(f"{self.status}; reconnecting in {delay:.1f} s")
            self._stop.wait(delay)
        self._say("stopped")

    def _connect_once(self) -> int | None:
        """One connection: read events until it ends. Returns the HTTP status when it was refused."""
        headers = {"Authorization": self._key, "Accept": "text/event-stream", "User-Agent": "routedeck"}
        timeout = httpx.Timeout(5.0, read=self.read_timeout_s)
        try:
            with httpx.Client(timeout=timeout, verify=self._verify, trust_env=True) as client:
                with client.stream("GET", self._url, headers=headers) as response:
                    if response.status_code != 200:
                        self._say(f"LaunchDarkly stream at {self.where}: HTTP {response.status_code}")
                        return response.status_code
                    stream = response.extensions.get("network_stream")
                    self._socket = stream.get_extra_info("socket") if stream is not None else None
                    self.connections += 1
                    self._follow(response)
                    self._say(f"LaunchDarkly stream at {self.where} ended")
        except (httpx.HTTPError, OSError) as exc:
            if not self._stop.is_set():
                self._say(f"LaunchDarkly stream at {self.where}: {type(exc).__name__}: "
                          f"{redact(str(exc)).replace(self._key, '***')[:120]}")
        finally:
            self._socket = None
        return None

    def _follow(self, response: httpx.Response) -> None:
        event, data = "", []
        for line in response.iter_lines():
            if self._stop.is_set():
                return
            if line == "":
                if event or data:
                    self._handle(event or "message", "\n".join(data))
                event, data = "", []
            elif line.startswith(":"):
                continue  # heartbeat
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)

    def _handle(self, event: str, text: str) -> None:
        try:
            message: Any = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        changed: list[str] = []
        if event == "put":
            payload = (message.get("data") or {}).get("flags") or {}
            first = not self.synced.is_set()
            old = self.versions
            self.versions = {k: int((f or {}).get("version") or 0) for k, f in payload.items()}
            changed = sorted(k for k in set(old) | set(self.versions) if old.get(k) != self.versions.get(k))
            self.synced.set()
            self._failures = 0
            self._say(f"following LaunchDarkly stream at {self.where}")
            if first:
                return
        elif event in ("patch", "delete"):
            path = str(message.get("path") or "")
            if not path.startswith("/flags/"):
                return
            key = path[len("/flags/"):]
            version = int(((message.get("data") or {}) if event == "patch" else message).get("version") or 0)
            if self.versions.get(key, -1) >= version:
                return  # an older or repeated version: nothing new
            if event == "delete":
                self.versions.pop(key, None)
            else:
                self.versions[key] = version
            changed = [key]
        if changed:
            try:
                self.on_change(changed)
            except Exception:  # the listener's failure is its own; the stream goes on
                pass
