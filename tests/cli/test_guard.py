"""`routedeck guard` against the simulator: rolls back a regression, leaves an A/A run alone, and holds a lease."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.flags.flagd_file import FlagdFilePlatform
from console.cli import main
from console.commands import guard as guard_cmd
from console.core import lease, operations
from console.core.journal import read_entries, verify
from console.core.models import Lease

from .test_rollout_commands import FLAG, RULE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rollout_at_20(tmp_path_factory):
    """A rollout advanced to the 20% stage on healthy simulated traffic, built once for the module."""
    tmp = tmp_path_factory.mktemp("at20")
    rule = tmp / "rule.yaml"
    rule.write_text(RULE)
    common = ["--flags", f"flagd:{tmp / 'flags.json'}", "--state-dir", str(tmp)]
    assert main(["init", "--rule", str(rule), *common]) == 0
    for _ in range(3):  # → internal → 5% → 20%
        assert main(["advance", "--rule", str(rule), *common, "--metrics", "sim:steady?minutes=60&seed=3"]) == 0
    return tmp


@pytest.fixture
def at_20(rollout_at_20, tmp_path, capsys):
    """A private copy of the 20% rollout (flag file, its history, the journal) for one test."""
    for name in ("rule.yaml", "flags.json", "flags.json.history.jsonl", "journal.jsonl"):
        if (rollout_at_20 / name).exists():
            shutil.copy2(rollout_at_20 / name, tmp_path / name)
    capsys.readouterr()
    common = ["--flags", f"flagd:{tmp_path / 'flags.json'}", "--state-dir", str(tmp_path)]
    return tmp_path / "rule.yaml", common, tmp_path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def platform(tmp: Path) -> FlagdFilePlatform:
    return FlagdFilePlatform(tmp / "flags.json")


def guard(rule, common, scenario: str, *extra) -> list[str]:
    return ["guard", "--rule", rule, *common, "--metrics", f"sim:{scenario}?minutes=2&seed=3", "--interval", "60", *extra]


def test_guard_rolls_back_a_provider_outage(at_20, capsys):
    rule, common, tmp = at_20
    code, out, err = run(capsys, *guard(rule, common, "provider-outage", "--max-looks", "20"))
    assert code == 4, out + err
    look_lines = [line for line in out.splitlines() if " stage 20% " in line]
    assert look_lines and "ROLLBACK" in look_lines[-1] and "rollback:" in look_lines[-1]
    assert "confirmed by read-back: support-answer-route serves 100% fast_default_v1" in out
    flag = platform(tmp).read_flag(FLAG)
    assert flag.allocation.candidate_bp == 0 and not flag.allocation.internal_enabled
    assert flag.rollout.stage.value == "rolled_back"
    assert flag.rollout.lease is None  # released on exit
    entries = [e for e in read_entries(tmp / "journal.jsonl") if e.action == "rollback"]
    assert [e.kind for e in entries] == ["intent", "outcome"]
    intent, outcome = entries
    assert intent.reason.startswith("guard: rollback: fallback_rate")  # the outcome points back at it
    assert outcome.intent_seq == intent.seq and outcome.status == "confirmed"
    assert verify(tmp / "journal.jsonl").ok


def test_guard_leaves_an_aa_run_alone(at_20, capsys):
    rule, common, tmp = at_20
    before = platform(tmp).read_flag(FLAG)
    code, out, err = run(capsys, *guard(rule, common, "aa", "--max-looks", "4"))
    assert code == 3, out + err
    lines = out.splitlines()
    assert len(lines) == 4 and all(" stage 20% " in line and "HOLD" in line for line in lines)
    units = [int(line.split("units ")[1].split("/")[0]) for line in lines]
    assert units == sorted(units) and units[-1] > units[0]  # each look sees more simulated traffic
    after = platform(tmp).read_flag(FLAG)
    assert after.allocation == before.allocation and after.rollout.stage == before.rollout.stage
    assert after.rollout.lease is None
    assert not any(e.action == "rollback" for e in read_entries(tmp / "journal.jsonl"))


def test_second_guard_reports_the_lease_holder_and_exits_5(at_20, capsys, monkeypatch):
    rule, common, tmp = at_20
    seen: dict = {}
    real_look = operations.look

    def look_and_start_a_second_guard(*a, **kw):
        if not seen:  # while the first guard holds the lease, a second one starts in another process
            seen["lease"] = platform(tmp).read_flag(FLAG).rollout.lease
            seen["second"] = subprocess.run(
                [sys.executable, "-m", "console.cli", *map(str, guard(rule, common, "aa", "--max-looks", "1"))],
                cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        return real_look(*a, **kw)

    monkeypatch.setattr(operations, "look", look_and_start_a_second_guard)
    code, out, err = run(capsys, *guard(rule, common, "aa", "--max-looks", "2"))
    assert code == 3, out + err
    first = seen["lease"]
    assert first is not None and first.holder == lease.default_holder("guard")
    second = seen["second"]
    assert second.returncode == 5, second.stdout + second.stderr
    assert second.stdout == ""
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert f"lease held by {first.holder} until " in second.stderr
    assert first.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") in second.stderr
    assert platform(tmp).read_flag(FLAG).rollout.lease is None  # the first released it


def _place_lease(tmp: Path, holder: str, expires_at: datetime) -> None:
    p = platform(tmp)
    flag = p.read_flag(FLAG)
    state = flag.rollout.model_copy(update={"lease": Lease(holder=holder, expires_at=expires_at)})
    p.set_rollout_state(FLAG, state, flag.revision)


def test_live_lease_of_another_holder_is_respected(at_20, capsys):
    rule, common, tmp = at_20
    until = datetime.now(UTC) + timedelta(minutes=5)
    _place_lease(tmp, "guard:elsewhere:4242", until)
    code, out, err = run(capsys, *guard(rule, common, "provider-outage", "--max-looks", "3"))
    assert code == 5 and out == ""
    assert "lease held by guard:elsewhere:4242 until" in err and err.count("\n") == 1
    flag = platform(tmp).read_flag(FLAG)
    assert flag.allocation.candidate_bp == 2000  # nothing done under someone else's lease
    assert flag.rollout.lease.holder == "guard:elsewhere:4242"  # and not released by us


def test_stale_lease_is_taken_over(at_20, capsys):
    rule, common, tmp = at_20
    _place_lease(tmp, "guard:crashed:999", datetime.now(UTC) - timedelta(seconds=5))
    code, out, err = run(capsys, *guard(rule, common, "aa", "--max-looks", "2"))
    assert code == 3, out + err
    assert platform(tmp).read_flag(FLAG).rollout.lease is None


def test_lease_core_acquire_renew_release_and_conflict(at_20):
    _, _, tmp = at_20
    p = platform(tmp)
    now = datetime.now(UTC)
    mine = lease.acquire(p, FLAG, "guard:a:1", lease.ttl_for(5), now)
    assert lease.ttl_for(5) == 30 and lease.ttl_for(60) == 180
    assert mine.expires_at == now + timedelta(seconds=30)
    revision = p.read_flag(FLAG).revision
    assert lease.renew(p, FLAG, "guard:a:1", 30, now + timedelta(seconds=10)) == mine  # plenty left: no write
    assert p.read_flag(FLAG).revision == revision
    renewed = lease.renew(p, FLAG, "guard:a:1", 30, now + timedelta(seconds=20))
    assert renewed.expires_at == now + timedelta(seconds=50)
    with pytest.raises(lease.LeaseHeld) as held:
        lease.acquire(p, FLAG, "guard:b:2", 30, now + timedelta(seconds=20))
    assert "lease held by guard:a:1 until" in str(held.value)
    # past its expiry the lease is stale: someone else may take it over
    taken = lease.acquire(p, FLAG, "guard:b:2", 30, now + timedelta(seconds=60))
    assert taken.holder == "guard:b:2"
    assert lease.release(p, FLAG, "guard:a:1") is False  # not ours any more
    assert lease.release(p, FLAG, "guard:b:2") is True
    assert p.read_flag(FLAG).rollout.lease is None


def test_racing_acquirer_gets_a_conflict_and_then_sees_the_holder(at_20, monkeypatch):
    _, _, tmp = at_20
    p = platform(tmp)
    real_set = p.set_rollout_state
    calls = []

    def someone_else_wins_first(key, state, expected_revision):
        if not calls:  # between our read and our write, another guard takes the lease
            calls.append(1)
            other = p.read_flag(key)
            real_set(key, other.rollout.model_copy(update={"lease": Lease(
                holder="guard:other:7", expires_at=datetime.now(UTC) + timedelta(minutes=1))}), other.revision)
        return real_set(key, state, expected_revision)

    monkeypatch.setattr(p, "set_rollout_state", someone_else_wins_first)
    with pytest.raises(lease.LeaseHeld) as held:
        lease.acquire(p, FLAG, "guard:me:1", 30)
    assert held.value.lease.holder == "guard:other:7"


def test_ctrl_c_releases_the_lease(at_20, capsys, monkeypatch):
    rule, common, tmp = at_20

    def interrupted(*_a, **_kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(guard_cmd, "_pause", interrupted)
    code, out, _ = run(capsys, *guard(rule, common, "aa"))
    assert code == 130 and len(out.splitlines()) == 1
    assert platform(tmp).read_flag(FLAG).rollout.lease is None


def test_guard_bad_options_are_one_line(at_20, capsys):
    rule, common, _ = at_20
    code, _, err = run(capsys, *guard(rule, common, "aa"), "--interval", "0")
    assert code == 2 and "--interval" in err and err.count("\n") == 1
    code, _, err = run(capsys, *guard(rule, common, "aa"), "--max-looks", "0")
    assert code == 2 and "--max-looks" in err and err.count("\n") == 1
