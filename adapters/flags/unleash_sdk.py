"""Route flags on an Unleash server, evaluated the way an application does: with the official SDK.

``UnleashSdkEvaluator`` implements the simulator's ``FlagEvaluator`` protocol on ``UnleashClient``
(a backend/client API token, refreshed every ``refresh_s`` seconds in the SDK's own thread). The
variant's JSON payload is the route profile; the arm comes from comparing the variant name with
the flag's baseline and candidate, which routedeck keeps in the baseline strategy's
``parameters["routedeck"]`` (see ``adapters/flags/unleash.py``).

The SDK's feature cache is ours (an in-memory ``BaseCache``), so the raw client-API state the SDK
evaluates is read from it: its hash is the revision, and the routedeck metadata comes from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any

from UnleashClient.cache import BaseCache
from UnleashClient.constants import FEATURES_URL

from console.core.credentials import read_token
from console.core.errors import BackendError, BadInput
from console.core.telemetry import Arm

from ..http import redact_url
from ..spec import parse_http_spec
from .unleash import META_KEY, TOKEN_ENV

#: the SDK's token (a backend/client API token); the admin token is used when it is not set
CLIENT_TOKEN_ENV = "ROUTEDECK_UNLEASH_CLIENT_TOKEN"
DEFAULT_REFRESH_S = 5

# The SDK logs connection problems and warnings itself; routedeck reports them in one line.
for _name in ("UnleashClient", "apscheduler"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class _MemoryCache(BaseCache):
    """The SDK's cache, in memory (nothing on disk, nothing shared between processes)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value

    def mset(self, data: dict) -> None:
        with self._lock:
            self._data.update(data)

    def get(self, key: str, default: Any | None = None) -> Any:
        with self._lock:
            return self._data.get(key, default)

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._data

    def destroy(self) -> None:
        with self._lock:
            self._data.clear()


