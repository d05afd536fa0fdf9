"""`routedeck frontier`: the cost-performance frontier as a table, and as an SVG image with --svg."""

from __future__ import annotations

import argparse
from pathlib import Path

from console.commands.common import add_backend_options, open_backends, state_dir
from console.core.errors import BadInput


def add_parser(sub) -> None:
    p = sub.add_parser(
        "frontier",
        help="routes by cost per resolved task against resolved rate, the Pareto frontier marked",
        description="Print every route's cost per resolved task, resolved rate and p95 latency over a window, "
        "marked on the Pareto frontier or dominated (by which route); --svg writes the picture.",
    )
    add_backend_options(p, rule=False)
    p.add_argument("--window", type=float, default=300.0, metavar="SECONDS",
                   help="the window the figures cover (default: 300, the console's default)")
    p.add_argument("--flag", help="only this flag's routes (default: every route)")
    p.add_argument("--svg", type=Path, metavar="FILE", help="write the scatter and the frontier line as an SVG image")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from console.core.figures import format_value, route_figures
    from console.core.frontier import frontier_points
    from console.core.frontier_svg import render_svg

    if args.window <= 0:
        raise BadInput(f"--window {args.window:g}: must be a positive number of seconds")
    if not args.flags:
        from console.commands.demo import prepare_state_dir

        prepare_state_dir(state_dir(args))  # the demo's flag file, created on first use
    if not args.metrics:
        args.metrics = "sim:steady"
    platform, metrics = open_backends(args)
    if args.flag and args.flag not in platform.list_flags():
        raise BadInput(f"--flag {args.flag}: not on {platform.describe()} — route flags: {', '.join(platform.list_flags())}")
    now = metrics.now()
    snapshot = metrics.read(now - args.window, now, max(1.0, args.window / 60))
    points = frontier_points(route_figures(snapshot), args.flag)
    print(f"{'route':<34} {'$/resolved':>11} {'resolved':>9} {'p95':>7}  status")
    for p in points:
        print(f"{p.label:<34} {format_value('cost_per_resolved_case', p.cost_per_resolved):>11} "
              f"{format_value('resolved_without_escalation', p.resolved_rate):>9} "
              f"{format_value('p95_latency', p.p95_latency_ms):>7}  {p.status}")
    if args.svg:
        scope = f"flag {args.flag}" if args.flag else "every route"
        svg = render_svg(points, f"Cost-performance frontier — {scope}",
                         f"{metrics.describe()} · last {args.window:g} s · p95 latency in the labels")
        try:
            args.svg.write_text(svg, encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"--svg {args.svg}: cannot write it ({exc.strerror}) — pass a writable path") from None
        print(f"wrote {args.svg}")
    return 0
