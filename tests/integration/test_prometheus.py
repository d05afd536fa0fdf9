"""The Prometheus source against a real Prometheus: backfilled history with known values, a live
exporter scraped every second, error states (missing metric, bad query, NaN, a stopped server)."""

from __future__ import annotations

import time

import pytest

from adapters.metrics import prom_contract as c
from adapters.metrics.prom_exporter import RouteMetricsExporter
from adapters.metrics.prometheus import PrometheusSource
from console.core.errors import BackendError, BadInput
from console.core.simulator.events import OutcomeEvent, RequestEvent
from console.core.telemetry import LATENCY_BOUNDS_MS, Arm, RouteKey, bucket_index

from .servers import backfill, free_port, wait_until

pytestmark = pytest.mark.servers

STEP = 15  # seconds between backfilled samples
T0 = (int(time.time()) // 3600 - 3) * 3600  # three hours back, on the hour
N = 240  # one hour of samples
FLAG = "hist-flag"
SEG = 'plan="pro",region="eu",workflow="support"'
PM = 'gen_ai_provider_name="p",gen_ai_request_model="m"'
ROUTES = {  # route -> (arm, requests per sample, timeouts every n samples)
    "fast_default_v1": ("baseline", 3, 0),
    "balanced_core_v2": ("candidate", 1, 10),
}


RESTART_AT = 150


#: the flags' variants as the flag platform holds them: variant → (arm, route)
VARIANTS = {
    FLAG: {"fast_default_v1": ("baseline", "fast_default_v1"), "balanced_core_v2": ("candidate", "balanced_core_v2")},
    "restart-flag": {"r": ("candidate", "r")},
    "live-flag": {"balanced_core_v2": ("candidate", "balanced_core_v2")},
    # variant names that are not route names: the source maps them with the flag platform
    "otel-flag": {"control": ("baseline", "fast_default_v1"), "treatment": ("candidate", "balanced_core_v2")},
    "mapped-flag": {"control": ("baseline", "fast_default_v1"), "treatment": ("candidate", "balanced_core_v2")},
}


def variants_of(flag: str) -> dict[str, tuple[str, str]]:
    return VARIANTS.get(flag, {})


def _labels(route: str, arm: str, extra: str = "") -> str:
    # the variant is named after its route on this flag; the arm comes from the flag platform (VARIANTS)
    return f'feature_flag_key="{FLAG}",feature_flag_result_variant="{route}",stage="5%",{SEG}' + (f",{extra}" if extra else "")


#: OpenTelemetry's advisory duration buckets (s): no bound at the 2.5 s SLO
OTEL_BUCKETS = c.OTEL_DURATION_BUCKETS_S
#: an OpenTelemetry-only application: per sample, control answers 4 requests in 0.5 s, treatment 2 in 2.0 s and,
#: every 10th sample, one more that failed with a 429 in 0.03 s; treatment's first chunk comes at 0.3 s
OTEL_APP = {"control": (4, 0.5), "treatment": (2, 2.0)}
OTEL_GEN = 'gen_ai_operation_name="chat",gen_ai_provider_name="provider-b",gen_ai_request_model="provider-b/balanced"'


def otel_histograms(name: str, flag: str, flag_label: str, variant_label: str) -> list[str]:
    """The GenAI client metrics an OpenTelemetry collector's Prometheus exporter would show, for ``flag``."""
    lines = [f"# TYPE {name} histogram"]
    for k in range(N + 1):
        ts = T0 + k * STEP
        for variant, (per, seconds) in OTEL_APP.items():
            who = f'{flag_label}="{flag}",{variant_label}="{variant}",job="app",instance="replica-1",{OTEL_GEN}'
            cells = [("", per * k, seconds)]
            if variant == "treatment":
                cells.append(("429", k // 10, 0.03))
            for err, n, value in cells:
                labels = who + (f',error_type="{err}"' if err else "")
                for b in OTEL_BUCKETS + (float("inf"),):
                    le = "+Inf" if b == float("inf") else repr(b)
                    lines.append(f'{name}_bucket{{{labels},le="{le}"}} {n if value <= b else 0} {ts}')
                lines.append(f"{name}_count{{{labels}}} {n} {ts}")
                lines.append(f"{name}_sum{{{labels}}} {n * value} {ts}")
    return lines


def otel_tokens_and_ttft(flag: str) -> list[str]:
    lines = [f"# TYPE {c.TOKEN_USAGE} histogram"]
    for k in range(N + 1):
        ts = T0 + k * STEP
        for variant, (per, _) in OTEL_APP.items():
            for kind, tokens in (("input", 1000), ("output", 200)):
                labels = f'feature_flag_key="{flag}",feature_flag_result_variant="{variant}",{OTEL_GEN},gen_ai_token_type="{kind}"'
                lines.append(f'{c.TOKEN_USAGE}_bucket{{{labels},le="+Inf"}} {per * k} {ts}')
                lines.append(f"{c.TOKEN_USAGE}_count{{{labels}}} {per * k} {ts}")
                lines.append(f"{c.TOKEN_USAGE}_sum{{{labels}}} {tokens * per * k} {ts}")
    lines.append(f"# TYPE {c.TTFT} histogram")
    for k in range(N + 1):
        ts = T0 + k * STEP
        labels = f'feature_flag_key="{flag}",feature_flag_result_variant="treatment",{OTEL_GEN}'
        for b in (0.1, 0.25, 0.5, 1.0, 2.5, float("inf")):
            le = "+Inf" if b == float("inf") else repr(b)
            lines.append(f'{c.TTFT}_bucket{{{labels},le="{le}"}} {2 * k if b >= 0.3 else 0} {ts}')
        lines.append(f"{c.TTFT}_count{{{labels}}} {2 * k} {ts}")
        lines.append(f"{c.TTFT}_sum{{{labels}}} {0.6 * k} {ts}")
    return lines


def history_openmetrics() -> str:
    """Counters that grow by known amounts per sample, a latency histogram and a NaN series."""
    lines = [f"# TYPE {c.REQUESTS[:-6]} counter"]
    for k in range(N + 1):
        ts = T0 + k * STEP
        for route, (arm, per, every) in ROUTES.items():
            timeouts = k // every if every else 0
            ok, slow = _labels(route, arm, PM + ',error_type=""'), _labels(route, arm, PM + ',error_type="timeout"')
            lines.append(f"{c.REQUESTS}{{{ok}}} {per * k - timeouts} {ts}")
            if every:
                lines.append(f"{c.REQUESTS}{{{slow}}} {timeouts} {ts}")
    # an application that restarted at sample RESTART_AT: its counter starts again from zero
    for k in range(N + 1):
        value = k if k < RESTART_AT else k - RESTART_AT
        lines.append(f'{c.REQUESTS}{{feature_flag_key="restart-flag",feature_flag_result_variant="r",{SEG},{PM}}} '
                     f"{value} {T0 + k * STEP}")
    lines.append(f"# TYPE {c.UNITS[:-6]} counter")
    for k in range(N + 1):
        for route, (arm, _, _) in ROUTES.items():
            lines.append(f'{c.UNITS}{{{_labels(route, arm)},audience="",scope=""}} {k // 2} {T0 + k * STEP}')
    lines.append(f"# TYPE {c.EXPOSURES[:-6]} counter")
    for k in range(N + 1):
        lines.append(f'{c.EXPOSURES}{{{_labels("fast_default_v1", "baseline").replace(FLAG, "nan-flag")}}} NaN {T0 + k * STEP}')
    # every request of the candidate takes 2.0 s: under the 2.5 s SLO, over 1.8 s
    lines.append(f"# TYPE {c.DURATION} histogram")
    for k in range(N + 1):
        ts = T0 + k * STEP
        for b in c.DURATION_BUCKETS_S + (float("inf"),):
            le = "+Inf" if b == float("inf") else repr(b)
            n = k if b >= 2.0 else 0
            bucket = _labels("balanced_core_v2", "candidate", 'error_type="",le="' + le + '"')
            lines.append(f"{c.DURATION}_bucket{{{bucket}}} {n} {ts}")
        ok = _labels("balanced_core_v2", "candidate", 'error_type=""')
        lines.append(f"{c.DURATION}_count{{{ok}}} {k} {ts}")
        lines.append(f"{c.DURATION}_sum{{{ok}}} {2.0 * k} {ts}")
    # the OpenTelemetry-only application, read with the contract's names, and the same application
    # exporting its duration under its own names (a profile maps them)
    for line in otel_histograms(c.DURATION, "otel-flag", c.FLAG, c.VARIANT)[1:]:
        lines.append(line)
    lines += otel_tokens_and_ttft("otel-flag")
    lines += otel_histograms("llm_request_seconds", "mapped-flag", "flag", "variant")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def exporter():
    exp = RouteMetricsExporter(stage_of=lambda flag: "5%")
    port = free_port()
    stop = exp.serve(port)
    yield exp, port
    stop()


@pytest.fixture(scope="session")
def prometheus(servers, exporter, tmp_path_factory):
    _, port = exporter
    data = tmp_path_factory.mktemp("prom") / "tsdb"
    backfill(history_openmetrics(), data)
    return servers.prometheus("prom-main", [f"127.0.0.1:{port}"], data)


@pytest.fixture
def source(prometheus):
    s = PrometheusSource(prometheus.url, variants_of=variants_of)
    yield s
    s.close()


def test_counts_since_stage_start_are_counter_differences(source):
    start, end = T0 + 600, T0 + 1200  # samples 40 and 80
    snap = source.read(start, end, 60)
    base = snap.totals[RouteKey(FLAG, "fast_default_v1", Arm.BASELINE)]
    cand = snap.totals[RouteKey(FLAG, "balanced_core_v2", Arm.CANDIDATE)]
    assert base.requests == 3 * 40 and base.errors == 0
    assert cand.requests == 40 and cand.timeouts == 8 - 4 and cand.errors == 4
    assert cand.provider_errors == {("p", "m", "timeout"): 4}
    assert base.new_units == 20 and cand.new_units == 20
    # the buckets partition the window and add up to the totals
    assert len(snap.buckets) == 10 and snap.buckets[0].start == start and snap.buckets[-1].end == end
    assert sum(b.counters[RouteKey(FLAG, "fast_default_v1", Arm.BASELINE)].requests for b in snap.buckets) == 120
    assert snap.as_of == pytest.approx(end, abs=STEP)


def test_a_counter_restart_is_read_across_not_as_a_drop(source):
    start, end = T0 + 140 * STEP, T0 + 170 * STEP  # the restart at sample 150 lies inside
    snap = source.read(start, end, end - start)
    restarted = snap.totals[RouteKey("restart-flag", "r", Arm.CANDIDATE)]
    # one request per sample: 9 before the restart, 20 after it (the difference of the two values would say -130)
    assert restarted.requests == 29
    assert any("restarted in this window" in g for g in snap.gaps)
    # the other flag's series did not restart: increase() over whole samples gives its exact count too
    assert snap.totals[RouteKey(FLAG, "fast_default_v1", Arm.BASELINE)].requests == 3 * 30
    calm = source.read(T0 + 600, T0 + 1200, 600)
    assert not any("restarted" in g for g in calm.gaps)


def test_requests_per_segment_for_the_incident_view(source):
    rows = source.read_segment_requests(FLAG, T0 + 600, T0 + 1200)
    got = {(r.route, r.segment["plan"], r.segment["region"], r.segment["workflow"]): (r.requests, r.errors)
           for r in rows}
    assert got == {("balanced_core_v2", "pro", "eu", "support"): (40, 4), ("fast_default_v1", "pro", "eu", "support"): (120, 0)}
    assert source.last_query_count == 3  # restarts, requests and fallbacks: whatever the number of segments
    # across the restart the counts follow the counter, as the totals do
    (restarted,) = source.read_segment_requests("restart-flag", T0 + 140 * STEP, T0 + 170 * STEP)
    assert restarted.requests == 29


def test_latency_histogram_gives_exact_slo_attainment(source):
    snap = source.read(T0 + 600, T0 + 1200, 600)
    cand = snap.totals[RouteKey(FLAG, "balanced_core_v2", Arm.CANDIDATE)]
    assert cand.successes == 40 and cand.slo_met == 40  # 2.0 s ≤ 2.5 s SLO
    assert cand.latency_hist[bucket_index(2000, LATENCY_BOUNDS_MS)] == 40 and sum(cand.latency_hist) == 40
    source.slo_ms = 1800
    assert source.read(T0 + 600, T0 + 1200, 600).totals[RouteKey(FLAG, "balanced_core_v2", Arm.CANDIDATE)].slo_met == 0


def test_query_count_is_bounded_whatever_the_routes(source):
    source.read(T0 + 600, T0 + 1200, 60)
    assert source.last_query_count == 2 * len(source.templates) + 2 == 24


def test_nan_and_missing_families_are_gaps_not_zeros(source):
    snap = source.read(T0 + 600, T0 + 1200, 60)
    text = " | ".join(snap.gaps)
    assert "exposures: Prometheus returned NaN" in text
    assert "outcomes: no series" in text and c.JOINED_OUTCOMES in text
    assert RouteKey("nan-flag", "fast_default_v1", Arm.BASELINE) not in snap.totals


def test_missing_metric_and_bad_query_are_visible(prometheus):
    s = PrometheusSource(prometheus.url, variants_of=variants_of, templates={
        "units": "sum by ($by) (no_such_metric_total{$match} $at)",
        "exposures": "sum by ($by) (routedeck_exposures_total{$match} $at",  # unbalanced parenthesis
    })
    snap = s.read(T0 + 600, T0 + 1200, 60)
    text = " | ".join(snap.gaps)
    assert "units: no series" in text
    assert "exposures: query rejected (HTTP 400" in text
    # the rest still reads
    assert snap.totals[RouteKey(FLAG, "fast_default_v1", Arm.BASELINE)].requests == 120


def test_empty_window_says_no_data(source):
    snap = source.read(T0 - 7200, T0 - 3600, 60)
    assert snap.totals == {} and any("no requests recorded" in g for g in snap.gaps)


def test_stopped_prometheus_is_a_one_line_backend_error(servers, tmp_path):
    other = servers.prometheus("prom-stopped", [])
    servers.stop(other.pid)
    s = PrometheusSource(other.url, token="sekret-token-value")
    with pytest.raises(BackendError) as err:
        s.read(time.time() - 600, time.time(), 60)
    msg = str(err.value)
    assert other.url in msg and "cannot connect" in msg and "sekret" not in msg and "\n" not in msg


def _request(route: str, arm: Arm, i: int, *, status: str = "ok", latency_ms: float = 900.0) -> RequestEvent:
    return RequestEvent(
        time=time.time(), flag="live-flag", unit_id=f"u{i}", segment={"plan": "pro", "region": "eu", "workflow": "support"},
        arm=arm, route=route, served_route=route, provider="provider-b", model="provider-b/balanced", status=status,
        fallback=False, success=status == "ok", latency_ms=latency_ms, ttft_ms=200.0, tokens_in=1000, tokens_out=500,
        cost_usd=0.0012, new_unit=True, variant=route,
    )


def test_live_exporter_round_trips_through_prometheus(exporter, prometheus):
    exp, _ = exporter
    started = time.time() - 1
    events = [_request("balanced_core_v2", Arm.CANDIDATE, i) for i in range(30)]
    events += [_request("balanced_core_v2", Arm.CANDIDATE, 100 + i, status="429", latency_ms=50) for i in range(5)]
    events += [OutcomeEvent(time=time.time(), request_time=time.time(), flag="live-flag", unit_id=f"u{i}", arm=Arm.CANDIDATE,
                            route="balanced_core_v2", kind="resolved", corrected=i == 0, complaint=False, joined=True,
                            variant="balanced_core_v2")
               for i in range(10)]
    exp.record(events)
    s = PrometheusSource(prometheus.url, variants_of=variants_of)
    key = RouteKey("live-flag", "balanced_core_v2", Arm.CANDIDATE)

    def arrived() -> bool:
        rc = s.read(started, time.time(), 5).totals.get(key)
        return rc is not None and rc.requests == 35 and rc.outcomes == 10

    wait_until(arrived, 30, "exporter samples in Prometheus")
    rc = s.read(started, time.time(), 5).totals[key]
    assert (rc.successes, rc.rate_limited, rc.new_units, rc.exposures) == (30, 5, 35, 35)
    assert (rc.resolved, rc.corrected, rc.tokens_in, rc.tokens_out) == (10, 1, 35_000, 17_500)
    assert rc.slo_met == 30 and rc.cost_usd == pytest.approx(35 * 0.0012)
    assert sum(rc.ttft_hist) == 30


def test_opentelemetry_named_series_are_read_without_a_custom_query(source):
    """An application that exports only the GenAI client metrics, with the feature-flag attributes added, as the
    OpenTelemetry collector's Prometheus exporter names them: requests, errors, latency, tokens, TTFT and cost."""
    start, end = T0 + 600, T0 + 1200  # samples 40 and 80
    snap = source.read(start, end, 60)
    base = snap.totals[RouteKey("otel-flag", "fast_default_v1", Arm.BASELINE)]
    cand = snap.totals[RouteKey("otel-flag", "balanced_core_v2", Arm.CANDIDATE)]
    # requests from the duration histogram's count (no routedeck_requests_total for this flag)
    assert (base.requests, base.errors, base.successes) == (4 * 40, 0, 4 * 40)
    assert (cand.requests, cand.errors, cand.rate_limited, cand.successes) == (2 * 40 + 4, 4, 4, 2 * 40)
    assert cand.provider_errors == {("provider-b", "provider-b/balanced", "429"): 4}
    # tokens, and cost from tokens × the pricing table (no cost counter)
    assert (cand.tokens_in, cand.tokens_out) == (1000 * 80, 200 * 80)
    assert cand.cost_usd == pytest.approx((1000 * 80 * 0.45 + 200 * 80 * 1.80) / 1e6)
    assert sum(cand.ttft_hist) == 80 and sum(cand.latency_hist) == 84
    text = " | ".join(snap.gaps)
    assert "derived from token usage" in text
    # OpenTelemetry's buckets have no bound at the 2.5 s SLO: attainment is counted within 1.28 s and said so
    assert cand.slo_met == 0 and base.slo_met == 4 * 40
    assert "no bucket at the 2.5 s SLO" in text and "1.28 s, 2.56 s" in text and "stricter" in text
    # no unit counter for this flag: no unit is made up from requests
    assert base.new_units == 0 and cand.new_units == 0
    assert not [g for g in (snap.unit_groups or []) if g.key.flag == "otel-flag"]


def test_other_names_are_read_through_the_profile_mapping(prometheus):
    s = PrometheusSource(prometheus.url, variants_of=variants_of, names={
        c.DURATION: "llm_request_seconds", c.FLAG: "flag", c.VARIANT: "variant"})
    try:
        snap = s.read(T0 + 600, T0 + 1200, 600)
    finally:
        s.close()
    cand = snap.totals[RouteKey("mapped-flag", "balanced_core_v2", Arm.CANDIDATE)]
    assert (cand.requests, cand.errors, cand.successes) == (84, 4, 80)
    assert RouteKey("otel-flag", "balanced_core_v2", Arm.CANDIDATE) not in snap.totals  # its labels are not mapped
    with pytest.raises(BadInput, match="not a name of routedeck's metric contract"):
        PrometheusSource(prometheus.url, names={"gen_ai_latency": "x"})


def test_unit_counts_always_say_they_are_per_process(source):
    snap = source.read(T0 + 600, T0 + 1200, 600)
    assert snap.totals[RouteKey(FLAG, "fast_default_v1", Arm.BASELINE)].new_units == 20
    assert any("counted by each application process" in g and "request-level" in g for g in snap.gaps)


def test_the_spec_sets_the_slo_attainment_is_counted_at(prometheus):
    from console.backends import open_metrics

    window = (T0 + 600, T0 + 1200, 600)
    key = RouteKey(FLAG, "balanced_core_v2", Arm.CANDIDATE)
    default = open_metrics(f"prometheus:{prometheus.url}", variants_of=variants_of)
    tight = open_metrics(f"prometheus:{prometheus.url}?slo_ms=1800", variants_of=variants_of)
    try:
        assert default.slo_ms == 2500 and tight.slo_ms == 1800 and tight.describe().endswith("?slo_ms=1800")
        # every candidate request takes 2.0 s: inside 2.5 s, outside 1.8 s (a bucket bound: counted exactly)
        assert default.read(*window).totals[key].slo_met == 40
        assert tight.read(*window).totals[key].slo_met == 0
    finally:
        default.close()
        tight.close()
