"""Against a local HTTPS server with a self-signed certificate: verification on fails clearly (and is not
retried), verification off works, a CA bundle works — directly and through a profile and an adapter."""

from __future__ import annotations

import pytest

from adapters.http import JsonHttp, RetryPolicy, make_client, ssl_context
from console.backends import open_flags
from console.core.config import parse_config
from console.core.errors import BackendError, BadInput
from console.core.tls import TlsSettings, tls_settings
from console.profiles import activate

from .local_http import Script, self_signed, serve, server_tls


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https(cert):
    script = Script([(200, {}, {"features": [{"name": "support-answer-route"}]})])
    with serve(script, tls=server_tls(*cert)) as url:
        yield url, script


def _get(url: str, tls: TlsSettings, slept: list[float] | None = None):
    http = JsonHttp(make_client(url, tls=tls), "Unleash", retry=RetryPolicy(), sleep=(slept if slept is not None else []).append)
    return http.json("GET", "/api/admin/search/features")


def test_verification_on_refuses_a_self_signed_certificate_in_one_clear_line(https):
    url, script = https
    slept: list[float] = []
    with pytest.raises(BackendError) as err:
        _get(url, TlsSettings(), slept)
    message = str(err.value)
    assert message.startswith(f"Unleash at {url}/api/admin/search/features: TLS certificate not trusted (self-signed certificate)")
    assert "set ca_bundle to its CA's PEM file in the profile, or tls_verify = false" in message
    assert slept == [] and script.seen == []  # not retried: a certificate does not change


def test_verification_off_accepts_it(https):
    url, script = https
    assert _get(url, TlsSettings(verify=False)) == {"features": [{"name": "support-answer-route"}]}
    assert len(script.seen) == 1


def test_a_ca_bundle_makes_it_trusted(https, cert):
    url, _ = https
    assert _get(url, TlsSettings(ca_bundle=cert[0]))["features"][0]["name"] == "support-answer-route"


def test_a_bad_ca_bundle_is_a_one_line_error(tmp_path):
    with pytest.raises(BadInput, match="file not found — fix the path in the profile"):
        make_client("https://x", tls=TlsSettings(ca_bundle=tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(BadInput, match="not a PEM file of CA certificates"):
        make_client("https://x", tls=TlsSettings(ca_bundle=junk))


def test_https_to_a_plain_http_server_says_so():
    script = Script([(200, {}, {})])
    with serve(script) as url:
        with pytest.raises(BackendError, match="does not speak TLS here — check http:// versus https://"):
            JsonHttp(make_client(url.replace("http:", "https:")), "Unleash", sleep=lambda s: None).json("GET", "/")


def test_a_profile_carries_its_tls_settings_into_the_adapters(https, cert, tmp_path, monkeypatch):
    url, script = https
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", "env-token-xyz")
    config = parse_config(
        f'[profiles.bundle]\nflags = "unleash:{url}"\nca_bundle = "{cert[0]}"\n'
        f'[profiles.insecure]\nflags = "unleash:{url}"\ntls_verify = false\n'
        f'[profiles.strict]\nflags = "unleash:{url}"\n',
        tmp_path / "config.toml",
    )
    try:
        for name in ("bundle", "insecure"):
            activate(config.profiles[name])
            assert open_flags(config.profiles[name].flags).list_flags() == ["support-answer-route"]
        assert tls_settings().warning == "TLS verification OFF"
        activate(config.profiles["strict"])
        assert tls_settings().warning is None
        with pytest.raises(BackendError, match="TLS certificate not trusted"):
            open_flags(config.profiles["strict"].flags).list_flags()
    finally:
        activate(None)
    assert [s.headers["authorization"] for s in script.seen] == ["env-token-xyz"] * 2


def test_ssl_context_for_other_clients_follows_the_same_settings(https, cert):
    import ssl
    import urllib.request

    url, _ = https
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(url + "/", context=ssl_context(TlsSettings()), timeout=5)
    for settings in (TlsSettings(verify=False), TlsSettings(ca_bundle=cert[0])):
        with urllib.request.urlopen(url + "/", context=ssl_context(settings), timeout=5) as answer:
            assert answer.status == 200
    assert ssl_context(TlsSettings(verify=False)).verify_mode == ssl.CERT_NONE
