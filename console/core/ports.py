"""The two interfaces every backend implements: a flag platform and a metrics source.

Adapters implement the small primitive methods; the shared behaviour that makes a write
trustworthy (compare the revision, write, read back, compare) lives here once, so every
platform confirms writes the same way and the contract suite tests one behaviour.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConflictError, WriteNotConfirmed
from .models import Allocation, ChangeEvent, RolloutState, RouteFlag
from .telemetry import DEFAULT_SLO_MS, Arm, MetricsSnapshot, RouteCounters, SegmentRequests, SourceCapabilities, UnitRecord

if TYPE_CHECKING:
    from .stats.summary import GroupSummary


@dataclass(frozen=True)
class WriteResult:
    """A write confirmed by reading the flag back."""

    before: RouteFlag
    after: RouteFlag
    elapsed_s: float
    #: what someone else had changed since the caller's read, in words (rollback only)
    foreign_change: str | None = None
    #: how many times the write was applied before the read-back showed it held (rollback re-applies)
    attempts: int = 1


def describe_difference(old: RouteFlag, new: RouteFlag) -> str:
    """A short account of what differs between two reads of a flag."""
    diffs = []
    if old.allocation != new.allocation:
        diffs.append(f"allocation {old.allocation.describe()} → {new.allocation.describe()}")
    if old.baseline != new.baseline:
        diffs.append(f"baseline {old.baseline} → {new.baseline}")
    if old.candidate != new.candidate:
        diffs.append(f"candidate {old.candidate} → {new.candidate}")
    for name in sorted(set(old.variations) | set(new.variations)):
        a, b = old.variations.get(name), new.variations.get(name)
        if a != b:
            diffs.append(f"variation {name} {'added' if a is None else 'removed' if b is None else 'edited'}")
    if old.foreign_targeting != new.foreign_targeting and new.foreign_targeting:
        diffs.append(f"targeting: {new.foreign_targeting}")
    if old.rollout != new.rollout and not diffs:
        diffs.append("rollout state")
    return "; ".join(diffs) or "revision changed (content identical)"


def same_routing(a: RouteFlag, b: RouteFlag) -> bool:
    """True when two reads route traffic identically (what a read-back must show)."""
    return (
        a.allocation == b.allocation
        and a.baseline == b.baseline
        and a.candidate == b.candidate
        and a.variations == b.variations
        and a.foreign_targeting == b.foreign_targeting
    )


class FlagPlatform(abc.ABC):
    """A feature-flag platform holding route flags.

    Implementations provide ``list_flags``, ``read_flag``, ``_write_flag`` and ``history``;
    writes go through ``write_flag`` which refuses stale revisions and confirms by read-back.
    """

    #: short name of the platform kind, e.g. "flagd"
    kind: str = "?"

    @abc.abstractmethod
    def describe(self) -> str:
        """Where this platform is, safe to show (no secret in it)."""

    @abc.abstractmethod
    def list_flags(self) -> list[str]:
        """Keys of the route flags on the platform."""

    @abc.abstractmethod
    def read_flag(self, key: str) -> RouteFlag:
        """The flag as the platform holds it now, with its revision."""

    @abc.abstractmethod
    def _write_flag(self, flag: RouteFlag, expected_revision: str | None) -> None:
        """Store ``flag``. Raise ConflictError if the platform's revision is not ``expected_revision``
        (``None`` means write whatever is there). Must not confirm; ``write_flag`` reads back."""

    @abc.abstractmethod
    def history(self, key: str, limit: int = 100) -> list[ChangeEvent]:
        """The platform's own change history for the flag, newest first."""

    def close(self) -> None:
        """Release connections; the default has none."""

    # ---- shared behaviour -------------------------------------------------------------

    def write_flag(self, flag: RouteFlag, expected_revision: str | None) -> WriteResult:
        """Write ``flag`` if the platform still holds ``expected_revision``, then read it back."""
        import time

        started = time.perf_counter()
        before = self.read_flag(flag.key)
        refuse_newer_state(before)
        if expected_revision is not None and before.revision != expected_revision:
            raise ConflictError(
                f"flag {flag.key} changed on {self.describe()} since it was read "
                f"({describe_difference_short(before)}); nothing was written — reload and retry",
                current_revision=before.revision,
            )
        self._write_flag(flag, before.revision if expected_revision is not None else None)
        after = self.read_flag(flag.key)
        self._confirm(flag, after)
        return WriteResult(before=before, after=after, elapsed_s=time.perf_counter() - started)

    def set_allocation(
        self,
        key: str,
        allocation: Allocation,
        expected_revision: str,
        rollout: RolloutState | None = None,
    ) -> WriteResult:
        """Change who gets the candidate; refused if the flag changed since ``expected_revision``."""
        current = self.read_flag(key)
        update: dict = {"allocation": allocation}
        if rollout is not None:
            update["rollout"] = rollout
        return self.write_flag(current.model_copy(update=update), expected_revision)

    def set_rollout_state(self, key: str, rollout: RolloutState, expected_revision: str) -> WriteResult:
        current = self.read_flag(key)
        return self.write_flag(current.model_copy(update={"rollout": rollout}), expected_revision)

    def rollback_to_baseline(
        self,
        key: str,
        seen_revision: str | None = None,
        rollout: RolloutState | Callable[[RouteFlag], RolloutState | None] | None = None,
    ) -> WriteResult:
        """Send every unit to the baseline route. Never refused for a stale revision: it is the
        safe direction. If the flag changed since ``seen_revision``, the result says how.

        ``rollout`` is the state to store, or a function of the flag as read just before the write
        that gives it (so a caller that re-applies builds it from what is there now). One attempt:
        ``operations.rollback`` re-applies until it holds."""
        import time

        started = time.perf_counter()
        current = self.read_flag(key)
        foreign = None
        if seen_revision is not None and current.revision != seen_revision:
            foreign = describe_difference_short(current)
        update: dict = {"allocation": current.allocation.rolled_back(), "foreign_targeting": None}
        state = rollout(current) if callable(rollout) else rollout
        if state is not None:
            update["rollout"] = state
        target = current.model_copy(update=update)
        self._write_flag(target, None)
        after = self.read_flag(key)
        self._confirm_rollback(target, after)
        return WriteResult(before=current, after=after, elapsed_s=time.perf_counter() - started, foreign_change=foreign)

    def _confirm_rollback(self, wanted: RouteFlag, got: RouteFlag) -> None:
        """A rollback holds when nobody is on the candidate, the baseline is the one written and the
        state says so. A profile edited by someone in the meantime does not undo it (everyone is on the
        baseline), so only what decides who gets the candidate is compared."""
        problems = []
        if got.allocation != wanted.allocation or got.baseline != wanted.baseline or got.foreign_targeting:
            problems.append(describe_difference(wanted, got))
        if wanted.rollout is not None and got.rollout != wanted.rollout:
            problems.append("rollout state not stored")
        if problems:
            raise WriteNotConfirmed(
                f"rollback of flag {wanted.key} on {self.describe()} not confirmed by read-back: "
                f"{'; '.join(problems)} — the platform now holds {got.allocation.describe()}"
            )

    def create_flag(self, flag: RouteFlag) -> WriteResult:
        """Create a route flag that does not exist yet."""
        import time

        started = time.perf_counter()
        self._create_flag(flag)
        after = self.read_flag(flag.key)
        self._confirm(flag, after)
        return WriteResult(before=flag, after=after, elapsed_s=time.perf_counter() - started)

    def _create_flag(self, flag: RouteFlag) -> None:
        raise NotImplementedError(f"{self.kind} cannot create flags")

    def _confirm(self, wanted: RouteFlag, got: RouteFlag) -> None:
        problems = []
        if not same_routing(wanted, got):
            problems.append(describe_difference(wanted, got))
        if wanted.rollout is not None and got.rollout != wanted.rollout:
            problems.append("rollout state not stored")
        if problems:
            raise WriteNotConfirmed(
                f"write to flag {wanted.key} on {self.describe()} not confirmed by read-back: "
                f"{'; '.join(problems)} — the platform now holds {got.allocation.describe()}"
            )


