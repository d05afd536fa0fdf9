"""routedeck's single entry point: `routedeck COMMAND …` (see `routedeck --help`)."""

from __future__ import annotations

import argparse
import importlib
import sys

from console.commands import COMMANDS
from console.core.errors import BackendError, BadInput, RouteDeckError

EXIT_BAD_INPUT = 2
EXIT_BACKEND = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routedeck",
        description="Operate LLM model routes: live routes, staged rollouts with guardrails, one-key rollback.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"console.commands.{name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.run(args) or 0)
    except BadInput as exc:
        print(f"routedeck: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BackendError as exc:
        print(f"routedeck: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except RouteDeckError as exc:
        print(f"routedeck: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
