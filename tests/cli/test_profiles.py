"""Profiles and credentials from the shell: `routedeck profiles`, `--profile` with overrides,
`routedeck login` into a keyring, the no-keyring message — and no token ever in the output."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import keyring
import pytest
from jaraco.classes import properties
from keyring.backend import KeyringBackend
from keyring.backends import fail

from console.backends import open_flags
from console.cli import main
from console.core import credentials
from console.core.tls import tls_settings
from console.profiles import activate, apply_profile

from ..local_http import Script, serve

CANARY = "rdk-canary-7f3e9a1c55"
RULE = (Path(__file__).parent / "test_rollout_commands.py").read_text().split('RULE = """', 1)[1].split('"""', 1)[0]


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring, installed explicitly by the tests (never picked automatically)."""

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("test keyring: install it with keyring.set_keyring")

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        self.items.pop((service, username), None)


@pytest.fixture
def use_keyring():
    """Install a keyring backend for one test and put the previous one back afterwards."""
    before = keyring.get_keyring()

    def install(backend):
        keyring.set_keyring(backend)
        return backend

    yield install
    keyring.set_keyring(before)
    activate(None)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A flag file with one route flag, a rule, and a config file named by ROUTEDECK_CONFIG."""
    (tmp_path / "rule.yaml").write_text(RULE)
    assert main(["init", "--rule", str(tmp_path / "rule.yaml"), "--flags", f"flagd:{tmp_path / 'flags.json'}",
                 "--state-dir", str(tmp_path)]) == 0
    config = tmp_path / "config.toml"
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(config))
    monkeypatch.setenv("ROUTEDECK_OPERATOR", "")
    yield tmp_path, config
    activate(None)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert CANARY not in out + err
    return code, out, err


LOCAL = """
[profiles.local]
flags = "flagd:flags.json"
metrics = "sim:steady?minutes=5"
rule = "rule.yaml"
operator = "alice"
"""


def test_profiles_lists_each_and_checks_it_connects(site, capsys, monkeypatch):
    tmp, config = site
    config.write_text('default_profile = "local"\n' + LOCAL + """
