"""The cost-performance frontier as a standalone SVG image (for README and reports; no dependency).

Cost per resolved task runs along x (a log scale when the routes span more than 20×),
resolved rate along y. Frontier routes are filled and joined by the frontier line; dominated
routes are hollow; every point is labelled with its route and p95 latency.
"""

from __future__ import annotations

import math
from html import escape

from .frontier import FrontierPoint, frontier_line

WIDTH, HEIGHT = 800, 460
LEFT, RIGHT, TOP, BOTTOM = 78, 210, 48, 58
FRONTIER_COLOUR = "#1a7f37"
DOMINATED_COLOUR = "#8c959f"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _money(v: float) -> str:
    return f"${v:.4f}" if v < 0.1 else f"${v:.3f}" if v < 10 else f"${v:,.0f}"


def render_svg(points: list[FrontierPoint], title: str, subtitle: str = "") -> str:
    """An SVG document picturing ``points`` (from ``frontier_points``)."""
    shown = [p for p in points if p.has_data]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>']
    if subtitle:
        out.append(f'<text x="{LEFT}" y="38" fill="#57606a">{escape(subtitle)}</text>')
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP
    out.append(f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#d0d7de"/>')
    if not shown:
        out.append(f'<text x="{(x0 + x1) / 2}" y="{(y0 + y1) / 2}" text-anchor="middle" fill="#cf222e">'
                   "no route has both a cost per resolved task and a resolved rate in this window</text></svg>")
        return "\n".join(out)
    costs = [p.cost_per_resolved for p in shown]
    rates = [p.resolved_rate for p in shown]
    log_x = min(costs) > 0 and max(costs) / min(costs) > 20
    if log_x:
        lo, hi = math.log10(min(costs)) - 0.15, math.log10(max(costs)) + 0.15
    else:
        pad = (max(costs) - min(costs)) * 0.12 or max(costs) * 0.1 or 0.001
        lo, hi = max(0.0, min(costs) - pad), max(costs) + pad
    ypad = (max(rates) - min(rates)) * 0.15 or 0.05
    ylo, yhi = max(0.0, min(rates) - ypad), min(1.0, max(rates) + ypad)
    if yhi <= ylo:
        ylo, yhi = max(0.0, ylo - 0.05), min(1.0, yhi + 0.05)

    def sx(cost: float) -> float:
        v = math.log10(cost) if log_x else cost
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    def sy(rate: float) -> float:
        return y0 - (rate - ylo) / (yhi - ylo) * (y0 - y1)

    # axes and grid
    if log_x:
        xticks = [10 ** e * m for e in range(math.floor(lo), math.ceil(hi) + 1) for m in (1, 2, 5)
                  if lo <= math.log10(10 ** e * m) <= hi]
    else:
        xticks = [t for t in _nice_ticks(lo, hi) if t >= 0]
    for t in xticks:
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{y1}" x2="{x:.1f}" y2="{y0}" stroke="#eaeef2"/>')
        out.append(f'<text x="{x:.1f}" y="{y0 + 16}" text-anchor="middle" fill="#57606a">{_money(t)}</text>')
    for t in _nice_ticks(ylo, yhi):
        y = sy(t)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#eaeef2"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#57606a">{t * 100:.0f}%</text>')
    scale = " (log scale)" if log_x else ""
    out.append(f'<text x="{(x0 + x1) / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
               f"cost per resolved task{scale} — cheaper to the left</text>")
    out.append(f'<text x="18" y="{(y0 + y1) / 2}" text-anchor="middle" transform="rotate(-90 18 {(y0 + y1) / 2})">'
               "resolved without escalation — better up</text>")
    # the frontier line
    line = frontier_line(shown)
    if len(line) > 1:
        path = " ".join(f"{'M' if i == 0 else 'L'}{sx(p.cost_per_resolved):.1f},{sy(p.resolved_rate):.1f}"
                        for i, p in enumerate(line))
        out.append(f'<path d="{path}" fill="none" stroke="{FRONTIER_COLOUR}" stroke-width="2" stroke-dasharray="6 3"/>')
    for p in shown:
        x, y = sx(p.cost_per_resolved), sy(p.resolved_rate)
        if p.on_frontier:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{FRONTIER_COLOUR}"/>')
        else:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#ffffff" stroke="{DOMINATED_COLOUR}" stroke-width="2"/>')
        colour = "#24292f" if p.on_frontier else "#57606a"
        detail = (f"p95 {p.plot_label().rsplit('p95 ', 1)[-1]} · {_money(p.cost_per_resolved)} · "
                  f"{p.resolved_rate * 100:.1f}%")
        # a label that would cross the plot's right edge is drawn on the point's left instead
        wide = max(len(p.label) * 7.5, len(detail) * 6)
        tx, anchor = (x - 9, "end") if x + 9 + wide > x1 else (x + 9, "start")
        out.append(f'<text x="{tx:.1f}" y="{y - 4:.1f}" fill="{colour}" text-anchor="{anchor}">{escape(p.label)}</text>')
        out.append(f'<text x="{tx:.1f}" y="{y + 10:.1f}" fill="#57606a" font-size="10" text-anchor="{anchor}">'
                   f"{escape(detail)}</text>")
    # legend
    lx = x1 + 16
    out.append(f'<circle cx="{lx + 6}" cy="{y1 + 8}" r="6" fill="{FRONTIER_COLOUR}"/>')
    out.append(f'<text x="{lx + 18}" y="{y1 + 12}">on the frontier</text>')
    out.append(f'<circle cx="{lx + 6}" cy="{y1 + 30}" r="6" fill="#ffffff" stroke="{DOMINATED_COLOUR}" stroke-width="2"/>')
    out.append(f'<text x="{lx + 18}" y="{y1 + 34}">dominated</text>')
    out.append(f'<text x="{lx}" y="{y1 + 58}" fill="#57606a" font-size="11">◆ candidate · ● baseline</text>')
    row = y1 + 84
    for p in points:
        if p.on_frontier or not p.has_data:
            continue
        out.append(f'<text x="{lx}" y="{row}" fill="#57606a" font-size="10">{escape(p.label)}</text>')
        out.append(f'<text x="{lx + 8}" y="{row + 13}" fill="#57606a" font-size="10">'
                   f"dominated by {escape(p.dominated_by or '?')}</text>")
        row += 30
    missing = [p.label for p in points if not p.has_data]
    if missing:
        out.append(f'<text x="{lx}" y="{row}" fill="#cf222e" font-size="10">no data: {escape(", ".join(missing))}</text>')
    out.append("</svg>")
    return "\n".join(out)
