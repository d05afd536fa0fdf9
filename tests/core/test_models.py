import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from console.core.models import Allocation, RouteFlag, RouteProfile

SEED = Path(__file__).resolve().parents[2] / "examples" / "route-profile-seed.json"


def seed_profile() -> dict:
    return json.loads(SEED.read_text())


def test_seed_profile_round_trips_camel_case():
    raw = seed_profile()
    profile = RouteProfile.model_validate(raw)
    assert profile.route == "balanced_core_v2"
    assert profile.max_output_tokens == 900
    assert profile.timeout_ms == 9000
    assert profile.fallback == "fast_default_v1"
    assert profile.to_wire() == raw


def test_unknown_fields_are_kept():
    raw = seed_profile() | {"temperature": 0.2, "tools": ["search"]}
    profile = RouteProfile.model_validate(raw)
    assert profile.to_wire()["temperature"] == 0.2
    assert profile.to_wire()["tools"] == ["search"]


def test_profile_rejects_bad_types():
    with pytest.raises(ValidationError):
        RouteProfile.model_validate({"route": "x", "maxOutputTokens": "lots"})
    with pytest.raises(ValidationError):
        RouteProfile.model_validate({"route": ""})


def test_flag_requires_its_variations():
    p = RouteProfile(route="a")
    with pytest.raises(ValidationError):
        RouteFlag(key="f", variations={"a": p}, baseline="b")
    flag = RouteFlag(key="f", variations={"a": p, "c": RouteProfile(route="c")}, baseline="a", candidate="c")
    assert flag.candidate_profile.route == "c"


def test_allocation_rollback_keeps_targeting_and_clears_candidate():
    a = Allocation(internal_audience="staff", internal_enabled=True, eligible_scope="en", candidate_bp=2000)
    r = a.rolled_back()
    assert r.candidate_bp == 0 and not r.internal_enabled
    assert r.eligible_scope == "en" and r.internal_audience == "staff"
    assert a.describe() == "staff + 20% of en"
    with pytest.raises(ValidationError):
        Allocation(candidate_bp=10_001)
