"""Turn ``--profile NAME`` (or the config's default profile) into the options a command runs with.

Explicit ``--flags`` / ``--metrics`` / ``--rule`` / ``--operator`` win over the profile's. The
default profile applies only when the command names no backend itself, so a token stored for a
profile is never sent to a server typed on the command line without that profile being asked for.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from console.core import credentials
from console.core.errors import BadInput
from console.core.timeouts import use_timeouts
from console.core.tls import use_tls

if TYPE_CHECKING:  # the config reader and the fleet's hashing load when a profile is read, not on every start
    from console.core.config import Config, Profile

#: commands that change flags without offering --dry-run (the guard rolls back on its own)
_ALWAYS_WRITING = ("guard",)


def activate(profile: Profile | None) -> None:
    """Make ``profile``'s stored credentials and TLS settings the ones adapters use from now on."""
    credentials.use_profile(profile.name if profile else None)
    use_tls(profile.tls if profile else None)
    if profile is not None or "console.core.fleet" in sys.modules:  # not loaded yet: its default is in force
        from console.core.fleet import use_fleet

        use_fleet(profile.fleet_bucketing if profile else None)
    use_timeouts(profile.timeouts if profile else None)
    if profile is not None and profile.ca_bundle is not None and not profile.ca_bundle.is_file():
        raise BadInput(f"{profile.where('ca_bundle')}: ca_bundle {profile.ca_bundle}: file not found — fix the path")


def has_default_profile() -> bool:
    """True when the config file names a default profile."""
    from console.core.config import load_config

    return load_config().default_profile is not None


def chosen_profile(args: argparse.Namespace, config: Config | None = None) -> Profile | None:
    """The profile a command runs with: ``--profile``, else the default one when no backend was named."""
    from console.core.config import load_config

    name = getattr(args, "profile", None)
    if name is None:
        if getattr(args, "flags", None) or getattr(args, "metrics", None) or getattr(args, "sim_flags", None):
            return None
        config = config or load_config()
        if config.default_profile is None:
            return None
        return config.profiles[config.default_profile]
    config = config or load_config()
    return config.get(name)


def _config_if_any() -> Config | None:
    """The config file when it exists (its rule defaults apply to every command); None when there is none."""
    from console.core.config import config_path, load_config

    if not config_path().exists():
        return None
    return load_config()


def apply_profile(args: argparse.Namespace) -> Profile | None:
    """Fill ``args`` from the chosen profile, activate its credentials and TLS settings, and check
    that what the command requires is there."""
    from console.core.fleet import MIXED_WARNING
    from console.core.rule_defaults import use_rule_defaults

    config = _config_if_any()
    use_rule_defaults(config.rule_defaults if config is not None else ())
    profile = chosen_profile(args, config)
    activate(profile)
    if profile is not None and profile.fleet_bucketing == "mixed":
        print(f"routedeck: warning: {profile.where('fleet_bucketing')}: {MIXED_WARNING}", file=sys.stderr)
    if profile is not None:
        args.profile = profile.name
        if not getattr(args, "flags", None) and profile.flags:
            args.flags = profile.flags
        if hasattr(args, "sim_flags") and not args.sim_flags and profile.flags:  # `simulate` names it apart
            args.sim_flags = profile.flags
        if hasattr(args, "metrics") and not args.metrics and profile.metrics:
            args.metrics = profile.metrics
        if getattr(args, "rule", None) is None and profile.rule is not None:
            args.rule = profile.rule
        if hasattr(args, "operator") and not args.operator and profile.operator:
            args.operator = profile.operator
        if profile.refresh_s is not None:
            args.refresh_s = profile.refresh_s
        if profile.window_s is not None:
            args.window_s = profile.window_s
        if profile.read_only:
            args.read_only = True
            writes = (hasattr(args, "dry_run") and not args.dry_run) or getattr(args, "command", None) in _ALWAYS_WRITING
            if writes:
                raise BadInput(
                    f"{profile.where('read_only')}: profile {profile.name} is read-only — "
                    "this command changes flags; add --dry-run to see the change, or use another profile"
                )
    if getattr(args, "rule_required", False) and getattr(args, "rule", None) is None:
        raise BadInput("--rule FILE is required (or a --profile whose rule = \"FILE\")")
    return profile
