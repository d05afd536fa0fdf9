"""Domain models: route profiles, route flags, allocations and rollout state.

Wire formats are camelCase (as flag platforms and the seed examples spell them);
Python attributes are snake_case. Unknown fields of a route profile are kept, so a
profile read from a platform and written back loses nothing.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

#: Allocation shares are stored in basis points so fractional splits stay integers
#: (flagd's `fractional` silently ignores float weights) and the total stays fixed,
#: which is what keeps cohorts nested between stages.
FULL_SHARE_BP = 10_000


class RouteProfile(BaseModel):
    """One flag variation: the model route an application calls and its knobs."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        frozen=True,
    )

    route: str = Field(min_length=1)
    provider_route: str | None = None
    prompt_profile: str | None = None
    model: str | None = None
    provider: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    timeout_ms: int | None = Field(default=None, ge=1)
    fallback: str | None = None
    budget_policy: str | None = None

    @model_validator(mode="after")
    def _finite(self) -> "RouteProfile":
        # a NaN or infinite knob (a temperature, a price) would reach the application as it is
        from .finite import first_non_finite

        found = first_non_finite(dict(self.__pydantic_extra__ or {}))
        if found:
            raise ValueError(f"{found} is not a finite number")
        return self

    def to_wire(self) -> dict[str, Any]:
        """The JSON object as a flag platform stores it (camelCase, extras kept)."""
        return self.model_dump(by_alias=True, exclude_none=True)

    def canonical_json(self) -> str:
        return json.dumps(self.to_wire(), sort_keys=True, separators=(",", ":"))


class Stage(str, Enum):
    """Where a rollout stands. The order of the members is the order of the ladder."""

    BASELINE = "baseline"  # candidate prepared but not served
    INTERNAL = "internal"
    PCT5 = "5%"
    PCT20 = "20%"
    FULL = "full"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


def default_audience_predicate(name: str) -> dict[str, Any]:
    """A first audience named NAME: units whose context has ``audience`` equal to NAME."""
    return {"==": [{"var": "audience"}, name]}


def default_scope_predicate(name: str) -> dict[str, Any]:
    """An eligible scope named NAME: units whose context has ``scope`` equal to NAME."""
    return {"==": [{"var": "scope"}, name]}


class Allocation(BaseModel):
    """Who gets the candidate route: an internal audience and a sticky share of the eligible scope.

    Units outside the eligible scope always get the baseline. ``candidate_bp`` is the share of
    the eligible scope served the candidate, in basis points (10,000 = everyone in scope).
    """

    model_config = ConfigDict(frozen=True)

    internal_audience: str | None = None
    internal_enabled: bool = False
    eligible_scope: str | None = None
    candidate_bp: int = Field(default=0, ge=0, le=FULL_SHARE_BP)
    #: Explicit JsonLogic predicates; when None the documented default applies:
    #: audience NAME matches context attribute ``audience == NAME``, scope NAME matches
    #: ``scope == NAME`` (see ``default_audience_predicate`` / ``default_scope_predicate``).
    audience_predicate: dict[str, Any] | None = None
    scope_predicate: dict[str, Any] | None = None
    #: An emergency switch: every unit gets this variation, whatever the rest says. The rest of
    #: the allocation is kept as it was, so undoing the switch restores it exactly.
    serve_all: str | None = None
    #: (attribute, value) segments sent to the baseline whatever the stage (harm was seen in them)
    excluded_segments: tuple[tuple[str, str], ...] = ()
    #: None: units are bucketed as on the flag's first rollout; a salt: a cohort drawn anew when a rollout
    #: restarted (each platform mixes it into its bucketing: flagd's bucketing value, Unleash's groupId,
    #: FeatBit's range offset, LaunchDarkly's rollout seed)
    cohort_salt: str | None = Field(default=None, exclude_if=lambda v: v is None)  # absent from dumps until set

    def exclusion_rule(self) -> dict[str, Any] | None:
        """JsonLogic matching a unit in any excluded segment (context attribute equal to the value), or None."""
        tests = [{"==": [{"var": attr}, value]} for attr, value in self.excluded_segments]
        if not tests:
            return None
        return tests[0] if len(tests) == 1 else {"or": tests}

    def audience_rule(self) -> dict[str, Any] | None:
        if self.audience_predicate is not None:
            return self.audience_predicate
        return default_audience_predicate(self.internal_audience) if self.internal_audience else None

    def scope_rule(self) -> dict[str, Any] | None:
        if self.scope_predicate is not None:
            return self.scope_predicate
        return default_scope_predicate(self.eligible_scope) if self.eligible_scope else None

    @property
    def candidate_share(self) -> float:
        return self.candidate_bp / FULL_SHARE_BP

    @property
    def serves_candidate(self) -> bool:
        # a switch never names the candidate (emergency_switch refuses it): nobody gets it meanwhile
        return self.serve_all is None and (self.internal_enabled or self.candidate_bp > 0)

    def rolled_back(self) -> "Allocation":
        """The same targeting with nobody on the candidate (and no switch: everyone on the baseline)."""
        return self.model_copy(update={"internal_enabled": False, "candidate_bp": 0, "serve_all": None})

    def held(self) -> "Allocation":
        """The allocation an emergency switch holds back, which undoing it restores."""
        return self.model_copy(update={"serve_all": None})

    def describe(self) -> str:
        if self.serve_all is not None:
            return f"everyone on {self.serve_all} (switch; held: {self.held().describe()})"
        parts = []
        if self.internal_enabled:
            parts.append(f"{self.internal_audience or 'internal audience'}")
        pct = self.candidate_bp / 100
        scope = self.eligible_scope or "all"
        parts.append(f"{pct:g}% of {scope}")
        text = " + ".join(parts)
        if self.excluded_segments:
            text += " except " + ", ".join(f"{a}={v}" for a, v in self.excluded_segments)
        return text


