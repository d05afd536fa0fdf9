"""Reading journal lines: streaming from the start, and the last entry from the end.

A line is only complete with its newline: appends write the whole line in one ``write``, so a
last line without one (or one that does not parse) is what a crash mid-write leaves behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RawLine:
    """One line of the journal as bytes, with its 1-based number and whether it is the last."""

    number: int
    data: bytes
    last: bool

    @property
    def complete(self) -> bool:
        return self.data.endswith(b"\n")


def iter_raw_lines(path: Path) -> Iterator[RawLine]:
    """Stream the lines of ``path`` once, flagging the last one (one line of lookahead)."""
    with open(path, "rb") as fh:
        pending: bytes | None = None
        number = 0
        for data in fh:
            if pending is not None:
                yield RawLine(number, pending, last=False)
            number += 1
            pending = data
        if pending is not None:
            yield RawLine(number, pending, last=True)


def parse_line(data: bytes) -> dict[str, Any] | None:
    """The JSON object on a line, or None when it is not one."""
    try:
        obj = json.loads(data, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # the writer never emits NaN/Infinity literals


@dataclass(frozen=True)
class Tail:
    """The end of the journal: the last complete, parseable entry and any torn bytes after it."""

    #: the last complete line that parses (None for an empty journal or one with no good line)
    entry: dict[str, Any] | None
    #: byte offset where the torn part starts (== file size when nothing is torn)
    good_end: int
    #: bytes after ``good_end`` that a crash left behind
    torn: bytes
    #: True when more than a crash can explain is wrong at the end (two bad lines in a row)
    damaged: bool = False


def read_tail(fd: int) -> Tail:
    """Find the last entry by reading backwards from the end of an open file.

    Torn: an incomplete last line, and/or a last complete line that does not parse. If the line
    before a torn one does not parse either, the journal is damaged beyond a crash.
    """
    size = os.fstat(fd).st_size
    end = size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        end = _line_start(fd, size)  # the incomplete line starts after the last newline
    if end == 0:
        return Tail(None, 0, os.pread(fd, size, 0))
    start = _line_start(fd, end - 1)
    entry = parse_line(os.pread(fd, end - start, start))
    if entry is not None:
        return Tail(entry, end, os.pread(fd, size - end, end))
    if start == 0:
        return Tail(None, 0, os.pread(fd, size, 0))
    before = _line_start(fd, start - 1)
    entry = parse_line(os.pread(fd, start - before, before))
    return Tail(entry, start, os.pread(fd, size - start, start), damaged=entry is None)


def _line_start(fd: int, end: int) -> int:
    """Offset just after the last newline before ``end`` (0 when there is none)."""
    pos = end
    while pos > 0:
        step = min(_CHUNK, pos)
        chunk = os.pread(fd, step, pos - step)
        found = chunk.rfind(b"\n")
        if found >= 0:
            return pos - step + found + 1
        pos -= step
    return 0