[profiles.down]
flags = "unleash:http://127.0.0.1:9?project=default&environment=production"
metrics = "prometheus:http://127.0.0.1:9"
tls_verify = false
""")
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", CANARY)
    code, out, err = run(capsys, "profiles")
    assert code == 1, err
    blocks = {b.split()[0]: b for b in out.split("\n") if b and not b.startswith(" ")}
    assert blocks["local"].startswith(f"local (default)  [{config}:3]")
    lines = out.splitlines()
    local = lines[lines.index(blocks["local"]):][:6]
    assert local[1:5] == [
        f"  flags    flagd:{tmp / 'flags.json'}",
        "  metrics  sim:steady?minutes=5",
        f"  rule     {tmp / 'rule.yaml'}",
        "  tokens   none needed",
    ]
    assert local[5].startswith("  check    ok flags ") and "(1 flag) · metrics " in local[5] and local[5].endswith(" ms")
    down = lines[lines.index(blocks["down"]):][:7]
    assert down[4] == "  tokens   unleash-token: env ROUTEDECK_UNLEASH_TOKEN · prometheus-token: none (optional)"
    assert down[5] == "  tls      TLS verification OFF"
    assert down[6].startswith("  check    FAIL Unleash at http://127.0.0.1:9/api/admin/projects/default/features: cannot connect")
    assert out.rstrip().endswith("1 of 2 profiles failed the check")

    code, out, _ = run(capsys, "profiles", "--no-check")
    assert code == 0 and "check" not in out


def test_a_profile_without_its_token_fails_the_check_naming_login_and_the_variable(site, capsys):
    _, config = site
    config.write_text('[profiles.fb]\nflags = "featbit:http://127.0.0.1:9?env=E&stream=ws://127.0.0.1:9"\n')
    code, out, _ = run(capsys, "profiles")
    assert code == 1
    assert "  tokens   featbit-token: missing · featbit-secret: missing" in out
    assert ("  check    FAIL no FeatBit Open API token: run `routedeck login fb --which featbit-token` "
            "or set ROUTEDECK_FEATBIT_TOKEN") in out


def test_no_profiles_is_one_line(site, capsys):
    _, config = site
    config.write_text("")
    code, _, err = run(capsys, "profiles")
    assert code == 2 and err == f"routedeck: {config}: no profiles — add a [profiles.NAME] table (see docs/profiles.md)\n"


def test_profile_supplies_backends_rule_and_operator_and_explicit_options_win(site, capsys):
    tmp, config = site
    config.write_text(LOCAL)
    code, out, err = run(capsys, "check", "--profile", "local", "--state-dir", tmp)
    assert code == 0, err
    assert out.startswith("support-answer-route  stage baseline")

    other = tmp / "other.json"
    code, out, err = run(capsys, "init", "--profile", "local", "--flags", f"flagd:{other}", "--state-dir", tmp)
    assert code == 0 and f"created support-answer-route on flagd:{other}" in out  # --flags beat the profile's
    code, _, err = run(capsys, "check", "--profile", "local", "--metrics", "sim:nope", "--state-dir", tmp)
    assert code == 2 and "nope" in err  # --metrics beat the profile's (an unknown scenario)

    code, out, _ = run(capsys, "advance", "--profile", "local", "--state-dir", tmp)
    assert code == 0, out
    entries = [json.loads(line) for line in (tmp / "journal.jsonl").read_text().splitlines()]
    assert entries[-1]["operator"]["name"] == "alice"


def test_profile_may_come_before_the_command(site, capsys):
    tmp, config = site
    config.write_text(LOCAL)
    code, out, err = run(capsys, "--profile", "local", "check", "--state-dir", tmp)
    assert code == 0 and out.startswith("support-answer-route  stage baseline"), err


def test_rule_is_required_from_the_command_line_or_the_profile(site, capsys):
    tmp, config = site
    config.write_text('[profiles.norule]\nflags = "flagd:flags.json"\nmetrics = "sim:steady"\n')
    code, _, err = run(capsys, "check", "--profile", "norule", "--state-dir", tmp)
    assert code == 2 and err == 'routedeck: --rule FILE is required (or a --profile whose rule = "FILE")\n'


def test_default_profile_applies_only_when_no_backend_is_named(site, capsys):
    tmp, config = site
    config.write_text('default_profile = "local"\n' + LOCAL)
    code, out, _ = run(capsys, "rollback", "--flag", "support-answer-route", "--dry-run", "--state-dir", tmp)
    assert code == 0 and "DRY RUN" in out
    elsewhere = tmp / "elsewhere.json"
    code, _, err = run(capsys, "rollback", "--flag", "support-answer-route", "--flags", f"flagd:{elsewhere}",
                       "--dry-run", "--state-dir", tmp)
    assert code != 0 and "elsewhere.json" in err
    assert credentials.active_profile() is None  # a named backend without --profile reads no stored token


def test_read_only_profile_refuses_writes_but_allows_dry_runs(site, capsys):
    tmp, config = site
    config.write_text(LOCAL.replace('operator = "alice"', "read_only = true"))
    code, _, err = run(capsys, "rollback", "--profile", "local", "--flag", "support-answer-route", "--state-dir", tmp)
    assert code == 2 and err.startswith(f"routedeck: {config}:6: profile local is read-only — this command changes flags")
    code, out, _ = run(capsys, "rollback", "--profile", "local", "--flag", "support-answer-route", "--dry-run",
                       "--state-dir", tmp)
    assert code == 0 and "DRY RUN" in out
    code, _, err = run(capsys, "guard", "--profile", "local", "--max-looks", "1", "--state-dir", tmp)
    assert code == 2 and "profile local is read-only" in err  # the guard would roll back on its own


def test_console_defaults_and_tls_come_from_the_profile(site):
    tmp, config = site
    config.write_text(LOCAL + 'refresh = "2s"\nwindow = "15m"\ntls_verify = false\nread_only = true\n')
    args = argparse.Namespace(profile="local", flags=None, metrics=None, read_only=False, command=None)
    apply_profile(args)
    assert (args.flags, args.refresh_s, args.window_s, args.read_only) == (
        f"flagd:{tmp / 'flags.json'}", 2.0, 900.0, True)
    assert tls_settings().warning == "TLS verification OFF"
    activate(None)
    assert tls_settings().verify


def test_simulate_takes_its_flag_spec_from_the_profile(site, capsys):
    tmp, config = site
    config.write_text(LOCAL)
    args = argparse.Namespace(profile="local", sim_flags=None, flags=None, command="simulate")
    apply_profile(args)
    assert args.sim_flags == f"flagd:{tmp / 'flags.json'}"
    code, _, err = run(capsys, "simulate", "--listen", "127.0.0.1:9")
    assert code == 2 and err == 'routedeck: --flags SPEC is required (or a --profile whose flags = "SPEC")\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[profiles.local]\nflags = flagd:x\n', ":2: malformed TOML at key 'flags': Invalid value (text values need quotes)"),
        ('[profiles.local]\nflags = "flagd:x"\ncolour = "red"\n', ":3: profiles.local.colour: unknown key"),
        ('[profiles.local]\nflags = "flagd:x"\nread_only = "no"\n', ":3: profiles.local.read_only: expected true or false"),
    ],
)
def test_malformed_config_is_one_line_exit_2(site, capsys, text, expected):
    tmp, config = site
    config.write_text(text)
    code, out, err = run(capsys, "check", "--profile", "local", "--rule", tmp / "rule.yaml")
    assert code == 2 and out == ""
    assert err.startswith(f"routedeck: {config}{expected}") and err.count("\n") == 1 and "Traceback" not in err


PROD = '[profiles.prod]\nflags = "unleash:{url}?project=default&environment=production"\n'


def test_login_stores_the_token_from_stdin_and_adapters_use_it(site, capsys, monkeypatch, use_keyring):
    _, config = site
    ring = use_keyring(MemoryKeyring())
    answers = Script([(200, {}, {"features": [{"name": "support-answer-route"}]})])
    with serve(answers) as url:
        config.write_text(PROD.format(url=url))
        monkeypatch.setattr("sys.stdin", io.StringIO(CANARY + "\n"))
        code, out, err = run(capsys, "login", "prod")
        assert code == 0, err
        assert out.startswith("stored the Unleash admin API token for profile prod in the keyring (")
        assert ring.items == {("routedeck", "prod:unleash-token"): CANARY}

        monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", "env-token-loses")
        code, out, _ = run(capsys, "profiles")
        assert code == 0 and "  tokens   unleash-token: keyring" in out
        assert answers.seen[-1].headers["authorization"] == CANARY  # the keyring's, not the environment's

        activate(None)  # no profile: the environment's token
        open_flags(f"unleash:{url}").list_flags()
        assert answers.seen[-1].headers["authorization"] == "env-token-loses"


def test_login_reads_a_hidden_prompt_on_a_terminal(site, capsys, monkeypatch, use_keyring):
    _, config = site
    ring = use_keyring(MemoryKeyring())
    config.write_text(PROD.format(url="http://127.0.0.1:9") + 'metrics = "prometheus:http://127.0.0.1:9"\n')
    prompts = []

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Tty())
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or CANARY)
    code, _, err = run(capsys, "login", "prod", "--which", "prometheus-token")
    assert code == 0, err
    assert prompts == ["Prometheus bearer token for profile prod (hidden): "]
    assert ring.items == {("routedeck", "prod:prometheus-token"): CANARY}

    monkeypatch.setattr("sys.stdin", io.StringIO("second-" + CANARY))
    code, out, _ = run(capsys, "login", "prod")  # the optional Prometheus token is never the default
    assert code == 0 and "Unleash admin API token" in out
    assert ring.items[("routedeck", "prod:unleash-token")] == "second-" + CANARY

    config.write_text('[profiles.fb]\nflags = "featbit:http://127.0.0.1:9?env=E&stream=ws://127.0.0.1:9"\n')
    code, _, err = run(capsys, "login", "fb")
    assert code == 2 and "reads several tokens (featbit-token, featbit-secret) — choose one with --which" in err


def test_login_without_a_keyring_names_the_variable_and_exits_2(site, capsys, monkeypatch, use_keyring):
    _, config = site
    use_keyring(fail.Keyring())
    config.write_text(PROD.format(url="http://127.0.0.1:9"))
    monkeypatch.setattr("sys.stdin", io.StringIO(CANARY))
    code, out, err = run(capsys, "login", "prod")
    assert code == 2 and out == ""
    assert err == ("routedeck: cannot store the Unleash admin API token in the OS keyring (no keyring backend on "
                   "this machine, fail.Keyring) — set ROUTEDECK_UNLEASH_TOKEN in the environment instead\n")
    monkeypatch.setenv("ROUTEDECK_UNLEASH_TOKEN", CANARY)
    activate(None)
    assert credentials.read_token("ROUTEDECK_UNLEASH_TOKEN") == CANARY  # reads fall back to the environment


def test_login_to_a_keyring_that_keeps_nothing_is_refused(site, capsys, monkeypatch, use_keyring):
    from keyring.backends import null

    _, config = site
    use_keyring(null.Keyring())
    config.write_text(PROD.format(url="http://127.0.0.1:9"))
    monkeypatch.setattr("sys.stdin", io.StringIO(CANARY))
    code, _, err = run(capsys, "login", "prod")
    assert code == 2 and "null.Keyring did not keep it) — set ROUTEDECK_UNLEASH_TOKEN in the environment instead" in err


def test_login_checks_the_profile_and_the_input(site, capsys, monkeypatch, use_keyring):
    _, config = site
    use_keyring(MemoryKeyring())
    config.write_text(LOCAL)
    code, _, err = run(capsys, "login", "nope")
    assert code == 2 and "--profile nope: no such profile" in err
    code, _, err = run(capsys, "login", "local")
    assert code == 2 and "profile local reads no token (its backends need none) — name one with --which" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    code, _, err = run(capsys, "login", "local", "--which", "unleash-token")
    assert code == 2 and "no Unleash admin API token given" in err


def test_a_keyring_that_fails_to_store_is_named_without_its_error_text(site, capsys, monkeypatch, use_keyring):
    from keyring.errors import PasswordSetError

    class LockedKeyring(MemoryKeyring):
        def set_password(self, service, username, password):
            raise PasswordSetError(f"collection locked, could not store {password}")

    _, config = site
    use_keyring(LockedKeyring())
    config.write_text(PROD.format(url="http://127.0.0.1:9"))
    monkeypatch.setattr("sys.stdin", io.StringIO(CANARY))
    code, _, err = run(capsys, "login", "prod")
    assert code == 2 and err.endswith(
        "LockedKeyring: PasswordSetError) — set ROUTEDECK_UNLEASH_TOKEN in the environment instead\n")
