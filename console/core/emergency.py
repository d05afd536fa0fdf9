"""The on-call move: every unit of a flag to a named safe route, and its exact undo.

The switch keeps the flag's allocation as it was and only adds ``serve_all``, so the
allocation before the switch stays on the platform and the undo restores exactly that
(shown before it is applied). Both are journalled (intent, then outcome) and confirmed by
reading the flag back, like every write (``operations._write``).
"""

from __future__ import annotations

from .errors import BadInput, ConflictError
from .journal import Journal
from .models import Allocation, RouteFlag
from .operations import ActionResult, _write
from .ports import FlagPlatform

SWITCH_ACTION = "emergency_switch"
UNDO_ACTION = "undo_switch"


def plan_switch(flag: RouteFlag, safe: str) -> RouteFlag:
    """The flag with every unit sent to variation ``safe``; BadInput when that is not allowed."""
    if safe not in flag.variations:
        raise BadInput(f"switch {flag.key}: no variation {safe!r} — variations: {', '.join(flag.variations)}")
    if safe == flag.candidate:
        raise BadInput(f"switch {flag.key}: {safe} is the candidate; a switch goes to a safe route, "
                       "advance or promote to give the candidate traffic")
    if flag.allocation.serve_all is not None:
        raise BadInput(f"switch {flag.key}: everyone is already on {flag.allocation.serve_all} — undo that first (u)")
    if flag.foreign_targeting:
        raise BadInput(f"switch {flag.key}: the targeting was edited outside routedeck ({flag.foreign_targeting}); "
                       "roll back (R) to rewrite it first")
    return flag.model_copy(update={"allocation": flag.allocation.model_copy(update={"serve_all": safe})})


def plan_undo(flag: RouteFlag, before_switch: Allocation | None = None) -> RouteFlag:
    """The flag with the switch lifted: the held allocation back in force.

    ``before_switch`` (the allocation the switch replaced, when the caller knows it) must be
    what the platform holds; the undo never gives the candidate more traffic than that."""
    if flag.allocation.serve_all is None:
        raise BadInput(f"undo switch {flag.key}: no switch in force — the flag serves {flag.allocation.describe()}")
    held = flag.allocation.held()
    if before_switch is not None and held != before_switch.held():
        more = held.candidate_bp > before_switch.candidate_bp or (held.internal_enabled and not before_switch.internal_enabled)
        raise ConflictError(
            f"undo switch {flag.key}: the platform holds {held.describe()} behind the switch, not "
            f"{before_switch.describe()} as before it{' (more candidate traffic)' if more else ''}; "
            "nothing written — roll back (R) or check the flag",
            current_revision=flag.revision,
        )
    return flag.model_copy(update={"allocation": held})


def emergency_switch(platform: FlagPlatform, key: str, safe: str, journal: Journal | None, *, reason: str,
                     seen_revision: str | None = None, dry_run: bool = False) -> ActionResult:
    """Send every unit of flag ``key`` to variation ``safe``, journalled and confirmed by read-back.

    ``seen_revision``: the revision the operator confirmed; a flag changed since is refused
    (the dialog showed a state that is no longer true)."""
    if not reason.strip():
        raise BadInput(f"switch {key}: a reason is required (it goes into the audit journal)")
    if not getattr(platform, "can_switch", False):
        raise BadInput(f"switch {key}: {platform.describe()} cannot send everyone to one route while keeping the "
                       "allocation to restore — roll back (R) to the baseline instead")
    flag = platform.read_flag(key)
    if seen_revision is not None and flag.revision != seen_revision:
        raise ConflictError(f"switch {key}: the flag changed since it was shown ({flag.allocation.describe()}); "
                            "nothing written — look again and retry", current_revision=flag.revision)
    target = plan_switch(flag, safe)
    if dry_run:
        return ActionResult(flag, target, None)
    # the safe direction, like a rollback: a journal that cannot record does not block it (the result warns)
    return _write(platform, journal, SWITCH_ACTION, target, flag, reason=reason, rule=None, decision=None,
                  required=False)


def undo_switch(platform: FlagPlatform, key: str, journal: Journal | None, *, reason: str,
                before_switch: Allocation | None = None, dry_run: bool = False) -> ActionResult:
    """Restore the allocation the switch held back, journalled and confirmed by read-back."""
    flag = platform.read_flag(key)
    target = plan_undo(flag, before_switch)
    if dry_run:
        return ActionResult(flag, target, None)
    # giving traffic back to the candidate is not the safe direction: it needs the journal
    return _write(platform, journal, UNDO_ACTION, target, flag, reason=reason or "undo the emergency switch",
                  rule=None, decision=None, required=True)


def allocation_lines(flag: RouteFlag, allocation: Allocation | None = None) -> list[str]:
    """Who gets which route under ``allocation`` (default: the flag's), in words, one line each."""
    a = allocation if allocation is not None else flag.allocation
    if a.serve_all is not None:
        return [f"everyone → {a.serve_all}"]
    lines = []
    if flag.candidate and a.internal_enabled:
        lines.append(f"{a.internal_audience or 'internal audience'} → {flag.candidate}")
    if flag.candidate and a.candidate_bp:
        lines.append(f"{a.candidate_bp / 100:g}% of {a.eligible_scope or 'all'} → {flag.candidate}")
    rest = "everyone else" if lines else "everyone"
    lines.append(f"{rest} → {flag.baseline}")
    return lines
