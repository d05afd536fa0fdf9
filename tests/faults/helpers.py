"""Shared pieces of the fault matrix: rollouts set up on a real platform, a profile with short timeouts
pointing through the fault proxy, and the command line run in-process or as a process of its own."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from adapters.flags.unleash import UnleashPlatform
from console.cli import main
from console.core import rollout
from console.core.models import RouteFlag, RouteProfile
from console.core.rules import DecisionRule, load_rule

ROOT = Path(__file__).resolve().parents[2]
BASELINE, CANDIDATE = "fast_default_v1", "balanced_core_v2"
PROFILES = {
    BASELINE: RouteProfile(route=BASELINE, model="provider-a/standard", timeout_ms=6000),
    CANDIDATE: RouteProfile(route=CANDIDATE, model="provider-b/balanced", max_output_tokens=900),
}
#: short enough that the whole matrix runs in minutes, long enough for a real server on a busy machine
TIMEOUTS = {"timeout": "2s", "rollback_within": "4s", "give_up_after": "8s", "lock_timeout": "1s"}
_keys = itertools.count()


def new_key(prefix: str = "fault") -> str:
    return f"{prefix}-{os.getpid()}-{next(_keys)}"


def rule_text(key: str, extra: str = "") -> str:
    return f"""llm_route_decision:
  flag_key: {key}
  candidate_route: {CANDIDATE}
  baseline_route: {BASELINE}
  first_audience: internal_support_team
  eligible_scope: english_support_chat
  primary_metric: resolved_without_escalation
  guardrails:
    - correction_rate
    - fallback_rate
  stages:
    - {{name: internal, share: 0%, min_units: 10, min_dwell: 0s}}
    - {{name: 5%, share: 5%, min_units: 20, min_dwell: 0s}}
    - {{name: 20%, share: 20%, min_units: 20, min_dwell: 0s}}
    - {{name: full, share: 95%, min_units: 20, min_dwell: 0s}}
{extra}"""


@dataclass
class Rollout:
    key: str
    rule_path: Path
    rule: DecisionRule
    state_dir: Path
    config: Path

    def common(self) -> list[str]:
        """What every command of this rollout takes: the profile (backends, short timeouts) and the state dir."""
        return ["--profile", "faults", "--state-dir", str(self.state_dir)]


def write_profile(tmp: Path, flags: str, metrics: str | None, rule: Path | None = None, **more: str) -> Path:
    lines = ["[profiles.faults]", f'flags = "{flags}"']
    if metrics:
        lines.append(f'metrics = "{metrics}"')
    if rule:
        lines.append(f'rule = "{rule}"')
    for key, value in (TIMEOUTS | more).items():
        lines.append(f'{key} = "{value}"')
    config = tmp / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def at_stage(flag: RouteFlag, rule: DecisionRule, stage: str) -> RouteFlag:
    """``flag`` advanced along the rule's ladder up to ``stage``, as a sequence of confirmed advances would leave it."""
    while rollout.current_stage_name(flag) != stage:
        flag = rollout.advance(flag, rule, datetime.now(UTC), "faults-setup")
    return flag


def unleash_rollout(unleash, tmp: Path, proxy_url: str, stage: str = "20%", metrics: str | None = None,
                    rule_extra: str = "", **profile: str) -> Rollout:
    """A new route flag on the real Unleash (written directly), at ``stage``, and a profile reaching it
    through the proxy."""
    key = new_key()
    rule_path = tmp / "rule.yaml"
    rule_path.write_text(rule_text(key, rule_extra))
    rule = load_rule(rule_path)
    direct = UnleashPlatform(unleash.url, unleash.admin_token)
    try:
        created = direct.create_flag(rollout.init_flag(rule, PROFILES)).after
        target = at_stage(created, rule, stage)
        direct.write_flag(target, created.revision)
    finally:
        direct.close()
    spec = f"unleash:{proxy_url}?project=default&environment=development"
    config = write_profile(tmp, spec, metrics or "prometheus:http://127.0.0.1:9", rule_path, **profile)
    return Rollout(key, rule_path, rule, tmp, config)


def direct(unleash) -> UnleashPlatform:
    return UnleashPlatform(unleash.url, unleash.admin_token)


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def env_for(config: Path, **more: str) -> dict[str, str]:
    env = {**os.environ, "ROUTEDECK_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
    env.update(more)
    return env


def spawn(config: Path, *argv, **env: str) -> subprocess.Popen:
    """The command line as a process of its own (for signals, or to run beside the test)."""
    return subprocess.Popen([sys.executable, "-m", "console.cli", *map(str, argv)], cwd=ROOT, env=env_for(config, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Running:
    """A command running beside the test, its output collected line by line as it comes."""

    def __init__(self, config: Path, *argv, **env: str) -> None:
        import threading

        self.proc = spawn(config, *argv, **env)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._drain, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _drain(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.out) + "\n--- stderr ---\n" + "\n".join(self.err)

    def saw(self, needle: str, stream: str = "out") -> bool:
        return any(needle in line for line in (self.out if stream == "out" else self.err))

    def wait_line(self, needle: str, timeout_s: float, stream: str = "out") -> None:
        wait_for(lambda: self.saw(needle, stream) or self.proc.poll() is not None, timeout_s, f"{needle!r} printed")
        if not self.saw(needle, stream):
            self.wait(5)
            raise AssertionError(f"exited {self.proc.returncode} without printing {needle!r}:\n{self.text()}")

    def wait(self, timeout_s: float) -> int:
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout_s:g} s:\n{self.text()}") from None
        for t in self._threads:
            t.join(5)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.wait(10)


def wait_for(check, timeout_s: float, what: str) -> None:
    """Poll ``check`` every 50 ms; fail naming ``what`` if it does not come true in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")
