"""The backend adapters' logic without servers: retries, parsing, error states, the exporter's output."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from adapters.flags.unleash import UnleashPlatform, parse_flag, predicate_to_constraint, render_strategies, revision_of
from adapters.http import JsonHttp, RetryPolicy, make_client, redact_url
from adapters.metrics import prom_contract as c
from adapters.metrics.prom_exporter import RouteMetricsExporter
from adapters.metrics.prometheus import PrometheusSource, _delta
from console.core.errors import BackendError, BadInput
from console.core.models import Allocation, RolloutState, RouteFlag, RouteProfile, Stage
from console.core.simulator.events import OutcomeEvent, RequestEvent
from console.core.telemetry import Arm, RouteKey

# ---- adapters/http.py ------------------------------------------------------------------------


def _http(handler, attempts: int = 3) -> tuple[JsonHttp, list[float]]:
    slept: list[float] = []
    client = make_client("http://user:pw@backend.test:9090", transport=httpx.MockTransport(handler))
    return JsonHttp(client, "Backend", retry=RetryPolicy(attempts=attempts), sleep=slept.append), slept


def test_transient_statuses_are_retried_with_growing_backoff():
    answers = iter([503, 429, 200])
    http, slept = _http(lambda req: httpx.Response(next(answers), json={"ok": True}))
    assert http.json("GET", "/x") == {"ok": True}
    assert slept == [0.2, 0.4]


def test_persistent_failure_is_one_line_with_the_redacted_url():
    http, slept = _http(lambda req: httpx.Response(500, json={"error": "boom token=abc123"}))
    with pytest.raises(BackendError) as err:
        http.json("GET", "/api?token=abc123")
    msg = str(err.value)
    assert "HTTP 500: boom" in msg and "after 3 attempts" in msg and "backend.test:9090" in msg
    assert "abc123" not in msg and "pw" not in msg and len(slept) == 2


def test_timeouts_and_refused_connections_become_backend_errors():
    def timeout(req):
        raise httpx.ReadTimeout("slow", request=req)

    http, _ = _http(timeout, attempts=2)
    with pytest.raises(BackendError, match="no answer within 5 s after 2 attempts"):
        http.request("GET", "/")


def test_auth_failure_hints_at_the_token_without_showing_it():
    http, slept = _http(lambda req: httpx.Response(401, json={"message": "bad token"}))
    with pytest.raises(BackendError, match="check the API token"):
        http.json("GET", "/")
    assert slept == []  # 401 is not retried


def test_redact_url_drops_userinfo_and_secret_queries():
    assert redact_url("https://me:pw@host:1/p?token=s3&x=1#f") == "https://host:1/p?token=***&x=1"


# ---- Prometheus source over a fake API -------------------------------------------------------


def _fake_prometheus(series: dict[str, list[dict]], calls: list[str] | None = None, resets: int = 0):
    """Answers every query with the series registered for the family whose metric it names
    (and the counter-restart query with ``resets``)."""

    def handler(req: httpx.Request) -> httpx.Response:
        q = parse_qs(req.content.decode())["query"][0]
        if calls is not None:
            calls.append(q)
        if "resets(" in q:
            data = [{"metric": {}, "value": [0, str(resets)]}]
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": data}})
        name = next((n for n in series if n in q), None)
        result = series.get(name, []) if name else []
        if req.url.path.endswith("query_range"):
            start, end = float(parse_qs(req.content.decode())["start"][0]), float(parse_qs(req.content.decode())["end"][0])
            data = [{"metric": r["metric"], "values": [[start, r["at_start"]], [end, r["at_end"]]]} for r in result]
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": data}})
        if "timestamp(" in q:
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": []}})
        data = [{"metric": r["metric"], "value": [0, r["total"]]} for r in result]
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": data}})

    return httpx.MockTransport(handler)


ROUTE = {c.FLAG: "f", c.VARIANT: "balanced_core_v2"}
#: flag f's variants as the flag platform holds them: variant → (arm, route); others are routes of their own name
VARIANTS = {"balanced_core_v2": ("candidate", "balanced_core_v2"), "r-candidate": ("candidate", "r-candidate"),
            "r-baseline": ("baseline", "r-baseline"), "r9": ("candidate", "r9")}


def _source(transport, **options) -> PrometheusSource:
    return PrometheusSource("http://prom.test", transport=transport, variants_of=lambda flag: VARIANTS, **options)


def test_nan_and_inf_become_gaps_never_numbers():
    fake = _fake_prometheus({
        c.REQUESTS: [{"metric": {**ROUTE, c.PROVIDER: "p", c.MODEL: "m", c.ERROR_TYPE: ""}, "at_start": "0", "at_end": "10", "total": "NaN"}],
        c.UNITS: [{"metric": ROUTE, "at_start": "0", "at_end": "+Inf", "total": "+Inf"}],
    })
    snap = _source(fake).read(1000, 1060, 60)
    text = " | ".join(snap.gaps)
    assert "requests: Prometheus returned NaN" in text and "units: Prometheus returned +Inf" in text
    key = RouteKey("f", "balanced_core_v2", Arm.CANDIDATE)
    assert key not in snap.totals or snap.totals[key].requests == 0 and snap.totals[key].new_units == 0
    assert "no requests recorded" in text  # and the window is flagged as having no data


def test_cost_is_derived_from_tokens_and_prices_when_not_exported():
    tokens = [
        {"metric": {**ROUTE, c.TOKEN_TYPE: "input", c.MODEL: "provider-b/balanced"}, "at_start": "0", "at_end": "1000000", "total": "1000000"},
        {"metric": {**ROUTE, c.TOKEN_TYPE: "output", c.MODEL: "provider-b/balanced"}, "at_start": "0", "at_end": "1000000", "total": "1000000"},
        {"metric": {**ROUTE, c.VARIANT: "r9", c.TOKEN_TYPE: "input", c.MODEL: "mystery/model"}, "at_start": "0", "at_end": "10",
         "total": "10"},
    ]
    snap = _source(_fake_prometheus({f"{c.TOKEN_USAGE}_sum": tokens})).read(1000, 1060, 60)
    rc = snap.totals[RouteKey("f", "balanced_core_v2", Arm.CANDIDATE)]
    assert rc.cost_usd == pytest.approx(0.45 + 1.80)  # provider-b/balanced: USD per 1M tokens in, out
    assert rc.tokens_in == 1_000_000
    assert any("derived from token usage" in g for g in snap.gaps)
    assert any("no price for mystery/model" in g for g in snap.gaps)


def test_one_read_sends_the_same_number_of_queries_for_one_route_or_hundreds():
    many = [{"metric": {**ROUTE, c.VARIANT: f"r{i}", c.PROVIDER: "p", c.MODEL: "m", c.ERROR_TYPE: ""}, "at_start": "0",
             "at_end": "5", "total": "5"} for i in range(300)]
    calls: list[str] = []
    s = _source(_fake_prometheus({c.REQUESTS: many}, calls))
    snap = s.read(1000, 1600, 60)
    assert len(snap.totals) == 300 and len(calls) == s.last_query_count == 2 * len(s.templates) + 2 == 24
    assert all(f"sum by ({c.FLAG}, {c.VARIANT}" in q for q in calls if "timestamp" not in q and "resets(" not in q)
    assert any("@ 1000.000" in q for q in calls)  # counts at the window start come from @, not increase()
    assert not any("increase(" in q or "rate(" in q for q in calls)


def _unit_series(name: str, arm: str, audience: str, scope: str, total: str) -> dict:
    labels = {**ROUTE, c.VARIANT: f"r-{arm}", "stage": "20%", "plan": "pro", "region": "eu", "workflow": "w",
              "audience": audience, "scope": scope}
    return {"metric": labels, "at_start": "0", "at_end": total, "total": total}


def test_units_come_split_by_attributes_with_their_crossed_counts():
    units = [_unit_series(c.UNITS, "candidate", "staff", "", "4"), _unit_series(c.UNITS, "candidate", "", "chat", "9"),
             _unit_series(c.UNITS, "baseline", "", "chat", "30")]
    crossed = [_unit_series(c.CROSSED_UNITS, "candidate", "", "chat", "2"),
               _unit_series(c.CROSSED_UNITS, "baseline", "", "chat", "2")]
    calls: list[str] = []
    s = _source(_fake_prometheus({c.CROSSED_UNITS: crossed, c.UNITS: units}, calls))
    snap = s.read(1000, 1060, 60)
    got = {(g.key.arm.value, g.segment["audience"], g.segment["scope"]): (g.units, g.crossed) for g in snap.unit_groups}
    assert {g.stage for g in snap.unit_groups} == {"20%"}
    assert got == {("candidate", "staff", ""): (4, 0), ("candidate", "", "chat"): (9, 2), ("baseline", "", "chat"): (30, 2)}
    assert snap.totals[RouteKey("f", "r-candidate", Arm.CANDIDATE)].new_units == 13  # the totals still add up
    assert any(f"sum by ({c.FLAG}, {c.VARIANT}, stage, plan, region, workflow, audience, scope)" in q for q in calls)
    assert s.capabilities.unit_attributes == c.UNIT_ATTRIBUTE_LABELS


def test_an_application_without_the_crossed_counter_gives_groups_without_crossover():
    units = [_unit_series(c.UNITS, "candidate", "", "chat", "9")]
    snap = _source(_fake_prometheus({c.UNITS: units})).read(1000, 1060, 60)
    assert [(g.units, g.crossed) for g in snap.unit_groups] == [(9, None)]
    assert any(g.startswith("crossed: no series") and c.CROSSED_UNITS in g for g in snap.gaps)
    empty = _source(_fake_prometheus({})).read(1000, 1060, 60)
    assert empty.unit_groups is None  # no units family at all: nothing to split


def test_the_squared_cost_reaches_the_counters_beside_the_cost():
    cost = [{"metric": ROUTE, "at_start": "1", "at_end": "4", "total": "3"}]
    squared = [{"metric": ROUTE, "at_start": "0.5", "at_end": "2", "total": "1.5"}]
    fake = _fake_prometheus({c.COST_SQUARED: squared, c.COST: cost})
    snap = _source(fake).read(1000, 1060, 60)
    rc = snap.totals[RouteKey("f", "balanced_core_v2", Arm.CANDIDATE)]
    assert (rc.cost_usd, rc.cost_sq_usd) == (3.0, 1.5)
    assert not any("cost_squared" in g for g in snap.gaps)  # optional: its absence is said by the guardrail


def test_a_restart_in_the_window_reads_every_family_across_it():
    requests = [{"metric": {**ROUTE, c.PROVIDER: "p", c.MODEL: "m", c.ERROR_TYPE: ""}, "at_start": "90", "at_end": "7",
                 "total": "41.5"}]
    calls: list[str] = []
    s = _source(_fake_prometheus({c.REQUESTS: requests}, calls, resets=1))
    snap = s.read(1000, 1600, 60)
    assert snap.totals[RouteKey("f", "balanced_core_v2", Arm.CANDIDATE)].requests == 42
    assert any("restarted in this window (1 reset)" in g for g in snap.gaps)
    totals = [q for q in calls if "increase(" in q]
    assert len(totals) == len(s.templates) and all("[600s] @ 1600.000" in q for q in totals)
    assert s.last_query_count == 2 * len(s.templates) + 2
    # a template without a plain counter selector cannot be read across the restart: unknown, not guessed
    odd = _source(_fake_prometheus({c.REQUESTS: requests}, resets=1),
                  templates={"exposures": "sum by ($by) (rate(a{$match}[5m] $at))"})
    assert any(g.startswith("exposures: its template has no plain counter selector") for g in odd.read(1000, 1600, 60).gaps)


def test_counter_deltas_count_new_series_and_resets():
    assert _delta([None, 4.0], 0) == 4.0  # series created inside the interval
    assert _delta([10.0, 13.0], 0) == 3.0
    assert _delta([10.0, 2.0], 0) == 2.0  # reset: the counter restarted from 0
    assert _delta([5.0, None, 9.0], 1) == 4.0  # a missing point carries the last value


def test_unreachable_prometheus_raises_backend_error():
    def refuse(req):
        raise httpx.ConnectError("connection refused", request=req)

    s = PrometheusSource("http://prom.test:9", transport=httpx.MockTransport(refuse), retry=RetryPolicy(attempts=1))
    with pytest.raises(BackendError, match=r"Prometheus at http://prom.test:9/api/v1/query: cannot connect"):
        s.read(1000, 1060, 60)


def test_templates_are_checked_when_the_source_is_built():
    with pytest.raises(BadInput, match="unknown family"):
        PrometheusSource("http://p.test", templates={"latencies": "x{$match} $at"})
    with pytest.raises(BadInput, match=r"must contain \$match"):
        PrometheusSource("http://p.test", templates={"units": "sum by ($by) (routedeck_units_total)"})
    with pytest.raises(BadInput, match="bad placeholder"):
        PrometheusSource("http://p.test", templates={"units": "sum by ($flag) (u{$match} $at)"})


def test_prometheus_spec_takes_the_token_from_the_environment(monkeypatch):
    seen = {}

    def handler(req):
        seen["auth"] = req.headers.get("authorization")
        return httpx.Response(200, json={"status": "success", "data": {"result": []}})

    monkeypatch.setenv("ROUTEDECK_PROMETHEUS_TOKEN", "t0k")
    s = PrometheusSource.from_spec("prometheus:http://prom.test:9090", transport=httpx.MockTransport(handler))
    s.read(1000, 1060, 60)
    assert seen["auth"] == "Bearer t0k" and "t0k" not in s.describe()
    assert not s.capabilities.unit_level
    with pytest.raises(BadInput, match="no credentials"):
        PrometheusSource.from_spec("prometheus:http://u:secret@prom.test")


# ---- the exporter ---------------------------------------------------------------------------


def test_exporter_emits_the_contract_names_and_labels():
    exp = RouteMetricsExporter(stage_of=lambda flag: "20%")
    segment = {"plan": "pro", "region": "eu", "workflow": "w"}
    exp.record([
        RequestEvent(time=0, flag="f", unit_id="u1", segment=segment, arm=Arm.CANDIDATE,
                     route="r", served_route="fb", provider="p", model="m", status="timeout", fallback=True, success=True,
                     latency_ms=2400, ttft_ms=300, tokens_in=10, tokens_out=5, cost_usd=0.5, new_unit=True),
        OutcomeEvent(time=5, request_time=0, flag="f", unit_id="u1", arm=Arm.CANDIDATE, route="r", kind="escalated",
                     corrected=False, complaint=True, joined=False),
    ])
    text = generate_latest(exp.registry).decode()
    assert "_created" not in text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    # the flag and the variant (here named after its route) on every series; no route, arm or stage label
    route = {c.FLAG: "f", c.VARIANT: "r", **segment}

    def value(name: str, **extra: str) -> float | None:
        return samples.get((name, tuple(sorted({**route, **extra}.items()))))

    assert value(c.REQUESTS, **{c.PROVIDER: "p", c.MODEL: "m", c.ERROR_TYPE: "timeout"}) == 1
    assert value(c.FALLBACKS, served_route="fb") == 1
    assert value(c.OUTCOMES, kind="complaint") == 1  # the outcome takes its unit's segment from the request
    assert value(c.JOINED_OUTCOMES, kind="complaint") is None  # not joined: recorded, not counted as joined
    assert value(c.COST) == 0.5 and value(c.COST_SQUARED) == 0.25
    gen = {c.OPERATION: "chat", c.PROVIDER: "p", c.MODEL: "m"}
    # succeeded through its fallback: no error type, and 2.4 s falls within the 2.5 s SLO bucket
    assert value(c.DURATION + "_bucket", **gen, **{c.ERROR_TYPE: "", "le": "2.5"}) == 1
    assert value(c.DURATION + "_bucket", **gen, **{c.ERROR_TYPE: "", "le": "2.25"}) == 0
    assert value(c.TOKEN_USAGE + "_sum", **gen, **{c.TOKEN_TYPE: "output"}) == 5


def test_exporter_counts_a_unit_again_in_each_stage():
    """Units since a stage began include those that stayed on the baseline: otherwise a stage change makes
    every candidate unit new and almost no baseline unit, and the sample-ratio gate fails on a fair split."""
    stage = {"f": "internal"}
    exp = RouteMetricsExporter(stage_of=lambda flag: stage[flag])

    def request(unit: str, arm: Arm, new_unit: bool) -> RequestEvent:
        return RequestEvent(time=0, flag="f", unit_id=unit, segment={}, arm=arm, route=arm.value, served_route=arm.value,
                            provider="p", model="m", status="ok", fallback=False, success=True, latency_ms=100,
                            ttft_ms=10, tokens_in=1, tokens_out=1, cost_usd=0.0, new_unit=new_unit)

    def units(arm: str, at: str) -> float:
        text = generate_latest(exp.registry).decode()
        return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
                   if s.name == c.UNITS and s.labels[c.VARIANT] == arm and s.labels["stage"] == at)

    exp.record([request("u1", Arm.BASELINE, True), request("u2", Arm.BASELINE, True), request("u1", Arm.BASELINE, False)])
    assert units("baseline", "internal") == 2
    stage["f"] = "5%"
    # the simulator marks these as not new (seen on this route before); in the new stage they are
    exp.record([request("u1", Arm.BASELINE, False), request("u1", Arm.BASELINE, False), request("u3", Arm.CANDIDATE, True)])
    assert units("baseline", "5%") == 1 and units("candidate", "5%") == 1
    assert units("baseline", "internal") == 2


def _unit_samples(exp: RouteMetricsExporter, name: str) -> dict[tuple[str, str, str], float]:
    text = generate_latest(exp.registry).decode()
    return {(x.labels[c.VARIANT], x.labels["stage"], x.labels["scope"]): x.value
            for fam in text_string_to_metric_families(text) for x in fam.samples if x.name == name}


def test_exporter_counts_units_seen_on_both_arms_once_on_each():
    stage = {"f": "20%"}
    exp = RouteMetricsExporter(stage_of=lambda flag: stage[flag])
    seg = {"plan": "pro", "region": "eu", "workflow": "w", "scope": "chat", "internal": "no"}

    def request(unit: str, arm: Arm) -> RequestEvent:
        return RequestEvent(time=0, flag="f", unit_id=unit, segment=seg, arm=arm, route=arm.value, served_route=arm.value,
                            provider="p", model="m", status="ok", fallback=False, success=True, latency_ms=100,
                            ttft_ms=10, tokens_in=1, tokens_out=1, cost_usd=0.0, new_unit=True)

    exp.record([request("u1", Arm.CANDIDATE), request("u2", Arm.BASELINE)])
    # the zero series is there before any crossover, so "none yet" differs from "not exported"
    assert _unit_samples(exp, c.CROSSED_UNITS) == {("candidate", "20%", "chat"): 0, ("baseline", "20%", "chat"): 0}
    exp.record([request("u1", Arm.BASELINE), request("u1", Arm.CANDIDATE), request("u1", Arm.BASELINE)])
    assert _unit_samples(exp, c.CROSSED_UNITS) == {("candidate", "20%", "chat"): 1, ("baseline", "20%", "chat"): 1}
    assert _unit_samples(exp, c.UNITS) == {("candidate", "20%", "chat"): 1, ("baseline", "20%", "chat"): 2}
    stage["f"] = "50%"  # a new stage: a unit moving to the candidate with the larger share is not crossover
    exp.record([request("u2", Arm.CANDIDATE)])
    assert _unit_samples(exp, c.CROSSED_UNITS)[("candidate", "50%", "chat")] == 0
    assert "internal" not in generate_latest(exp.registry).decode()  # only contract labels are exported


# ---- Unleash mapping, without a server -----------------------------------------------------


def _flag(**alloc) -> RouteFlag:
    return RouteFlag(
        key="k",
        variations={"base": RouteProfile(route="base"), "cand": RouteProfile(route="cand", model="m")},
        baseline="base", candidate="cand",
        allocation=Allocation(internal_audience="staff", eligible_scope="en", **alloc),
        rollout=RolloutState(stage=Stage.PCT5),
    )


def _env(flag: RouteFlag) -> dict:
    strategies = [dict(s, id=f"s{i}") for i, s in enumerate(render_strategies(flag))]
    return {"name": "development", "enabled": True, "strategies": strategies}


def test_strategies_round_trip_to_the_same_flag():
    flag = _flag(internal_enabled=True, candidate_bp=2000)
    env = _env(flag)
    assert [s["parameters"]["rollout"] for s in env["strategies"]] == ["100", "20", "100"]
    assert all(s["parameters"]["groupId"] == "k" for s in env["strategies"])
    back = parse_flag("k", env, "unleash:test")
    assert back.allocation == flag.allocation and back.variations == flag.variations and back.rollout == flag.rollout
    assert back.foreign_targeting is None and back.revision == revision_of(env)


def test_a_disabled_flag_or_edited_strategy_is_reported_as_foreign():
    env = _env(_flag(candidate_bp=500))
    env["enabled"] = False
    env["strategies"][1]["variants"][0]["name"] = "other"
    foreign = parse_flag("k", env, "unleash:test").foreign_targeting
    assert "flag is off" in foreign and "serves other" in foreign


def test_only_equality_predicates_become_constraints():
    assert predicate_to_constraint({"==": [{"var": "team"}, "support"]}, "audience")["values"] == ["support"]
    with pytest.raises(BadInput, match="cannot be an Unleash constraint"):
        predicate_to_constraint({"in": [{"var": "team"}, ["a", "b"]]}, "audience")


def test_unleash_spec_needs_a_token_and_keeps_it_out_of_describe(monkeypatch):
    monkeypatch.delenv("ROUTEDECK_UNLEASH_TOKEN", raising=False)
    with pytest.raises(BadInput, match="ROUTEDECK_UNLEASH_TOKEN"):
        UnleashPlatform.from_spec("unleash:http://u.test:4242?project=p&environment=production")
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", "*:*.secret")
    p = UnleashPlatform.from_spec("unleash:http://u.test:4242?project=p&environment=production")
    assert (p.project, p.environment) == ("p", "production") and "secret" not in p.describe()
    with pytest.raises(BadInput, match="unknown option 'env'"):
        UnleashPlatform.from_spec("unleash:http://u.test:4242?env=x")


def _http_backends():
    from adapters.flags.featbit import FeatBitPlatform
    from adapters.flags.launchdarkly import LaunchDarklyPlatform
    from adapters.flags.unleash_sdk import UnleashSdkEvaluator
    from adapters.metrics.clickhouse import ClickHouseSource

    return {"unleash": UnleashPlatform, "featbit": FeatBitPlatform, "launchdarkly": LaunchDarklyPlatform,
            "unleash-sdk": UnleashSdkEvaluator, "prometheus": PrometheusSource, "clickhouse": ClickHouseSource}


@pytest.mark.parametrize("backend, kind, options", [
    ("unleash", "unleash", "?project=p&environment=e"),
    ("featbit", "featbit", "?env=00000000-0000-0000-0000-000000000001"),
    ("launchdarkly", "launchdarkly", "?project=p&env=e"),
    ("unleash-sdk", "unleash", "?project=p&environment=e&refresh=5"),
    ("prometheus", "prometheus", "?slo_ms=2500"),
    ("clickhouse", "clickhouse", "?database=d&table=t"),
])
def test_every_http_backend_reads_its_spec_alike(backend, kind, options):
    """One reading of KIND:URL?OPTIONS for every HTTP flag platform and metrics source: the wrong kind or
    scheme, credentials in the URL (as user:password or as an option) and an unknown option are each one line
    naming the SPEC, the secret masked. Nothing is connected to: each fails before its client is made."""
    source = _http_backends()[backend]
    for spec, said in ((f"{kind}:ftp://h.test:1{options}", "expected " + kind + ":"),
                       (f"other:http://h.test:1{options}", "expected " + kind + ":"),
                       (f"{kind}:http://u:SEKRET@h.test:1{options}", "put no credentials in the URL — set "),
                       (f"{kind}:http://h.test:1{options}&api_token=SEKRET", "put no credentials in the URL — set "),
                       (f"{kind}:http://h.test:1{options}&colour=red", "unknown option 'colour' — use ")):
        with pytest.raises(BadInput) as err:
            source.from_spec(spec)
        assert said in str(err.value) and "SEKRET" not in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("kind, options", [
    ("unleash", "?project=p&environment=e"),
    ("featbit", "?env=00000000-0000-0000-0000-000000000001"),
    ("launchdarkly", "?project=p&env=e"),
])
def test_a_flag_platform_keeps_the_path_of_its_url(kind, options, monkeypatch):
    for env in ("ROUTEDECK_UNLEASH_TOKEN", "ROUTEDECK_FEATBIT_TOKEN", "ROUTEDECK_LAUNCHDARKLY_TOKEN"):
        monkeypatch.setenv(env, "tok-SEKRET")
    assert _http_backends()[kind].from_spec(f"{kind}:http://h.test:1/base{options}").base_url == "http://h.test:1/base"


def test_a_prerendered_page_changes_only_when_rendered():
    from tests.integration.servers import free_port

    exp = RouteMetricsExporter(stage_of=lambda flag: "5%")
    seg = {"plan": "pro", "region": "eu", "workflow": "w"}

    def request(unit: str) -> RequestEvent:
        return RequestEvent(time=0, flag="f", unit_id=unit, segment=seg, arm=Arm.CANDIDATE, route="r", served_route="r",
                            provider="p", model="m", status="ok", fallback=False, success=True, latency_ms=100,
                            ttft_ms=10, tokens_in=1, tokens_out=1, cost_usd=0.0, new_unit=True)

    def scraped_units(url: str) -> float:
        text = httpx.get(url, timeout=5).text
        return sum(x.value for fam in text_string_to_metric_families(text) for x in fam.samples if x.name == c.UNITS)

    port = free_port()
    exp.record([request("u1")])
    stop = exp.serve(port, prerendered=True)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert scraped_units(url) == 1  # nothing rendered yet: the first scrape renders
        exp.record([request("u2"), request("u3")])
        assert scraped_units(url) == 1  # a scrape hands out the last page, it does not write one
        exp.render()
        assert scraped_units(url) == 3
        assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=5).status_code == 404
    finally:
        stop()


def test_every_flag_platform_waits_as_long_as_the_profiles_timeout():
    """`timeout` in a profile bounds one request on every platform (a platform with its own fixed wait would
    keep an operator waiting in an incident however short the profile asks)."""
    from adapters.flags.featbit import FeatBitPlatform
    from adapters.flags.launchdarkly import LaunchDarklyPlatform
    from adapters.flags.unleash import UnleashPlatform
    from console.core.timeouts import Timeouts, use_timeouts

    use_timeouts(Timeouts(request_s=1.5))
    platforms = [
        LaunchDarklyPlatform("http://127.0.0.1:9", "api-x", "default", "production"),
        FeatBitPlatform("http://127.0.0.1:9", "token", "00000000-0000-0000-0000-000000000000"),
        UnleashPlatform("http://127.0.0.1:9", "token"),
    ]
    for platform in platforms:
        assert platform.http.client.timeout.read == 1.5, type(platform).__name__
        platform.close()
