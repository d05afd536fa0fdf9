"""A seeded, deterministic simulator of an LLM application serving a route portfolio."""

from .events import OutcomeEvent, RequestEvent, SimEvent
from .scenarios import SCENARIOS, Scenario, get_scenario

__all__ = ["SCENARIOS", "OutcomeEvent", "RequestEvent", "Scenario", "SimEvent", "get_scenario"]
