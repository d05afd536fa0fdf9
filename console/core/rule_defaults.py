"""Guardrails every rollout of a kind starts with, declared once in the config by flag-name pattern or
by rule tag ("every rollout on support-* starts with these guards")::

    [[rule_defaults]]
    flags = "support-*"                  # a glob on the rule's flag_key, and/or
    tags = ["customer-facing"]           # any of the rule's tags
    guardrails = ["p95_latency", {metric = "complaint_rate", margin = 0.01, severity = "critical"}]

A rule that matches gets each default guardrail whose metric it does not guard itself (the rule's own
word wins); the rule records where each guardrail came from, the rule hash covers the defaults it got,
and every decision says which guards came from the config.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadInput

KEYS = ("flags", "tags", "guardrails")


@dataclass(frozen=True)
class RuleDefaults:
    where: str  # FILE:LINE of its [[rule_defaults]] table
    flags: str | None
    tags: tuple[str, ...]
    guardrails: tuple[Any, ...]

    def matches(self, flag_key: str, tags: tuple[str, ...]) -> bool:
        return (self.flags is not None and fnmatch.fnmatchcase(flag_key, self.flags)) or bool(set(self.tags) & set(tags))

    def scope(self) -> str:
        parts = ([f"flags {self.flags}"] if self.flags else []) + ([f"tags {', '.join(self.tags)}"] if self.tags else [])
        return " or ".join(parts)


_active: tuple[RuleDefaults, ...] = ()


def use_rule_defaults(defaults: tuple[RuleDefaults, ...] | list[RuleDefaults]) -> None:
    """Make the config's defaults the ones rules loaded from now on get."""
    global _active
    _active = tuple(defaults)


def matching(flag_key: str, tags: tuple[str, ...]) -> list[RuleDefaults]:
    return [d for d in _active if d.matches(flag_key, tags)]


def parse_rule_defaults(raw: Any, text: str, path: Path) -> tuple[RuleDefaults, ...]:
    """The config's ``[[rule_defaults]]`` tables, checked; one-line errors name the file and line."""
    starts = [i + 1 for i, line in enumerate(text.splitlines()) if re.match(r"\s*\[\[\s*rule_defaults\s*\]\]", line)]
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise BadInput(f"{path}: rule_defaults must be [[rule_defaults]] tables")
    out = []
    for i, table in enumerate(raw):
        where = f"{path}:{starts[i]}" if i < len(starts) else str(path)
        for key in table:
            if key not in KEYS:
                raise BadInput(f"{where}: rule_defaults: unknown key {key!r} — a [[rule_defaults]] table takes "
                               f"{', '.join(KEYS)}")
        flags = table.get("flags")
        if flags is not None and (not isinstance(flags, str) or not flags.strip()):
            raise BadInput(f"{where}: rule_defaults.flags must be a flag-key pattern such as \"support-*\"")
        tags = table.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
            raise BadInput(f"{where}: rule_defaults.tags must be a list of tag names")
        if flags is None and not tags:
            raise BadInput(f"{where}: rule_defaults needs flags = \"PATTERN\" or tags = [...] — which rules it is for")
        guardrails = table.get("guardrails")
        if not isinstance(guardrails, list) or not guardrails:
            raise BadInput(f"{where}: rule_defaults.guardrails must be a non-empty list of metric names or tables")
        out.append(RuleDefaults(where, flags.strip() if flags else None, tuple(t.strip() for t in tags),
                                tuple(guardrails)))
    return tuple(out)


def guard_metric(item: Any) -> str | None:
    """The metric a guardrail entry (a name or a mapping) guards, as written."""
    if isinstance(item, str):
        return item.strip().lower()
    if isinstance(item, dict) and isinstance(item.get("metric"), str):
        return item["metric"].strip().lower()
    return None
