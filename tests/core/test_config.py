"""Profiles config: where it is read from, what it holds, and one-line errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.core import credentials
from console.core.config import config_path, load_config, parse_config
from console.core.errors import BadInput

GOOD = """\
# routes for the support app
default_profile = "local"

[profiles.local]
flags = "flagd:flags.json"
metrics = "sim:steady?minutes=5"
rule = "rules/rule.yaml"
refresh = "2s"
window = "5m"
operator = "alice"

[profiles.prod]
flags = "unleash:https://unleash.internal?project=default&environment=production"
metrics = "prometheus:https://prom.internal:9090"
read_only = true
tls_verify = false
ca_bundle = "~/corp-ca.pem"
refresh = 3
"""


def _error(text: str, tmp_path: Path) -> str:
    path = tmp_path / "config.toml"
    with pytest.raises(BadInput) as err:
        parse_config(text, path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    return message.removeprefix(str(path))


def test_config_path_follows_env_then_xdg_then_home(tmp_path):
    assert config_path({"ROUTEDECK_CONFIG": "/etc/rd.toml", "XDG_CONFIG_HOME": "/x"}) == Path("/etc/rd.toml")
    assert config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/routedeck/config.toml")
    assert config_path({}) == Path.home() / ".config" / "routedeck" / "config.toml"


def test_profiles_load_with_paths_relative_to_the_file_and_durations_in_seconds(tmp_path):
    config = parse_config(GOOD, tmp_path / "config.toml")
    assert config.default_profile == "local" and sorted(config.profiles) == ["local", "prod"]
    local, prod = config.profiles["local"], config.profiles["prod"]
    assert local.flags == f"flagd:{tmp_path / 'flags.json'}"
    assert local.metrics == "sim:steady?minutes=5"
    assert local.rule == tmp_path / "rules" / "rule.yaml"
    assert (local.refresh_s, local.window_s, local.operator) == (2.0, 300.0, "alice")
    assert local.tls_verify and not local.read_only and local.tls.warning is None
    assert prod.flags.startswith("unleash:https://unleash.internal")  # only flagd paths are rewritten
    assert prod.read_only and prod.refresh_s == 3.0
    assert prod.ca_bundle == Path.home() / "corp-ca.pem"
    assert prod.tls.warning == "TLS verification OFF"
    assert local.where() == f"{tmp_path / 'config.toml'}:4"
    assert prod.where("tls_verify") == f"{tmp_path / 'config.toml'}:16"


def test_missing_default_file_is_an_empty_config_but_a_named_one_must_exist(tmp_path):
    assert load_config(environ={"XDG_CONFIG_HOME": str(tmp_path)}).profiles == {}
    with pytest.raises(BadInput, match="config file not found — create it or unset ROUTEDECK_CONFIG"):
        load_config(environ={"ROUTEDECK_CONFIG": str(tmp_path / "nope.toml")})


def test_unknown_profile_names_the_ones_there_are(tmp_path):
    config = parse_config(GOOD, tmp_path / "c.toml")
    with pytest.raises(BadInput, match=r"--profile staging: no such profile in .*c.toml — it has local, prod"):
        config.get("staging")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[profiles.a]\nflags = "flagd:x"\nmetrics = sim:steady\n',
         ":3: malformed TOML at key 'metrics': Invalid value (text values need quotes)"),
        ('[profiles.a\nflags = "flagd:x"\n', ":1: malformed TOML: Expected ']' at the end of a table declaration"),
        ('[profiles.a]\nflags = "flagd:x"\nflags = "flagd:y"\n', ":3: malformed TOML at key 'flags': Cannot overwrite"),
        ('[profiles.a]\nflags = "flagd:x"\n\n[profiles.b]\nmetrics = "sim:steady"\nflagz = "flagd:y"\n',
         ":6: profiles.b.flagz: unknown key — a profile takes flags, metrics, rule"),
        ('colour = "blue"\n[profiles.a]\n', ":1: unknown key 'colour' — the top level takes default_profile, profiles"),
        ('[profiles]\na = { flags = "flagd:x", windw = 3 }\n', ":2: profiles.a.windw: unknown key"),
        ('profiles.a.flags = "flagd:x"\nprofiles.a.read_only = "yes"\n',
         ":2: profiles.a.read_only: expected true or false, got 'yes'"),
        ('[profiles.a]\n\n\nrefresh = "fast"\n', ":4: profiles.a.refresh: expected seconds between refreshes"),
        ('[profiles.a]\nwindow = -5\n', ":2: profiles.a.window: expected the metrics window"),
        ('[profiles.a]\nflags = 42\n', ":2: profiles.a.flags: expected a flag platform SPEC such as \"flagd:PATH\", got a number"),
        ('[profiles.a]\nmetrics = "prometheus"\n', ":2: profiles.a.metrics: expected a metrics SPEC"),
        ('[profiles.a]\noperator = ""\n', ":2: profiles.a.operator: expected your name in the journal"),
        ('[profiles.a]\ntls_verify = 0\n', ":2: profiles.a.tls_verify: expected true or false, got a number"),
        ('default_profile = "zz"\n[profiles.a]\n', ":1: default_profile 'zz' names no profile — profiles: a"),
        ('profiles = 3\n', ":1: profiles must be a table"),
        ('[profiles."bad name"]\n', ":1: profile name 'bad name'"),
    ],
)
def test_malformed_config_is_one_line_with_file_line_and_key(tmp_path, text, expected):
    assert _error(text, tmp_path).startswith(expected)


def test_a_spec_holding_a_credential_is_refused_without_echoing_it(tmp_path):
    for spec in ("unleash:https://admin:hunter2@unleash.internal", "featbit:http://fb:5000?env=e&token=hunter2"):
        message = _error(f'[profiles.prod]\nflags = "{spec}"\n', tmp_path)
        assert message.startswith(":2: profiles.prod.flags: holds a credential — remove it and store it with `routedeck login prod`")
        assert "hunter2" not in message


def test_needed_credentials_follow_the_backend_kinds():
    names = lambda *specs: [c.name for c in credentials.needed_credentials(*specs)]  # noqa: E731
    assert names("flagd:x", "sim:steady") == []
    assert names("unleash:http://u", "prometheus:http://p") == ["unleash-token", "prometheus-token"]
    assert names("featbit:http://f?env=E", None) == ["featbit-token"]
    assert names("featbit:http://f?env=E&stream=ws://f:5100", None) == ["featbit-token", "featbit-secret"]
    assert names("flagd:x", "clickhouse:http://c:8123?database=d&table=t") == ["clickhouse-user", "clickhouse-password"]


def test_a_clickhouse_password_from_the_profiles_store_is_used_and_masked(monkeypatch):
    import base64

    from adapters.metrics.clickhouse import ClickHouseSource
    from console.core.redact import redact

    password = "store-" + "s3cret" * 3
    stored = {("prod", "clickhouse-user"): "reader", ("prod", "clickhouse-password"): password}
    monkeypatch.delenv("ROUTEDECK_CLICKHOUSE_PASSWORD", raising=False)
    try:
        credentials.register_store(lambda profile, name: stored.get((profile, name)))
        credentials.use_profile("prod")
        credentials.remember_all("prod")
        assert password not in redact(f"ClickHouse said: wrong password {password}")  # before any read
        source = ClickHouseSource.from_spec("clickhouse:http://127.0.0.1:9?database=d&table=t", arms_of={})
        sent = source.http.http.client.headers["Authorization"]
        assert sent == "Basic " + base64.b64encode(f"reader:{password}".encode()).decode()
        # a user name is no secret: one that is also an ordinary word does not vanish from every message
        stored[("prod", "clickhouse-user")] = "routedeck"
        credentials.remember_all("prod")
        ClickHouseSource.from_spec("clickhouse:http://127.0.0.1:9?database=d&table=t", arms_of={})
        assert redact("Quit routedeck?") == "Quit routedeck?"
    finally:
        credentials.register_store(None)
        credentials.use_profile(None)


def test_token_lookup_prefers_the_profile_store_then_the_environment(monkeypatch):
    stored = {("prod", "unleash-token"): "from-store"}
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", "from-env")
    try:
        credentials.register_store(lambda profile, name: stored.get((profile, name)))
        assert credentials.read_token("ROUTEDECK_UNLEASH_TOKEN") == "from-env"  # no profile: environment only
        credentials.use_profile("prod")
        assert credentials.read_token("ROUTEDECK_UNLEASH_TOKEN") == "from-store"
        assert credentials.token_origin("ROUTEDECK_UNLEASH_TOKEN") == "keyring"
        assert credentials.token_origin("ROUTEDECK_UNLEASH_TOKEN", "staging") == "env ROUTEDECK_UNLEASH_TOKEN"
        assert credentials.token_origin("ROUTEDECK_FEATBIT_TOKEN") == "missing"

        def broken(profile, name):
            raise RuntimeError("locked")

        credentials.register_store(broken)  # a failing store falls back to the environment
        assert credentials.read_token("ROUTEDECK_UNLEASH_TOKEN") == "from-env"
    finally:
        credentials.register_store(None)
        credentials.use_profile(None)


PROMETHEUS = """\
[profiles.prod]
metrics = "prometheus:https://prom.internal:9090"
prometheus_match = 'job="support", namespace=~"prod|prod-eu",'

