"""Which routedeck wrote a rollout state, in which format, judged by which engine.

The rollout state lives with the flag on the platform and is read and written by every routedeck that
operates it — a console on one laptop, a guard on a server, each of its own version. Three marks keep
them honest with each other:

- ``STATE_SCHEMA``: the format of the state object. A routedeck never rewrites a state written in a
  newer format than its own (it would drop or misread what it does not know), except to roll back,
  which is always allowed and keeps the fields it does not know.
- ``routedeck_version()``: who wrote it, so the refusal can say which version to install.
- ``engine_version()``: a digest of the decision engine's code. A stage judged by one engine and then
  by another (an upgrade in the middle of a stage) holds until an operator acknowledges the change:
  the same data can read differently, and nobody should find that out from an automatic advance.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

#: 1: before these marks; 2: schema, writer and engine recorded
STATE_SCHEMA = 2


@lru_cache(maxsize=1)
def routedeck_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("routedeck")
    except PackageNotFoundError:
        return "0+unknown"


@lru_cache(maxsize=1)
def engine_version() -> str:
    """The first 12 hex digits of sha256 over the decision engine's source files, in name order."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).parent / "stats").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
