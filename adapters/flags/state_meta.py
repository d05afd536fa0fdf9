"""routedeck's state kept on a platform as one JSON object (Unleash: a strategy parameter; FeatBit: a line
of the description): which variation is the baseline and the candidate, who is targeted, the rollout.

Each adapter decides where the object lives and adds what only it stores; the shared fields are written
and read here, so both platforms keep them the same way.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from console.core.errors import BadInput
from console.core.models import Allocation, RolloutState, RouteFlag


def state_meta(flag: RouteFlag) -> dict[str, Any]:
    """The shared fields of ``flag``'s state object (version 1)."""
    a = flag.allocation
    meta: dict[str, Any] = {"v": 1, "baseline": flag.baseline, "candidate": flag.candidate}
    if a.internal_audience:
        meta["internalAudience"] = a.internal_audience
    if a.eligible_scope:
        meta["eligibleScope"] = a.eligible_scope
    if a.audience_predicate is not None:
        meta["audiencePredicate"] = a.audience_predicate
    if a.scope_predicate is not None:
        meta["scopePredicate"] = a.scope_predicate
    if a.cohort_salt is not None:
        meta["cohortSalt"] = a.cohort_salt
    if flag.rollout is not None:
        meta["rollout"] = flag.rollout.model_dump(mode="json", exclude_none=True)
    return meta


def allocation_from_meta(meta: dict[str, Any], **more: Any) -> Allocation:
    """The targeting the state object names; ``more`` sets what the adapter read from the platform itself."""
    return Allocation(
        internal_audience=meta.get("internalAudience"),
        eligible_scope=meta.get("eligibleScope"),
        audience_predicate=meta.get("audiencePredicate"),
        scope_predicate=meta.get("scopePredicate"),
        cohort_salt=meta.get("cohortSalt") or None,
        **more,
    )


def rollout_from_meta(meta: dict[str, Any], here: str, reset_hint: str) -> RolloutState | None:
    """The stored rollout state, or None; an invalid one is a one-line error saying how to reset it."""
    if not meta.get("rollout"):
        return None
    try:
        return RolloutState.model_validate(meta["rollout"])
    except ValidationError:
        raise BadInput(f"{here}: stored rollout state is not valid — {reset_hint}") from None
