"""A seeded, deterministic simulator of an LLM application serving a route portfolio."""

from .scenarios import SCENARIOS, Scenario, get_scenario

__all__ = ["SCENARIOS", "Scenario", "get_scenario"]
