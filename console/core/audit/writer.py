"""Appending to the journal: one locked, fsynced line per entry, continuing the chain on disk.

Appends from any number of processes are serialised by an exclusive ``flock`` on a sidecar
``<journal>.lock`` file (not the journal itself, so readers never contend), and each append
re-reads the tail under that lock, so two consoles and a headless guard share one chain.
"""

from __future__ import annotations

import errno
import fcntl
import json
import getpass
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import RouteDeckError
from ..redact import hide_known
from ..timeouts import timeouts
from .entry import (
    EMPTY_HEAD,
    ChainHead,
    EntryFields,
    JournalEntry,
    Operator,
    format_time,
    is_digest,
    seal,
    to_json_value,
)
from .lines import read_tail

JOURNAL_FILENAME = "journal.jsonl"
#: hex digits of the first entry's hash that name a journal
IDENTITY_LEN = 16


def identity_of(fd: int) -> str | None:
    """The identity of the journal open at ``fd``: the start of its first entry's hash, or None."""
    first = b""
    while len(first) < (1 << 20):  # an entry is a few kilobytes; read on until its newline
        chunk = os.pread(fd, 4096, len(first))
        first += chunk
        if not chunk or b"\n" in chunk:
            break
    first = first.split(b"\n", 1)[0]
    try:
        digest = json.loads(first).get("hash")
    except (ValueError, AttributeError):
        return None
    return digest[:IDENTITY_LEN] if is_digest(digest) else None


class JournalUnavailable(RouteDeckError):
    """The journal cannot be written. Callers decide: advance/promote stop, rollback goes on and warns."""

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        super().__init__(f"audit journal {path}: {problem} — {fix}")
        self.path = path


def journal_path(state_dir: Path) -> Path:
    """Where the journal lives in a state dir."""
    return Path(state_dir) / JOURNAL_FILENAME


