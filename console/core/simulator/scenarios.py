"""Scenarios: what goes wrong (or not) with the candidate route."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInput


@dataclass(frozen=True)
class Scenario:
    """What a scenario does to the candidate arm (the baseline is never touched)."""

    name: str
    description: str
    #: the candidate behaves exactly like the baseline route of its flag
    candidate_as_baseline: bool = False
    latency_factor: float = 1.0
    resolve_shift: float = 0.0  # added to the candidate's resolve probability
    correction_shift: float = 0.0
    complaint_shift: float = 0.0
    provider_error: float | None = None  # replaces the candidate provider's error rate
    token_factor: float = 1.0
    join_probability: float | None = None  # replaces the candidate's outcome join probability
    #: only candidate units of this region see the change (None: every candidate unit)
    region: str | None = None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("steady", "healthy candidate: a little better at resolving, a little costlier"),
        Scenario("aa", "A/A: the candidate behaves exactly like the baseline", candidate_as_baseline=True),
        Scenario("latency-regression", "candidate answers ~1.9× slower and times out more", latency_factor=1.9),
        Scenario(
            "quality-regression",
            "candidate resolves fewer cases and gets corrected more",
            resolve_shift=-0.15,
            correction_shift=0.08,
            complaint_shift=0.02,
        ),
        Scenario("provider-outage", "the candidate's provider fails a third of calls; fallbacks surge", provider_error=0.35),
        Scenario("cost-spike", "candidate spends ~3× the tokens per answer", token_factor=3.0),
        Scenario("join-break", "candidate outcomes stop joining their exposures (telemetry broken)", join_probability=0.3),
        Scenario(
            "region-regression",
            "candidate resolves fewer cases and gets corrected more, in region eu only",
            resolve_shift=-0.20,
            correction_shift=0.10,
            region="eu",
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; BadInput naming the valid ones otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise BadInput(f"--scenario {name!r}: unknown scenario — choose one of {', '.join(SCENARIOS)}") from None


def apply_to_candidate(beh, scenario: Scenario):
    """A route behaviour as the scenario changes it on the candidate arm (``beh`` is a RouteBehaviour)."""
    from dataclasses import replace

    return replace(
        beh,
        latency_median_ms=beh.latency_median_ms * scenario.latency_factor,
        resolve=min(0.99, max(0.01, beh.resolve + scenario.resolve_shift)),
        correction=min(0.99, max(0.0, beh.correction + scenario.correction_shift)),
        complaint=min(0.99, max(0.0, beh.complaint + scenario.complaint_shift)),
        error_rate=scenario.provider_error if scenario.provider_error is not None else beh.error_rate,
        tokens_in=beh.tokens_in * scenario.token_factor,
        tokens_out=beh.tokens_out * scenario.token_factor,
        join_probability=scenario.join_probability if scenario.join_probability is not None else beh.join_probability,
    )
