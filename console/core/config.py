"""Connection profiles: a TOML file naming flag platform, metrics source, rule and defaults per profile.

The file lives at ``$ROUTEDECK_CONFIG``, else ``$XDG_CONFIG_HOME/routedeck/config.toml`` (default
``~/.config/routedeck/config.toml``)::

    default_profile = "local"

    [profiles.local]
    flags = "flagd:~/routes/flags.json"
    metrics = "sim:steady?minutes=30"
    rule = "rule.yaml"            # relative paths are relative to this file
    refresh = "2s"                # or a number of seconds
    window = "5m"
    operator = "alice"
    read_only = false
    tls_verify = true
    ca_bundle = "/etc/ssl/corp-ca.pem"
    timeout = "5s"                # one request to a backend
    rollback_within = "30s"       # a rollback re-applies until it holds, for this long
    give_up_after = "10m"         # `guard` exits 1 once a backend has failed this long
    lock_timeout = "10s"          # waiting for the flag file's or the journal's lock

    [profiles.prod]
    flags = "unleash:https://unleash.internal?project=default&environment=production"
    metrics = "prometheus:https://prometheus.internal:9090"
    prometheus_match = 'job="support", namespace="prod"'   # added to every query

    [profiles.prod.prometheus_names]     # routedeck's metric / label name -> the application's
    gen_ai_client_operation_duration_seconds = "llm_request_seconds"
    feature_flag_result_variant = "variant"

    [profiles.prod.prometheus_queries]   # metric family -> PromQL template, replacing the default
    requests = 'sum by ($by, gen_ai_provider_name, gen_ai_request_model, error_type) (my_requests_total{$match} $at)'

The three ``prometheus_*`` keys need a ``prometheus:`` metrics source. Their types are checked here;
whether a family exists and a template is usable is checked when the source is opened (the
error still names this file and line).

Every problem is one line naming the file, the line and the key. Tokens never belong here: a spec
that carries one is refused (store it with ``routedeck login``).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInput
from .redact import redact
from .timeouts import Timeouts
from .tls import TlsSettings

CONFIG_ENV = "ROUTEDECK_CONFIG"
TOP_KEYS = ("default_profile", "profiles", "rule_defaults")
#: profile key -> what a value must be, as said in an error
PROFILE_KEYS: dict[str, str] = {
    "flags": "a flag platform SPEC such as \"flagd:PATH\"",
    "metrics": "a metrics SPEC such as \"sim:steady\" or \"prometheus:URL\"",
    "rule": "the path of a decision rule file",
    "refresh": "seconds between refreshes: a number or a duration such as \"2s\"",
    "window": "the metrics window: a number of seconds or a duration such as \"5m\"",
    "operator": "your name in the journal",
    "read_only": "true or false",
    "tls_verify": "true or false",
    "ca_bundle": "the path of a PEM file of CA certificates",
    "prometheus_match": "PromQL label matchers added to every Prometheus query, such as 'job=\"support\"'",
    "prometheus_queries": "a table of metric family = PromQL template ([profiles.NAME.prometheus_queries])",
    "prometheus_names": "a table of routedeck's metric or label name = the application's ([profiles.NAME.prometheus_names])",
    "fleet_bucketing": "the bucketing rule of the services evaluating the flagd file: \"cbor\" (Python evaluator), "
                       "\"concat\" (JavaScript evaluator) or \"mixed\"",
    "timeout": "seconds one backend request may take: a number or a duration such as \"5s\"",
    "rollback_within": "how long a rollback re-applies until it holds: a duration such as \"30s\"",
    "give_up_after": "how long `guard` retries a failing backend before it exits 1: a duration such as \"10m\"",
    "lock_timeout": "how long a write waits for the flag file's or the journal's lock: a duration such as \"10s\"",
}
#: profile key -> attribute of ``Timeouts``
TIMEOUT_KEYS = {"timeout": "request_s", "rollback_within": "rollback_within_s", "give_up_after": "give_up_after_s",
                "lock_timeout": "lock_s"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: one PromQL label matcher: a label name (bare or quoted), an operator, a quoted value
_PROM_STRING = r'(?:"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`[^`]*`)'
_MATCHER = rf'\s*(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\\n]|\\.)*")\s*(?:=~|!~|!=|=)\s*{_PROM_STRING}\s*'
_MATCHERS = re.compile(rf"^{_MATCHER}(?:,{_MATCHER})*,?\s*$")
_PROM_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")


def config_path(environ: dict[str, str] | None = None) -> Path:
    """Where the config file is read from (``$ROUTEDECK_CONFIG`` wins over the XDG location)."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]).expanduser() if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "routedeck" / "config.toml"


