"""`routedeck profiles`: the profiles of the config file, where each token comes from, and whether each connects.

For every profile: its flag platform, metrics source, rule and where its tokens are read from
(keyring, an environment variable, or missing — never the token), then one check line: ok with the
time each backend took to answer, or the error. Exits 1 if any profile fails its check.
"""

from __future__ import annotations

import argparse
import time

from console.core.errors import RouteDeckError
from console.core.redact import redact

from .common import EXIT_BACKEND


def add_parser(sub) -> None:
    p = sub.add_parser("profiles", help="list the config's profiles and check that each can connect",
                       description=__doc__)
    p.add_argument("--no-check", action="store_true", help="only list; connect to nothing")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from console.core.config import load_config
    from console.core.errors import BadInput

    config = load_config()
    if not config.profiles:
        raise BadInput(f"{config.path}: no profiles — add a [profiles.NAME] table (see docs/profiles.md)")
    failed = 0
    for name in sorted(config.profiles):
        profile = config.profiles[name]
        for line in describe(profile, default=name == config.default_profile):
            print(line, flush=True)
        if not args.no_check:
            ok, text = check(profile)
            failed += not ok
            print(f"  check    {'ok' if ok else 'FAIL'} {text}", flush=True)
    if failed:
        print(f"{failed} of {len(config.profiles)} profiles failed the check")
        return EXIT_BACKEND
    return 0


def token_sources(profile) -> list[str]:
    """``name: keyring | env VAR | missing`` for each token the profile's backends read."""
    from console.core.credentials import needed_credentials, token_origin

    out = []
    for cred in needed_credentials(profile.flags, profile.metrics):
        origin = token_origin(cred.env_var, profile.name)
        if origin == "missing" and not cred.required:
            origin = "none (optional)"
        out.append(f"{cred.name}: {origin}")
    return out


def describe(profile, default: bool = False) -> list[str]:
    """The listing lines of one profile (no secret can be in them: specs with one are refused on load)."""
    lines = [f"{profile.name}{' (default)' if default else ''}  [{profile.where()}]"]
    lines.append(f"  flags    {redact(profile.flags) if profile.flags else '—'}")
    lines.append(f"  metrics  {redact(profile.metrics) if profile.metrics else '—'}")
    if profile.prometheus_match:
        lines.append(f"  match    {redact(profile.prometheus_match)}")
    if profile.prometheus_queries:
        lines.append(f"  queries  {', '.join(profile.prometheus_queries)} (the profile's own templates)")
    lines.append(f"  rule     {profile.rule if profile.rule else '—'}")
    if profile.fleet_bucketing:
        from console.core.fleet import DESCRIBED

        warn = "  ⚠ one unit can get both routes" if profile.fleet_bucketing == "mixed" else ""
        lines.append(f"  fleet    {profile.fleet_bucketing}: {DESCRIBED[profile.fleet_bucketing]}{warn}")
    lines.append(f"  tokens   {' · '.join(token_sources(profile)) or 'none needed'}")
    if not profile.tls_verify:
        lines.append("  tls      TLS verification OFF")
    elif profile.ca_bundle:
        lines.append(f"  tls      verified, also trusting {profile.ca_bundle}")
    return lines


def check(profile) -> tuple[bool, str]:
    """(ok, one line): connect to the profile's backends and time one read from each."""
    from console.core.credentials import needed_credentials, token_origin
    from console.profiles import activate

    try:
        activate(profile)
        missing = [c for c in needed_credentials(profile.flags, profile.metrics)
                   if c.required and token_origin(c.env_var, profile.name) == "missing"]
        if missing:
            c = missing[0]
            return False, (f"no {c.what}: run `routedeck login {profile.name} --which {c.name}` "
                           f"or set {c.env_var}")
        if not (profile.flags or profile.metrics):
            return False, f"{profile.where()}: names neither flags nor metrics — nothing to connect to"
        parts = []
        if profile.rule is not None:
            from console.core.rules import load_rule

            load_rule(profile.rule)
        if profile.flags:
            parts.append(_check_flags(profile.flags))
        if profile.metrics:
            parts.append(_check_metrics(profile))
        return True, " · ".join(parts)
    except RouteDeckError as exc:
        return False, str(exc)
    except Exception as exc:  # one profile's surprise must not hide the others' results
        return False, f"{type(exc).__name__}: {' '.join(redact(str(exc)).split())[:160]}"
    finally:
        activate(None)


def _check_flags(spec: str) -> str:
    from console.backends import open_flags

    t0 = time.perf_counter()
    platform = open_flags(spec)
    try:
        keys = platform.list_flags()
    finally:
        platform.close()
    ms = (time.perf_counter() - t0) * 1000
    return f"flags {ms:.0f} ms ({len(keys)} flag{'s' if len(keys) != 1 else ''})"


def _check_metrics(profile) -> str:
    from console.backends import open_metrics

    t0 = time.perf_counter()
    source = open_metrics(profile.metrics, profile.flags, profile=profile)
    try:
        now = source.now()
        source.read(now - 60.0, now, 60.0)
    finally:
        source.close()
    ms = (time.perf_counter() - t0) * 1000
    return f"metrics {ms:.0f} ms"
