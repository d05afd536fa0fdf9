"""One canary value is every credential routedeck can read (environment and keyring); every command
that talks to a backend, and the console, are driven through failures — a wrong token (401/403, with
servers that echo the token back), a server that is down, a URL carrying the token, a refused stream —
and the canary must never appear: not on stdout or stderr, not in an exception, not in a log record
at DEBUG (``websockets``, ``httpx``, ``httpcore``, ``UnleashClient`` included), not in the journal,
not in ``--json`` output, not on screen, not in a screenshot.

Everything runs on 127.0.0.1 in this process (the FeatBit fake, scripted HTTP servers) or against a
port nobody listens on; no ``servers`` mark.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keyring
import pytest
from jaraco.classes import properties
from keyring.backend import KeyringBackend

from console.cli import main
from console.core.credentials import CREDENTIALS, account
from console.profiles import activate
from tests.fakes.featbit_server import FakeFeatBit
from tests.fakes.launchdarkly_server import FakeLaunchDarkly
from tests.local_http import Script, serve

#: 44 characters of [A-Za-z0-9-], so it is also a well-formed FeatBit secret and survives URL quoting as is
CANARY = ("CANARY-7f3a9c1e5b2d4a6f8e0c3b5d7a9f1e2c4b6d8a0f1e3c")[:44]
#: any 12 consecutive characters of it count as a leak (the stream token splices a timestamp into the secret)
FRAGMENTS = [CANARY[i:i + 12] for i in range(len(CANARY) - 11)]
PROFILES = ("canary", "fb", "un", "prom")
FLAG = "support-answer-route"
RULE_FILE = Path(__file__).parents[1] / "console" / "core" / "data" / "rule-demo.yaml"
NOISY_LOGGERS = ("websockets", "websockets.client", "httpx", "httpcore", "UnleashClient", "fbclient", "routedeck",
                 "asyncio", "apscheduler")


def leaks(text: str) -> list[str]:
    """The canary fragments found in ``text``."""
    return [f for f in FRAGMENTS if f in text]


def assert_clean(where: str, text: str) -> None:
    found = leaks(text)
    assert not found, f"the canary leaked into {where}: …{text[max(0, text.find(found[0]) - 80):][:200]}…"


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring, installed explicitly (never chosen by priority)."""

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


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: one body that fits every backend's error shape and echoes the token, as careless servers do
ECHO = {"success": False, "errors": [f"token {CANARY} is not valid", CANARY], "data": None,
        "status": "error", "errorType": "unauthorized", "error": f"invalid token {CANARY}",
        "message": f"Bearer {CANARY} rejected", "details": [{"message": f"{CANARY} unknown"}]}


@dataclass
class World:
    featbit: FakeFeatBit
    echo401: str
    echo403: str
    echo500: str
    dead: str
    tmp: Path
    keyring: MemoryKeyring
    ld: FakeLaunchDarkly

    def ld_spec(self, base: str | None = None, stream: str | None = "") -> str:
        spec = f"launchdarkly:{base or self.ld.url}?project={self.ld.project}&env=production"
        return spec + (f"&stream={stream or self.ld.url}" if stream is not None else "")

    @property
    def env(self) -> str:
        return self.featbit.env_id

    def featbit_spec(self, base: str | None = None, stream: bool = True) -> str:
        spec = f"featbit:{base or self.featbit.url}?env={self.env}"
        return spec + (f"&stream={self.featbit.stream_url}" if stream else "")