@dataclass(frozen=True)
class Profile:
    """One named set of backends and defaults."""

    name: str
    source: Path
    flags: str | None = None
    metrics: str | None = None
    rule: Path | None = None
    refresh_s: float | None = None
    window_s: float | None = None
    operator: str | None = None
    read_only: bool = False
    tls_verify: bool = True
    ca_bundle: Path | None = None
    #: PromQL label matchers for every Prometheus query ("" when the profile sets none)
    prometheus_match: str = ""
    #: family name -> PromQL template overriding the Prometheus source's default
    prometheus_queries: dict[str, str] = field(default_factory=dict, hash=False)
    #: routedeck's metric or label name -> the name the application exports
    prometheus_names: dict[str, str] = field(default_factory=dict, hash=False)
    #: the bucketing rule the fleet's flagd evaluators use (console.core.fleet); None: not declared
    fleet_bucketing: str | None = None
    #: Timeouts attribute -> seconds, for the timeout keys the profile sets
    timeout_values: dict[str, float] = field(default_factory=dict, hash=False)
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(**self.timeout_values)

    def where(self, key: str | None = None) -> str:
        """``FILE:LINE`` of ``key`` in this profile (of the profile's table without a key).

        ``prometheus_queries.FAMILY`` is the line of one template."""
        line = self.lines.get(key or "", self.lines.get(""))
        return f"{self.source}:{line}" if line else str(self.source)

    @property
    def tls(self) -> TlsSettings:
        return TlsSettings(verify=self.tls_verify, ca_bundle=self.ca_bundle)


@dataclass(frozen=True)
class Config:
    """The profiles of one config file (empty when the file does not exist)."""

    path: Path
    profiles: dict[str, Profile] = field(default_factory=dict)
    default_profile: str | None = None
    #: guardrails by flag-name pattern or rule tag ([[rule_defaults]], console.core.rule_defaults)
    rule_defaults: tuple = ()

    def get(self, name: str) -> Profile:
        """The profile called ``name``; BadInput naming the file and the profiles it has otherwise."""
        if name in self.profiles:
            return self.profiles[name]
        if not self.profiles:
            raise BadInput(f"--profile {name}: {self.path} holds no profiles — add a [profiles.{name}] table")
        raise BadInput(f"--profile {name}: no such profile in {self.path} — it has {', '.join(sorted(self.profiles))}")


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """The config at ``path`` (default: ``config_path()``). A missing default file is an empty config;
    a missing file named by ``$ROUTEDECK_CONFIG`` is an error."""
    env = os.environ if environ is None else environ
    explicit = path is not None or bool(env.get(CONFIG_ENV))
    path = path or config_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise BadInput(f"{path}: config file not found — create it or unset {CONFIG_ENV}") from None
        return Config(path)
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text — save the config as UTF-8") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the config ({exc.strerror})") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Parse and validate config ``text`` read from ``path``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", message)
        where = f"{path}:{m.group(1)}" if m else str(path)
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        key = _key_on_line(text, int(m.group(1))) if m else None
        on_key = f" at key {key!r}" if key else ""
        hint = " (text values need quotes)" if reason == "Invalid value" else ""
        raise BadInput(f"{where}: malformed TOML{on_key}: {reason}{hint} — fix the line") from None
    lines = _key_lines(text)

    def at(*keys: str) -> str:
        return f"{path}:{_line_of(lines, keys)}" if _line_of(lines, keys) else str(path)

    for key in doc:
        if key not in TOP_KEYS:
            raise BadInput(f"{at(key)}: unknown key {key!r} — the top level takes {', '.join(TOP_KEYS)}")
    tables = doc.get("profiles", {})
    if not isinstance(tables, dict):
        raise BadInput(f"{at('profiles')}: profiles must be a table of [profiles.NAME] tables")
    profiles: dict[str, Profile] = {}
    for name, body in tables.items():
        if not _NAME.match(name):
            raise BadInput(f"{at('profiles', name)}: profile name {name!r} — use letters, digits, '.', '_' or '-'")
        if not isinstance(body, dict):
            raise BadInput(f"{at('profiles', name)}: profiles.{name} must be a table ([profiles.{name}])")
        profiles[name] = _profile(name, body, path, lines)
    default = doc.get("default_profile")
    if default is not None:
        if not isinstance(default, str):
            raise BadInput(f"{at('default_profile')}: default_profile must be a profile name (a string)")
        if default not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise BadInput(f"{at('default_profile')}: default_profile {default!r} names no profile — profiles: {known}")
    defaults = ()
    if "rule_defaults" in doc:
        from .rule_defaults import parse_rule_defaults

        defaults = parse_rule_defaults(doc["rule_defaults"], text, path)
    return Config(path, profiles, default, defaults)