[profiles.prod.prometheus_queries]
units = 'sum by ($by) (my_units_total{$match} $at)'
cost = '''
  sum by ($by) (my_cost_usd_total{$match} $at)
'''

[profiles.dotted]
metrics = "prometheus:https://prom.internal:9090"

prometheus_queries.exposures = 'sum by ($by) (seen_total{$match} $at)'
"""


def test_prometheus_match_and_queries_are_read_with_the_line_of_each_template(tmp_path):
    config = parse_config(PROMETHEUS, tmp_path / "config.toml")
    prod, dotted = config.profiles["prod"], config.profiles["dotted"]
    assert prod.prometheus_match == 'job="support", namespace=~"prod|prod-eu"'  # the trailing comma dropped
    assert prod.prometheus_queries == {
        "units": "sum by ($by) (my_units_total{$match} $at)",
        "cost": "sum by ($by) (my_cost_usd_total{$match} $at)",
    }
    where = f"{tmp_path / 'config.toml'}:"
    assert prod.where("prometheus_match") == where + "3"
    assert prod.where("prometheus_queries") == where + "5"
    assert (prod.where("prometheus_queries.units"), prod.where("prometheus_queries.cost")) == (where + "6", where + "7")
    assert dotted.prometheus_match == "" and dotted.where("prometheus_queries") == where + "14"
    assert dotted.prometheus_queries == {"exposures": "sum by ($by) (seen_total{$match} $at)"}
    assert parse_config(GOOD, tmp_path / "c.toml").profiles["prod"].prometheus_queries == {}  # none given


METRICS = '[profiles.a]\nmetrics = "prometheus:http://p:9090"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (METRICS + "prometheus_match = 3\n",
         (":3: profiles.a.prometheus_match: expected PromQL label matchers added to every Prometheus query, "
          "such as 'job=\"support\"', got a number")),
        (METRICS + "prometheus_match = 'job=support'\n",
         ":3: profiles.a.prometheus_match: not PromQL label matchers: 'job=support' — write them as label=\"value\""),
        (METRICS + "prometheus_match = '{job=\"support\"}'\n",
         ":3: profiles.a.prometheus_match: write the label matchers without the surrounding { }"),
        (METRICS + "prometheus_queries = 'units'\n",
         (":3: profiles.a.prometheus_queries: expected a table of metric family = PromQL template "
          "([profiles.NAME.prometheus_queries]), got 'units'")),
        (METRICS + "\n[profiles.a.prometheus_queries]\nunits = 'sum by ($by) (u{$match} $at)'\ncost = 4\n",
         (":6: profiles.a.prometheus_queries.cost: expected a PromQL template (a string holding $by, $match and $at), "
          "got a number")),
        (METRICS + "prometheus_queries = { latency = '' }\n",
         (":3: profiles.a.prometheus_queries.latency: expected a PromQL template (a string holding $by, $match and $at), "
          "got an empty string")),
        ('[profiles.a]\nmetrics = "sim:steady"\n\nprometheus_match = \'job="x"\'\n',
         (":4: profiles.a.prometheus_match: applies only to a prometheus: metrics source, and metrics is 'sim:steady' — "
          'remove the key or set metrics = "prometheus:URL"')),
        ('[profiles.a]\nmetrics = "sim:steady"\n[profiles.a.prometheus_queries]\nunits = "x"\n',
         ":3: profiles.a.prometheus_queries: applies only to a prometheus: metrics source"),
        ('[profiles.a]\nflags = "flagd:x"\nprometheus_querys = {}\n',
         (":3: profiles.a.prometheus_querys: unknown key — a profile takes flags, metrics, rule, refresh, window, "
          "operator, read_only, tls_verify, ca_bundle, prometheus_match, prometheus_queries")),
    ],
)
def test_prometheus_options_of_the_wrong_type_are_one_line_with_file_line_and_key(tmp_path, text, expected):
    assert _error(text, tmp_path).startswith(expected)


def test_prometheus_options_without_a_metrics_spec_wait_for_one_from_the_command_line(tmp_path):
    profile = parse_config('[profiles.a]\nprometheus_match = \'job="x"\'\n', tmp_path / "c.toml").profiles["a"]
    assert profile.metrics is None and profile.prometheus_match == 'job="x"'