@pytest.fixture
def world(tmp_path: Path, monkeypatch, caplog) -> Iterator[World]:
    import adapters.http

    monkeypatch.setattr(adapters.http.RetryPolicy, "delay", lambda self, attempt, retry_after=None: 0.0)
    for cred in CREDENTIALS:
        monkeypatch.setenv(cred.env_var, CANARY)
    monkeypatch.setenv("ROUTEDECK_OPERATOR", "canary-test")
    monkeypatch.setenv("ROUTEDECK_CONFIG", str(tmp_path / "config.toml"))
    before = keyring.get_keyring()
    store = MemoryKeyring()
    for profile in PROFILES:
        for cred in CREDENTIALS:
            store.set_password("routedeck", account(profile, cred.name), CANARY)
    keyring.set_keyring(store)
    caplog.set_level(logging.DEBUG)
    for name in NOISY_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)

    fake = FakeFeatBit().start()
    seed_featbit(fake)
    ld = FakeLaunchDarkly().start()
    seed_launchdarkly(ld)
    echo401, echo403, echo500 = Script([(401, {}, ECHO)]), Script([(403, {}, ECHO)]), Script([(500, {}, ECHO)])
    with serve(echo401) as u401, serve(echo403) as u403, serve(echo500) as u500:
        w = World(fake, u401, u403, u500, f"http://127.0.0.1:{free_port()}", tmp_path, store, ld)
        try:
            yield w
        finally:
            fake.stop()
            ld.stop()
            keyring.set_keyring(before)
            activate(None)
    # whatever any logger said during the test, at any level
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(traceback.format_exception(record.exc_info[1]))
        assert_clean(f"a log record of {record.name}", text)
    assert_clean("the log output", caplog.text)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "config.toml":  # the tests write the canary there on purpose
            assert_clean(str(path), path.read_text(errors="replace"))


def seed_featbit(fake: FakeFeatBit) -> None:
    """The demo's support flag on the fake, created with the fake's own token (not the canary)."""
    from adapters.flags.featbit import FeatBitPlatform
    from console.core.simulator.portfolio import demo_flags

    platform = FeatBitPlatform(fake.url, fake.token, fake.env_id)
    try:
        platform.create_flag(demo_flags(fresh=True)[0])
    finally:
        platform.close()


def seed_launchdarkly(fake: FakeLaunchDarkly) -> None:
    """The demo's support flag on the LaunchDarkly fake, created with the fake's own token."""
    from adapters.flags.launchdarkly import LaunchDarklyPlatform
    from console.core.simulator.portfolio import demo_flags

    platform = LaunchDarklyPlatform(fake.url, fake.token, fake.project, "production")
    try:
        platform.create_flag(demo_flags(fresh=True)[0])
    finally:
        platform.close()


def run(capsys, *argv: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str]:
    """``routedeck ARGV``: exit code and everything it printed, asserted free of the canary. An
    exception escaping ``main`` is itself checked (its message and traceback), then re-raised."""
    try:
        code = main([str(a) for a in argv])
    except BaseException as exc:  # a crash must not carry the token either
        out, err = capsys.readouterr()
        assert_clean(f"the output of {argv[0]}", out + err)
        assert_clean(f"the exception escaping {argv[0]}", "".join(traceback.format_exception(exc)))
        raise
    finally:
        activate(None)
    out, err = capsys.readouterr()
    assert_clean(f"the output of routedeck {' '.join(argv[:2])}", out + err)
    return code, out + err


def test_a_token_routedeck_has_read_is_hidden_wherever_it_appears(monkeypatch) -> None:
    from console.core.credentials import read_token
    from console.core.redact import redact

    monkeypatch.setenv("ROUTEDECK_PROMETHEUS_TOKEN", "Zq81-bare-token-value==")
    assert read_token("ROUTEDECK_PROMETHEUS_TOKEN") == "Zq81-bare-token-value=="
    assert redact("server said: unknown key Zq81-bare-token-value (and Zq81-bare-token-value==)") == (
        "server said: unknown key *** (and ***)")
    monkeypatch.setenv("ROUTEDECK_PROMETHEUS_TOKEN", "short")  # too short to hide without mangling words
    read_token("ROUTEDECK_PROMETHEUS_TOKEN")
    assert redact("a short answer") == "a short answer"


# ---- the flag platforms: every command that talks to one --------------------------------------------


def flag_specs(w: World) -> dict[str, str]:
    return {
        "featbit-wrong-token": w.featbit_spec(),
        "featbit-401-echo": w.featbit_spec(w.echo401, stream=False),
        "featbit-403-echo": w.featbit_spec(w.echo403, stream=False),
        "featbit-500-echo": w.featbit_spec(w.echo500, stream=False),
        "featbit-down": w.featbit_spec(w.dead),
        "featbit-userinfo": w.featbit_spec(w.dead.replace("//", f"//user:{CANARY}@")),
        "featbit-token-query": w.featbit_spec() + f"&token={CANARY}",
        "featbit-stream-token": f"featbit:{w.featbit.url}?env={w.env}&stream=ws://127.0.0.1:1/?token={CANARY}",
        "launchdarkly-wrong-token": w.ld_spec(),
        "launchdarkly-401-echo": w.ld_spec(w.echo401, stream=None),
        "launchdarkly-403-echo": w.ld_spec(w.echo403, stream=None),
        "launchdarkly-500-echo": w.ld_spec(w.echo500, stream=None),
        "launchdarkly-down": w.ld_spec(w.dead),
        "launchdarkly-userinfo": w.ld_spec(w.dead.replace("//", f"//user:{CANARY}@")),
        "launchdarkly-stream-key": w.ld_spec(stream=f"http://127.0.0.1:1/?key={CANARY}"),
        "unleash-401-echo": f"unleash:{w.echo401}?project=default&environment=development",
        "unleash-403-echo": f"unleash:{w.echo403}",
        "unleash-down": f"unleash:{w.dead}",
        "unleash-userinfo": f"unleash:{w.dead.replace('//', f'//{CANARY}@')}",
        "unleash-token-query": f"unleash:{w.dead}?apikey={CANARY}",
    }


def metrics_specs(w: World) -> dict[str, str]:
    return {
        "prometheus-401-echo": f"prometheus:{w.echo401}",
        "prometheus-500-echo": f"prometheus:{w.echo500}",
        "prometheus-down": f"prometheus:{w.dead}",
        "prometheus-userinfo": f"prometheus:{w.dead.replace('//', f'//u:{CANARY}@')}",
        "prometheus-token-query": f"prometheus:{w.dead}?token={CANARY}",
    }


FLAG_CASES = ("featbit-wrong-token", "featbit-401-echo", "featbit-403-echo", "featbit-500-echo", "featbit-down",
              "featbit-userinfo", "featbit-token-query", "featbit-stream-token", "launchdarkly-wrong-token",
              "launchdarkly-401-echo", "launchdarkly-403-echo", "launchdarkly-500-echo", "launchdarkly-down",
              "launchdarkly-userinfo", "launchdarkly-stream-key", "unleash-401-echo",
              "unleash-403-echo", "unleash-down", "unleash-userinfo", "unleash-token-query")
METRIC_CASES = ("prometheus-401-echo", "prometheus-500-echo", "prometheus-down", "prometheus-userinfo",
                "prometheus-token-query")


def flag_commands(spec: str, metrics: str, w: World) -> list[list[str]]:
    state = ["--state-dir", str(w.tmp / "state")]
    rule = ["--rule", str(RULE_FILE)]
    both = ["--flags", spec, "--metrics", metrics]
    return [
        ["rollback", "--flag", FLAG, "--flags", spec, "--reason", "canary", "--within", "1s", *state],
        ["rollback", "--flag", FLAG, "--flags", spec, "--dry-run", *state],
        ["init", *rule, "--flags", spec, *state],
        ["check", *rule, *both, "--json", *state],
        ["advance", *rule, *both, *state],
        ["advance", *rule, *both, "--override", "--reason", "canary", *state],
        ["guard", *rule, *both, "--interval", "0.05", "--max-looks", "1", *state],
        ["segments", *rule, *both, "--json", *state],
        ["frontier", *both, "--flag", FLAG, *state],
        ["audit", "verify", "--flags", spec, *state],
    ]


@pytest.mark.parametrize("case", FLAG_CASES)
def test_no_command_shows_the_token_when_the_flag_platform_fails(case: str, world: World, capsys) -> None:
    spec = flag_specs(world)[case]
    codes = []
    for argv in flag_commands(spec, metrics_specs(world)["prometheus-401-echo"], world):
        code, out = run(capsys, *argv)
        codes.append(code)
        assert code != 0 or argv[0] == "audit", f"{argv[0]} succeeded against a failing platform: {out}"
    journal = world.tmp / "state" / "journal.jsonl"
    if journal.exists():
        assert_clean("the journal", journal.read_text())


