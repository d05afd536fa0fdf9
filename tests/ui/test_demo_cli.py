"""`routedeck demo` before any screen opens: help, option checks, and the state dir's flag file."""

from __future__ import annotations

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from console.cli import main
from console.commands.demo import prepare_state_dir
from console.core.simulator import SCENARIOS

FLAG = "support-answer-route"


def test_demo_help_lists_options_and_scenarios(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--scenario", "--seed", "--speed", "--state-dir"):
        assert option in out
    for name in SCENARIOS:
        assert name in out


def test_bad_speed_is_a_one_line_error(tmp_path, capsys):
    assert main(["demo", "--speed", "0", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("routedeck: --speed") and "\n" not in err
    assert not (tmp_path / "flags.json").exists()  # refused before anything was written


def test_unknown_scenario_names_the_valid_ones(tmp_path, capsys):
    assert main(["demo", "--scenario", "meltdown", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "meltdown" in err
    assert all(name in err for name in SCENARIOS)


def test_flag_file_starts_mid_rollout_and_an_existing_one_is_kept(tmp_path):
    path = prepare_state_dir(tmp_path)
    platform = FlagdFilePlatform(path)
    flag = platform.read_flag(FLAG)
    assert flag.allocation.candidate_bp == 500  # the demo starts at 5%
    platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 2000}), flag.revision)
    assert prepare_state_dir(tmp_path) == path
    assert FlagdFilePlatform(path).read_flag(FLAG).allocation.candidate_bp == 2000


def test_another_scenario_starts_afresh_and_the_same_one_says_the_earlier_state_is_in_use(tmp_path):
    from console.commands.demo import load_demo
    from console.core.journal import read_entries

    def run(scenario, seed):
        platform, metrics, flags, journal, rules, notes = load_demo(tmp_path, scenario, seed, 1.0)
        metrics.close()
        return notes

    assert run(None, 7) == []  # a first run: nothing earlier to speak of
    platform = FlagdFilePlatform(tmp_path / "flags.json")
    platform.rollback_to_baseline(FLAG)  # the operator rolled back in that run
    # the same scenario again: the earlier state is used, and the console says so and how to start over
    (note,) = run(None, 7)
    assert "the flags left by the last run of scenario steady (seed 7) are in use" in note and "--fresh" in note
    assert FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp == 0
    # another scenario: it starts from the demo's start (the candidate at 5% again), said in one line
    (note,) = run("provider-outage", 3)
    assert "scenario provider-outage (seed 3) starts from the demo's start" in note and "\n" not in note
    assert FlagdFilePlatform(tmp_path / "flags.json").read_flag(FLAG).allocation.candidate_bp == 500
    setups = [e.reason for e in read_entries(tmp_path / "journal.jsonl") if e.action == "init" and e.kind == "intent"]
    assert any("scenario provider-outage" in r for r in setups)  # the reset is journalled, the history kept
