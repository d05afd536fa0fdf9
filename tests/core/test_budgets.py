"""Budgets: the config file and its one-line errors, spend and projections, and agreement with the dashboard."""

from __future__ import annotations

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from console.cli import main
from console.commands.demo import prepare_state_dir
from console.core.budgets import BudgetConfig, budget_report, month_seconds, parse_budgets
from console.core.errors import BadInput
from console.core.figures import route_figures

from ..ui.helpers import sim_source


def demo_report(tmp_path, config=None, units=True, scenario="steady"):
    path = prepare_state_dir(tmp_path)
    source = sim_source(path, scenario)
    platform = FlagdFilePlatform(path)
    flags = {k: platform.read_flag(k) for k in platform.list_flags()}
    now = source.now()
    snap = source.read(now - 300, now, 5)
    figures = route_figures(snap)
    unit_rows = [u for key in flags for u in source.read_units(key, snap.start)] if units else None
    return snap, figures, budget_report(snap, figures, flags, config or BudgetConfig.defaults(), unit_rows)


def test_shipped_example_names_every_budget_policy_of_the_demo_profiles():
    from console.core.simulator.portfolio import PROFILES

    config = BudgetConfig.defaults()
    assert {p.budget_policy for p in PROFILES.values()} <= set(config.policies)
    assert set(config.plans) == {"free", "pro", "enterprise"}


@pytest.mark.parametrize("text, words", [
    ("[policies.a]\nmonthly_usd = 'lots'\n", ":1: policies.a.monthly_usd: 'lots' is not a number"),
    ("\n\n[plans.pro]\nmonthly = 5\n", ":3: plans.pro: unknown key 'monthly'"),
    ("[policies.a]\n", ":1: policies.a: missing monthly_usd"),
    ("[policies.a]\nmonthly_usd = -3\n", "must be more than 0"),
    ("[policy.a]\nmonthly_usd = 3\n", "unknown key 'policy'"),
    ("[policies.a\n", "fix the TOML syntax"),
    ("currency = 'EUR'\n", "budgets are in USD"),
])
def test_bad_budgets_file_is_one_line_naming_file_line_and_field(text, words):
    with pytest.raises(BadInput) as err:
        parse_budgets(text, "b.toml")
    message = str(err.value)
    assert message.startswith("b.toml") and words in message and "\n" not in message


def test_missing_budgets_file_is_one_line_on_the_command_line(tmp_path, capsys):
    code = main(["demo", "--budgets", str(tmp_path / "nope.toml"), "--state-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "nope.toml: no such file" in err and "budgets.toml" in err and "Traceback" not in err


def test_spend_per_route_is_the_dashboards_cost_per_request_times_requests(tmp_path):
    snap, figures, report = demo_report(tmp_path)
    by_key = {f.key: f for f in figures}
    assert report.routes
    for r in report.routes:
        f = by_key[r.key]
        assert r.spend_usd == pytest.approx(f.values["cost_per_request"] * f.requests, rel=1e-9)
        assert r.cost_per_resolved == f.values["cost_per_resolved_case"]
        assert r.month_usd == pytest.approx(r.spend_usd * month_seconds(snap.end) / 300)
    policies = {p.name: p for p in report.policies}
    support = policies["standard_support_budget"]
    assert set(support.routes) == {"fast_default_v1", "balanced_core_v2"}
    assert support.spend_usd == pytest.approx(sum(r.spend_usd for r in report.routes
                                                  if r.key.flag == "support-answer-route"))
    # per plan, from per-unit data: the same money split another way
    assert sum(p.spend_usd for p in report.plans) == pytest.approx(sum(r.spend_usd for r in report.routes), rel=1e-6)


def test_what_if_prices_the_flags_resolved_tasks_at_the_candidates_cost_and_alerts(tmp_path):
    snap, figures, report = demo_report(tmp_path)
    w = next(w for w in report.whatifs if w.flag == "support-answer-route")
    cand = next(f for f in figures if f.key.flag == w.flag and f.key.arm.value == "candidate")
    assert w.candidate == "balanced_core_v2" and w.candidate_cost_per_resolved == cand.values["cost_per_resolved_case"]
    resolved = sum(c.resolved for k, c in snap.totals.items() if k.flag == w.flag)
    month = month_seconds(snap.end)
    assert w.month_usd(month) == pytest.approx(resolved / 300 * cand.values["cost_per_resolved_case"] * month)
    support = next(p for p in report.policies if p.name == "standard_support_budget")
    # every route of the flag spends from this policy: the what-if replaces all of it
    assert support.whatif_usd == pytest.approx(support.month_usd - w.flag_month_usd + w.month_usd(month))
    # the shipped example is set so the demo's candidate at 100% crosses the support budget, today's split does not
    assert not support.over and support.whatif_over
    assert any(a.startswith("what-if: with balanced_core_v2 on 100% of support-answer-route") for a in report.alerts)


def test_missing_budget_and_missing_unit_data_are_gaps_not_passes(tmp_path):
    config = parse_budgets("[policies.premium_budget]\nmonthly_usd = 1\n[plans.pro]\nmonthly_usd = 5\n", "mine.toml")
    _, _, report = demo_report(tmp_path, config, units=False)
    premium = next(p for p in report.policies if p.name == "premium_budget")
    assert premium.over and any(a.startswith("policy premium_budget") for a in report.alerts)
    assert any("standard_support_budget" in g and "no budget in mine.toml" in g for g in report.gaps)
    assert any("per-unit data" in g for g in report.gaps)
    assert report.plans == []
