"""Where a backend token comes from: a registered secret store for the active profile, else the environment.

Adapters ask ``read_token(ENV_VAR)`` and never know where the answer came from. The command line
registers a store (the OS keyring) and names the active profile; without either, tokens come from
the environment exactly as before. Nothing here ever formats a token into text.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from .redact import remember_secret

#: the keyring service every routedeck credential is stored under
SERVICE = "routedeck"


@dataclass(frozen=True)
class Credential:
    """One kind of secret a backend needs: its short name (for ``login --which``) and its variable."""

    name: str
    env_var: str
    what: str
    required: bool = True
    #: a user name is not a secret: masking it would hide every ordinary word that equals it
    secret: bool = True


CREDENTIALS: tuple[Credential, ...] = (
    Credential("unleash-token", "ROUTEDECK_UNLEASH_TOKEN", "Unleash admin API token"),
    Credential("unleash-client-token", "ROUTEDECK_UNLEASH_CLIENT_TOKEN", "Unleash client (SDK) token"),
    Credential("featbit-token", "ROUTEDECK_FEATBIT_TOKEN", "FeatBit Open API token"),
    Credential("featbit-secret", "ROUTEDECK_FEATBIT_SECRET", "FeatBit environment secret (streaming)"),
    Credential("launchdarkly-token", "ROUTEDECK_LAUNCHDARKLY_TOKEN", "LaunchDarkly REST API access token"),
    Credential("launchdarkly-sdk-key", "ROUTEDECK_LAUNCHDARKLY_SDK_KEY", "LaunchDarkly server-side SDK key (streaming)"),
    Credential("prometheus-token", "ROUTEDECK_PROMETHEUS_TOKEN", "Prometheus bearer token", required=False),
    Credential("clickhouse-user", "ROUTEDECK_CLICKHOUSE_USER", "ClickHouse user (HTTP basic)", required=False,
               secret=False),
    Credential("clickhouse-password", "ROUTEDECK_CLICKHOUSE_PASSWORD", "ClickHouse password", required=False),
)
BY_NAME = {c.name: c for c in CREDENTIALS}
BY_ENV = {c.env_var: c for c in CREDENTIALS}

#: ``store(profile, credential_name) -> token or None``; must never raise for a missing backend
SecretStore = Callable[[str, str], "str | None"]

_store: SecretStore | None = None
_profile: str | None = None


def register_store(store: SecretStore | None) -> None:
    """Install (or with ``None`` remove) the secret store consulted before the environment."""
    global _store
    _store = store


def use_profile(name: str | None) -> None:
    """Name the profile whose stored credentials ``read_token`` looks up (``None``: environment only)."""
    global _profile
    _profile = name


def active_profile() -> str | None:
    return _profile


def account(profile: str, name: str) -> str:
    """The keyring user name of a credential: ``<profile>:<name>``."""
    return f"{profile}:{name}"


def credential_for_env(env_var: str) -> Credential:
    """The known credential read from ``env_var`` (an unknown variable gets an ad-hoc entry)."""
    known = BY_ENV.get(env_var)
    if known is not None:
        return known
    short = env_var.removeprefix("ROUTEDECK_").lower().replace("_", "-")
    return Credential(short, env_var, short)


def _from_store(env_var: str, profile: str | None) -> str | None:
    if _store is None or not profile:
        return None
    try:
        value = _store(profile, credential_for_env(env_var).name)
    except Exception:  # a broken store must not hide the environment fallback
        return None
    return value or None


def read_token(env_var: str) -> str | None:
    """The token for ``env_var``: the active profile's stored credential first, else the variable."""
    token = _from_store(env_var, _profile) or os.environ.get(env_var) or None
    if credential_for_env(env_var).secret:
        remember_secret(token)  # from now on no message shows it, whatever echoes it
    return token


def remember_all(profile: str | None = None) -> None:
    """Mask every secret routedeck holds wherever it would appear — each known credential's variable,
    and for ``profile`` each stored credential — before any backend has asked for one: a token pasted
    somewhere else (a URL, a reason, a file name) must not be shown because it was not yet read."""
    for credential in (c for c in CREDENTIALS if c.secret):
        remember_secret(os.environ.get(credential.env_var))
        if profile:
            remember_secret(_from_store(credential.env_var, profile))


def token_origin(env_var: str, profile: str | None = None) -> str:
    """Where ``read_token`` would find this token: ``keyring``, ``env VAR`` or ``missing`` (never the value)."""
    if _from_store(env_var, profile if profile is not None else _profile):
        return "keyring"
    if os.environ.get(env_var):
        return f"env {env_var}"
    return "missing"


def needed_credentials(*specs: str | None) -> list[Credential]:
    """The credentials the backends named by these SPECs read (flagd files and the simulator need none)."""
    kinds = {(spec or "").partition(":")[0] for spec in specs}
    wanted: list[Credential] = []
    if "unleash" in kinds:
        wanted.append(BY_NAME["unleash-token"])
    if "featbit" in kinds:
        wanted.append(BY_NAME["featbit-token"])
        if any((spec or "").startswith("featbit:") and "stream=" in (spec or "") for spec in specs):
            wanted.append(BY_NAME["featbit-secret"])
    if "launchdarkly" in kinds:
        wanted.append(BY_NAME["launchdarkly-token"])
        if any((spec or "").startswith("launchdarkly:") and "stream=" in (spec or "") for spec in specs):
            wanted.append(BY_NAME["launchdarkly-sdk-key"])
    if "prometheus" in kinds:
        wanted.append(BY_NAME["prometheus-token"])
    if "clickhouse" in kinds:
        wanted += [BY_NAME["clickhouse-user"], BY_NAME["clickhouse-password"]]
    return wanted
