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

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import OpenFeatureError

from ..errors import BadInput
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

    def __init__(self, path: Path) -> None:
        """Load ``path`` now; BadInput if it cannot be loaded (there is no good configuration yet)."""
        self.path = Path(path)
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
        self, flag: str, unit_id: str, attributes: dict[str, Any], default: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], Arm]:
        """Resolve ``flag`` for one unit: (variant, route profile, arm)."""
        try:
            details = self._core.resolve_object_value(
                flag, default or {}, EvaluationContext(targeting_key=unit_id, attributes=attributes)
            )
        except OpenFeatureError:
            # a missing flag: the application falls back to its built-in profile, as an SDK would
            return "", dict(default or {}), Arm.OTHER
        variant = details.variant or ""
        baseline, candidate = self._arms.get(flag, (None, None))
        if candidate and variant == candidate:
            arm = Arm.CANDIDATE
        elif candidate and variant == baseline:
            arm = Arm.BASELINE
        else:
            arm = Arm.OTHER
        value = details.value
        return variant, dict(value) if isinstance(value, dict) else dict(default or {}), arm