def _profile(name: str, body: dict[str, Any], path: Path, lines: dict[tuple[str, ...], int]) -> Profile:
    key_lines = {"": _line_of(lines, ("profiles", name)) or 0}
    for key in body:
        key_lines[key] = _line_of(lines, ("profiles", name, key)) or key_lines[""]

    def fail(key: str, what: str) -> BadInput:
        line = key_lines.get(key) or key_lines[""]
        where = f"{path}:{line}" if line else str(path)
        return BadInput(f"{where}: profiles.{name}.{key}: {what}")

    for key in body:
        if key not in PROFILE_KEYS:
            raise fail(key, f"unknown key — a profile takes {', '.join(PROFILE_KEYS)}")
    values: dict[str, Any] = {}
    for key in ("flags", "metrics"):
        if key in body:
            spec = body[key]
            if not isinstance(spec, str) or ":" not in spec or not spec.partition(":")[2]:
                raise fail(key, f"expected {PROFILE_KEYS[key]}, got {_shown(spec)}")
            if redact(spec) != spec or re.search(r"//[^/@\s]*:[^/@\s]*@", spec):
                raise fail(key, f"holds a credential — remove it and store it with `routedeck login {name}`")
            values[key] = _spec_path(spec, path.parent)
    for key in ("rule", "ca_bundle"):
        if key in body:
            if not isinstance(body[key], str) or not body[key].strip():
                raise fail(key, f"expected {PROFILE_KEYS[key]}, got {_shown(body[key])}")
            values[key] = _path(body[key], path.parent)
    for key, attr in (("refresh", "refresh_s"), ("window", "window_s")):
        if key in body:
            seconds = parse_seconds(body[key])
            if seconds is None or seconds <= 0:
                raise fail(key, f"expected {PROFILE_KEYS[key]}, got {_shown(body[key])}")
            values[attr] = seconds
    limits = {}
    for key, attr in TIMEOUT_KEYS.items():
        if key in body:
            seconds = parse_seconds(body[key])
            if seconds is None or seconds <= 0:
                raise fail(key, f"expected {PROFILE_KEYS[key]}, got {_shown(body[key])}")
            limits[attr] = seconds
    if limits:
        values["timeout_values"] = limits
    if "operator" in body:
        if not isinstance(body["operator"], str) or not body["operator"].strip():
            raise fail("operator", f"expected {PROFILE_KEYS['operator']} (a string), got {_shown(body['operator'])}")
        values["operator"] = body["operator"].strip()
    for key in ("read_only", "tls_verify"):
        if key in body:
            if not isinstance(body[key], bool):
                raise fail(key, f"expected true or false, got {_shown(body[key])}")
            values[key] = body[key]
    if "fleet_bucketing" in body:
        from .fleet import RULES

        if body["fleet_bucketing"] not in RULES:
            raise fail("fleet_bucketing", f"expected {PROFILE_KEYS['fleet_bucketing']}, got {_shown(body['fleet_bucketing'])}")
        values["fleet_bucketing"] = body["fleet_bucketing"]
    _prometheus_options(body, values, key_lines, lines, ("profiles", name), fail)
    return Profile(name=name, source=path, lines=key_lines, **values)