def refuse_newer_state(flag: RouteFlag) -> None:
    """An older routedeck never rewrites a state a newer one wrote (it would drop or misread what it does
    not know); the refusal says which version to install. A rollback is the one exception."""
    from .errors import BadInput
    from .versions import STATE_SCHEMA, routedeck_version

    state = flag.rollout
    if state is not None and state.state_schema is not None and state.state_schema > STATE_SCHEMA:
        writer = state.writer or "a newer version"
        raise BadInput(
            f"flag {flag.key}: its rollout state was written by routedeck {writer} (state format {state.state_schema}); "
            f"this is routedeck {routedeck_version()} (format {STATE_SCHEMA}) and does not change it — install "
            f"routedeck>={writer} (a rollback still works from this version)"
        )


def describe_difference_short(flag: RouteFlag) -> str:
    return f"now {flag.allocation.describe()}, baseline {flag.baseline}, candidate {flag.candidate}"


def summaries_from_snapshots(snapshot: MetricsSnapshot, matured: MetricsSnapshot | None, flag: str) -> list["GroupSummary"]:
    """One request-level group per arm of ``flag``: the window's counters, with the exposures of ``matured``
    (the same window ending a join window earlier) as the matured ones."""
    from .stats.summary import GroupSummary, summarise_counters

    totals = _arm_totals(snapshot, flag)
    old = _arm_totals(matured, flag) if matured is not None else {}
    return [GroupSummary(arm, {}, "", summarise_counters(c, old.get(arm, RouteCounters()))) for arm, c in totals.items()]


