"""Turn the simulated application's events into Prometheus metrics, exactly as the contract says.

This is what an instrumented application does, written once: the simulator's ``RequestEvent``
and ``OutcomeEvent`` records become the OpenTelemetry GenAI histograms and routedeck's counters
of ``prom_contract``. Tests and the docs' instrumentation example use it; a real application
would call ``record_request``/``record_outcome`` from its own request path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)

from console.core.simulator.events import OutcomeEvent, RequestEvent, SimEvent

from . import prom_contract as c

#: the operation name routedeck's example applications report (OTel gen_ai.operation.name)
OPERATION_CHAT = "chat"


class RouteMetricsExporter:
    """Prometheus metrics of one application, in their own registry.

    Every series carries the flag key and the variant the unit was served (``feature_flag_key``,
    ``feature_flag_result_variant``): routedeck maps a variant to its route and arm with the flag
    platform. ``stage_of(flag)`` gives the rollout stage label of the unit counters (the application
    knows it from the flag's rollout state); the default is "unknown".
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        stage_of: Callable[[str], str] = lambda flag: "unknown",
        export_cost: bool = True,
    ) -> None:
        """``export_cost=False`` emits no cost counter, as an application that only knows tokens."""
        disable_created_metrics()
        self.registry = registry if registry is not None else CollectorRegistry()
        self.stage_of = stage_of
        self.export_cost = export_cost
        r = self.registry
        self.duration = Histogram(c.DURATION, "GenAI client operation duration", c.DURATION_LABELS,
                                  buckets=c.DURATION_BUCKETS_S, registry=r)
        self.tokens = Histogram(c.TOKEN_USAGE, "GenAI tokens used per call", c.TOKEN_USAGE_LABELS,
                                buckets=c.TOKEN_BUCKETS, registry=r)
        self.ttft = Histogram(c.TTFT, "time to the first chunk of a streamed answer", c.TTFT_LABELS,
                              buckets=c.TTFT_BUCKETS_S, registry=r)
        self.units = Counter(c.UNITS, "units seen for the first time on a variant in a stage (in this process)", c.UNIT_LABELS,
                             registry=r)
        self.crossed = Counter(c.CROSSED_UNITS, "units seen on more than one variant of a flag in a stage (in this process)",
                               c.UNIT_LABELS, registry=r)
        self.requests = Counter(c.REQUESTS, "requests by provider, model and the assigned call's error type", c.REQUESTS_LABELS, registry=r)
        self.fallbacks = Counter(c.FALLBACKS, "requests answered by a fallback route", c.FALLBACKS_LABELS, registry=r)
        self.outcomes = Counter(c.OUTCOMES, "business outcomes recorded", c.OUTCOME_LABELS, registry=r)
        self.joined = Counter(c.JOINED_OUTCOMES, "outcomes joined to their exposure", c.OUTCOME_LABELS, registry=r)
        self.exposures = Counter(c.EXPOSURES, "exposures recorded (flag, route, unit)", c.PLAIN_LABELS, registry=r)
        self.cost = Counter(c.COST, "cost of the calls in USD", c.PLAIN_LABELS, registry=r) if export_cost else None
        self.cost_squared = (Counter(c.COST_SQUARED, "sum of each request's cost squared (USD²)", c.PLAIN_LABELS,
                                     registry=r) if export_cost else None)
        #: the /metrics page ``render`` wrote last (``serve(prerendered=True)``)
        self._page: bytes | None = None
        #: the segment of each unit's last request (outcome events carry none)
        self._segments: dict[str, dict[str, str]] = {}
        #: per flag: the stage being counted, the (variant, unit) pairs already counted in it, and each unit's
        #: variants there (for crossover). A unit is new again in each stage, so the units since a stage began
        #: include the ones that stayed on the baseline from the stage before; a new stage forgets the old one.
        #: This is one process's memory: with several replicas a unit is counted once per replica it reached
        #: and a unit served two variants by two replicas is missed (the source's verdict says so).
        self._stage_of: dict[str, str] = {}
        self._units_seen: dict[str, set[tuple[str, str]]] = {}
        self._variants_of: dict[str, dict[str, dict[str, dict[str, str]]]] = {}

    def _labels(self, flag: str, variant: str, segment: dict[str, str]) -> dict[str, str]:
        labels = {c.FLAG: flag, c.VARIANT: variant}
        for name in c.SEGMENT_LABELS:
            labels[name] = str(segment.get(name, ""))
        return labels

    def record_request(self, e: RequestEvent) -> None:
        """Count one request: duration, tokens, time to first chunk and routedeck's counters."""
        base = self._labels(e.flag, e.variant or e.route, e.segment)
        gen = {c.OPERATION: OPERATION_CHAT, c.PROVIDER: e.provider, c.MODEL: e.model}
        self.duration.labels(**base, **gen, **{c.ERROR_TYPE: "" if e.success else e.status}).observe(e.latency_ms / 1000)
        self.tokens.labels(**base, **gen, **{c.TOKEN_TYPE: "input"}).observe(e.tokens_in)
        self.tokens.labels(**base, **gen, **{c.TOKEN_TYPE: "output"}).observe(e.tokens_out)
        if e.success:
            self.ttft.labels(**base, **gen).observe(e.ttft_ms / 1000)
        status = c.STATUS_OK if e.status == "ok" else e.status
        self.requests.labels(**base, **{c.PROVIDER: e.provider, c.MODEL: e.model, c.ERROR_TYPE: status}).inc()
        self.exposures.labels(**base).inc()
        stage = self.stage_of(e.flag)
        if self._stage_of.get(e.flag) != stage:
            self._stage_of[e.flag] = stage
            self._units_seen[e.flag] = set()
            self._variants_of[e.flag] = {}
        seen = (base[c.VARIANT], e.unit_id)
        if seen not in self._units_seen[e.flag]:
            self._units_seen[e.flag].add(seen)
            unit = {c.FLAG: e.flag, c.VARIANT: base[c.VARIANT], c.STAGE: stage,
                    **{name: str(e.segment.get(name, "")) for name in c.UNIT_ATTRIBUTE_LABELS}}
            self.units.labels(**unit).inc()
            self.crossed.labels(**unit)  # the zero series: "no crossover yet", not "not exported"
            self._count_crossover(e.flag, e.unit_id, base[c.VARIANT], unit)
        if e.fallback:
            self.fallbacks.labels(**base, served_route=e.served_route).inc()
        if self.cost is not None and e.cost_usd > 0:
            self.cost.labels(**base).inc(e.cost_usd)
            self.cost_squared.labels(**base).inc(e.cost_usd * e.cost_usd)

    def _count_crossover(self, flag: str, unit_id: str, variant: str, labels: dict[str, str]) -> None:
        """Count a unit on every variant it has been seen on, once it is seen on a second one in a stage."""
        variants = self._variants_of[flag].setdefault(unit_id, {})
        if variant in variants:
            return
        variants[variant] = labels
        if len(variants) == 2:
            for first in variants.values():
                self.crossed.labels(**first).inc()
        elif len(variants) > 2:
            self.crossed.labels(**labels).inc()

    def record_outcome(self, e: OutcomeEvent, segment: dict[str, str] | None = None) -> None:
        """Count one outcome by kind, and again as joined when it was joined to its exposure."""
        base = self._labels(e.flag, e.variant or e.route, segment or {})
        kinds = [e.kind] + (["corrected"] if e.corrected else []) + (["complaint"] if e.complaint else [])
        for kind in kinds:
            self.outcomes.labels(**base, kind=kind).inc()
            if e.joined:
                self.joined.labels(**base, kind=kind).inc()

    def record(self, events: Iterable[SimEvent]) -> None:
        """A ``TrafficSimulator`` listener: record one tick's events.

        Outcomes carry no segment, so they take the one their unit's last request had.
        """
        for e in events:
            if isinstance(e, RequestEvent):
                self._segments[e.unit_id] = e.segment
                self.record_request(e)
            elif isinstance(e, OutcomeEvent):
                self.record_outcome(e, self._segments.get(e.unit_id))

    def render(self) -> None:
        """Write the /metrics page now, in the caller's thread, for ``serve(prerendered=True)`` to hand out."""
        self._page = generate_latest(self.registry)

    def serve(self, port: int, addr: str = "127.0.0.1", *, prerendered: bool = False) -> Callable[[], None]:
        """Expose ``/metrics`` on ``addr:port`` (loopback by default); returns a function that stops it.

        ``prerendered`` serves the page ``render`` last wrote instead of writing one per scrape: an
        application whose own thread keeps the interpreter busy (the simulator at high speed) would
        otherwise answer a scrape of thousands of series too slowly for a one-second scrape timeout.
        """
        if prerendered:
            return self._serve_prerendered(port, addr)
        server, thread = start_http_server(port, addr=addr, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop

    def _serve_prerendered(self, port: int, addr: str) -> Callable[[], None]:
        exporter = self

        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server spelling)
                if self.path.split("?")[0] not in ("/", "/metrics"):
                    self.send_error(404)
                    return
                if exporter._page is None:
                    exporter.render()
                body = exporter._page or b""
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # scrapes are not news
                pass

        server = ThreadingHTTPServer((addr, port), Page)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name="metrics-page", daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop
