"""`routedeck promote`: at the last stage, make the candidate the new baseline (the old one stays a variation)."""

from __future__ import annotations

import argparse

from .common import add_stage_change_parser, run_stage_change


def add_parser(sub) -> None:
    add_stage_change_parser(sub, "promote", __doc__, "make the candidate the new baseline once the final check passes",
                            "promote despite a HOLD verdict", run)


def run(args: argparse.Namespace) -> int:
    from console.core import operations

    return run_stage_change(args, operations.promote, lambda after, result: (
        f"{after.key} serves 100% {after.baseline} (previous baseline kept as a variation)"))