def _prometheus_options(body: dict[str, Any], values: dict[str, Any], key_lines: dict[str, int],
                        lines: dict[tuple[str, ...], int], table: tuple[str, ...], fail) -> None:
    """Check ``prometheus_match`` and ``prometheus_queries`` and put them in ``values``.

    Only types and matcher syntax are checked here: which families exist and what a template must
    hold is the Prometheus adapter's business, checked when the source is opened."""
    given = [key for key in ("prometheus_match", "prometheus_queries", "prometheus_names") if key in body]
    if not given:
        return
    queries = body.get("prometheus_queries")
    if isinstance(queries, dict):  # each template's own line, for the errors that name a family
        for family in queries:
            line = _line_of(lines, (*table, "prometheus_queries", family))
            key_lines[f"prometheus_queries.{family}"] = line or key_lines["prometheus_queries"]
        if (*table, "prometheus_queries") not in lines and len(queries):  # dotted keys: no header line
            key_lines["prometheus_queries"] = min(key_lines[f"prometheus_queries.{f}"] for f in queries)
    metrics = values.get("metrics")
    if metrics is not None and metrics.partition(":")[0] != "prometheus":
        raise fail(given[0], f"applies only to a prometheus: metrics source, and metrics is {_shown(metrics)} — "
                             "remove the key or set metrics = \"prometheus:URL\"")
    if "prometheus_match" in body:
        match = body["prometheus_match"]
        if not isinstance(match, str):
            raise fail("prometheus_match", f"expected {PROFILE_KEYS['prometheus_match']}, got {_shown(match)}")
        text = match.strip()
        if text.startswith("{") and text.endswith("}"):
            raise fail("prometheus_match", "write the label matchers without the surrounding { } — "
                                           "routedeck puts them inside each query's selector")
        if not _MATCHERS.match(text):
            raise fail("prometheus_match", f"not PromQL label matchers: {_shown(match)} — write them as "
                                           "label=\"value\" (or !=, =~, !~), separated by commas")
        values["prometheus_match"] = text.rstrip(",").rstrip()
    if "prometheus_queries" in body:
        if not isinstance(queries, dict):
            raise fail("prometheus_queries", f"expected {PROFILE_KEYS['prometheus_queries']}, got {_shown(queries)}")
        for family, template in queries.items():
            if not isinstance(template, str) or not template.strip():
                shown = "an empty string" if isinstance(template, str) else _shown(template)
                raise fail(f"prometheus_queries.{family}",
                           f"expected a PromQL template (a string holding $by, $match and $at), got {shown}")
        values["prometheus_queries"] = {family: template.strip() for family, template in queries.items()}
    if "prometheus_names" in body:
        names = body["prometheus_names"]
        if not isinstance(names, dict):
            raise fail("prometheus_names", f"expected {PROFILE_KEYS['prometheus_names']}, got {_shown(names)}")
        for ours, theirs in names.items():
            line = _line_of(lines, (*table, "prometheus_names", ours))
            key_lines[f"prometheus_names.{ours}"] = line or key_lines["prometheus_names"]
            if not isinstance(theirs, str) or not _PROM_NAME.match(theirs):
                raise fail(f"prometheus_names.{ours}", f"expected a Prometheus metric or label name, got {_shown(theirs)}")
        values["prometheus_names"] = dict(names)


def _shown(value: Any) -> str:
    """A value as an error shows it: its TOML type, and short text values redacted."""
    if isinstance(value, str):
        return repr(redact(value)) if len(value) <= 60 else "a long string"
    return {bool: "a boolean", int: "a number", float: "a number", dict: "a table", list: "an array"}.get(
        type(value), type(value).__name__
    )


def parse_seconds(value: Any) -> float | None:
    """A duration (a number of seconds, or text such as "500ms", "5s", "10m", "1h") in seconds; None when
    it is not one — NaN and infinity included (TOML writes them as ``nan`` and ``inf``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT_S[m.group(2)]
    return None


def _path(text: str, base: Path) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p


def _spec_path(spec: str, base: Path) -> str:
    """A ``flagd:`` spec's relative path made relative to the config file; other specs as they are."""
    kind, _, rest = spec.partition(":")
    if kind != "flagd":
        return spec
    return f"flagd:{_path(rest, base)}"


# ---- where keys are: tomllib keeps no positions, so find them in the text ------------------------

_BARE_OR_QUOTED = r'(?:[A-Za-z0-9_-]+|"[^"\n]*"|\'[^\'\n]*\')'
_DOTTED = rf"{_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=\s*(.*)$")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_DOTTED})\s*=")


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(_BARE_OR_QUOTED, text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The first line of every table header and key in ``text``, by full dotted path (best effort)."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if in_multiline:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header:
            table = _split_dotted(header.group(1))
            found.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if not key:
            continue
        path = table + _split_dotted(key.group(1))
        found.setdefault(path, number)
        value = key.group(2)
        for quote in ('"""', "'''"):
            if value.count(quote) % 2 == 1:
                in_multiline = quote
        if value.lstrip().startswith("{"):
            for inner in _INLINE_KEY.finditer(value):
                found.setdefault(path + _split_dotted(inner.group(1)), number)
    return found


def _key_on_line(text: str, number: int) -> str | None:
    """The dotted key written on line ``number`` of ``text`` (1-based), if that line holds one."""
    lines = text.splitlines()
    if not 0 < number <= len(lines):
        return None
    key = _KEY.match(lines[number - 1])
    return ".".join(_split_dotted(key.group(1))) if key else None


def _line_of(lines: dict[tuple[str, ...], int], keys: tuple[str, ...]) -> int | None:
    """The line of ``keys``, else of its nearest enclosing table that has one."""
    for end in range(len(keys), 0, -1):
        if keys[:end] in lines:
            return lines[keys[:end]]
    return None
