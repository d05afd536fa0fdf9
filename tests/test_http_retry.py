"""Against a real local HTTP server: 429 and 5xx are retried with backoff a bounded number of times,
``Retry-After`` is honoured, and what cannot be retried ends in one clear line. Proxies come from
the standard environment variables."""

from __future__ import annotations

import time
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import pytest

from adapters.http import JsonHttp, RetryPolicy, make_client, retry_after_s
from console.core.errors import BackendError

from .local_http import Script, serve


def _client(url: str, slept: list[float], **policy) -> JsonHttp:
    return JsonHttp(make_client(url), "Backend", retry=RetryPolicy(**policy), sleep=slept.append)


def test_429_then_503_then_200_is_retried_and_retry_after_is_honoured():
    script = Script([(429, {"Retry-After": "1"}, {"error": "slow down"}), (503, {}, {}), (200, {}, {"ok": 1})])
    slept: list[float] = []
    with serve(script) as url:
        assert _client(url, slept).json("GET", "/api/x") == {"ok": 1}
    assert [s.path for s in script.seen] == ["/api/x"] * 3
    assert slept == [1.0, 0.4]  # the server's Retry-After, then exponential backoff


def test_real_sleeps_wait_what_the_server_asks():
    script = Script([(503, {"Retry-After": "0.3"}, {}), (200, {}, {"ok": 1})])
    with serve(script) as url:
        http = JsonHttp(make_client(url), "Backend")
        started = time.perf_counter()
        assert http.json("GET", "/") == {"ok": 1}
        assert time.perf_counter() - started >= 0.3


def test_retries_are_bounded_then_one_clear_line():
    script = Script([(503, {}, {"message": "overloaded, token=abc123"})])
    slept: list[float] = []
    with serve(script) as url:
        with pytest.raises(BackendError) as err:
            _client(url, slept, attempts=4).json("GET", "/api/features")
    message = str(err.value)
    assert len(script.seen) == 4 and slept == [0.2, 0.4, 0.8]
    assert message.startswith(f"Backend at {url}/api/features: HTTP 503: overloaded")
    assert "after 4 attempts — check that it is running and reachable" in message
    assert "abc123" not in message and "\n" not in message


def test_persistent_429_says_it_is_rate_limited():
    script = Script([(429, {}, {})])
    with serve(script) as url:
        with pytest.raises(BackendError, match="HTTP 429 after 3 attempts — it is rate-limiting routedeck: wait"):
            _client(url, []).json("GET", "/")
    assert len(script.seen) == 3


def test_a_retry_after_longer_than_the_cap_fails_at_once():
    script = Script([(429, {"Retry-After": "120"}, {}), (200, {}, {})])
    slept: list[float] = []
    with serve(script) as url:
        with pytest.raises(BackendError, match=r"HTTP 429; it asks to retry after 120 s \(routedeck waits at most 10 s\)"):
            _client(url, slept).json("GET", "/")
    assert len(script.seen) == 1 and slept == []


def test_other_client_errors_are_not_retried():
    script = Script([(404, {}, {"message": "no such flag"})])
    with serve(script) as url:
        with pytest.raises(BackendError, match="HTTP 404: no such flag — check the URL"):
            _client(url, []).json("GET", "/flag")
    assert len(script.seen) == 1


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after_s("7") == 7.0
    assert retry_after_s(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now.timestamp()) == 30.0
    assert retry_after_s(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now.timestamp()) == 0.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None
    policy = RetryPolicy(max_retry_after_s=5)
    assert policy.delay(0, "3") == 3.0 and policy.delay(0, "60") == 5.0 and policy.delay(2, None) == 0.8


def test_the_standard_proxy_variables_are_honoured(monkeypatch):
    proxy = Script([(200, {}, {"via": "proxy"})])
    direct = Script([(200, {}, {"via": "direct"})])
    with serve(proxy) as proxy_url, serve(direct) as direct_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        http = JsonHttp(make_client("http://flags.example.internal:4242"), "Backend")
        assert http.json("GET", "/api/health") == {"via": "proxy"}
        assert proxy.seen[0].path == "http://flags.example.internal:4242/api/health"  # absolute form: a proxy request

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert JsonHttp(make_client(direct_url), "Backend").json("GET", "/") == {"via": "direct"}
        assert len(proxy.seen) == 1 and len(direct.seen) == 1


def test_a_server_echoing_the_token_never_gets_it_into_the_message():
    canary = "rdk-canary-5b1d0e"
    script = Script([(401, {}, {"message": f"invalid token {canary} for this project"})])
    with serve(script) as url:
        http = JsonHttp(make_client(url, headers={"Authorization": f"Bearer {canary}"}), "Backend")
        with pytest.raises(BackendError) as err:
            http.json("GET", "/")
    assert script.seen[0].headers["authorization"] == f"Bearer {canary}"
    assert str(err.value) == (f"Backend at {url}/: HTTP 401: invalid token *** for this project — check the API token "
                              "(stored with `routedeck login`, or in its environment variable; never in the URL)")