@pytest.mark.parametrize("case", METRIC_CASES)
def test_no_command_shows_the_token_when_the_metrics_source_fails(case: str, world: World, capsys) -> None:
    flags = f"flagd:{world.tmp / 'flags.json'}"
    metrics = metrics_specs(world)[case]
    state = ["--state-dir", str(world.tmp / "state")]
    assert main(["init", "--rule", str(RULE_FILE), "--flags", flags, *state]) == 0
    # past the baseline stage every verdict needs metrics
    assert main(["advance", "--rule", str(RULE_FILE), "--flags", flags, "--metrics", "sim:steady", *state]) == 0
    capsys.readouterr()
    for argv in flag_commands(flags, metrics, world):
        if argv[0] in ("rollback", "init", "audit"):
            continue  # they read no metrics
        code, out = run(capsys, *argv)
        if argv[0] in ("check", "guard") or (argv[0] == "advance" and "--override" not in argv):
            assert code != 0, f"{argv[0]} succeeded against a failing metrics source: {out}"
    assert_clean("the journal", (world.tmp / "state" / "journal.jsonl").read_text())


def test_featbit_with_the_canary_accepted_shows_it_nowhere(world: World, capsys) -> None:
    """The token right, the stream secret wrong (4003): the commands work and still never show it."""
    world.featbit.add_token("canary-operator", CANARY)
    spec = world.featbit_spec()
    state = ["--state-dir", str(world.tmp / "state")]
    code, out = run(capsys, "advance", "--rule", RULE_FILE, "--flags", spec, "--metrics",
                    f"prometheus:{world.echo401}", *state)
    assert code == 0 and "stage internal" in out
    code, out = run(capsys, "rollback", "--flag", FLAG, "--flags", spec, "--reason", "canary", *state)
    assert code == 0 and "confirmed" in out
    code, out = run(capsys, "audit", "list", "--json", *state)
    assert code == 0 and "rollback" in out
    code, out = run(capsys, "audit", "verify", "--flags", spec, *state)
    assert code == 0
    assert_clean("the journal", (world.tmp / "state" / "journal.jsonl").read_text())
    # FeatBit's own record of the writes names the token's owner, not the token
    assert_clean("FeatBit's audit log", json.dumps(world.featbit.audit))


def test_simulate_refuses_to_start_without_showing_the_token(world: World, capsys) -> None:
    listen = f"127.0.0.1:{free_port()}"
    for spec in (f"unleash:{world.echo401}?refresh=1", f"unleash:{world.dead}?refresh=1",
                 f"unleash:{world.dead.replace('//', f'//u:{CANARY}@')}", f"unleash:{world.dead}?token={CANARY}",
                 world.featbit_spec(), f"flagd:{world.tmp / 'missing.json'}"):
        code, _ = run(capsys, "simulate", "--flags", spec, "--listen", listen, "--duration", "0.3")
        assert code != 0


# ---- profiles, the config file and login ------------------------------------------------------------


def test_profiles_check_and_a_config_holding_the_token(world: World, capsys) -> None:
    config = world.tmp / "config.toml"
    config.write_text(
        f'[profiles.fb]\nflags = "{world.featbit_spec()}"\nmetrics = "prometheus:{world.echo401}"\n'
        f'[profiles.un]\nflags = "unleash:{world.echo403}"\nmetrics = "prometheus:{world.echo500}"\n'
        f'[profiles.prom]\nflags = "featbit:{world.dead}?env={world.env}"\nmetrics = "prometheus:{world.dead}"\n'
    )
    code, out = run(capsys, "profiles")
    assert code == 1 and out.count("FAIL") == 3 and "keyring" in out
    code, out = run(capsys, "--profile", "fb", "rollback", "--flag", FLAG, "--reason", "canary")
    assert code != 0
    # a token written into the config is refused, and the refusal does not repeat it
    for line in (f'flags = "featbit:http://u:{CANARY}@127.0.0.1:1?env={world.env}"',
                 f'flags = "unleash:http://127.0.0.1:1?token={CANARY}"',
                 f'metrics = "prometheus:http://127.0.0.1:1?access_token={CANARY}"',
                 f'metrics = {{ token = "{CANARY}" }}',
                 f'flags = "{CANARY}"', f'operator = {CANARY}'):
        config.write_text(f"[profiles.canary]\n{line}\n")
        code, out = run(capsys, "profiles")
        assert code == 2 and "config.toml:2" in out


