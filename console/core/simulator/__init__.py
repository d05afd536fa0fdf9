"""A seeded, deterministic simulator of an LLM application serving a route portfolio."""

from .scenarios import SCENARIOS, Scenario, get_scenario

__all__ = ["SCENARIOS", "OutcomeEvent", "RequestEvent", "Scenario", "SimEvent", "get_scenario"]


def __getattr__(name: str):
    """The event records load on first use: ``routedeck demo`` names the scenarios before its first frame and
    needs nothing else from here until then."""
    if name in ("OutcomeEvent", "RequestEvent", "SimEvent"):
        from . import events

        return getattr(events, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
