"""What the candidate route changes against the baseline, field by field, with the risky changes named.

A release owner reads this before moving traffic: a new provider, a shorter timeout or a bigger
output budget each change the failure modes, not only the averages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import RouteProfile

#: (field on the wire, label) in the order a reader scans them; anything else the profiles carry follows
FIELDS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("provider", "provider"),
    ("providerRoute", "provider route"),
    ("promptProfile", "prompt profile"),
    ("maxOutputTokens", "max output tokens"),
    ("timeoutMs", "timeout ms"),
    ("fallback", "fallback"),
    ("budgetPolicy", "budget policy"),
)


@dataclass(frozen=True)
class FieldChange:
    field: str
    label: str
    baseline: Any
    candidate: Any
    #: why this change deserves a second look, or "" when it is routine
    risk: str = ""

    @property
    def changed(self) -> bool:
        return self.baseline != self.candidate


def _risk(field: str, before: Any, after: Any) -> str:
    if before == after:
        return ""
    if field in ("model", "provider", "providerRoute"):
        return "another model or provider: new failure modes, latency and cost profile"
    if field == "promptProfile":
        return "another prompt: answers can change in ways the metrics see late"
    if field == "fallback":
        if after is None:
            return "no fallback: a provider failure reaches the user"
        return "another fallback route: failures land somewhere new"
    if field == "budgetPolicy":
        return "another budget policy: spend is checked against a different budget"
    if isinstance(before, (int, float)) and isinstance(after, (int, float)) and before:
        ratio = after / before
        if field == "maxOutputTokens" and ratio > 1.25:
            return f"output budget ×{ratio:.2f}: cost and latency can grow with it"
        if field == "maxOutputTokens" and ratio < 0.8:
            return f"output budget ×{ratio:.2f}: long answers get cut off"
        if field == "timeoutMs" and ratio < 0.8:
            return f"timeout ×{ratio:.2f}: more requests time out and fall back"
        if field == "timeoutMs" and ratio > 1.5:
            return f"timeout ×{ratio:.2f}: slow answers wait longer before falling back"
        return ""
    if before is None or after is None:
        return "set on one route only"
    return ""


def profile_diff(baseline: RouteProfile, candidate: RouteProfile) -> list[FieldChange]:
    """Every field either profile sets (known fields first), with the values on each side."""
    base, cand = baseline.to_wire(), candidate.to_wire()
    known = [f for f, _ in FIELDS]
    extra = sorted((set(base) | set(cand)) - set(known) - {"route"})
    out = []
    for field, label in list(FIELDS) + [(f, f) for f in extra]:
        if field not in base and field not in cand:
            continue
        before, after = base.get(field), cand.get(field)
        out.append(FieldChange(field, label, before, after, _risk(field, before, after)))
    return out
