"""The metric registry knows the rule vocabulary; the price table prices calls and takes overrides."""

from __future__ import annotations

import pytest

from console.core.errors import BadInput
from console.core.models import RouteProfile
from console.core.pricing import PricingTable
from console.core.registry import Direction, MetricKind, find_in_text, lookup, resolve

SEED_RULE_METRICS = (
    "resolved_without_escalation", "cost_per_resolved_case", "p95_latency",
    "correction_rate", "fallback_rate", "complaint_rate",
)


@pytest.mark.parametrize("name", SEED_RULE_METRICS)
def test_seed_rule_metrics_are_registered(name):
    metric = lookup(name)
    assert metric is not None and metric.name == name


def test_aliases_case_and_direction():
    assert lookup("Cost_Per_Successful_Task").name == "cost_per_resolved_case"
    assert lookup("latency_p95").kind is MetricKind.QUANTILE
    assert lookup("resolved_rate").direction is Direction.HIGHER_IS_BETTER
    assert lookup("fallback_rate").worse_is_higher
    assert lookup("no_such_metric") is None


def test_resolve_error_names_where_and_known_metrics():
    with pytest.raises(BadInput) as err:
        resolve("p99_latncy", "rule.yaml:7: guardrails[2]")
    text = str(err.value)
    assert text.startswith("rule.yaml:7: guardrails[2]: unknown metric 'p99_latncy'")
    assert "p95_latency" in text and "\n" not in text


def test_find_in_text_maps_free_text_lines():
    assert find_in_text("cost_per_resolved_case stays inside budget").name == "cost_per_resolved_case"
    assert find_in_text("p95_latency stays inside service target").name == "p95_latency"
    assert find_in_text("severe quality failure appears") is None


def test_default_prices_cost_a_call():
    table = PricingTable.defaults()
    profile = RouteProfile(route="balanced_core_v2", model="provider-b/balanced")
    assert table.cost(profile, 1_000_000, 0) == pytest.approx(0.45)
    assert table.cost(profile, 1000, 500) == pytest.approx((1000 * 0.45 + 500 * 1.80) / 1e6)
    # a profile without a model is priced under its route name
    assert table.cost(RouteProfile(route="fast_default_v1"), 0, 1_000_000) == pytest.approx(1.60)
    # unknown models are unknown, never free
    assert table.cost(RouteProfile(route="mystery", model="x/y"), 10, 10) is None


def test_user_file_overrides_and_extends(tmp_path):
    f = tmp_path / "pricing.toml"
    f.write_text('[models."provider-b/balanced"]\ninput = 2.0\noutput = 8.0\n[models."new/model"]\ninput = 1\noutput = 1\n')
    table = PricingTable.load(f)
    assert table.price_for(RouteProfile(route="r", model="provider-b/balanced")).input_per_mtok == 2.0
    assert "new/model" in table.models() and "provider-a/mini" in table.models()


@pytest.mark.parametrize(
    "text, message",
    [
        ("[models.x\ninput = 1", "TOML"),
        ('[models."m"]\ninput = 1\n', "missing 'output'"),
        ('[models."m"]\ninput = "cheap"\noutput = 1\n', "must be numbers"),
        ('[models."m"]\ninput = 1\noutput = 1\ncurrency = "EUR"\n', "unknown key 'currency'"),
        ('[models."m"]\ninput = -1\noutput = 1\n', "negative"),
    ],
)
def test_bad_pricing_file_is_a_one_line_error(tmp_path, text, message):
    f = tmp_path / "pricing.toml"
    f.write_text(text)
    with pytest.raises(BadInput) as err:
        PricingTable.load(f)
    assert message in str(err.value) and str(f) in str(err.value) and "\n" not in str(err.value)