def _attributes(attributes: dict[str, Any]) -> dict[str, str]:
    """Unleash context properties are strings."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in attributes.items() if v is not None}


class UnleashSdkEvaluator:
    """Evaluates route flags with the official Unleash SDK, as an application would.

    ``error`` holds the reason the flags could not be refreshed, or None.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        project: str | None = None,
        environment: str = "development",
        refresh_s: int = DEFAULT_REFRESH_S,
        app_name: str = "routedeck-simulate",
        timeout_s: int = 5,
    ) -> None:
        """Connect and fetch the flags now; BackendError if nothing could be fetched."""
        from UnleashClient import UnleashClient

        self.base_url = base_url.rstrip("/")
        self.project = project
        self.environment = environment
        self.error: str | None = None
        self._cache = _MemoryCache()
        self._raw_seen: Any = None
        self._revision = ""
        self._arms: dict[str, tuple[str | None, str | None]] = {}
        self._baselines: dict[str, dict[str, Any]] = {}
        self._stages: dict[str, str] = {}
        self.client = UnleashClient(
            url=self.base_url + "/api", app_name=app_name, environment=environment,
            custom_headers={"Authorization": token}, project_name=project,
            refresh_interval=max(1, int(refresh_s)), disable_metrics=True, disable_registration=True,
            request_timeout=timeout_s, request_retries=0, cache=self._cache,
        )
        try:
            self.client.initialize_client(fetch_toggles=True)
        except Exception as exc:  # the SDK raises whatever its transport raised
            self.close()
            raise BackendError(f"{self.describe()}: the Unleash SDK could not start ({type(exc).__name__})") from None
        if not self._cache.get(FEATURES_URL):
            self.close()
            raise BackendError(
                f"{self.describe()}: the Unleash SDK fetched no flags — check the URL and the client token ({CLIENT_TOKEN_ENV})"
            )
        self.refresh()

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> "UnleashSdkEvaluator":
        """``unleash:http://HOST:PORT?project=P&environment=E&refresh=S``; the token comes from
        ROUTEDECK_UNLEASH_CLIENT_TOKEN (or ROUTEDECK_UNLEASH_TOKEN)."""
        given = parse_http_spec(spec, "unleash", "expected unleash:http://HOST:PORT?project=P&environment=E&refresh=S",
                                ("project", "environment", "refresh"), CLIENT_TOKEN_ENV)
        try:
            refresh_s = int(given.options.get("refresh", options.pop("refresh_s", DEFAULT_REFRESH_S)))
        except ValueError:
            raise BadInput(f"--flags {given.shown!r}: refresh must be a whole number of seconds") from None
        if refresh_s < 1:
            raise BadInput(f"--flags {given.shown!r}: refresh must be at least 1 second")
        token = options.pop("token", None) or read_token(CLIENT_TOKEN_ENV) or read_token(TOKEN_ENV)
        if not token:
            raise BadInput(f"--flags unleash:…: no API token — set {CLIENT_TOKEN_ENV}")
        return cls(
            given.base_url, token, project=given.options.get("project") or None,
            environment=given.options.get("environment") or "development", refresh_s=refresh_s, **options,
        )

    def describe(self) -> str:
        project = f"project={self.project}&" if self.project else ""
        return f"unleash:{redact_url(self.base_url)}?{project}environment={self.environment} (Unleash SDK)"

    def close(self) -> None:
        try:
            self.client.destroy()
        except Exception:  # already stopped, or never started
            pass

    # ---- FlagEvaluator --------------------------------------------------------------------

    @property
    def revision(self) -> str:
        """A hash of the client-API state the SDK evaluates."""
        return self._revision

    def refresh(self) -> None:
        """The SDK refreshes in its own thread; pick up the routedeck metadata when its state changed."""
        raw = self._cache.get(FEATURES_URL)
        if raw is None or raw is self._raw_seen:
            return
        text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True)
        revision = hashlib.sha256(text.encode()).hexdigest()[:16]
        self._raw_seen = raw
        if revision == self._revision:
            return
        try:
            doc = json.loads(text) if isinstance(raw, str) else raw
            arms, baselines, stages = _routedeck_meta(doc)
        except (ValueError, TypeError, AttributeError) as exc:
            self.error = f"{self.describe()}: unreadable flags from the SDK ({type(exc).__name__}); serving the last good flags"
            return
        self._arms, self._baselines, self._stages = arms, baselines, stages
        self._revision = revision
        self.error = None

    def baseline_profile(self, flag: str) -> dict[str, Any] | None:
        """The baseline strategy's variant payload."""
        found = self._baselines.get(flag)
        return dict(found) if found is not None else None

    def stage_of(self, flag: str) -> str:
        """The rollout stage routedeck recorded for ``flag`` ("unknown" when none)."""
        return self._stages.get(flag, "unknown")

    def evaluate(
        self, flag: str, unit_id: str, attributes: dict[str, Any], default: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], Arm]:
        """Resolve ``flag`` for one unit with the SDK: (variant, route profile, arm)."""
        try:
            variant = self.client.get_variant(flag, {"userId": unit_id, "properties": _attributes(attributes)})
        except Exception:  # the SDK answers the disabled variant on its own errors; be as lenient
            return "", dict(default or {}), Arm.OTHER
        name = variant.get("name") or ""
        payload = (variant.get("payload") or {}).get("value") if variant.get("enabled", True) else None
        try:
            profile = json.loads(payload) if isinstance(payload, str) else None
        except ValueError:
            profile = None
        if not isinstance(profile, dict) or name == "disabled":
            # the flag is unknown, off or has no JSON payload: the application's built-in profile
            return "", dict(default or {}), Arm.OTHER
        baseline, candidate = self._arms.get(flag, (None, None))
        if candidate and name == candidate:
            arm = Arm.CANDIDATE
        elif candidate and name == baseline:
            arm = Arm.BASELINE
        else:
            arm = Arm.OTHER
        return name, profile, arm


def _routedeck_meta(doc: dict[str, Any]) -> tuple[dict, dict, dict]:
    """(flag → (baseline, candidate), flag → baseline profile, flag → stage) from a client-API state."""
    arms: dict[str, tuple[str | None, str | None]] = {}
    baselines: dict[str, dict[str, Any]] = {}
    stages: dict[str, str] = {}
    for feature in doc.get("features") or []:
        name = feature.get("name")
        strategies = feature.get("strategies") or []
        # the baseline strategy carries routedeck's state (titles may not reach the client API)
        base = next((s for s in strategies if META_KEY in (s.get("parameters") or {})), None)
        if not name or base is None:
            continue
        try:
            meta = json.loads((base.get("parameters") or {}).get(META_KEY) or "{}")
        except ValueError:
            meta = {}
        if not isinstance(meta, dict):
            meta = {}
        baseline, candidate = meta.get("baseline"), meta.get("candidate")
        arms[name] = (baseline, candidate)
        stage = (meta.get("rollout") or {}).get("stage") if isinstance(meta.get("rollout"), dict) else None
        if stage:
            stages[name] = str(stage)
        for v in base.get("variants") or []:
            if v.get("name") == baseline:
                try:
                    profile = json.loads((v.get("payload") or {}).get("value") or "null")
                except ValueError:
                    profile = None
                if isinstance(profile, dict):
                    baselines[name] = profile
    return arms, baselines, stages