class RouteFlag(BaseModel):
    """A route flag as read from a flag platform, with the revision it was read at."""

    model_config = ConfigDict(frozen=True)

    key: str
    variations: dict[str, RouteProfile]
    baseline: str
    candidate: str | None = None
    allocation: Allocation = Allocation()
    revision: str = ""
    rollout: "RolloutState | None" = None
    #: Set when the targeting on the platform is not in the shape routedeck writes.
    foreign_targeting: str | None = None

    @model_validator(mode="after")
    def _variations_exist(self) -> "RouteFlag":
        if self.baseline not in self.variations:
            raise ValueError(f"baseline variation {self.baseline!r} is not among the variations")
        if self.candidate is not None and self.candidate not in self.variations:
            raise ValueError(f"candidate variation {self.candidate!r} is not among the variations")
        if self.allocation.serve_all is not None and self.allocation.serve_all not in self.variations:
            raise ValueError(f"switch variation {self.allocation.serve_all!r} is not among the variations")
        return self

    @property
    def baseline_profile(self) -> RouteProfile:
        return self.variations[self.baseline]

    @property
    def candidate_profile(self) -> RouteProfile | None:
        return self.variations.get(self.candidate) if self.candidate else None


class Lease(BaseModel):
    """Who may act on a flag right now (a guard or a console), until when."""

    holder: str
    expires_at: datetime


class Acknowledgement(BaseModel):
    item: str
    by: str
    at: datetime
    stage: str


class Override(BaseModel):
    stage_from: str
    stage_to: str
    verdict: str
    reason: str
    by: str
    at: datetime


class PendingWrite(BaseModel):
    """A write that was started and has not been confirmed yet.

    A platform that takes a change in several requests (Unleash: one per strategy) first stores this
    marker with the state as it was, then changes the routing, then stores the new state without it.
    Whoever reads the flag while the marker is there knows that the routing may hold part of the
    change, whatever the stage says; a write that died half-way leaves it behind, in plain view.
    """

    #: the stage the write moves the rollout to ("rolled_back", "20%", …)
    stage: str
    #: the allocation it writes, in words
    allocation: str
    started_at: datetime


class RolloutState(BaseModel):
    """The rollout's progress, stored with the flag on the platform so every console sees it.

    Fields this routedeck does not know (written by a newer one) are kept as they are, so a rollback
    made by an older routedeck loses nothing (see ``console.core.versions``)."""

    model_config = ConfigDict(extra="allow")

    stage: Stage = Stage.BASELINE
    #: the stage's name in the rule's plan when it is not one of the built-in ones (e.g. "50%")
    stage_label: str | None = None
    stage_started_at: datetime | None = None
    rule_hash: str | None = None
    acknowledgements: list[Acknowledgement] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)
    lease: Lease | None = None
    chain_head: str | None = None
    #: the identity of the journal whose head ``chain_head`` is (``Journal.identity``)
    chain_journal: str | None = None
    #: set while a multi-request write is in flight, and left behind if it died half-way
    pending: PendingWrite | None = None
    #: the state's format (``versions.STATE_SCHEMA``) and the routedeck version that last wrote it
    state_schema: int | None = None
    writer: str | None = None
    #: the decision engine (``versions.engine_version``) the current stage is judged by
    engine: str | None = None

    @field_validator("acknowledgements", "overrides", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


RouteFlag.model_rebuild()


class ChangeEvent(BaseModel):
    """One entry of a flag platform's own change history."""

    at: datetime
    actor: str
    flag: str
    action: str
    detail: str = ""
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
