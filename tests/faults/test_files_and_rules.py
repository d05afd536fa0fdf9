"""Files that fight back: a YAML bomb and non-finite numbers in rules and profiles (items 4, 7), a flag
file nested beyond reading (15), a held lock (13), hand edits racing a write (14), the file's mode and
group (16), an optional backend not installed (10), and a rollout state from another version (19)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib

import pytest

from adapters.flags import flagd_file
from adapters.flags.flagd_file import FlagdFilePlatform
from console.cli import main
from console.core.errors import BadInput, ConflictError
from console.core.rules import parse_rule
from console.core.versions import STATE_SCHEMA, engine_version

from .helpers import ROOT, write_profile

FLAG = "support-answer-route"
RULE = f"""llm_route_decision:
  flag_key: {FLAG}
  candidate_route: balanced_core_v2
  baseline_route: fast_default_v1
  primary_metric: resolved_without_escalation
  guardrails:
    - fallback_rate
  stages:
    - {{name: 5%, share: 5%, internal: false, min_units: 10, min_dwell: 0s}}
    - {{name: 20%, share: 20%, internal: false, min_units: 10, min_dwell: 0s}}
"""


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def site(tmp_path, capsys):
    (tmp_path / "rule.yaml").write_text(RULE)
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)]
    assert run(capsys, "init", "--rule", tmp_path / "rule.yaml", *common)[0] == 0
    return tmp_path, common


# ---- item 4: YAML bomb ---------------------------------------------------------------------------

def test_a_yaml_bomb_in_a_rule_is_refused_at_its_first_alias(tmp_path, capsys):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 6)]
    (tmp_path / "bomb.yaml").write_text(RULE + "\n".join(f"  {line}" for line in levels) + "\n")
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", tmp_path]
    code, _, err = run(capsys, "init", "--rule", tmp_path / "bomb.yaml", *common)
    assert code == 2 and err.count("\n") == 1, err
    assert f"bomb.yaml:{RULE.count(chr(10)) + 2}:" in err and "aliases" in err, err
    assert not (tmp_path / "flags.json").exists()


def test_a_rule_nested_beyond_reading_is_one_line():
    with pytest.raises(BadInput, match="nested too deeply"):
        parse_rule("[" * 50_000, "deep.yaml")


# ---- item 7: NaN and infinity ---------------------------------------------------------------------

@pytest.mark.parametrize("line, field", [
    ("  alpha: .nan", "alpha"),
    ("  latency_target_ms: .inf", "latency_target_ms"),
    ("  gates: {join_coverage: {floor: .nan}}", "gates.join_coverage.floor"),
])
def test_non_finite_numbers_in_a_rule_are_refused_naming_file_line_and_field(line, field):
    with pytest.raises(BadInput) as exc:
        parse_rule(RULE + line + "\n", "rule.yaml")
    assert str(exc.value).startswith(f"rule.yaml:{RULE.count(chr(10)) + 1}: {field}:"), exc.value
    assert "not a finite number" in str(exc.value)


def test_a_nan_margin_cannot_switch_a_critical_guardrail_off(site, capsys):
    """A NaN margin on fallback_rate loaded, a 34% vs 1% fallback outage read HOLD instead of ROLLBACK.
    Now the rule is refused before anything is judged."""
    tmp, common = site
    rule = RULE.replace("    - fallback_rate", "    - {metric: fallback_rate, margin: .nan}")
    (tmp / "nan.yaml").write_text(rule)
    code, out, err = run(capsys, "check", "--rule", tmp / "nan.yaml", *common, "--metrics",
                         "sim:provider-outage?minutes=20&seed=3")
    assert code == 2 and "nan.yaml:7: guardrails[0].margin:" in err and "not a finite number" in err, out + err


def test_non_finite_numbers_in_route_profiles_and_config_profiles_are_refused(tmp_path, capsys):
    (tmp_path / "rule.yaml").write_text(RULE)
    (tmp_path / "profiles.json").write_text('{\n "fast_default_v1": {"route": "fast_default_v1"},\n'
                                            ' "balanced_core_v2": {"route": "balanced_core_v2", "temperature": NaN}\n}\n')
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", tmp_path]
    code, _, err = run(capsys, "init", "--rule", tmp_path / "rule.yaml", "--profiles", tmp_path / "profiles.json", *common)
    assert code == 2 and f"{tmp_path / 'profiles.json'}:3: NaN is not a finite number" in err, err
    config = tmp_path / "config.toml"
    config.write_text('[profiles.p]\nflags = "flagd:flags.json"\nrefresh = nan\n')
    os.environ["ROUTEDECK_CONFIG"] = str(config)
    try:
        code, _, err = run(capsys, "check", "--profile", "p", "--rule", tmp_path / "rule.yaml", "--metrics", "sim:aa")
    finally:
        del os.environ["ROUTEDECK_CONFIG"]
    assert code == 2 and f"{config}:3: profiles.p.refresh:" in err, err
    # a flag file carrying a NaN knob in a profile is refused when read, naming the file and line
    (tmp_path / "flags.json").write_text('{"flags": {"f": {"state": "ENABLED", "defaultVariant": "a",\n'
                                         '  "variants": {"a": {"route": "a", "temperature": Infinity}}}}}\n')
    with pytest.raises(BadInput, match=r"flags.json:2: Infinity is not a finite number"):
        FlagdFilePlatform(tmp_path / "flags.json").read_flag("f")


# ---- item 15: a flag file nested beyond reading --------------------------------------------------

def test_a_flag_file_nested_200k_deep_names_the_file(tmp_path, capsys):
    (tmp_path / "flags.json").write_text('{"flags": ' + "[" * 200_000 + "]" * 200_000 + "}")
    code, _, err = run(capsys, "rollback", "--flag", FLAG, "--flags", f"flagd:{tmp_path / 'flags.json'}",
                       "--state-dir", tmp_path)
    assert code == 2 and f"{tmp_path / 'flags.json'}: nested too deeply" in err and "unexpected" not in err, err


# ---- item 13: a held lock ------------------------------------------------------------------------

LOCKER = """
import fcntl, sys, time
fh = open(sys.argv[1], "a+")
fcntl.flock(fh, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(120)
"""


def test_a_held_flag_file_lock_is_an_error_naming_it_not_a_silent_wait(site):
    tmp, common = site
    config = write_profile(tmp, f"flagd:{tmp / 'flags.json'}", None, lock_timeout="1s", rollback_within="2s")
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(tmp / "flags.json.lock")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        done = subprocess.run([sys.executable, "-m", "console.cli", "rollback", "--flag", FLAG, "--profile", "faults",
                               "--state-dir", str(tmp)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "ROUTEDECK_CONFIG": str(config)})
    finally:
        locker.kill()
        locker.wait()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "still locked by another process after 1 s" in done.stderr and "flags.json.lock" in done.stderr
    assert "not confirmed" in done.stderr


# ---- item 14: hand edits racing routedeck's writes -----------------------------------------------

def hand_edit(path, note: str) -> None:
    """An editor saving the file: another flag in it gets a note (no lock: editors take none)."""
    doc = json.loads(path.read_text())
    doc["flags"]["other"] = {"state": "ENABLED", "defaultVariant": "on", "variants": {"on": True, "off": False},
                             "metadata": {"note": note}}
    path.write_text(json.dumps(doc, indent=2))


def test_a_hand_edit_landing_during_a_write_is_never_overwritten(site, monkeypatch):
    tmp, _ = site
    path = tmp / "flags.json"
    platform = FlagdFilePlatform(path)
    real = FlagdFilePlatform._atomic_write
    edited = []

    def racing(self, doc, *args, **kwargs):
        if not edited:
            hand_edit(path, "edited by hand during the write")
            edited.append(True)
        return real(self, doc, *args, **kwargs)

    monkeypatch.setattr(FlagdFilePlatform, "_atomic_write", racing)
    flag = platform.read_flag(FLAG)
    with pytest.raises(ConflictError, match="edited by someone else"):
        platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 500}), flag.revision)
    doc = json.loads(path.read_text())
    assert doc["flags"]["other"]["metadata"]["note"] == "edited by hand during the write"
    assert not [p for p in tmp.iterdir() if p.name.endswith(".tmp")]


def test_a_hand_edit_between_the_exchange_check_and_the_swap_is_given_back(site, monkeypatch):
    """The narrowest window: the edit lands after the last comparison, as the new file is swapped in."""
    tmp, _ = site
    path = tmp / "flags.json"
    platform = FlagdFilePlatform(path)
    real = flagd_file._exchange
    calls = []

    def late_edit(a, b):
        if not calls:
            hand_edit(path, "saved at the last moment")
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(flagd_file, "_exchange", late_edit)
    flag = platform.read_flag(FLAG)
    with pytest.raises(ConflictError):
        platform.set_allocation(FLAG, flag.allocation.model_copy(update={"candidate_bp": 500}), flag.revision)
    assert json.loads(path.read_text())["flags"]["other"]["metadata"]["note"] == "saved at the last moment"
    assert len(calls) == 2  # swapped in, then given back


def test_a_rollback_whose_read_back_sees_a_later_hand_edit_still_holds(site, capsys, monkeypatch):
    """Right after the rollback's write, someone edits the candidate's profile by hand: routing is rolled back,
    so the rollback is confirmed (before: "not confirmed by read-back", exit 1)."""
    tmp, common = site
    run(capsys, "advance", "--rule", tmp / "rule.yaml", *common, "--metrics", "sim:steady?minutes=5", "--override",
        "--reason", "t")
    path = tmp / "flags.json"
    real = FlagdFilePlatform._commit
    done = []

    def then_edit(self, doc, key, *args, **kwargs):
        real(self, doc, key, *args, **kwargs)
        if not done and key == FLAG:
            raw = json.loads(path.read_text())
            raw["flags"][FLAG]["variants"]["balanced_core_v2"]["maxOutputTokens"] = 123
            path.write_text(json.dumps(raw, indent=2))
            done.append(True)

    monkeypatch.setattr(FlagdFilePlatform, "_commit", then_edit)
    code, out, err = run(capsys, "rollback", "--flag", FLAG, *common)
    assert code == 0 and "confirmed by read-back" in out, out + err
    flag = FlagdFilePlatform(path).read_flag(FLAG)
    assert flag.allocation.candidate_bp == 0 and flag.rollout.stage.value == "rolled_back"


# ---- item 16: mode and group ---------------------------------------------------------------------

def test_the_flag_file_is_readable_by_the_application_and_its_mode_and_group_can_be_set(tmp_path, capsys):
    (tmp_path / "rule.yaml").write_text(RULE)
    old = os.umask(0o022)
    try:
        assert run(capsys, "init", "--rule", tmp_path / "rule.yaml", "--flags", f"flagd:{tmp_path / 'a.json'}",
                   "--state-dir", tmp_path)[0] == 0
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644  # others (the application) can read
        spec = f"flagd:{tmp_path / 'b.json'}?mode=0640&group=1"
        assert run(capsys, "init", "--rule", tmp_path / "rule.yaml", "--flags", spec, "--state-dir", tmp_path)[0] == 0
        st = (tmp_path / "b.json").stat()
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == 1
        code, _, _ = run(capsys, "rollback", "--flag", FLAG, "--flags", f"flagd:{tmp_path / 'b.json'}",
                         "--state-dir", tmp_path)
        st = (tmp_path / "b.json").stat()
        assert code == 0 and stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == 1  # kept by later writes
    finally:
        os.umask(old)
    code, _, err = run(capsys, "rollback", "--flag", FLAG, "--flags", f"flagd:{tmp_path / 'b.json'}?mode=999",
                       "--state-dir", tmp_path)
    assert code == 2 and "mode '999' must be octal" in err


# ---- item 10: an optional backend that is not installed -------------------------------------------

def test_simulate_on_unleash_without_its_sdk_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "UnleashClient", None)  # as after `pip install .` without the extra
    monkeypatch.delitem(sys.modules, "adapters.flags.unleash_sdk", raising=False)
    monkeypatch.setenv("ROUTEDECK_UNLEASH_CLIENT_TOKEN", "client-token-123456")
    from tests.integration.servers import free_port

    code, out, err = run(capsys, "simulate", "--flags", "unleash:http://127.0.0.1:9", "--listen",
                         f"127.0.0.1:{free_port()}", "--duration", "1")
    assert code == 2 and "pip install 'routedeck[unleash]'" in err and "ModuleNotFoundError" not in err, out + err
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("UnleashClient") for dep in extras["unleash"])


# ---- item 19: version skew -------------------------------------------------------------------------

def with_state(tmp, **fields) -> None:
    platform = FlagdFilePlatform(tmp / "flags.json")
    flag = platform.read_flag(FLAG)
    platform.set_rollout_state(FLAG, flag.rollout.model_copy(update=fields), flag.revision)


def test_an_older_routedeck_never_overwrites_state_a_newer_one_wrote_but_can_roll_back(site, capsys):
    tmp, common = site
    run(capsys, "advance", "--rule", tmp / "rule.yaml", *common, "--metrics", "sim:steady?minutes=5", "--override",
        "--reason", "t")
    flag = FlagdFilePlatform(tmp / "flags.json").read_flag(FLAG)
    assert flag.rollout.state_schema == STATE_SCHEMA and flag.rollout.engine == engine_version()
    with_state(tmp, state_schema=STATE_SCHEMA + 1, writer="9.1.0", future_field={"kept": True})
    for argv in (["advance", "--rule", tmp / "rule.yaml", *common, "--metrics", "sim:steady?minutes=5", "--override",
                  "--reason", "t"],
                 ["guard", "--rule", tmp / "rule.yaml", *common, "--metrics", "sim:steady?minutes=5", "--max-looks", "1"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "written by routedeck 9.1.0" in err and "install routedeck>=9.1.0" in err, (argv, err)
    code, out, err = run(capsys, "rollback", "--flag", FLAG, *common)
    assert code == 0, out + err
    after = FlagdFilePlatform(tmp / "flags.json").read_flag(FLAG)
    assert after.rollout.stage.value == "rolled_back" and after.allocation.candidate_bp == 0
    assert after.rollout.state_schema == STATE_SCHEMA + 1 and after.rollout.future_field == {"kept": True}


def test_an_engine_change_in_the_middle_of_a_stage_holds_until_acknowledged(site, capsys):
    tmp, common = site
    run(capsys, "advance", "--rule", tmp / "rule.yaml", *common, "--metrics", "sim:steady?minutes=5", "--override",
        "--reason", "t")
    metrics = ["--metrics", "sim:steady?minutes=90&seed=3"]
    code, out, _ = run(capsys, "check", "--rule", tmp / "rule.yaml", *common, *metrics)
    assert code == 0, out  # healthy traffic advances under the engine the stage started with
    with_state(tmp, engine="0ld3n61ne000")
    code, out, _ = run(capsys, "check", "--rule", tmp / "rule.yaml", *common, *metrics)
    assert code == 3 and "decision engine 0ld3n61ne000" in out and "ack --engine" in out, out
    code, out, err = run(capsys, "ack", "--rule", tmp / "rule.yaml", *common, "--engine")
    assert code == 0 and f"decision engine {engine_version()}" in out, out + err
    code, out, _ = run(capsys, "check", "--rule", tmp / "rule.yaml", *common, *metrics)
    assert code == 0, out
    entries = [json.loads(line) for line in (tmp / "journal.jsonl").read_text().splitlines()]
    assert "acknowledge_engine" in [e["action"] for e in entries]
