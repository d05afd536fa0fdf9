"""The cost-performance frontier: dominance, the frontier line, and agreement with the dashboard's figures."""

from __future__ import annotations

from console.commands.demo import prepare_state_dir
from console.core.figures import RouteFigures, route_figures
from console.core.frontier import frontier_line, frontier_points
from console.core.frontier_svg import render_svg
from console.core.telemetry import Arm, RouteKey

from ..ui.helpers import sim_source


def fig(route, cost, resolved, p95=1000.0, flag="f", arm=Arm.OTHER, requests=100) -> RouteFigures:
    values = {"cost_per_resolved_case": cost, "resolved_without_escalation": resolved, "p95_latency": p95}
    return RouteFigures(key=RouteKey(flag, route, arm), requests=requests, share=None, values=values)


def test_dominated_routes_are_marked_with_the_route_that_dominates_them():
    points = frontier_points([
        fig("cheap", 0.001, 0.70), fig("good", 0.002, 0.80), fig("worse", 0.003, 0.75), fig("pricey", 0.004, 0.85),
    ])
    status = {p.route: p.status for p in points}
    assert status == {"cheap": "frontier", "good": "frontier", "pricey": "frontier", "worse": "dominated by good"}
    assert [p.route for p in frontier_line(points)] == ["cheap", "good", "pricey"]


def test_equal_routes_do_not_dominate_each_other_and_a_tie_on_one_axis_does():
    points = {p.route: p for p in frontier_points([
        fig("a", 0.002, 0.8), fig("b", 0.002, 0.8), fig("c", 0.002, 0.7)])}
    assert points["a"].on_frontier and points["b"].on_frontier
    assert points["c"].dominated_by in ("a", "b")


def test_routes_without_data_are_listed_never_on_the_frontier_and_idle_routes_are_left_out():
    points = frontier_points([fig("a", 0.002, 0.8), fig("nodata", None, 0.9), fig("idle", 0.001, 0.9, requests=0)])
    by = {p.route: p for p in points}
    assert set(by) == {"a", "nodata"}
    assert by["nodata"].status == "no data" and not by["nodata"].on_frontier
    assert by["a"].on_frontier
    assert points[-1].route == "nodata"


def test_the_same_route_on_two_flags_gets_the_flag_in_its_label():
    points = frontier_points([fig("x", 0.001, 0.8, flag="one"), fig("x", 0.002, 0.7, flag="two"), fig("y", 0.003, 0.9)])
    assert {p.label for p in points} == {"x@one", "x@two", "y"}
    assert [p.route for p in frontier_points([fig("x", 0.001, 0.8, flag="one"), fig("y", 0.1, 0.1, flag="two")],
                                             flag="two")] == ["y"]


def test_frontier_numbers_are_the_dashboards(tmp_path):
    source = sim_source(prepare_state_dir(tmp_path), "steady")
    now = source.now()
    figures = route_figures(source.read(now - 300, now, 5))
    points = frontier_points(figures)
    assert len(points) >= 4
    for p in points:
        f = next(f for f in figures if (f.key.flag, f.key.route, f.key.arm) == (p.flag, p.route, p.arm))
        assert p.cost_per_resolved == f.values["cost_per_resolved_case"]
        assert p.resolved_rate == f.values["resolved_without_escalation"]
        assert p.p95_latency_ms == f.values["p95_latency"]
        assert p.requests == f.requests
    support = {p.route: p for p in frontier_points(figures, "support-answer-route")}
    # the demo's candidate resolves more for a little more money: both on the support flag's frontier
    assert support["balanced_core_v2"].on_frontier and support["fast_default_v1"].on_frontier


def test_svg_draws_every_point_and_names_the_dominated():
    points = frontier_points([fig("cheap", 0.001, 0.70), fig("worse", 0.003, 0.65, arm=Arm.CANDIDATE)])
    svg = render_svg(points, "t")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<circle") == 2 + 2  # two points, two legend marks
    assert "dominated by cheap" in svg and "worse◆" in svg
    empty = render_svg(frontier_points([fig("n", None, None)]), "t")
    assert "no route has both" in empty
