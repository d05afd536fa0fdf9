"""The command palette (`:` or ctrl+p): the registry's actions by name.

A change of traffic is offered only when its exact name is typed — a near match ("roll") or a word of
a description never runs one — and a rollback chosen here asks first (the R key itself does not).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from console.actions import ACTIONS

if TYPE_CHECKING:
    from console.core.session import Session


class ActionCommands(Provider):
    """The registry's actions; one that changes a flag only on its exact name (module docstring)."""

    def _available(self):
        session: Session = self.app.session  # type: ignore[attr-defined]
        for action in ACTIONS:
            if action.id in ("command_palette", "back") or (action.writes and session.read_only):
                continue
            yield action, action.reason_unavailable(session)

    async def discover(self) -> Hits:
        for action, why in self._available():
            if not action.writes:
                yield DiscoveryHit(action.label, partial(self.app.run_action, action.id),
                                   help=why and f"unavailable: {why}" or action.description)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        typed = " ".join(query.lower().split())
        available = list(self._available())
        exact = [(a, why) for a, why in available if a.writes and typed in (a.label.lower(), a.id.replace("_", " "))]
        if exact:
            # the exact name of a change of traffic: that one alone, so enter cannot pick a near match instead
            for action, why in exact:
                yield Hit(1.0, matcher.highlight(action.label), partial(self.app.palette_write, action.id),
                          help=why and f"unavailable: {why}" or f"{action.description} — asks first")
            return
        for action, why in available:
            if action.writes:
                continue  # a change of traffic never runs on a near match
            score = matcher.match(f"{action.label}: {action.description}")
            if score > 0:
                yield Hit(score, matcher.highlight(f"{action.label}: {action.description}"),
                          partial(self.app.run_action, action.id), help=why and f"unavailable: {why}" or None)
