"""Shared HTTP plumbing for the backend adapters: one client shape, bounded retries, safe messages.

Every adapter talks to its backend through ``JsonHttp``: fixed timeouts (the active profile's
``timeout``), a bounded retry with exponential backoff on 429 and 5xx (and on connection failures)
that honours ``Retry-After``, and errors that name the redacted URL in one line. Only idempotent
requests are retried after they may have reached the server: a POST that timed out or got a 5xx
may have been applied, and sending it again could apply it twice (a second strategy, a second
flag), so it is retried only when it never left (the connection was refused) or the server said
429; the adapter checks the platform's state before it tries again. Clients verify HTTPS certificates unless the active
profile turns it off (``console.core.tls``), may trust an extra CA bundle, and honour the standard
proxy variables (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``). Nothing here ever puts a token
into a message.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from console.core.errors import BackendError, BadInput
from console.core.redact import redact
from console.core.timeouts import timeouts
from console.core.tls import TlsSettings, tls_settings

#: secrets an error body may echo back ("token=…", "password: …"), hidden before a message is built
_SECRET_IN_TEXT = re.compile(r"(?i)\b(token|secret|password|api_?key|authorization)(\s*[=:]\s*)\S+")

#: request headers that carry a credential (their values never reach a message)
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "private-token"})

#: statuses worth retrying: the server asked us to slow down or failed on its side
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: statuses that say the request itself is wrong (credentials, URL): trying again later will not help
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 405, 410})
#: methods that may be sent twice with the effect of once (RFC 9110, 9.2.2)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a request that may succeed on a second try."""

    attempts: int = 3
    backoff_s: float = 0.2
    max_backoff_s: float = 2.0
    #: the longest ``Retry-After`` worth waiting for; a server asking for more gets a clear error at once
    max_retry_after_s: float = 10.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1``: the server's ``Retry-After`` when it gives
        one (at most ``max_retry_after_s``), else exponential backoff."""
        asked = retry_after_s(retry_after)
        if asked is not None:
            return min(asked, self.max_retry_after_s)
        return min(self.max_backoff_s, self.backoff_s * (2**attempt))


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now, or None if absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def redact_url(url: str | httpx.URL) -> str:
    """``url`` without user-info, secret query values or a query string that may hold one."""
    parts = urlsplit(str(url))
    netloc = parts.netloc.rpartition("@")[2]
    return redact(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    connect_timeout_s: float | None = None,
    transport: httpx.BaseTransport | None = None,
    tls: TlsSettings | None = None,
) -> httpx.Client:
    """An httpx client with the project's timeouts and TLS settings (default: the active profile's);
    proxies come from the standard environment variables; ``transport`` lets tests plug in a fake."""
    limits = timeouts()
    timeout_s = limits.request_s if timeout_s is None else timeout_s
    connect_timeout_s = min(limits.connect_s, timeout_s) if connect_timeout_s is None else connect_timeout_s
    return httpx.Client(
        base_url=base_url,
        headers=dict(headers or {}),
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        transport=transport,
        follow_redirects=False,
        verify=ssl_verify(tls or tls_settings()),
        trust_env=True,
    )


def ssl_context(tls: TlsSettings | None = None) -> ssl.SSLContext:
    """An SSL context honouring the TLS settings (default: the active profile's), for clients other
    than httpx — e.g. a ``wss://`` stream (``websockets.sync.client.connect(url, ssl=ssl_context())``)."""
    verify = ssl_verify(tls or tls_settings())
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def ssl_verify(tls: TlsSettings) -> ssl.SSLContext | bool:
    """What httpx's ``verify`` gets: False when verification is off, a context that also trusts the
    CA bundle when one is set, else True (the system's default trust, ``SSL_CERT_FILE`` honoured)."""
    if not tls.verify:
        return False
    if tls.ca_bundle is None:
        return True
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    try:
        context.load_verify_locations(cafile=str(tls.ca_bundle))
    except FileNotFoundError:
        raise BadInput(f"ca_bundle {tls.ca_bundle}: file not found — fix the path in the profile") from None
    except (ssl.SSLError, OSError) as exc:
        raise BadInput(f"ca_bundle {tls.ca_bundle}: not a PEM file of CA certificates ({_short(exc)})") from None
    return context


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

    def request(self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any) -> httpx.Response:
        """Send a request, retrying transient failures; raise BackendError when it cannot get an answer.

        Responses with a 4xx status other than 429 are returned as they are: the caller knows
        which of them it expects (a 409 on create, a 400 for a bad query).

        ``idempotent`` (default: by method, GET/PUT/DELETE yes, POST/PATCH no) says whether the
        request may be sent again after it may have reached the server. One that is not is retried
        only when it surely did not: the connection was never made, or the answer was 429.
        """
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        last: str = ""
        for attempt in range(self.retry.attempts):
            try:
                response = self.client.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                tls_problem = _tls_problem(exc)
                if tls_problem:  # retrying cannot change a certificate
                    raise self._error(f"{self.what} at {self.where(path)}: {tls_problem}") from None
                last = (f"no connection within {self._connect_timeout_s():g} s" if isinstance(exc, httpx.ConnectTimeout)
                        else f"cannot connect ({_short(exc)})")
            except httpx.TimeoutException:
                last = f"no answer within {self._timeout_s():g} s"
                if not idempotent:
                    raise self._error(self._maybe_applied(method, path, last)) from None
            except httpx.TransportError as exc:
                tls_problem = _tls_problem(exc)
                if tls_problem:  # retrying cannot change a certificate
                    raise self._error(f"{self.what} at {self.where(path)}: {tls_problem}") from None
                last = f"connection failed ({_short(exc)})"
                if not idempotent:
                    raise self._error(self._maybe_applied(method, path, last)) from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                last = f"HTTP {response.status_code}{error_detail(response)}"
                if not idempotent and response.status_code != 429:
                    raise self._error(self._maybe_applied(method, path, last))
                asked = retry_after_s(response.headers.get("retry-after"))
                if asked is not None and asked > self.retry.max_retry_after_s:
                    raise self._error(
                        f"{self.what} at {self.where(path)}: {last}; it asks to retry after {asked:.0f} s "
                        f"(routedeck waits at most {self.retry.max_retry_after_s:g} s) — try again later"
                    )
                if attempt + 1 < self.retry.attempts:
                    self._sleep(self.retry.delay(attempt, response.headers.get("retry-after")))
                    continue
                break
            if attempt + 1 < self.retry.attempts:
                self._sleep(self.retry.delay(attempt))
        advice = (
            "it is rate-limiting routedeck: wait, then try again (or raise its limit)"
            if last.startswith("HTTP 429") else "check that it is running and reachable"
        )
        raise self._error(f"{self.what} at {self.where(path)}: {last} after {self.retry.attempts} attempts — {advice}")

    def json(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """The decoded JSON body of a request whose status must be one of ``ok``."""
        response = self.request(method, path, **kwargs)
        if response.status_code not in ok:
            raise self._error(
                f"{self.what} at {self.where(path)}: HTTP {response.status_code}{error_detail(response)}"
                f"{_hint(response.status_code)}", transient=response.status_code not in PERMANENT_STATUSES,
            )
        if not response.content:
            return None
        return self.decode(response, path)

    def decode(self, response: httpx.Response, path: str) -> Any:
        """The JSON body of ``response``; a one-line error naming the backend when it is not JSON
        (or nested too deeply to read)."""
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._error(f"{self.what} at {self.where(path)}: the answer is not JSON — is this the right URL?") from None
        except RecursionError:
            raise self._error(f"{self.what} at {self.where(path)}: the answer is nested too deeply to read") from None

    def close(self) -> None:
        self.client.close()

    def error(self, message: str, *, transient: bool = True) -> BackendError:
        """``_error`` for an adapter's own message built from an answer (its body may echo a token)."""
        return self._error(message, transient=transient)

    def _error(self, message: str, *, transient: bool = True) -> BackendError:
        """A BackendError whose text holds none of this client's credentials, even if the server echoed one."""
        for name, value in self.client.headers.items():
            if name.lower() not in _CREDENTIAL_HEADERS:
                continue
            for secret in (value, value.partition(" ")[2]):
                if len(secret) >= 4:
                    message = message.replace(secret, "***")
        return BackendError(message, transient=transient)

    def _maybe_applied(self, method: str, path: str, last: str) -> str:
        return (f"{self.what} at {self.where(path)}: {method} {last}; it may or may not have been applied, so "
                "it was not sent again")

    def _timeout_s(self) -> float:
        t = self.client.timeout
        return float(t.read or t.connect or 0)

    def _connect_timeout_s(self) -> float:
        t = self.client.timeout
        return float(t.connect or t.read or 0)


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
        return " — check the API token (stored with `routedeck login`, or in its environment variable; never in the URL)"
    if status == 404:
        return " — check the URL, project and environment"
    return ""


def _tls_problem(exc: Exception) -> str | None:
    """A one-line explanation when a connection failed on TLS (retrying will not help), else None."""
    text = str(exc)
    cause = exc.__context__ or exc.__cause__
    checked = f"{text} {cause or ''}"
    if "CERTIFICATE_VERIFY_FAILED" in checked or isinstance(cause, ssl.SSLCertVerificationError):
        detail = "self-signed certificate" if "self-signed" in checked or "self signed" in checked else None
        if detail is None:
            m = re.search(r"certificate verify failed: ([^(\]]+)", checked)
            detail = m.group(1).strip() if m else "unknown issuer"
        return (f"TLS certificate not trusted ({detail}) — set ca_bundle to its CA's PEM file in the profile, "
                "or tls_verify = false for a test server")
    if "WRONG_VERSION_NUMBER" in checked or "record layer failure" in checked:
        return "the server does not speak TLS here — check http:// versus https:// in the URL"
    if isinstance(cause, ssl.SSLError) or "SSL:" in text:
        return f"TLS handshake failed ({_short(exc)}) — check the URL and the server's certificate"
    return None


def _short(exc: Exception) -> str:
    text = " ".join(redact(str(exc)).split()) or type(exc).__name__
    return text[:120]
