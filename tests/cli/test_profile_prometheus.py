"""A profile's ``prometheus_match`` and ``prometheus_queries`` reach the Prometheus source the CLI
opens, and a template the source refuses is one line naming the config file and line."""

from __future__ import annotations

import pytest

from adapters.metrics.prometheus import DEFAULT_TEMPLATES, PrometheusSource
from console.cli import main
from console.core.errors import BackendError
from console.profiles import activate

from .test_profiles import RULE

UNITS = "sum by ($by) (support_units_total{$match} $at)"
PROFILE = """\
[profiles.prom]
flags = "flagd:flags.json"
metrics = "prometheus:http://127.0.0.1:9"
rule = "rule.yaml"
prometheus_match = 'job="support", namespace="prod"'

[profiles.prom.prometheus_queries]
units = '{units}'
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A flag file with one route flag, a rule, and a config file named by ROUTEDECK_CONFIG."""
    (tmp_path / "rule.yaml").write_text(RULE)
    assert main(["init", "--rule", str(tmp_path / "rule.yaml"), "--flags", f"flagd:{tmp_path / 'flags.json'}",
                 "--state-dir", str(tmp_path)]) == 0
    config = tmp_path / "config.toml"
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(config))
    monkeypatch.setenv("ROUTEDECK_OPERATOR", "")
    monkeypatch.delenv("ROUTEDECK_PROMETHEUS_TOKEN", raising=False)
    yield tmp_path, config
    activate(None)


@pytest.fixture
def opened(monkeypatch):
    """The Prometheus sources the CLI manages to open (any read stops the command before a query)."""
    sources: list[PrometheusSource] = []
    init = PrometheusSource.__init__

    def record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        sources.append(self)

    def read(self, start, end, step):
        raise BackendError("stopped by the test before any query")

    monkeypatch.setattr(PrometheusSource, "__init__", record)
    monkeypatch.setattr(PrometheusSource, "read", read)
    return sources


def test_a_command_under_the_profile_reads_with_its_templates_and_matchers(site, opened, capsys):
    tmp, config = site
    config.write_text(PROFILE.format(units=UNITS))
    code = main(["check", "--profile", "prom", "--state-dir", str(tmp)])
    out, err = capsys.readouterr()
    # nothing to decide before the first stage, but a source that cannot be read is said, never exit 0
    assert code == 1 and err == "routedeck: stopped by the test before any query\n", err
    [source] = opened
    assert source.templates["units"] == UNITS
    assert source.templates["cost"] == DEFAULT_TEMPLATES["cost"]  # families the profile leaves alone keep theirs
    assert source.match == 'job="support", namespace="prod"'


def test_a_prometheus_spec_from_the_command_line_gets_the_profile_options_too(site, opened, capsys):
    tmp, config = site
    config.write_text(PROFILE.format(units=UNITS))
    code = main(["check", "--profile", "prom", "--metrics", "prometheus:http://127.0.0.1:8", "--state-dir", str(tmp)])
    assert code == 1 and "stopped by the test" in capsys.readouterr().err
    [source] = opened
    assert source.base_url == "http://127.0.0.1:8"
    assert (source.templates["units"], source.match) == (UNITS, 'job="support", namespace="prod"')


def test_without_a_profile_the_source_keeps_the_default_queries(site, opened, capsys):
    tmp, _ = site
    code = main(["check", "--rule", str(tmp / "rule.yaml"), "--flags", f"flagd:{tmp / 'flags.json'}",
                 "--metrics", "prometheus:http://127.0.0.1:9", "--state-dir", str(tmp)])
    assert code == 1 and "stopped by the test" in capsys.readouterr().err
    [source] = opened
    assert source.templates == DEFAULT_TEMPLATES and source.match == ""


def test_routedeck_profiles_checks_with_the_profile_options(site, opened, capsys):
    _, config = site
    config.write_text(PROFILE.format(units=UNITS))
    code = main(["profiles"])
    out, _ = capsys.readouterr()
    assert code == 1 and "  check    FAIL stopped by the test before any query" in out
    assert '  match    job="support", namespace="prod"' in out and "  queries  units (the profile's own templates)" in out
    [source] = opened
    assert (source.templates["units"], source.match) == (UNITS, 'job="support", namespace="prod"')


@pytest.mark.parametrize(
    ("units", "line", "expected"),
    [
        (UNITS.replace(" $at", ""), 8,
         "profiles.prom.prometheus_queries.units: prometheus query template 'units': must contain $match"),
        ("sum by ($by) (u{$match} $at) $oops", 8,
         "profiles.prom.prometheus_queries.units: prometheus query template 'units': bad placeholder"),
    ],
)
def test_a_template_the_source_refuses_is_one_line_at_its_config_line(site, opened, capsys, units, line, expected):
    tmp, config = site
    config.write_text(PROFILE.format(units=units))
    code = main(["check", "--profile", "prom", "--state-dir", str(tmp)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and not opened
    assert err.startswith(f"routedeck: {config}:{line}: {expected}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_unknown_family_is_one_line_at_its_config_line_in_every_command(site, opened, capsys, monkeypatch):
    from console.app import RouteDeckApp

    monkeypatch.setattr(RouteDeckApp, "run", lambda self: 0)  # were the backends to open, start no console
    tmp, config = site
    config.write_text(PROFILE.format(units=UNITS) + "unitz = 'sum by ($by) (u{$match} $at)'\n")
    expected = (f"{config}:9: profiles.prom.prometheus_queries.unitz: prometheus query template 'unitz': "
                f"unknown family — use one of {', '.join(DEFAULT_TEMPLATES)}")
    for argv in (["check", "--profile", "prom", "--state-dir", str(tmp)],
                 ["--profile", "prom", "--state-dir", str(tmp)]):  # the console opens its backends first
        code = main(argv)
        out, err = capsys.readouterr()
        assert (code, out, err) == (2, "", f"routedeck: {expected}\n"), argv
    code = main(["profiles"])
    out, _ = capsys.readouterr()
    assert code == 1 and f"  check    FAIL {expected}\n" in out
    assert not opened


def test_a_sim_spec_from_the_command_line_ignores_the_prometheus_options(site, capsys):
    tmp, config = site
    config.write_text(PROFILE.format(units="not a template"))
    code = main(["check", "--profile", "prom", "--metrics", "sim:steady?minutes=5", "--state-dir", str(tmp)])
    out, err = capsys.readouterr()
    assert code == 0 and err == "" and out.startswith("support-answer-route  stage baseline")
