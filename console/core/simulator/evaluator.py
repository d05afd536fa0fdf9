"""How the simulated application decides which route profile a unit gets.

``FlagdFileEvaluator`` does what an application's in-process flagd provider does: it loads
the flag file into the official evaluator (``openfeature-flagd-core``) and resolves the flag
for each unit. It reloads when the file changes and keeps serving the last good configuration
if the file becomes unreadable, as an application would.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol

from json_logic import builtins, jsonLogic
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.contrib.tools.flagd.core.targeting.custom_ops import ends_with, sem_ver, starts_with
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import OpenFeatureError

from ..errors import BadInput
from ..fleet import fleet_rule, fractional_variant, rules_of_service
from ..telemetry import Arm

# The evaluator logs at error level when a unit has no targeting key; our units always have one.
logging.getLogger("openfeature.contrib").setLevel(logging.CRITICAL)


class FlagEvaluator(Protocol):
    """What the simulator needs from a flag evaluator."""

    def refresh(self) -> None:
        """Pick up a changed flag configuration (called once per simulated tick)."""

    @property
    def revision(self) -> str:
        """Changes whenever the configuration changes (used to cache per-unit assignments)."""

    def evaluate(
        self, flag: str, unit_id: str, attributes: dict[str, Any], default: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], Arm]:
        """(variant name, route profile as JSON, arm) for one unit; ``default`` (the application's
        built-in profile) when the flag cannot be evaluated, with an empty variant name."""

    def baseline_profile(self, flag: str) -> dict[str, Any] | None:
        """The route profile of the flag's baseline variation."""


