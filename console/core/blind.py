"""How long a candidate has served while its metrics could not be read, and what the rule says then.

Missing data never passes: a look that cannot read the metrics holds. Holding forever is not safe
either — a candidate at 20% can serve for hours with nobody able to see it — so a rule may bound
it with ``blind_after`` (e.g. ``blind_after: 15m``, or ``{after: 15m, action: hold}``). Past that,
the verdict is ROLLBACK (the default action) or a HOLD that says loudly that the rollout is blind.

Every watcher (the headless guard, the console's automatic-rollback watch) keeps one ``BlindClock``
per flag, tells it after each look whether the metrics were read, and asks ``blind_decision`` for
the verdict when they were not. The clock starts at the first look that could not read them: a
watcher that starts during an outage does not know how long it has lasted, and never guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .models import RouteFlag, Stage
from .stats.spec import Decision, Verdict

ACTIONS = ("rollback", "hold")


@dataclass(frozen=True)
class BlindAfter:
    """The rule's bound on blind serving: after ``after_s`` seconds without readable metrics, ``action``."""

    after_s: float
    action: str = "rollback"

    def describe(self) -> str:
        return f"blind_after {_duration(self.after_s)} ({self.action})"


class BlindClock:
    """Since when one flag's metrics could not be read (None while they can), and why."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.why: str = ""

    def readable(self) -> None:
        self.since = None
        self.why = ""

    def unreadable(self, at: float, why: str) -> None:
        if self.since is None:
            self.since = at
        self.why = why

    def blind_for(self, now: float) -> float:
        return 0.0 if self.since is None else max(0.0, now - self.since)


def no_data(decision: Decision) -> bool:
    """True when a look read nothing at all for the stage (no unit on either arm): as blind as an error."""
    return decision.units_candidate == 0 and decision.units_baseline == 0


def blind_decision(blind_after: BlindAfter | None, flag: RouteFlag, clock: BlindClock, now: float) -> Decision:
    """The verdict for a look whose metrics could not be read (``clock`` says since when and why).

    HOLD while the bound has not passed (or the rule sets none, or nobody is on the candidate);
    past it, ROLLBACK when the rule's action is rollback, else a HOLD that names the bound."""
    state = flag.rollout
    stage = (state.stage_label or state.stage.value) if state is not None else Stage.BASELINE.value
    blind_s = clock.blind_for(now)
    since = datetime.fromtimestamp(clock.since if clock.since is not None else now, tz=UTC).strftime("%H:%M:%SZ")
    what = f"metrics unreadable since {since} ({_duration(blind_s)}): {clock.why}"
    serving = flag.allocation.serves_candidate and not (
        state is not None and state.stage in (Stage.PROMOTED, Stage.ROLLED_BACK))
    if not serving:
        return Decision(Verdict.HOLD, stage, [], [], [f"{what} — nobody is on the candidate"])
    if blind_after is None:
        return Decision(Verdict.HOLD, stage, [], [], [
            f"{what} — holding: missing data never passes (the rule sets no blind_after, so this lasts until the "
            "metrics come back or someone rolls back)"])
    if blind_s < blind_after.after_s:
        left = _duration(blind_after.after_s - blind_s)
        then = "rolls back" if blind_after.action == "rollback" else "says so"
        return Decision(Verdict.HOLD, stage, [], [], [
            f"{what} — holding; {blind_after.describe()} {then} in {left}"])
    if blind_after.action == "rollback":
        return Decision(Verdict.ROLLBACK, stage, [], [], [
            f"rollback: the candidate has served {flag.allocation.describe()} blind for {_duration(blind_s)}, past the "
            f"rule's {blind_after.describe()} — {what}"])
    return Decision(Verdict.HOLD, stage, [], [], [
        f"blind past the rule's {blind_after.describe()}: the candidate serves {flag.allocation.describe()} and "
        f"nobody can see it — {what}; restore the metrics or roll back"])


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


__all__ = ["ACTIONS", "BlindAfter", "BlindClock", "blind_decision", "no_data"]