def current_os_user() -> str:
    """The login name, or ``uid<N>`` where the system has no name for the user (some containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


def make_fields(fields: EntryFields | Mapping[str, Any] | None = None, **more: Any) -> EntryFields:
    """Validate what a caller wants recorded; values become plain JSON first (models, enums, NaN…)."""
    if isinstance(fields, EntryFields):
        if not more:
            return fields
        fields = fields.model_dump()
    raw = {**(fields or {}), **more}
    operator = raw.pop("operator", None)
    data = {key: _masked(to_json_value(value)) for key, value in raw.items()}
    if operator is not None:
        data["operator"] = operator
    return EntryFields.model_validate(data)


def _masked(value: Any) -> Any:
    """Plain JSON data with every secret routedeck holds replaced by *** (a token pasted into a reason, an
    error that echoed one): the journal is read by reviewers and exported; it never stores a credential."""
    if isinstance(value, str):
        return hide_known(value)
    if isinstance(value, dict):
        return {hide_known(str(k)): _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


class Journal:
    """An append-only, hash-chained journal file shared by every routedeck process on this machine."""

    def __init__(
        self,
        path: Path | str,
        *,
        operator_name: str | None = None,
        profile: str | None = None,
        lock_timeout_s: float | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Open (creating if needed) the journal at ``path`` and read where its chain ends.

        Raises JournalUnavailable when the file or its directory cannot be created or written.
        """
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        #: bytes a crash left at the end are moved here before the chain continues
        self.torn_path = self.path.with_name(self.path.name + ".torn")
        self.profile = profile
        self.operator = Operator(name=operator_name, os_user=current_os_user(), host=socket.gethostname())
        self._lock_timeout_s = timeouts().lock_s if lock_timeout_s is None else lock_timeout_s
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unavailable(exc) from None
        with self._locked(), self._open() as fd:
            self._head = self._chain_end(fd, repair=False)
            self._identity = identity_of(fd)

    @property
    def head(self) -> ChainHead:
        """(seq, hash) of the last entry this journal wrote or saw; (0, GENESIS) when empty."""
        return self._head

    @property
    def identity(self) -> str | None:
        """Which journal this is: the start of its first entry's hash (None while it is empty). Stored beside
        every anchor, so a journal never mistakes another journal's anchor for its own rewritten past."""
        return self._identity

    def append(self, fields: EntryFields | Mapping[str, Any] | None = None, **more: Any) -> JournalEntry:
        """Append one entry and return it once it is on disk (written in one ``write``, then fsynced).

        ``fields`` (or keyword arguments) are the ``EntryFields``; ``operator`` and ``profile``
        default to this journal's. Raises JournalUnavailable if the entry could not be stored.
        """
        wanted = make_fields(fields, **more)
        operator = wanted.operator or self.operator
        if wanted.profile is None and self.profile is not None:
            wanted = wanted.model_copy(update={"profile": self.profile})
        with self._locked(), self._open() as fd:
            head = self._chain_end(fd, repair=True)
            entry = seal(wanted, seq=head.seq + 1, prev=head.hash, time=format_time(self._clock()), operator=operator)
            data = entry.to_line().encode("ascii")
            start = os.fstat(fd).st_size
            try:
                written = os.write(fd, data)
                if written != len(data):
                    os.ftruncate(fd, start)
                    raise OSError(errno.EIO, f"short write ({written} of {len(data)} bytes)")
                os.fsync(fd)
                if start == 0:
                    self._sync_directory()
            except OSError as exc:
                raise self._unavailable(exc) from None
        self._head = entry.anchor
        if entry.seq == 1:
            self._identity = entry.hash[:IDENTITY_LEN]
        return entry

    # ---- internals -----------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._unavailable(exc) from None
        try:
            deadline = time.monotonic() + self._lock_timeout_s
            pause = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise JournalUnavailable(
                            self.path,
                            f"still locked by another process after {self._lock_timeout_s:g}s ({self.lock_path})",
                            "wait for the other routedeck process to finish or stop it",
                        ) from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    @contextmanager
    def _open(self) -> Iterator[int]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._unavailable(exc) from None
        try:
            yield fd
        finally:
            os.close(fd)

    def _chain_end(self, fd: int, *, repair: bool) -> ChainHead:
        """The last entry's (seq, hash); with ``repair``, move a torn tail aside and cut it off."""
        try:
            tail = read_tail(fd)
        except OSError as exc:
            raise self._unavailable(exc) from None
        if tail.damaged:
            raise JournalUnavailable(
                self.path,
                "the last two lines are not journal entries (more than a crash can leave)",
                f"run `routedeck audit verify {self.path}` and move the damaged file aside",
            )
        if tail.torn and repair:
            self._cut_torn_tail(fd, tail.good_end, tail.torn)
        if tail.entry is None:
            return EMPTY_HEAD
        seq, digest = tail.entry.get("seq"), tail.entry.get("hash")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not is_digest(digest):
            raise JournalUnavailable(
                self.path,
                "the last entry has no valid seq and hash, so the chain cannot continue",
                f"run `routedeck audit verify {self.path}` and move the damaged file aside",
            )
        return ChainHead(seq, digest)

    def _cut_torn_tail(self, fd: int, good_end: int, torn: bytes) -> None:
        # Keep the bytes: they were never acknowledged, but a reviewer may want to see them.
        try:
            with open(self.torn_path, "ab") as side:
                side.write(f"--- cut from {self.path} at byte {good_end} on {format_time(self._clock())}\n".encode())
                side.write(torn if torn.endswith(b"\n") else torn + b"\n")
                side.flush()
                os.fsync(side.fileno())
            os.ftruncate(fd, good_end)
            os.fsync(fd)
        except OSError as exc:
            raise self._unavailable(exc) from None

    def _sync_directory(self) -> None:
        # A new file's directory entry must reach the disk too, or the whole journal can vanish.
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _unavailable(self, exc: OSError) -> JournalUnavailable:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
            fix = "free space on that disk"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = "make it writable or pass --state-dir with a writable directory"
        elif exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.ENOENT, errno.EEXIST):
            fix = "pass --state-dir with a directory routedeck can create files in"
        else:
            fix = "check the disk and the state dir, then retry"
        return JournalUnavailable(self.path, f"cannot be written ({reason})", fix)
