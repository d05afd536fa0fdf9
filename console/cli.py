"""Command-line entry point (subcommands are added as they land)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("routedeck: no command yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