def _arm_totals(snapshot: MetricsSnapshot, flag: str) -> dict[Arm, RouteCounters]:
    totals: dict[Arm, RouteCounters] = {}
    for key, c in snapshot.totals.items():
        if key.flag == flag:
            totals.setdefault(key.arm, RouteCounters()).add(c)
    return totals


class MetricsSource(abc.ABC):
    """Where route telemetry comes from."""

    kind: str = "?"
    #: the latency SLO (ms) its ``slo_met`` counts are taken at (``slo_ms=N`` in its SPEC); a rule whose
    #: ``latency_slo_ms`` differs does not judge the metrics read from them (``stats.spec.slo_mismatch``)
    slo_ms: float = DEFAULT_SLO_MS

    @property
    @abc.abstractmethod
    def capabilities(self) -> SourceCapabilities: ...

    @abc.abstractmethod
    def describe(self) -> str:
        """Where this source is, safe to show (no secret in it)."""

    @abc.abstractmethod
    def now(self) -> float:
        """The source's clock (epoch seconds; simulated seconds for the simulator)."""

    @abc.abstractmethod
    def read(self, start: float, end: float, step: float) -> MetricsSnapshot:
        """Counters per route for [start, end), in buckets of ``step`` seconds."""

    def read_units(self, flag: str, since: float, maturation_s: float = 60.0) -> list[UnitRecord]:
        """Per-unit totals since ``since`` for a flag (sources with unit-level data only)."""
        raise NotImplementedError(f"{self.kind} gives no unit-level data")

    def read_summaries(self, flag: str, since: float, maturation_s: float = 120.0,
                       group_by: tuple[str, ...] = ()) -> list["GroupSummary"]:
        """Per-arm summaries of ``flag`` since ``since``, one per arm and value of the ``group_by`` attributes.

        The default builds them from ``read_units`` for unit-level sources (grouped by the units'
        attributes) and from ``read`` totals otherwise (one request-level group per arm: counters cannot
        be split by attributes). Exposures older than ``maturation_s`` are the matured ones. A source
        that can aggregate where its data lives (a database) overrides this.
        """
        from .stats.summary import group_units

        if self.capabilities.unit_level:
            return group_units(self.read_units(flag, since, maturation_s), tuple(group_by))
        now = self.now()
        cutoff = now - maturation_s
        matured = self.read(since, cutoff, max(1.0, cutoff - since)) if cutoff > since else None
        return summaries_from_snapshots(self.read(since, now, max(1.0, now - since)), matured, flag)

    def read_segment_requests(self, flag: str, start: float, end: float) -> list[SegmentRequests]:
        """Requests, failures and fallbacks of each route of ``flag`` per segment over [start, end)
        (request-level sources that say ``capabilities.segment_requests``)."""
        raise NotImplementedError(f"{self.kind} gives no per-segment request counts")

    def close(self) -> None:
        """Release connections; the default has none."""
