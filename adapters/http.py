"""Shared HTTP plumbing for the backend adapters: one client shape, bounded retries, safe messages.

Every adapter talks to its backend through ``JsonHttp``: fixed timeouts, a bounded retry with
exponential backoff on 429 and 5xx (and on connection failures), and errors that name the
redacted URL in one line. Nothing here ever puts a token into a message.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from console.core.errors import BackendError
from console.core.redact import redact

#: secrets an error body may echo back ("token=…", "password: …"), hidden before a message is built
_SECRET_IN_TEXT = re.compile(r"(?i)\b(token|secret|password|api_?key|authorization)(\s*[=:]\s*)\S+")

#: statuses worth retrying: the server asked us to slow down or failed on its side
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a request that may succeed on a second try."""

    attempts: int = 3
    backoff_s: float = 0.2
    max_backoff_s: float = 2.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``Retry-After`` wins when it is shorter)."""
        wait = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        if retry_after:
            try:
                return min(wait, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return wait


def redact_url(url: str | httpx.URL) -> str:
    """``url`` without user-info, secret query values or a query string that may hold one."""
    parts = urlsplit(str(url))
    netloc = parts.netloc.rpartition("@")[2]
    return redact(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
    connect_timeout_s: float = 2.0,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An httpx client with the project's timeouts; ``transport`` lets tests plug in a fake."""
    return httpx.Client(
        base_url=base_url,
        headers=dict(headers or {}),
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        transport=transport,
        follow_redirects=False,
    )


class JsonHttp:
    """A JSON-over-HTTP client for one backend, with retries and one-line errors.

    ``what`` names the backend in messages (e.g. "Prometheus"); ``sleep`` is injectable so
    tests of the retry path do not wait.
    """

    def __init__(
        self,
        client: httpx.Client,
        what: str,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.what = what
        self.retry = retry
        self._sleep = sleep

    def where(self, path: str = "") -> str:
        """The redacted URL of ``path`` on this backend, safe for messages."""
        return redact_url(self.client.base_url.join(path) if path else self.client.base_url)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request, retrying transient failures; raise BackendError when it cannot get an answer.

        Responses with a 4xx status other than 429 are returned as they are: the caller knows
        which of them it expects (a 409 on create, a 400 for a bad query).
        """
        last: str = ""
        for attempt in range(self.retry.attempts):
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TimeoutException:
                last = f"no answer within {self._timeout_s():g} s"
            except httpx.TransportError as exc:
                last = f"cannot connect ({_short(exc)})"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                last = f"HTTP {response.status_code}{error_detail(response)}"
                if attempt + 1 < self.retry.attempts:
                    self._sleep(self.retry.delay(attempt, response.headers.get("retry-after")))
                    continue
                break
            if attempt + 1 < self.retry.attempts:
                self._sleep(self.retry.delay(attempt))
        raise BackendError(
            f"{self.what} at {self.where(path)}: {last} after {self.retry.attempts} attempts — "
            f"check that it is running and reachable"
        )

    def json(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """The decoded JSON body of a request whose status must be one of ``ok``."""
        response = self.request(method, path, **kwargs)
        if response.status_code not in ok:
            raise BackendError(
                f"{self.what} at {self.where(path)}: HTTP {response.status_code}{error_detail(response)}"
                f"{_hint(response.status_code)}"
            )
        if not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BackendError(f"{self.what} at {self.where(path)}: the answer is not JSON — is this the right URL?") from None

    def close(self) -> None:
        self.client.close()

    def _timeout_s(self) -> float:
        t = self.client.timeout
        return float(t.read or t.connect or 0)


def error_detail(response: httpx.Response, limit: int = 160) -> str:
    """A short ': reason' from an error body (JSON ``error``/``message`` or the text), or ''."""
    text = ""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        body = None
    if isinstance(body, dict):
        for key in ("error", "message", "details"):
            value = body.get(key)
            if isinstance(value, list) and value and isinstance(value[0], dict):
                value = value[0].get("message") or value[0].get("description")
            if isinstance(value, str) and value:
                text = value
                break
    elif response.text and len(response.text) < 400 and "<html" not in response.text.lower():
        text = response.text
    text = " ".join(_SECRET_IN_TEXT.sub(r"\1\2***", redact(text)).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f": {text}" if text else ""


def _hint(status: int) -> str:
    if status in (401, 403):
        return " — check the API token (it is read from the environment, never from the URL)"
    if status == 404:
        return " — check the URL, project and environment"
    return ""


def _short(exc: Exception) -> str:
    text = " ".join(redact(str(exc)).split()) or type(exc).__name__
    return text[:120]
