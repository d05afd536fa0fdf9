"""`routedeck advance`: move the rollout one stage when the verdict allows it (or --override with a reason)."""

from __future__ import annotations

import argparse

from .common import add_stage_change_parser, run_stage_change


def add_parser(sub) -> None:
    add_stage_change_parser(sub, "advance", __doc__, "move the rollout one stage, if the verdict allows it",
                            "force one stage past a HOLD or ROLLBACK verdict", run)


def run(args: argparse.Namespace) -> int:
    from console.core import operations
    from console.core.rollout import current_stage_name

    return run_stage_change(args, operations.advance, lambda after, result: (
        f"{after.key} now at stage {current_stage_name(after)}, {after.allocation.describe()} "
        f"({result.write.elapsed_s * 1000:.0f} ms)"))
