"""Rule defaults by scope: guardrails declared once in the config by flag-name pattern or rule tag, given
to every matching rule that does not guard the metric itself, and shown with where each came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.cli import main
from console.core.config import parse_config
from console.core.errors import BadInput
from console.core.rule_defaults import use_rule_defaults
from console.core.rules import load_rule

DEMO_RULE = Path(__file__).parents[2] / "console" / "core" / "data" / "rule-demo.yaml"
CONFIG = """default_profile = "p"

[profiles.p]
flags = "flagd:{flags}"
metrics = "sim:steady?minutes=5"

[[rule_defaults]]
flags = "support-*"
guardrails = ["p95_ttft", {{metric = "correction_rate", margin = 0.01}}]

[[rule_defaults]]
tags = ["customer-facing"]
guardrails = ["cost_per_request"]
"""


@pytest.fixture(autouse=True)
def no_defaults():
    yield
    use_rule_defaults(())


def rule_text(flag: str = "support-answer-route", tags: str = "") -> str:
    text = DEMO_RULE.read_text().replace("support-answer-route", flag)
    return text.replace("  auto_rollback: true\n", f"  auto_rollback: true\n{tags}")


def test_matching_rules_get_the_defaults_the_rule_does_not_set_itself(tmp_path: Path) -> None:
    config = parse_config(CONFIG.format(flags=tmp_path / "f.json"), tmp_path / "config.toml")
    use_rule_defaults(config.rule_defaults)
    (tmp_path / "rule.yaml").write_text(rule_text())
    rule = load_rule(tmp_path / "rule.yaml")
    inherited = rule.inherited_guards()
    assert set(inherited) == {"p95_ttft"}  # correction_rate is the rule's own: its word wins
    assert inherited["p95_ttft"] == f"{tmp_path / 'config.toml'}:7 (rule_defaults for flags support-*)"
    assert rule.guard_origins["correction_rate"].startswith(f"{tmp_path / 'rule.yaml'}:")
    assert next(g for g in rule.spec.guardrails if g.metric == "correction_rate").margin == 0.03
    assert any(g.metric == "p95_ttft" for g in rule.spec.guardrails)
    use_rule_defaults(())
    bare = load_rule(tmp_path / "rule.yaml")
    assert not bare.inherited_guards() and bare.rule_hash != rule.rule_hash  # the hash covers what it got
    # by tag, on a flag the pattern does not match
    use_rule_defaults(config.rule_defaults)
    (tmp_path / "other.yaml").write_text(rule_text("billing-route", "  tags: [customer-facing]\n"))
    other = load_rule(tmp_path / "other.yaml")
    assert set(other.inherited_guards()) == {"cost_per_request"}
    (tmp_path / "plain.yaml").write_text(rule_text("billing-route"))
    assert not load_rule(tmp_path / "plain.yaml").inherited_guards()


def test_check_shows_where_each_guard_came_from(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "config.toml").write_text(CONFIG.format(flags=tmp_path / "flags.json"))
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "rule.yaml").write_text(rule_text())
    assert main(["init", "--rule", str(tmp_path / "rule.yaml"), "--state-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    main(["check", "--rule", str(tmp_path / "rule.yaml"), "--state-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"p95_ttft                 {tmp_path / 'config.toml'}:7 (rule_defaults for flags support-*)" in out
    assert f"note: guardrail p95_ttft from {tmp_path / 'config.toml'}:7" in out
    main(["check", "--rule", str(tmp_path / "rule.yaml"), "--state-dir", str(tmp_path), "--json"])
    doc = json.loads(capsys.readouterr().out)
    origins = {g["metric"]: g["origin"] for g in doc["guardrails"]}
    assert "rule_defaults" in origins["p95_ttft"] and "rule.yaml" in origins["correction_rate"]


@pytest.mark.parametrize("table,words", [
    ('[[rule_defaults]]\nguardrails = ["p95_ttft"]\n', ":1: rule_defaults needs flags"),
    ('[[rule_defaults]]\nflags = "x-*"\nguards = ["p95_ttft"]\n', ":1: rule_defaults: unknown key 'guards'"),
    ('[[rule_defaults]]\nflags = "x-*"\nguardrails = []\n', "non-empty list"),
])
def test_bad_defaults_are_one_line_naming_the_table(tmp_path: Path, table: str, words: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_config(table, tmp_path / "config.toml")
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_default_metric_names_the_config_line(tmp_path: Path) -> None:
    config = parse_config('[[rule_defaults]]\nflags = "support-*"\nguardrails = ["vibes"]\n', tmp_path / "c.toml")
    use_rule_defaults(config.rule_defaults)
    (tmp_path / "rule.yaml").write_text(rule_text())
    with pytest.raises(BadInput) as caught:
        load_rule(tmp_path / "rule.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'c.toml'}:1 (rule_defaults for flags support-*): guardrail 'vibes'")
