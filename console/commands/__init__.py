"""One module per CLI subcommand: each has ``add_parser(subparsers)`` and ``run(args) -> int``."""

COMMANDS = ("demo", "init", "check", "advance", "rollback", "promote", "ack", "audit", "guard", "simulate", "profiles", "login", "frontier", "segments")
