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

    def evaluate(self, flag: str, unit_id: str, attributes: dict[str, Any]) -> tuple[str, dict[str, Any], Arm]:
        """(variant name, route profile as JSON, arm) for one unit."""

    def baseline_profile(self, flag: str) -> dict[str, Any] | None:
        """The route profile of the flag's baseline variation."""


class FlagdFileEvaluator:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._core = FlagdCore()
        self._stat: tuple[int, int, int] | None = None
        self._arms: dict[str, tuple[str | None, str | None]] = {}
        self._variants: dict[str, dict[str, Any]] = {}
        self._revision = 0
        self.error: str | None = None
        self.refresh()

    @property
    def revision(self) -> str:
        return str(self._revision)

    def refresh(self) -> None:
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
            self._core.set_flags(text)
        except (OSError, ValueError, Exception) as exc:  # the evaluator raises its own ParseError types
            self.error = f"{self.path}: unreadable flag file ({type(exc).__name__}); serving the last good flags"
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

    def evaluate(self, flag: str, unit_id: str, attributes: dict[str, Any]) -> tuple[str, dict[str, Any], Arm]:
        details = self._core.resolve_object_value(flag, {}, EvaluationContext(targeting_key=unit_id, attributes=attributes))
        variant = details.variant or ""
        baseline, candidate = self._arms.get(flag, (None, None))
        if candidate and variant == candidate:
            arm = Arm.CANDIDATE
        elif candidate and variant == baseline:
            arm = Arm.BASELINE
        else:
            arm = Arm.OTHER
        return variant, dict(details.value or {}), arm
