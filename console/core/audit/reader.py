"""Reading the journal: entries in order (streamed, filtered before they are built) and the head."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from ..errors import BadInput
from .entry import EMPTY_HEAD, ChainHead, JournalEntry, canonical_json, format_time, is_digest
from .lines import iter_raw_lines, parse_line, read_tail


def read_entries(
    path: Path | str,
    flag: str | None = None,
    since: datetime | int | None = None,
) -> Iterator[JournalEntry]:
    """Entries in file order, optionally only for ``flag`` and from ``since`` (a time, or a seq).

    Streams the file once. A torn last line (a crash mid-write) is skipped; any other line that
    is not an entry raises BadInput naming it. This does not check the chain: use ``verify``.
    """
    path = Path(path)
    if not path.exists():
        return
    since_time = format_time(since) if isinstance(since, datetime) else None
    since_seq = since if isinstance(since, int) and not isinstance(since, bool) else None
    # Lines are canonical JSON, so a line for the flag contains exactly this; skip others unparsed.
    needle = b'"flag":' + canonical_json(flag).encode("ascii") if flag is not None else None
    for raw in iter_raw_lines(path):
        if needle is not None and needle not in raw.data and not raw.last:
            continue
        obj = parse_line(raw.data) if raw.complete else None
        if obj is None:
            if raw.last:
                return
            raise BadInput(f"journal {path} line {raw.number}: not a journal entry — run `routedeck audit verify {path}`")
        if flag is not None and obj.get("flag") != flag:
            continue
        if since_time is not None and str(obj.get("time", "")) < since_time:
            continue
        if since_seq is not None and not (isinstance(obj.get("seq"), int) and obj["seq"] >= since_seq):
            continue
        try:
            yield JournalEntry.model_validate(obj)
        except ValueError:
            raise BadInput(
                f"journal {path} line {raw.number}: not a journal entry — run `routedeck audit verify {path}`"
            ) from None


def head(path: Path | str) -> ChainHead:
    """(seq, hash) of the last complete entry, read from the end of the file; (0, GENESIS) if empty.

    A torn last line is ignored, as the writer will cut it off on its next append.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return EMPTY_HEAD
    except OSError as exc:
        raise BadInput(f"journal {path}: cannot be read ({exc.strerror}) — check its permissions") from None
    try:
        tail = read_tail(fd)
    finally:
        os.close(fd)
    if tail.entry is None and not tail.damaged:
        return EMPTY_HEAD
    seq = tail.entry.get("seq") if tail.entry else None
    digest = tail.entry.get("hash") if tail.entry else None
    if tail.damaged or not isinstance(seq, int) or not is_digest(digest):
        raise BadInput(f"journal {path}: the last entry is damaged — run `routedeck audit verify {path}`")
    return ChainHead(seq, digest)
