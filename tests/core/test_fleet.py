"""The fleet's bucketing rule end to end: the simulator serving a mixed fleet (two services, one per
flagd evaluator) makes the crossover gate fail and name the mixed fleet as the likely cause; the same
traffic from one evaluator passes it. The profile setting is checked and warned about."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from adapters.metrics.simulated import SimulatedMetricsSource
from console.core.config import load_config
from console.core.errors import BadInput
from console.core.fleet import MIXED_WARNING, fleet_rule, use_fleet
from console.core.models import RolloutState, Stage
from console.core.operations import look
from console.core.rules import load_rule
from console.core.simulator.evaluator import FlagdFileEvaluator
from console.core.simulator.portfolio import demo_flags

RULE = Path(__file__).parents[2] / "console" / "core" / "data" / "rule-demo.yaml"
FLAG = "support-answer-route"
EPOCH = 1_800_000_000.0


@pytest.fixture(autouse=True)
def default_fleet():
    yield
    use_fleet(None)


def decision_on(tmp_path: Path, fleet: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "flags.json"
    platform = FlagdFilePlatform(path)
    for demo in demo_flags(fresh=True):
        platform.create_flag(demo)
    flag = platform.read_flag(FLAG)
    started = datetime.fromtimestamp(EPOCH - 1800, tz=timezone.utc)
    rule = load_rule(RULE)
    platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 2000}), flag.revision,
                            rollout=RolloutState(stage=Stage.PCT20, stage_started_at=started, rule_hash=rule.rule_hash))
    use_fleet(fleet)
    metrics = SimulatedMetricsSource(FlagdFileEvaluator(path), "steady", seed=5, sim_epoch=EPOCH,
                                     clock=lambda: 0.0, warmup_s=1800)
    return look(rule, platform, metrics).decision


def crossover(decision):
    return next(g for g in decision.health if g.name == "crossover")


def test_a_mixed_fleet_fails_the_crossover_gate_which_names_it(tmp_path: Path) -> None:
    decision = decision_on(tmp_path, "mixed")
    gate = crossover(decision)
    assert gate.status.value == "fail", gate
    assert "likely cause: the fleet is declared mixed" in gate.detail
    assert f"warning: {MIXED_WARNING}" in decision.reasons


def test_one_evaluator_fleet_passes_the_same_traffic(tmp_path: Path) -> None:
    for fleet in ("cbor", "concat"):
        decision = decision_on(tmp_path / fleet, fleet)
        gate = crossover(decision)
        assert gate.status.value == "pass", (fleet, gate)
        assert not any("mixed" in r for r in decision.reasons)


def test_the_profile_setting_is_checked_and_activates_the_rule(tmp_path: Path, monkeypatch, capsys) -> None:
    import argparse

    from console.profiles import apply_profile

    config = tmp_path / "config.toml"
    config.write_text('[profiles.a]\nflags = "flagd:f.json"\nfleet_bucketing = "mixed"\n'
                      '[profiles.b]\nflags = "flagd:f.json"\nfleet_bucketing = "javascript"\n')
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(config))
    with pytest.raises(BadInput) as caught:
        load_config()
    assert f"{config}:6" in str(caught.value) and "fleet_bucketing" in str(caught.value)
    config.write_text('[profiles.a]\nflags = "flagd:f.json"\nfleet_bucketing = "mixed"\n')
    apply_profile(argparse.Namespace(profile="a", flags=None))
    assert fleet_rule() == "mixed"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and f"{config}:3" in err and "fleet is declared mixed" in err


def test_profiles_lists_the_fleet_rule(tmp_path: Path, monkeypatch, capsys) -> None:
    from console.cli import main

    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.js]\nflags = "flagd:{tmp_path / "f.json"}"\nfleet_bucketing = "concat"\n')
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(config))
    main(["profiles"])
    out = capsys.readouterr().out
    assert "  fleet    concat: murmur3 of flag key + targeting key (JavaScript @openfeature/flagd-core 4.0.1)" in out
