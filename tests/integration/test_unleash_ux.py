"""Unleash as its users see routedeck's work, against the real server: the context fields routedeck
targets are registered with descriptions and legal values (a team's own description is kept, its legal
values extended), and every change routedeck makes carries who made it and why in Unleash's own event
log — in a parameter of its own, never in the strategy title routedeck recognises its strategies by."""

from __future__ import annotations

import itertools

import httpx
import pytest

from adapters.flags.unleash import NOTE_PARAMETER, UnleashPlatform
from console.core import operations
from console.core.journal import Journal, journal_path
from console.core.models import RolloutState, Stage
from tests.integration.test_unleash import route_flag

pytestmark = pytest.mark.servers
_names = (f"ux-route-{i}" for i in itertools.count())


@pytest.fixture
def platform(unleash):
    p = UnleashPlatform(unleash.url, unleash.admin_token)
    yield p
    p.close()


def admin(unleash) -> httpx.Client:
    return httpx.Client(base_url=unleash.url, headers={"Authorization": unleash.admin_token}, timeout=10)


def test_the_context_fields_routedeck_targets_are_registered_with_descriptions(platform, unleash):
    with admin(unleash) as http:
        # a team already has a `scope` field with its own description and legal values
        http.delete("/api/admin/context/scope")
        http.delete("/api/admin/context/audience")
        teams = {"name": "scope", "description": "Our product surface", "legalValues": [{"value": "billing_chat"}]}
        made = http.post("/api/admin/context", json=teams)
        if made.status_code == 409:  # flags of earlier tests on this server still use it, so it cannot be deleted
            made = http.put("/api/admin/context/scope", json=teams)
        assert made.status_code in (200, 201, 204), made.text
        assert [v["value"] for v in http.get("/api/admin/context/scope").json()["legalValues"]] == ["billing_chat"]
        flag = platform.create_flag(route_flag(next(_names))).after
        fields = {c["name"]: c for c in http.get("/api/admin/context").json()}
    audience, scope = fields["audience"], fields["scope"]
    assert "first stage" in audience["description"] and not audience["stickiness"]
    assert [(v["value"], "first audience" in v["description"]) for v in audience["legalValues"]] == [
        ("internal_support_team", True)]
    assert scope["description"] == "Our product surface"  # the team's word is kept
    assert {v["value"] for v in scope["legalValues"]} == {"billing_chat", "english_support_chat"}
    assert flag.foreign_targeting is None


def test_every_change_carries_who_and_why_in_unleashs_event_log(platform, unleash, tmp_path):
    flag = platform.create_flag(route_flag(next(_names))).after
    journal = Journal(journal_path(tmp_path))
    started = flag.allocation.model_copy(update={"internal_enabled": True, "candidate_bp": 500})
    platform.set_allocation(flag.key, started, flag.revision, rollout=RolloutState(stage=Stage.PCT5))
    with admin(unleash) as http:
        before = len(http.get("/api/admin/search/events", params={"feature": f"IS:{flag.key}", "limit": 200})
                     .json()["events"])
        result = operations.rollback(platform, flag.key, journal, reason="answers in the wrong language")
        events = http.get("/api/admin/search/events", params={"feature": f"IS:{flag.key}", "limit": 200}).json()["events"]
    assert result.after.allocation.candidate_bp == 0
    mine = events[: len(events) - before]
    assert mine and all(e["type"] == "feature-strategy-update" for e in mine), [e["type"] for e in mine]
    who = journal.operator.name
    for e in mine:
        note = e["data"]["parameters"][NOTE_PARAMETER]
        assert note == f"{who}: rollback to rolled_back — answers in the wrong language", note
        assert e["data"]["title"].startswith("routedeck:")  # the title stays routedeck's marker, nothing else
    history = platform.history(flag.key)
    assert f"[{who}: rollback to rolled_back — answers in the wrong language]" in history[0].detail
    # the note never routes: a fresh read is in routedeck's shape, and an unchanged strategy is not rewritten
    again = platform.read_flag(flag.key)
    assert again.foreign_targeting is None
    with admin(unleash) as http:
        count = len(http.get("/api/admin/search/events", params={"feature": f"IS:{flag.key}", "limit": 200})
                    .json()["events"])
    platform.rollback_to_baseline(flag.key, again.revision)
    with admin(unleash) as http:
        assert len(http.get("/api/admin/search/events", params={"feature": f"IS:{flag.key}", "limit": 200})
                   .json()["events"]) == count