class FlagdFileEvaluator:
    """Evaluates a flagd flag file with ``openfeature-flagd-core``, as an in-process provider would.

    ``error`` holds the reason the file could not be (re)loaded, or None; the last good
    configuration keeps being served meanwhile.
    """

    def __init__(self, path: Path, fleet: str | None = None) -> None:
        """Load ``path`` now; BadInput if it cannot be loaded (there is no good configuration yet).

        ``fleet`` is the fleet's bucketing rule (``console.core.fleet``; default: the active profile's):
        ``cbor`` evaluates with the official Python evaluator, ``concat`` buckets as the official
        JavaScript one does, ``mixed`` has two services, one of each (``services``), and a request's
        service decides its route."""
        self.path = Path(path)
        self.fleet = fleet or fleet_rule()
        #: how many services of different bucketing rules serve the flag (the engine picks one per request)
        self.services = 2 if self.fleet == "mixed" else 1
        self._doc: dict[str, Any] = {}
        self._core = FlagdCore()
        self._stat: tuple[int, int, int] | None = None
        self._arms: dict[str, tuple[str | None, str | None]] = {}
        self._variants: dict[str, dict[str, Any]] = {}
        self._revision = 0
        self.error: str | None = None
        self.refresh()
        if self._revision == 0:
            raise BadInput((self.error or f"{self.path}: unreadable").replace("; serving the last good flags", "")
                           + " — create it (routedeck demo writes one) or fix it")

    @property
    def revision(self) -> str:
        """Counts successful loads: equal revisions mean equal configurations."""
        return str(self._revision)

    def refresh(self) -> None:
        """Reload the file if its stat (mtime, size, inode) changed since the last load."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror}; serving the last good flags"
            return
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == self._stat:
            return
        try:
            text = self.path.read_text()
            doc = json.loads(text)
            if not isinstance(doc, dict) or not isinstance(doc.get("flags"), dict):
                raise ValueError('no "flags" object')
            self._core.set_flags(text)
        except Exception as exc:  # the evaluator raises its own parse and validation errors
            where = f"line {exc.lineno}: " if isinstance(exc, json.JSONDecodeError) else ""
            reason = exc.strerror if isinstance(exc, OSError) else f"{where}{type(exc).__name__}: {exc}"
            reason = str(reason).splitlines()[0][:160]
            self.error = f"{self.path}: unreadable flag file ({reason}); serving the last good flags"
            self._stat = key
            return
        self._stat = key
        self.error = None
        self._doc = doc
        self._arms = {}
        self._variants = {}
        for name, flag in doc.get("flags", {}).items():
            self._variants[name] = dict(flag.get("variants") or {})
            meta = flag.get("metadata") or {}
            self._arms[name] = (meta.get("routedeck.baseline") or flag.get("defaultVariant"), meta.get("routedeck.candidate"))
        self._revision += 1

    def baseline_profile(self, flag: str) -> dict[str, Any] | None:
        """The baseline variation's route profile (the A/A scenario serves its behaviour)."""
        baseline, _ = self._arms.get(flag, (None, None))
        return self._variants.get(flag, {}).get(baseline) if baseline else None

    def evaluate(
        self, flag: str, unit_id: str, attributes: dict[str, Any], default: dict[str, Any] | None = None,
        service: int = 0,
    ) -> tuple[str, dict[str, Any], Arm]:
        """Resolve ``flag`` for one unit as service number ``service`` does: (variant, route profile, arm)."""
        if rules_of_service(self.fleet, service) == "concat":
            resolved = self._resolve_concat(flag, unit_id, attributes)
            if resolved is None:
                return "", dict(default or {}), Arm.OTHER
            variant, value = resolved
        else:
            try:
                details = self._core.resolve_object_value(
                    flag, default or {}, EvaluationContext(targeting_key=unit_id, attributes=attributes)
                )
            except OpenFeatureError:
                # a missing flag: the application falls back to its built-in profile, as an SDK would
                return "", dict(default or {}), Arm.OTHER
            variant, value = details.variant or "", details.value
        baseline, candidate = self._arms.get(flag, (None, None))
        if candidate and variant == candidate:
            arm = Arm.CANDIDATE
        elif candidate and variant == baseline:
            arm = Arm.BASELINE
        else:
            arm = Arm.OTHER
        return variant, dict(value) if isinstance(value, dict) else dict(default or {}), arm

    def _resolve_concat(self, flag: str, unit_id: str, attributes: dict[str, Any]) -> tuple[str, Any] | None:
        """(variant, value) as a service bucketing by the concatenated string resolves the flag; None when
        the flag is missing or disabled (the application's default then)."""
        conf = (self._doc.get("flags") or {}).get(flag)
        if not isinstance(conf, dict) or conf.get("state") != "ENABLED":
            return None
        variants = conf.get("variants") or {}
        chosen = conf.get("defaultVariant")
        targeting = conf.get("targeting")
        if isinstance(targeting, dict) and targeting:
            context = {**attributes, "targetingKey": unit_id, "$flagd": {"flagKey": flag, "timestamp": 0}}
            try:
                result = jsonLogic(targeting, context, _CONCAT_OPERATORS)
            except Exception:  # an evaluator error serves the default variant, as flagd does
                result = None
            if isinstance(result, str) and result in variants:
                chosen = result
        if chosen not in variants:
            return None
        return chosen, variants[chosen]


def _concat_fractional(data: dict, *args: Any) -> Any:
    """``fractional`` as the JavaScript evaluator computes it: murmur3 of flag key + targeting key (or of
    the explicit bucketing value, as a string), the same ranges as every flagd evaluator."""
    if not args:
        return None
    if isinstance(args[0], (list, tuple)):
        flag_key = str((data.get("$flagd") or {}).get("flagKey") or "")
        key, buckets = str(data.get("targetingKey") or ""), args
    else:
        flag_key, key, buckets = "", str(args[0]), args[1:]
    weights = []
    for b in buckets:
        if not isinstance(b, (list, tuple)) or not b:
            return None
        weight = b[1] if len(b) > 1 else 1
        if not isinstance(weight, int) or isinstance(weight, bool):
            return None
        weights.append((b[0], weight))
    return fractional_variant("concat", flag_key, key, weights)


_CONCAT_OPERATORS = {**builtins.BUILTINS, "fractional": _concat_fractional, "starts_with": starts_with,
                     "ends_with": ends_with, "sem_ver": sem_ver}
