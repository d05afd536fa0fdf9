"""routedeck's single entry point: `routedeck COMMAND …` (see `routedeck --help`)."""

from __future__ import annotations

import argparse
import importlib
import sys

from console.commands import COMMANDS
from console.core.errors import BackendError, BadInput, RouteDeckError

EXIT_BAD_INPUT = 2
EXIT_BACKEND = 1


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv`` only the command named in it is imported (the others are names only), so
    a command starts without loading what the others need (the console, the simulator, the statistics)."""
    parser = argparse.ArgumentParser(
        prog="routedeck",
        description="Operate LLM model routes: live routes, staged rollouts with guardrails, one-key rollback.",
    )
    parser.add_argument("--flags", help="open the console on this flag platform SPEC (flagd:PATH, unleash:URL?…)")
    parser.add_argument("--metrics", help="…and this metrics SPEC (events:DIR, clickhouse:URL?database=D&table=T, prometheus:URL, "
                        "or sim:SCENARIO with a flagd file; slo_ms=N in any: the latency SLO requests are counted in at; "
                        "docs/events.md)")
    parser.add_argument("--state-dir", type=__import__("pathlib").Path, help="where the journal lives")
    parser.add_argument("--read-only", action="store_true", help="hide and refuse every action that changes flags")
    parser.add_argument("--rule", type=__import__("pathlib").Path, action="append", metavar="FILE",
                        help="judge a flag's rollout against this decision rule (YAML); repeat it for several flags")
    parser.add_argument("--budgets", type=__import__("pathlib").Path, metavar="FILE",
                        help="monthly budgets (TOML) for the b view (default: console/core/data/budgets.toml)")
    parser.add_argument("--profile", metavar="NAME", help="backends and defaults from this profile of the config file")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if argv is None or {"-h", "--help"} & set(argv) and not set(argv) & set(COMMANDS):
        named = set(COMMANDS)  # the help lists every command with its own words
    else:
        named = set(argv) & set(COMMANDS)
    for name in COMMANDS:
        if name in named:
            importlib.import_module(f"console.commands.{name}").add_parser(sub)
        else:
            sub.add_parser(name)  # a name only: this run does not use it
    return parser


def run_console(args: argparse.Namespace) -> int:
    """`routedeck --flags SPEC --metrics SPEC`: the console on any backends."""
    from functools import partial

    if not (args.flags and args.metrics):
        raise BadInput("the console needs both --flags SPEC and --metrics SPEC (or run `routedeck demo`)")

    def load(flags_spec: str, metrics_spec: str, state):
        from console.backends import open_flags, open_metrics
        from console.commands.common import state_dir
        from console.core.journal import Journal, journal_path

        platform = open_flags(flags_spec)
        flags = {key: platform.read_flag(key) for key in platform.list_flags()}
        if not flags:
            raise BadInput(f"{platform.describe()}: holds no route flags — create one with `routedeck init`")
        metrics = open_metrics(metrics_spec, flags_spec, profile=getattr(state, "active_profile", None))
        from console.core.rules import load_rule

        given = getattr(state, "rule", None)  # --rule (repeatable) or the profile's rule
        rules = [load_rule(path) for path in (given if isinstance(given, list) else [given] if given else [])]
        for rule in rules:
            if rule.flag_key not in flags:
                raise BadInput(f"{rule.path}: flag {rule.flag_key!r} is not on {platform.describe()} — "
                               f"route flags there: {', '.join(sorted(flags))}")
        return platform, metrics, flags, Journal(journal_path(state_dir(state))), rules

    from console.app import RouteDeckApp

    loader = partial(load, args.flags, args.metrics, args)
    if not sys.stdout.isatty():
        loader()  # nothing to paint: report bad input at once
    timing = {k: v for k, v in (("refresh_s", getattr(args, "refresh_s", None)),
                                ("window_s", getattr(args, "window_s", None))) if v is not None}
    app = RouteDeckApp(loader=loader, read_only=args.read_only, **timing)
    if getattr(args, "budgets", None) is not None:
        from console.core.budgets import BudgetConfig

        app.budgets_config = BudgetConfig.load(args.budgets)
    code = app.run()
    if app.startup_error is not None:
        raise app.startup_error
    return int(code or 0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _one_blas_thread()
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    command = getattr(args, "command", None)
    if command in (None, "demo"):  # the console draws on the terminal itself (its text goes through visible)
        from console import memory

        memory.hold_collection()  # the console resumes it once started (RouteDeckApp.on_loaded)
        try:
            return _main(parser, args)
        finally:
            memory.resume_collection()
    from console.commands.output import shown_as_text

    with shown_as_text():
        return _main(parser, args)


def _one_blas_thread() -> None:
    """numpy's OpenBLAS starts a pool of worker threads when numpy is imported, and they spin waiting for
    work: 20–60 ms of CPU on a second core while the console loads (import numpy: ~100–145 ms of CPU, ~80
    with one thread). routedeck's BLAS calls are dot and matrix-vector products over one rollout's units,
    which OpenBLAS runs on one thread when they are small (the demo's always are); a large one gives the
    same sum up to the last bits of rounding, as it does between machines with different core counts.
    One thread unless the user set it (before numpy is imported; no command has imported it yet)."""
    import os

    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        from console import credentials
        from console.profiles import activate, apply_profile, has_default_profile

        credentials.install()
        activate(None)  # a profile from an earlier call in this process never leaks into this one
        if not getattr(args, "command", None):
            if args.flags or args.metrics or args.profile or has_default_profile():
                args.run = run_console
            else:
                parser.print_help()
                return EXIT_BAD_INPUT
        if getattr(args, "uses_profile", False) or not getattr(args, "command", None):
            args.active_profile = apply_profile(args)  # open_metrics takes its Prometheus options
        from console.core.credentials import active_profile, remember_all

        remember_all(active_profile())  # every secret held is masked from here on, wherever it turns up
        return int(args.run(args) or 0)
    except BadInput as exc:
        print(f"routedeck: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_BAD_INPUT)  # a verdict's refusal: its code (3 hold, 4 rollback)
    except BackendError as exc:
        print(f"routedeck: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except RouteDeckError as exc:
        print(f"routedeck: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_BACKEND)  # a lease held by someone else: 5
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: one line for the operator (ROUTEDECK_DEBUG=1 shows the traceback)
        import os

        if os.environ.get("ROUTEDECK_DEBUG"):
            raise
        from console.core.redact import redact

        print(f"routedeck: unexpected error ({type(exc).__name__}: {redact(str(exc))}) — nothing more was done; "
              "run again with ROUTEDECK_DEBUG=1 for the details and report it", file=sys.stderr)
        return EXIT_BACKEND


if __name__ == "__main__":
    sys.exit(main())
