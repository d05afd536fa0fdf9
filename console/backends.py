"""Turn a backend SPEC (``flagd:PATH``, ``sim:SCENARIO?seed=N``, ``unleash:URL``…) into an adapter.

This is the one place that knows every adapter; commands and the app ask it for a
``FlagPlatform`` or a ``MetricsSource`` and never import adapters themselves.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from typing import TYPE_CHECKING

from console.core.errors import BadInput
from console.core.redact import redact

if TYPE_CHECKING:
    from console.core.config import Profile
    from console.core.ports import FlagPlatform, MetricsSource

FLAG_KINDS = ("flagd", "unleash", "featbit", "launchdarkly")
METRIC_KINDS = ("sim", "prometheus", "events", "clickhouse")


def _split(spec: str, option: str, kinds: tuple[str, ...]) -> tuple[str, str]:
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in kinds:
        raise BadInput(
            f"{option} {redact(spec)!r}: unknown backend — use one of "
            + ", ".join(f"{k}:…" for k in kinds)
        )
    if not rest:
        raise BadInput(f"{option} {kind}: needs a location after '{kind}:'")
    return kind, rest


def open_flags(spec: str) -> "FlagPlatform":
    """The flag platform named by ``spec`` (``--flags``)."""
    kind, rest = _split(spec, "--flags", FLAG_KINDS)
    if kind == "flagd":
        from adapters.flags.flagd_file import FlagdFilePlatform

        return FlagdFilePlatform.from_spec(spec)
    if kind == "unleash":
        from adapters.flags.unleash import UnleashPlatform

        return UnleashPlatform.from_spec(spec)
    if kind == "launchdarkly":
        from adapters.flags.launchdarkly import LaunchDarklyPlatform

        return LaunchDarklyPlatform.from_spec(spec)
    from adapters.flags.featbit import FeatBitPlatform  # type: ignore[import-not-found]

    return FeatBitPlatform.from_spec(spec)


def flags_file_of(spec: str) -> Path | None:
    """The flag file behind a ``flagd:`` spec (the simulator evaluates it directly)."""
    kind, _, rest = spec.partition(":")
    return Path(rest.partition("?")[0]).expanduser() if kind == "flagd" and rest else None


def open_metrics(
    spec: str, flags_spec: str | None = None, *, profile: Profile | None = None, **options
) -> "MetricsSource":
    """The metrics source named by ``spec`` (``--metrics``).

    The simulator needs the flag file it evaluates, taken from ``flags_spec``. ``profile`` is the
    profile the command runs with: its ``prometheus_match``, ``prometheus_names`` and ``prometheus_queries`` go to a
    ``prometheus:`` source (whether ``spec`` is the profile's own or one given with ``--metrics``);
    other sources ignore them.
    """
    kind, rest = _split(spec, "--metrics", METRIC_KINDS)
    if kind in ("events", "clickhouse"):
        return _open_event_store(kind, spec, flags_spec, **options)
    if kind == "sim":
        from adapters.metrics.simulated import SimulatedMetricsSource

        path = flags_file_of(flags_spec or "")
        if path is None:
            raise BadInput("--metrics sim:… evaluates a flag file: pass --flags flagd:PATH as well")
        return SimulatedMetricsSource.from_spec(spec, path, **options)
    from adapters.metrics.prometheus import PrometheusSource

    options.setdefault("variants_of", variants_from_flags(flags_spec))
    if profile is None or not (profile.prometheus_match or profile.prometheus_queries or profile.prometheus_names):
        return PrometheusSource.from_spec(spec, **options)
    try:
        return PrometheusSource.from_spec(
            spec, templates=profile.prometheus_queries, match=profile.prometheus_match,
            names=profile.prometheus_names or None, **options
        )
    except BadInput as exc:
        raise _in_profile(exc, profile) from None


def variants_from_flags(flags_spec: str | None):
    """``variants_of(flag)``: the flag's variants mapped to (arm, route), as the flag platform holds the flag
    now (read again at most every few seconds). Without ``--flags`` no variant has an arm, and a variant's
    route is its name."""
    import threading
    import time

    if not flags_spec:
        return lambda flag: {}
    platform = open_flags(flags_spec)
    cache: dict[str, tuple[float, dict[str, tuple[str, str]]]] = {}
    lock = threading.Lock()

    def variants_of(flag: str) -> dict[str, tuple[str, str]]:
        with lock:
            seen = cache.get(flag)
            if seen is not None and time.monotonic() - seen[0] < 5.0:
                return seen[1]
            try:
                route_flag = platform.read_flag(flag)
            except Exception:
                if flag not in platform.list_flags():
                    cache[flag] = (time.monotonic(), {})
                    return {}
                raise
            # as the simulator counts them: a flag with no candidate has no arms (no rollout in progress)
            found = {name: ("other", profile.route) for name, profile in route_flag.variations.items()}
            if route_flag.candidate:
                found[route_flag.baseline] = ("baseline", route_flag.variations[route_flag.baseline].route)
                found[route_flag.candidate] = ("candidate", route_flag.variations[route_flag.candidate].route)
            cache[flag] = (time.monotonic(), found)
            return found

    return variants_of


def arms_from_flags(flags_spec: str | None):
    """``arms_of(flag)`` for an event store: the flag's baseline and candidate variants mapped to their arms."""
    variants_of = variants_from_flags(flags_spec)

    def arms_of(flag: str) -> dict[str, str]:
        return {v: arm for v, (arm, _) in variants_of(flag).items() if arm != "other"}

    return arms_of


def _open_event_store(kind: str, spec: str, flags_spec: str | None, **options) -> "MetricsSource":
    arms_of = options.pop("arms_of", None) or arms_from_flags(flags_spec)
    if kind == "events":
        from adapters.metrics.events import EventsSource

        return EventsSource.from_spec(spec, arms_of=arms_of, **options)
    from adapters.metrics.clickhouse import ClickHouseSource

    return ClickHouseSource.from_spec(spec, arms_of=arms_of, **options)


def _in_profile(exc: BadInput, profile: Profile) -> BadInput:
    """``exc`` from opening a Prometheus source with a profile's options, prefixed with the file,
    line and key of the option it is about (a bad spec is the --metrics one's business, left as is)."""
    message = str(exc)
    if message.startswith("--metrics"):
        return exc
    named = [family for family in profile.prometheus_queries if repr(family) in message]
    mapped = [name for name, theirs in profile.prometheus_names.items() if repr(name) in message or repr(theirs) in message]
    if message.startswith("prometheus name") and mapped:
        key = f"prometheus_names.{mapped[0]}"
    elif named:
        key = f"prometheus_queries.{named[0]}"
    else:
        key = "prometheus_queries" if profile.prometheus_queries else "prometheus_match"
    return BadInput(f"{profile.where(key)}: profiles.{profile.name}.{key}: {message}")


def spec_query(spec: str) -> dict[str, str]:
    """The ``?a=b&c=d`` options of a spec as a flat dict (last value wins)."""
    query = urlsplit(spec.partition(":")[2]).query
    return {k: v[-1] for k, v in parse_qs(query).items()}