def test_login_never_echoes_the_token(world: World, capsys, monkeypatch) -> None:
    config = world.tmp / "config.toml"
    config.write_text(f'[profiles.fb]\nflags = "{world.featbit_spec()}"\nmetrics = "prometheus:{world.dead}"\n')
    world.keyring.items.clear()
    for which in ("featbit-token", "featbit-secret"):
        monkeypatch.setattr("sys.stdin", io.StringIO(CANARY + "\n"))
        code, out = run(capsys, "login", "fb", "--which", which)
        assert code == 0 and "confirmed" in out
    assert world.keyring.items[("routedeck", "fb:featbit-token")] == CANARY
    # without a keyring backend: the message names the variable, not the value
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    monkeypatch.setattr("sys.stdin", io.StringIO(CANARY + "\n"))
    code, out = run(capsys, "login", "fb", "--which", "featbit-secret")
    assert code == 2 and "ROUTEDECK_FEATBIT_SECRET" in out


# ---- the console --------------------------------------------------------------------------------------


def console_text(app, tmp: Path, name: str) -> str:
    """Everything the console shows: the screenshot SVG, its notifications and the header's text."""
    svg = tmp / f"{name}.svg"
    app.save_screenshot(str(svg))
    shown = [svg.read_text(), app.export_screenshot()]
    shown += [f"{n.title} {n.message}" for n in app._notifications]
    shown += [str(getattr(w, "renderable", "")) for w in app.screen.query("*")]
    return "\n".join(shown)


async def test_the_console_through_a_refused_stream_and_a_revoked_token(world: World, tmp_path: Path) -> None:
    from adapters.flags.featbit import FeatBitPlatform
    from adapters.metrics.prometheus import PrometheusSource
    from console.app import RouteDeckApp
    from console.core.journal import Journal, journal_path
    from tests.ui.helpers import wait_for

    world.featbit.add_token("canary-operator", CANARY)
    platform = FeatBitPlatform.from_spec(world.featbit_spec())  # token and secret: the canary, from the environment
    metrics = PrometheusSource.from_spec(f"prometheus:{world.echo401}")
    flag = platform.read_flag(FLAG)
    platform.set_allocation(FLAG, flag.allocation.model_copy(update={"internal_enabled": True, "candidate_bp": 500}),
                            flag.revision)
    flags = {k: platform.read_flag(k) for k in platform.list_flags()}
    app = RouteDeckApp(platform, metrics, flags=flags, journal=Journal(journal_path(world.tmp / "state")),
                       refresh_s=0.2)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            # the stream is refused (4003): said once, without the secret
            await wait_for(pilot, lambda: any("4003" in str(n.message) for n in app._notifications), timeout_s=5)
            await pilot.pause(0.5)
            shown = console_text(app, tmp_path, "refused")
            assert "4003" in shown and "ROUTEDECK_FEATBIT_SECRET" in shown  # the failure is on screen…
            assert_clean("the console (stream refused, metrics 401)", shown)  # …the secret is not
            # the token is revoked in FeatBit, then R: the failure is shown, the token is not
            del world.featbit.tokens[CANARY]
            await pilot.press("R")
            await wait_for(pilot, lambda: any("401" in str(n.message) for n in app._notifications), timeout_s=5)
            await pilot.pause(0.3)
            shown = console_text(app, tmp_path, "revoked")
            assert "HTTP 401" in shown
            assert_clean("the console (rollback refused)", shown)
            for key, screen in (("o", "RolloutScreen"), ("a", "AuditScreen")):
                await pilot.press(key)
                # an absence proves something only once the screen has drawn what it shows
                await wait_for(pilot, lambda: type(app.screen).__name__ == screen and FLAG in app.export_screenshot(),
                               timeout_s=10)
                assert_clean(f"the console after {key}", console_text(app, tmp_path, f"screen-{key}"))
                await pilot.press("escape")
    finally:
        platform.close()
        metrics.close()


async def test_the_console_failing_to_start_shows_no_token(world: World, tmp_path: Path) -> None:
    from console.app import RouteDeckApp
    from console.backends import open_flags, open_metrics

    for spec in (world.featbit_spec(w := world.echo401, stream=False), world.featbit_spec(world.dead),
                 f"unleash:{world.echo403}"):
        def load(spec=spec):
            platform = open_flags(spec)
            flags = {k: platform.read_flag(k) for k in platform.list_flags()}
            return platform, open_metrics(f"prometheus:{w}"), flags, None, None

        app = RouteDeckApp(loader=load)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.5)
            shown = console_text(app, tmp_path, "startup")
        assert app.startup_error is not None
        assert_clean("the startup error", str(app.startup_error) + shown)
