"""What the candidate's route profile changes against the baseline's, and which changes are risky."""

from __future__ import annotations

from console.core.models import RouteProfile
from console.core.profile_diff import profile_diff


def profile(**fields) -> RouteProfile:
    return RouteProfile.model_validate({"route": "r", **fields})


def by_field(changes):
    return {c.field: c for c in changes}


def test_the_seed_profile_fields_are_compared_with_risky_changes_named():
    base = profile(providerRoute="approved", promptProfile="p3", maxOutputTokens=700, timeoutMs=9000,
                   fallback="fb", budgetPolicy="std")
    cand = profile(providerRoute="other", promptProfile="p3", maxOutputTokens=1400, timeoutMs=4000,
                   budgetPolicy="std")
    changes = by_field(profile_diff(base, cand))
    assert changes["providerRoute"].changed and "provider" in changes["providerRoute"].risk
    assert not changes["promptProfile"].changed and changes["promptProfile"].risk == ""
    assert "×2.00" in changes["maxOutputTokens"].risk
    assert "time out" in changes["timeoutMs"].risk
    assert changes["fallback"].candidate is None and "no fallback" in changes["fallback"].risk
    assert not changes["budgetPolicy"].changed


def test_small_numeric_changes_are_not_called_risky_and_unknown_fields_are_kept():
    base = profile(maxOutputTokens=900, timeoutMs=9000, temperature=0.2)
    cand = profile(maxOutputTokens=950, timeoutMs=10000, temperature=0.7)
    changes = by_field(profile_diff(base, cand))
    assert changes["maxOutputTokens"].changed and changes["maxOutputTokens"].risk == ""
    assert changes["timeoutMs"].risk == ""
    assert changes["temperature"].baseline == 0.2 and changes["temperature"].candidate == 0.7
    assert "route" not in changes  # the route names differ by definition


def test_fields_neither_profile_sets_are_left_out():
    assert [c.field for c in profile_diff(profile(model="m1"), profile(model="m2"))] == ["model"]
