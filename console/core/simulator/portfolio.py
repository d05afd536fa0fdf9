"""The demo route portfolio: the route flags of three workflows and how each route behaves."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone

from ..models import Allocation, RolloutState, RouteFlag, RouteProfile, Stage


@dataclass(frozen=True)
class RouteBehaviour:
    """How a route behaves in the simulator (the model's character, not its price)."""

    provider: str
    model: str
    latency_median_ms: float
    latency_sigma: float  # of log latency
    ttft_share: float  # time to first token as a share of latency
    tokens_in: float
    tokens_out: float
    error_rate: float  # provider errors (5xx)
    rate_limit_rate: float  # 429s
    resolve: float  # probability an answered request is resolved without escalation
    correction: float
    complaint: float
    join_probability: float = 0.995


BEHAVIOURS: dict[str, RouteBehaviour] = {
    "small_low_cost_v1": RouteBehaviour("provider-a", "provider-a/mini", 600, 0.45, 0.25, 700, 120, 0.004, 0.002, 0.80, 0.06, 0.004),
    "fast_default_v1": RouteBehaviour("provider-a", "provider-a/standard", 1100, 0.45, 0.22, 1500, 350, 0.005, 0.003, 0.70, 0.08, 0.006),
    "balanced_core_v2": RouteBehaviour("provider-b", "provider-b/balanced", 1100, 0.40, 0.20, 1500, 380, 0.005, 0.002, 0.76, 0.06, 0.005),
    "premium_hard_cases_v1": RouteBehaviour("provider-c", "provider-c/premium", 3200, 0.40, 0.18, 3000, 900, 0.006, 0.004, 0.72, 0.07, 0.006),
    "fallback_baseline_v1": RouteBehaviour("provider-c", "provider-c/reserve", 900, 0.40, 0.25, 1400, 300, 0.003, 0.001, 0.62, 0.10, 0.008),
}

PROFILES: dict[str, RouteProfile] = {
    "small_low_cost_v1": RouteProfile(
        route="small_low_cost_v1", provider_route="approved-provider-route", prompt_profile="classify_v2",
        model="provider-a/mini", max_output_tokens=200, timeout_ms=4000, fallback="fast_default_v1",
        budget_policy="low_cost_budget",
    ),
    "fast_default_v1": RouteProfile(
        route="fast_default_v1", provider_route="approved-provider-route", prompt_profile="support_answer_v3",
        model="provider-a/standard", max_output_tokens=700, timeout_ms=6000, fallback="fallback_baseline_v1",
        budget_policy="standard_support_budget",
    ),
    "balanced_core_v2": RouteProfile(
        route="balanced_core_v2", provider_route="approved-provider-route", prompt_profile="support_answer_v4",
        model="provider-b/balanced", max_output_tokens=900, timeout_ms=9000, fallback="fast_default_v1",
        budget_policy="standard_support_budget",
    ),
    "premium_hard_cases_v1": RouteProfile(
        route="premium_hard_cases_v1", provider_route="approved-provider-route", prompt_profile="hard_case_v2",
        model="provider-c/premium", max_output_tokens=1600, timeout_ms=15000, fallback="fallback_baseline_v1",
        budget_policy="premium_budget",
    ),
    "fallback_baseline_v1": RouteProfile(
        route="fallback_baseline_v1", provider_route="reserve-provider-route", prompt_profile="support_answer_v3",
        model="provider-c/reserve", max_output_tokens=600, timeout_ms=8000, budget_policy="standard_support_budget",
    ),
}

#: workflow → flag key
WORKFLOW_FLAGS: dict[str, str] = {
    "support_answer": "support-answer-route",
    "hard_case": "hard-case-route",
    "classify": "classify-route",
}

#: flag → the route profile the application falls back to when the flag cannot be evaluated
CODE_DEFAULTS: dict[str, RouteProfile] = {
    "support-answer-route": PROFILES["fast_default_v1"],
    "hard-case-route": PROFILES["premium_hard_cases_v1"],
    "classify-route": PROFILES["small_low_cost_v1"],
}

INTERNAL_AUDIENCE = "internal_support_team"
ELIGIBLE_SCOPE = "english_support_chat"


def behaviour_of(route: str) -> RouteBehaviour:
    """Behaviour of a route; an unknown route (added by an operator) gets a middling default."""
    found = BEHAVIOURS.get(route)
    if found is not None:
        return found
    return replace(BEHAVIOURS["fast_default_v1"], provider="unknown", model=route)


def demo_flags(started_at: datetime | None = None, fresh: bool = False) -> list[RouteFlag]:
    """The demo's route flags: support answers mid-rollout (internal + 5%), two steady workflows.

    ``fresh``: the support flag's candidate is ready but not started (100% baseline, before the first stage).
    """
    started_at = started_at or datetime.now(timezone.utc)
    support = RouteFlag(
        key="support-answer-route",
        variations={n: PROFILES[n] for n in ("fast_default_v1", "balanced_core_v2", "fallback_baseline_v1")},
        baseline="fast_default_v1",
        candidate="balanced_core_v2",
        allocation=Allocation(
            internal_audience=INTERNAL_AUDIENCE,
            internal_enabled=True,
            eligible_scope=ELIGIBLE_SCOPE,
            candidate_bp=500,
        ),
        rollout=RolloutState(stage=Stage.PCT5, stage_started_at=started_at),
    )
    if fresh:
        support = support.model_copy(update={
            "allocation": support.allocation.model_copy(update={"internal_enabled": False, "candidate_bp": 0}),
            "rollout": RolloutState(stage=Stage.BASELINE),
        })
    hard = RouteFlag(
        key="hard-case-route",
        variations={n: PROFILES[n] for n in ("premium_hard_cases_v1", "fallback_baseline_v1")},
        baseline="premium_hard_cases_v1",
    )
    classify = RouteFlag(
        key="classify-route",
        variations={n: PROFILES[n] for n in ("small_low_cost_v1", "fast_default_v1")},
        baseline="small_low_cost_v1",
    )
    return [support, hard, classify]
