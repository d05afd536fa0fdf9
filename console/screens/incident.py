"""`i`: the incident view for on-call — providers ranked worst first, the routes and segments they hurt.

Keys of its own: ``S`` ranks by the next rate (all failures, errors, 429s, timeouts, fallback ratio);
↑/↓ in the providers table picks a provider, in the routes table a route. As everywhere, ``x``
sends every unit of the highlighted route's flag to a safe route (confirmed), ``u`` undoes that,
``R`` rolls that flag back to its baseline at once, ``esc`` goes back. Route figures are the
dashboard's (the session's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from console.core.errors import RouteDeckError
from console.core.figures import format_value
from console.core.incident import (
    SORTS,
    ProviderHealth,
    SegmentHurt,
    provider_health,
    segments_hurt,
    segments_hurt_from_requests,
)
from console.core.safe_text import visible
from console.core.telemetry import Arm
from console.screens.base import SessionScreen
from widgets.fitted_table import fill_table
from widgets.notice_bar import NoticeBar
from widgets.footer import KeysFooter

if TYPE_CHECKING:
    pass

ARM_TAG = {Arm.CANDIDATE: " ◆", Arm.BASELINE: " ●", Arm.OTHER: ""}


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


class IncidentScreen(SessionScreen):
    AUTO_FOCUS = "#providers"
    DEFAULT_CSS = """
    IncidentScreen { layout: vertical; }
    IncidentScreen #incident-title { height: auto; padding: 0 1; }
    IncidentScreen DataTable { height: auto; max-height: 8; }
    IncidentScreen .heading { height: 1; padding: 0 1; text-style: bold; }
    IncidentScreen #segments { height: 1fr; padding: 0 1; }
    """
    FOOTER = ("rollback", "emergency_switch", "undo_switch", "back", "help", "quit")
    BINDINGS = [Binding("S", "sort", "Rank by", id="incident_sort",
                        tooltip="rank providers by the next rate: failures, errors, 429s, timeouts, fallbacks")]

    @dataclass
    class Segments(Message):
        ident: tuple
        rows: list[SegmentHurt] | None
        error: str | None

    def __init__(self, session) -> None:
        super().__init__(session)
        self.sort = SORTS[0][0]
        self.providers: list[ProviderHealth] = []
        self._drawn: object = None
        self._segments: dict[tuple, list[SegmentHurt] | str] = {}
        self._route_rows: dict[str, tuple[str, str]] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="incident-title")
        yield DataTable(id="providers", cursor_type="row")
        yield Static(id="routes-heading", classes="heading")
        yield DataTable(id="routes", cursor_type="row")
        yield Static(id="segments")
        yield NoticeBar()
        yield KeysFooter(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        self.redraw()

    def on_resize(self) -> None:
        self._drawn = None
        self.redraw()

    # ---- what the app's actions ask -----------------------------------------------------

    def highlighted_flag(self) -> str | None:
        """The flag of the highlighted hurt route (the worst one until the operator moves)."""
        route = self.highlighted_route()
        return route[0] if route else None

    def highlighted_route(self) -> tuple[str, str] | None:
        table = self.query_one("#routes", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return self._route_rows.get(key)

    def selected_provider(self) -> ProviderHealth | None:
        table = self.query_one("#providers", DataTable)
        if not self.providers or not table.row_count:
            return None
        return self.providers[min(table.cursor_row, len(self.providers) - 1)]

    # ---- keys ---------------------------------------------------------------------

    def action_sort(self) -> None:
        keys = [k for k, _ in SORTS]
        self.sort = keys[(keys.index(self.sort) + 1) % len(keys)]
        self._drawn = None
        self.redraw()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "providers":
            self._draw_routes()
        else:
            self._draw_segments()
        self.tell_in_view()

    # ---- drawing ------------------------------------------------------------------

    def render_session(self) -> None:
        snapshot = self.session.snapshot
        ident = (id(snapshot), self.sort, tuple(sorted((k, f.revision) for k, f in self.session.flags.items())))
        if ident == self._drawn:
            return
        self._drawn = ident
        heading = dict(SORTS)[self.sort]
        title = Text.assemble(("Incident", "bold"), f" · providers ranked by {heading} · last {self.session.window_label}",
                              (" · S: rank by · x: switch a flag to a safe route · u: undo · esc: back", "dim"))
        switched = [f for f in self.session.flags.values() if f.allocation.serve_all]
        for f in sorted(switched, key=lambda f: f.key):
            title.append(f"\nSWITCHED {visible(f.key)}: everyone on {visible(f.allocation.serve_all)}", "bold reverse red")
            title.append(f" (held: {visible(f.allocation.held().describe())})", "red")
        if snapshot is None:
            title.append("\nwaiting for the metrics source…", "yellow")
        self.query_one("#incident-title", Static).update(title)
        self.providers = provider_health(snapshot, self.sort) if snapshot is not None else []
        wide = self.size.width >= 110
        rows = []
        for ph in self.providers:
            hurt = ph.hurt_routes()
            bad = (ph.failure_rate or 0) >= 0.05
            routes = ", ".join(r.key.route for r in hurt[:2]) + (f" +{len(hurt) - 2}" if len(hurt) > 2 else "") or "—"
            rows.append((f"{ph.provider}|{ph.model}", [
                Text(visible(ph.label), style="bold red" if bad else ""), str(ph.calls),
                Text(pct(ph.failure_rate), style="bold red" if bad else ""),
                pct(ph.error_rate), pct(ph.rate_limit_rate), pct(ph.timeout_rate), pct(ph.fallback_ratio),
                *([Text(visible(routes))] if wide else []),
            ]))
        # narrow terminals lose the routes column: the routes table below lists them
        fill_table(self.query_one("#providers", DataTable),
                   ["provider/model", "calls", "failed", "errors", "429s", "timeouts", "fallback",
                    *(["routes hurt"] if wide else [])], rows)
        self._draw_routes()

    def _draw_routes(self) -> None:
        ph = self.selected_provider()
        heading = self.query_one("#routes-heading", Static)
        table = self.query_one("#routes", DataTable)
        self._route_rows = {}
        wide = self.size.width >= 110
        headers = ["route", "flag", *(["calls"] if wide else []), "failed", "fail rate", "route fb",
                   *(["route err", "now"] if wide else [])]
        if ph is None:
            fill_table(table, headers, [])
            heading.update("routes: no provider calls in this window")
            self._draw_segments()
            return
        heading.update(Text(f"routes calling {visible(ph.label)} (route fb{'/err' if wide else ''}: as on the dashboard)"))
        figures = {f.key: f for f in self.session.figures}
        rows = []
        for hurt in sorted(ph.routes, key=lambda r: (-r.failed, r.key)):
            fig = figures.get(hurt.key)
            flag = self.session.flags.get(hurt.key.flag)
            now = "—"
            if flag is not None:
                a = flag.allocation
                if a.serve_all:
                    now = f"all → {visible(a.serve_all)}"
                elif a.serves_candidate:
                    now = f"cand {a.candidate_bp / 100:g}%" + (" +internal" if a.internal_enabled else "")
                else:
                    now = "all → baseline"
            key = f"{hurt.key.flag}|{hurt.key.route}|{hurt.key.arm.value}"
            self._route_rows[key] = (hurt.key.flag, hurt.key.route)
            rows.append((key, [
                Text(visible(hurt.key.route) + ARM_TAG[hurt.key.arm]), Text(visible(hurt.key.flag)),
                *([str(hurt.calls)] if wide else []),
                str(hurt.failed),
                Text(pct(hurt.failure_rate), style="bold red" if (hurt.failure_rate or 0) >= 0.05 else ""),
                format_value("fallback_rate", fig.values.get("fallback_rate") if fig else None),
                *([format_value("error_rate", fig.values.get("error_rate") if fig else None), Text(now)] if wide else []),
            ]))
        fill_table(table, headers, rows)
        self._draw_segments()

    def _draw_segments(self) -> None:
        out = self.query_one("#segments", Static)
        route = self.highlighted_route()
        snapshot = self.session.snapshot
        if route is None or snapshot is None:
            out.update("")
            return
        metrics = self.session.metrics
        if metrics is None or not (metrics.capabilities.unit_level or metrics.capabilities.segment_requests):
            out.update(Text("segments: this metrics source gives no per-segment data", "yellow"))
            return
        ident = (id(snapshot), *route)
        found = self._segments.get(ident)
        if found is None:
            out.update(Text(f"segments of {visible(route[1])}: reading…", "dim"))
            self._segments[ident] = "reading"
            flag, name = route
            self.run_worker(lambda: self._read_segments(metrics, ident, flag, name, snapshot.start, snapshot.end),
                            thread=True, exclusive=True, group="incident-segments", exit_on_error=False)
            return
        if isinstance(found, str):
            out.update(Text(f"segments of {visible(route[1])}: {visible(found)}", "dim" if found == "reading" else "red"))
            return
        text = Text()
        text.append(f"segments of {visible(route[1])} with failed requests (the route fails "
                    f"{pct(found[0].route_rate) if found else '—'}; red: 1.2× that or worse)\n", "bold")
        if not found:
            text.append("  none in this window\n", "green")
        for s in found:
            worse = s.failure_rate is not None and s.route_rate is not None and s.failure_rate > s.route_rate * 1.2
            text.append(f"  {visible(s.label):<24} {s.failed:>5} of {s.requests:<6} {pct(s.failure_rate):>6}"
                        f"  fallbacks {s.fallbacks}\n", style="bold red" if worse else "")
        out.update(text)

    def _read_segments(self, metrics, ident: tuple, flag: str, route: str, since: float, until: float) -> None:
        try:
            if metrics.capabilities.unit_level:
                rows = segments_hurt(metrics.read_units(flag, since), route)
            else:  # a request-level source counts requests per segment label
                rows = segments_hurt_from_requests(metrics.read_segment_requests(flag, since, until), route)
            self.post_message(self.Segments(ident, rows, None))
        except (RouteDeckError, OSError, NotImplementedError) as exc:
            self.post_message(self.Segments(ident, None, str(exc)))

    def on_incident_screen_segments(self, message: "IncidentScreen.Segments") -> None:
        if len(self._segments) > 32:
            self._segments.clear()
        self._segments[message.ident] = message.rows if message.rows is not None else (message.error or "unavailable")
        self._draw_segments()
