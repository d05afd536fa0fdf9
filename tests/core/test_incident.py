"""Provider ranking for on-call: rates from the dashboard's counters, unknowns never read as zero."""

from __future__ import annotations

import pytest

from console.commands.demo import prepare_state_dir
from console.core.incident import provider_health, rank, safe_routes, segments_hurt, segments_hurt_from_requests
from console.core.simulator.portfolio import PROFILES
from console.core.telemetry import Arm, MetricsSnapshot, RouteCounters, RouteKey, UnitRecord

from ..ui.helpers import sim_source


def snap(totals) -> MetricsSnapshot:
    return MetricsSnapshot(start=0, end=60, as_of=60, buckets=[], totals=totals)


def counters(requests, provider, errors=None, fallbacks=0, by_provider_fallbacks=True, extra_calls=None):
    c = RouteCounters(requests=requests, fallbacks=fallbacks)
    c.provider_requests[provider] = requests
    for kind, n in (errors or {}).items():
        c.provider_errors[(*provider, kind)] = n
        c.errors += n
    if fallbacks and by_provider_fallbacks:
        c.provider_fallbacks[provider] = fallbacks
    for pm, n in (extra_calls or {}).items():
        c.provider_requests[pm] = n
    return c


def test_rates_by_kind_and_the_fallback_ratio_of_primary_calls():
    b = ("prov-b", "prov-b/x")
    a = ("prov-a", "prov-a/y")
    totals = {
        RouteKey("f", "cand", Arm.CANDIDATE): counters(100, b, {"error": 20, "429": 5, "timeout": 5}, fallbacks=30,
                                                       extra_calls={a: 30}),
        RouteKey("f", "base", Arm.BASELINE): counters(1000, a, {"error": 10}, fallbacks=10),
    }
    rows = provider_health(snap(totals))
    assert [r.label for r in rows] == ["prov-b/x", "prov-a/y"]
    worst = rows[0]
    assert (worst.calls, worst.errors, worst.rate_limited, worst.timeouts) == (100, 20, 5, 5)
    assert worst.failure_rate == pytest.approx(0.30) and worst.rate_limit_rate == pytest.approx(0.05)
    assert worst.fallback_ratio == pytest.approx(0.30)
    other = rows[1]
    # prov-a takes the candidate's 30 fallback calls, but its fallback ratio is over its own primary calls
    assert other.calls == 1030 and other.primary_calls == 1000 and other.fallback_ratio == pytest.approx(0.01)
    assert [h.key.route for h in worst.hurt_routes()] == ["cand"]


def test_each_sort_puts_its_worst_first_and_unknown_last():
    x = ("x", "x/m")
    y = ("y", "y/m")
    totals = {
        RouteKey("f", "rx"): counters(100, x, {"429": 9}),
        RouteKey("f", "ry"): counters(100, y, {"timeout": 5, "error": 1}),
    }
    rows = provider_health(snap(totals))
    assert rank(rows, "rate_limit_rate")[0].provider == "x"
    assert rank(rows, "timeout_rate")[0].provider == "y"
    assert rank(rows, "error_rate")[0].provider == "y"
    with pytest.raises(ValueError):
        rank(rows, "nonsense")


def test_fallbacks_a_source_cannot_attribute_are_unknown_not_zero():
    x = ("x", "x/m")
    totals = {RouteKey("f", "r"): counters(100, x, {"error": 10}, fallbacks=10, by_provider_fallbacks=False)}
    row = provider_health(snap(totals), "fallback_ratio")[0]
    assert row.fallback_ratio is None and row.failure_rate == pytest.approx(0.1)


def test_provider_outage_ranks_the_candidates_provider_first_on_the_dashboards_counters(tmp_path):
    source = sim_source(prepare_state_dir(tmp_path), "provider-outage")
    now = source.now()
    s = source.read(now - 300, now, 5)
    for sort in ("failure_rate", "error_rate", "fallback_ratio"):
        assert provider_health(s, sort)[0].label == "provider-b/balanced"
    worst = provider_health(s)[0]
    cand = s.totals[RouteKey("support-answer-route", "balanced_core_v2", Arm.CANDIDATE)]
    assert worst.primary_calls == cand.requests and worst.fallbacks == cand.fallbacks
    units = source.read_units("support-answer-route", s.start)
    rows = segments_hurt(units, "balanced_core_v2")
    assert rows and rows[0].failed >= rows[-1].failed
    assert {r.attribute for r in rows} <= {"plan", "region", "workflow"}
    on_route = [u for u in units if u.route == "balanced_core_v2"]
    assert rows[0].route_rate == pytest.approx(sum(u.errors for u in on_route) / sum(u.requests for u in on_route))


def test_segments_of_other_routes_are_not_counted():
    def unit(route, plan, requests, errors):
        return UnitRecord(unit_id=f"{route}-{plan}", flag="f", arm=Arm.OTHER, route=route,
                          segment={"plan": plan}, first_seen=0, requests=requests, errors=errors)

    rows = segments_hurt([unit("r", "pro", 10, 5), unit("r", "free", 10, 0), unit("other", "free", 50, 50)], "r")
    assert [(s.label, s.failed, s.requests) for s in rows] == [("plan=pro", 5, 10)]
    assert rows[0].route_rate == pytest.approx(0.25)


def test_per_segment_request_counts_rank_as_unit_records_do(tmp_path):
    """A request-level source's per-segment counts give the same rows as the units they add up from."""
    from console.core.telemetry import SegmentRequests

    source = sim_source(prepare_state_dir(tmp_path), "provider-outage")
    now = source.now()
    units = source.read_units("support-answer-route", now - 300)
    cells: dict[tuple, SegmentRequests] = {}
    for u in units:
        key = (u.route, u.segment["plan"], u.segment["region"], u.segment["workflow"])
        seg = {a: u.segment[a] for a in ("plan", "region", "workflow")}
        cell = cells.setdefault(key, SegmentRequests(u.flag, u.route, seg))
        cell.requests += u.requests
        cell.errors += u.errors
        cell.fallbacks += u.fallbacks
    from_units = segments_hurt(units, "balanced_core_v2")
    from_counts = segments_hurt_from_requests(list(cells.values()), "balanced_core_v2")
    assert from_units and from_counts == from_units
    # a series without a segment label is not a segment called ""
    blank = [SegmentRequests("f", "r", {"plan": "", "region": "eu"}, requests=10, errors=4)]
    assert [s.label for s in segments_hurt_from_requests(blank, "r")] == ["region=eu"]


def test_safe_routes_put_the_emergency_route_first_and_never_the_candidate():
    variations = {n: PROFILES[n] for n in ("fast_default_v1", "balanced_core_v2", "fallback_baseline_v1")}
    assert safe_routes(variations, "balanced_core_v2") == ["fallback_baseline_v1", "fast_default_v1"]


def test_a_provider_only_called_as_a_fallback_has_no_fallback_ratio():
    a, r = ("a", "a/m"), ("r", "r/reserve")
    totals = {RouteKey("f", "main"): counters(100, a, {"error": 10}, fallbacks=10, extra_calls={r: 10})}
    rows = {ph.provider: ph for ph in provider_health(snap(totals))}
    assert rows["a"].fallback_ratio == pytest.approx(0.1)
    assert rows["r"].calls == 10 and rows["r"].primary_calls == 0 and rows["r"].fallback_ratio is None
