"""Plain records of what the simulated application did, for listeners such as an exporter.

A listener registered with ``TrafficSimulator.add_listener`` receives, once per simulated
second, that second's requests (``RequestEvent``) followed by the outcomes that arrived in it
(``OutcomeEvent``). Outcomes arrive seconds after the request they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from ..telemetry import Arm


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """One request the application served (or failed to serve)."""

    time: float  # simulated epoch seconds
    flag: str
    unit_id: str
    segment: dict[str, str]  # plan, region, workflow, internal
    arm: Arm
    route: str  # the route the flag assigned; cost is counted here
    served_route: str  # the route that answered (the fallback's when one was used)
    provider: str  # provider of the assigned route's call
    model: str
    status: str  # "ok", or the assigned call's failure: "error", "429", "timeout"
    fallback: bool
    success: bool  # a usable answer reached the user (possibly from the fallback)
    latency_ms: float
    ttft_ms: float
    tokens_in: int
    tokens_out: int
    cost_usd: float
    new_unit: bool  # first request of this unit on this (flag, route, arm)
    #: unique per request: links it to its outcome ("" when the producer gives none)
    request_id: str = ""
    #: the flag variant the unit was served ("" when the flag could not be evaluated)
    variant: str = ""


@dataclass(frozen=True, slots=True)
class OutcomeEvent:
    """The business outcome of one request, arriving after it."""

    time: float  # when the outcome arrived
    request_time: float
    flag: str
    unit_id: str
    arm: Arm
    route: str
    kind: str  # "resolved" (without escalation) or "escalated"
    corrected: bool
    complaint: bool
    joined: bool  # False when telemetry failed to join it to its exposure
    request_id: str = ""  # the request it is the outcome of
    #: the flag variant of the request ("" when unknown)
    variant: str = ""


SimEvent = Union[RequestEvent, OutcomeEvent]
Listener = Callable[[list[SimEvent]], None]
