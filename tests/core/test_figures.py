"""The dashboard's rows: figures from the counters, and every route the flags name even without data."""

from __future__ import annotations

from console.commands.demo import prepare_state_dir
from adapters.flags.flagd_file import FlagdFilePlatform
from console.core.figures import route_figures, with_flag_routes
from console.core.telemetry import Arm, MetricsSnapshot, RouteCounters, RouteKey, TimeBucket

FLAG = "support-answer-route"


def demo_flags(tmp_path):
    platform = FlagdFilePlatform(prepare_state_dir(tmp_path))
    return {key: platform.read_flag(key) for key in platform.list_flags()}


def snapshot(counters: dict[RouteKey, int], fallback_served: dict | None = None) -> MetricsSnapshot:
    bucket = TimeBucket(90.0, 100.0, {key: RouteCounters(requests=n) for key, n in counters.items()})
    return MetricsSnapshot(90.0, 100.0, 100.0, [bucket], MetricsSnapshot.total_of([bucket]),
                           fallback_served=fallback_served or {})


def test_a_candidate_the_traffic_never_reached_gets_a_row_with_a_measured_share_of_zero(tmp_path):
    flags = demo_flags(tmp_path)
    figures = route_figures(snapshot({RouteKey(FLAG, "fast_default_v1", Arm.BASELINE): 40}))
    rows = with_flag_routes(figures, {FLAG: flags[FLAG]})
    assert [(r.key.route, r.key.arm, r.requests, r.share, r.idle) for r in rows] == [
        ("fast_default_v1", Arm.BASELINE, 40, 1.0, False),
        ("balanced_core_v2", Arm.CANDIDATE, 0, 0.0, True),
    ]
    assert rows[1].values == {"share": 0.0}


def test_with_no_data_every_flag_lists_its_routes_with_nothing_measured(tmp_path):
    flags = demo_flags(tmp_path)
    rows = with_flag_routes([], flags)
    # the flag in a rollout first, baseline before candidate; no share is known, so none is claimed
    assert [(r.key.flag, r.key.route, r.key.arm) for r in rows][:2] == [
        (FLAG, "fast_default_v1", Arm.BASELINE), (FLAG, "balanced_core_v2", Arm.CANDIDATE)]
    assert {r.key.flag for r in rows} == set(flags)
    assert all(r.idle and r.requests == 0 and r.share is None for r in rows)


def test_a_route_already_shown_is_not_listed_twice(tmp_path):
    flags = demo_flags(tmp_path)
    served = snapshot({RouteKey(FLAG, "balanced_core_v2", Arm.CANDIDATE): 5},
                      fallback_served={(FLAG, "fast_default_v1"): 3})
    rows = with_flag_routes(route_figures(served), {FLAG: flags[FLAG]})
    # the baseline reached only through fallbacks keeps its fallback row; nothing is added
    assert [(r.key.route, r.idle) for r in rows] == [("balanced_core_v2", False), ("fast_default_v1", False)]
