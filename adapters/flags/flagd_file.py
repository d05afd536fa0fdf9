"""The embedded flag platform: route flags in an OpenFeature flagd flag file.

Targeting routedeck writes (and parses back)::

    {"if": [<audience predicate>, CANDIDATE,                      # while the internal audience is on
            <scope predicate>, {"fractional": [[CANDIDATE, BP], [BASELINE, 10000 - BP]]},
            BASELINE]}

Excluded segments come first: ``{"if": [<exclusion predicate>, BASELINE, <the branches above>…]}``.
An emergency switch wraps that as ``{"if": [true, SWITCH, <the targeting above>]}``.

Weights are integer basis points with a fixed total and the candidate listed first: with
flagd's bucketing (murmur3 of [flagKey, targetingKey] scaled to the total weight) this keeps
every unit that had the candidate at 5% on it at 20%. Rollout state lives in the flag's
``metadata`` as a JSON string (flagd metadata values must be scalars).

Writes hold an exclusive ``flock`` on ``<file>.lock``, re-check the revision (sha256 of the
file's bytes) and replace the file atomically. The file has no history of its own, so
``<file>.history.jsonl`` records routedeck's writes and each flag's digest after them; a flag
whose digest no longer matches was edited outside routedeck, and history says so.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import hashlib
import json
import os
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs

from pydantic import ValidationError

from console.core.errors import BackendError, BadInput, ConflictError
from console.core.finite import loads_finite
from console.core.models import (
    FULL_SHARE_BP,
    Allocation,
    ChangeEvent,
    RolloutState,
    RouteFlag,
    RouteProfile,
)
from console.core.ports import FlagPlatform, describe_difference_short
from console.core.timeouts import timeouts

META = "routedeck."


def revision_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class FlagdFilePlatform(FlagPlatform):
    """Route flags stored in a flagd flag file on local disk."""

    kind = "flagd"
    #: can send every unit to one variation while keeping the allocation for an undo (emergency switch)
    can_switch = True

    #: seconds a write waits for the lock (None: the profile's lock_timeout)
    lock_timeout_s: float | None = None

    def __init__(self, path: Path, *, mode: int | None = None, group: str | None = None) -> None:
        self.path = Path(path)
        #: permissions and group the flag file is written with (None: kept from the file, or the umask's)
        self.mode = mode
        self.group = group
        self.group_id = _group_id(group) if group is not None else None
        self.history_path = self.path.with_name(self.path.name + ".history.jsonl")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        # A console polls every second: re-parse only when the file's bytes changed. The bytes are
        # compared, not (inode, size, mtime): inodes get reused and coarse mtimes can repeat, and a
        # stale read here would show the operator a state the file no longer holds.
        self._cache: tuple[bytes, dict[str, Any]] | None = None
        self._parsed: dict[tuple[str, str], RouteFlag] = {}

    @classmethod
    def from_spec(cls, spec: str) -> "FlagdFilePlatform":
        """``flagd:PATH``, optionally ``?mode=0640&group=NAME`` for the file's permissions and group."""
        kind, _, rest = spec.partition(":")
        if kind != "flagd" or not rest:
            raise BadInput(f"--flags {spec!r}: expected flagd:PATH")
        path, _, query = rest.partition("?")
        options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        unknown = sorted(set(options) - {"mode", "group"})
        if unknown:
            raise BadInput(f"--flags {spec!r}: unknown option {unknown[0]!r} — use mode (e.g. 0640) and group")
        mode = None
        if "mode" in options:
            try:
                mode = int(options["mode"], 8)
            except ValueError:
                mode = -1
            if not 0 <= mode <= 0o777:
                raise BadInput(f"--flags {spec!r}: mode {options['mode']!r} must be octal permissions such as 0640")
        return cls(Path(path).expanduser(), mode=mode, group=options.get("group") or None)

    def describe(self) -> str:
        return f"flagd:{self.path}"

    # ---- reading ------------------------------------------------------------------

    def _load_cached(self) -> tuple[dict[str, Any], bytes]:
        raw = self._read_bytes()
        if self._cache is not None and self._cache[0] == raw:
            return self._cache[1], raw
        doc = self._decode(raw)
        self._cache = (raw, doc)
        return doc, raw

    def _load(self) -> tuple[dict[str, Any], bytes]:
        raw = self._read_bytes()
        return self._decode(raw), raw

    def _read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise BadInput(
                f"{self.path}: no such flag file — run `routedeck demo` to create the embedded default "
                "or pass --flags flagd:PATH"
            ) from None
        except OSError as exc:
            raise BackendError(f"{self.path}: cannot read the flag file ({exc.strerror}) — check its permissions") from None

    def _decode(self, raw: bytes) -> dict[str, Any]:
        try:
            doc = loads_finite(raw, str(self.path), "fix the file or restore it")
        except json.JSONDecodeError as exc:
            raise BadInput(
                f"{self.path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}) — fix the file or restore it"
            ) from None
        except UnicodeDecodeError:
            raise BadInput(f"{self.path}: not UTF-8 text — is this a flag file?") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("flags"), dict):
            raise BadInput(f"{self.path}: a flagd flag file needs a top-level \"flags\" object")
        return doc

    def list_flags(self) -> list[str]:
        doc, _ = self._load_cached()
        return sorted(k for k, v in doc["flags"].items() if _is_route_flag(v))

    def read_flag(self, key: str) -> RouteFlag:
        doc, raw = self._load_cached()
        revision = revision_of(raw)
        cached = self._parsed.get((key, revision))
        if cached is None:
            cached = self._parse(doc, key, revision)
            if len(self._parsed) > 64:
                self._parsed.clear()
            self._parsed[(key, revision)] = cached
        return cached

    def _parse(self, doc: dict[str, Any], key: str, revision: str) -> RouteFlag:
        flags = doc["flags"]
        if key not in flags:
            known = ", ".join(sorted(k for k, v in flags.items() if _is_route_flag(v))) or "none"
            raise BadInput(f"{self.path}: no flag {key!r} — route flags in this file: {known}")
        raw_flag = flags[key]
        where = f"{self.path}: flag {key}"
        if not isinstance(raw_flag, dict) or not isinstance(raw_flag.get("variants"), dict) or not raw_flag["variants"]:
            raise BadInput(f"{where}: needs a non-empty \"variants\" object of route profiles")
        variations: dict[str, RouteProfile] = {}
        for name, value in raw_flag["variants"].items():
            try:
                variations[name] = RouteProfile.model_validate(value)
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or "value"
                raise BadInput(f"{where}: variant {name}: {field}: {err['msg']} — fix the route profile") from None
        meta = raw_flag.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        # Anything not in the shape routedeck writes is reported, never guessed at: the read
        # says so in ``foreign_targeting`` and a rollback rewrites the flag into routedeck's shape.
        foreign: list[str] = []
        default_variant = raw_flag.get("defaultVariant")
        baseline = meta.get(META + "baseline") or default_variant
        if baseline not in variations and default_variant in variations:
            foreign.append(f"baseline {baseline!r} named in metadata is not a variant")
            baseline = default_variant
        if not isinstance(baseline, str) or baseline not in variations:
            raise BadInput(f"{where}: baseline variant {baseline!r} is not among the variants — set defaultVariant")
        if default_variant != baseline:
            foreign.append(f"defaultVariant is {default_variant!r}, not the baseline {baseline}")
        if raw_flag.get("state", "ENABLED") != "ENABLED":
            foreign.append(f"state is {raw_flag.get('state')!r}: flagd serves the application's built-in default")
        candidate = meta.get(META + "candidate") or None
        if candidate is not None and candidate not in variations:
            # Keep the flag readable so a rollback can still send everyone to the baseline.
            foreign.append(f"candidate {candidate!r} named in metadata is not a variant")
            candidate = None
        rollout = None
        if meta.get(META + "rollout"):
            try:
                rollout = RolloutState.model_validate_json(str(meta[META + "rollout"]))
            except ValidationError:
                foreign.append(f"metadata {META}rollout is not a valid rollout state")
        base_alloc = Allocation(
            internal_audience=_str_or_none(meta.get(META + "internalAudience")),
            eligible_scope=_str_or_none(meta.get(META + "eligibleScope")),
            audience_predicate=_json_or_none(meta.get(META + "audiencePredicate")),
            scope_predicate=_json_or_none(meta.get(META + "scopePredicate")),
            excluded_segments=_segments_or_empty(meta.get(META + "excludedSegments")),
            cohort_salt=_str_or_none(meta.get(META + "cohortSalt")),
        )
        allocation, odd_targeting = parse_targeting(raw_flag.get("targeting"), base_alloc, baseline, candidate, key)
        if odd_targeting:
            foreign.append(odd_targeting)
        if allocation.serve_all is not None and allocation.serve_all not in variations:
            foreign.append(f"targeting sends everyone to {allocation.serve_all!r}, which is not a variant")
            allocation = allocation.held()
        return RouteFlag(
            key=key,
            variations=variations,
            baseline=baseline,
            candidate=candidate,
            allocation=allocation,
            revision=revision,
            rollout=rollout,
            foreign_targeting="; ".join(foreign) or None,
        )

    # ---- writing ------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The flag file's write lock, waited for at most the profile's lock_timeout (10 s by default):
        a lock held by a hung process is an error naming it, never a silent wait."""
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.lock_path, "a+")
        except OSError as exc:
            raise BackendError(f"{self.lock_path.parent}: cannot write here ({exc.strerror}) — {_WRITABLE_FIX}") from None
        with fh:
            limit = timeouts().lock_s if self.lock_timeout_s is None else self.lock_timeout_s
            deadline = time.monotonic() + limit
            pause = 0.001
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise BackendError(
                            f"{self.path}: still locked by another process after {limit:g} s ({self.lock_path}) — "
                            "wait for the other routedeck process to finish, or stop it"
                        ) from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.05)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_flag(self, flag: RouteFlag, expected_revision: str | None) -> None:
        if flag.foreign_targeting:
            # Writing would silently replace what someone set by hand; rollback clears the
            # marker on purpose (the safe direction), every other write must be told to.
            raise ConflictError(
                f"{self.path}: flag {flag.key} holds targeting routedeck did not write ({flag.foreign_targeting}); "
                "nothing written — roll back to rewrite it in routedeck's shape, or fix the file",
                current_revision=flag.revision,
            )
        with self._locked():
            doc, raw = self._load()
            current = revision_of(raw)
            if expected_revision is not None and current != expected_revision:
                raise ConflictError(
                    f"{self.path}: flag {flag.key} was changed by someone else "
                    f"({self._what_is_there(doc, flag.key, current)}); nothing written — reload and retry",
                    current_revision=current,
                )
            self._note_outside_edits(doc, current)
            before = doc["flags"].get(flag.key)
            doc["flags"][flag.key] = render_flag(flag, before)
            self._commit(doc, flag.key, "write", before, current, expected=raw)

    def _create_flag(self, flag: RouteFlag) -> None:
        with self._locked():
            if self.path.exists():
                doc, raw = self._load()
            else:
                doc, raw = {"flags": {}}, b""
            if flag.key in doc["flags"]:
                raise BadInput(f"{self.path}: flag {flag.key} already exists — nothing changed")
            if raw:
                self._note_outside_edits(doc, revision_of(raw))
            doc["flags"][flag.key] = render_flag(flag, None)
            self._commit(doc, flag.key, "create", None, revision_of(raw), expected=raw if raw else None)

    def _what_is_there(self, doc: dict[str, Any], key: str, revision: str) -> str:
        if key not in doc["flags"]:
            return "flag removed"
        try:
            return describe_difference_short(self._parse(doc, key, revision))
        except BadInput as exc:
            return f"now unreadable: {exc}"

    def _commit(self, doc: dict[str, Any], key: str, action: str, before: Any, rev_before: str,
                expected: bytes | None = None) -> None:
        """Write ``doc`` atomically, if the file still holds ``expected``, and record the change in the
        history sidecar."""
        data = self._atomic_write(doc, expected, key)
        # The bytes just written parse to ``doc``: the read-back compares bytes, so this is safe.
        self._cache = (data, doc)
        after = doc["flags"][key]
        self._append_history(
            {
                "at": _now().isoformat(),
                "actor": _os_user(),
                "flag": key,
                "action": action,
                "revision_before": rev_before,
                "revision_after": revision_of(data),
                "digest_after": flag_digest(after),
                "digests": file_digests(doc),
                "before": self._summary(key, before),
                "after": self._summary(key, after),
            }
        )

    def _atomic_write(self, doc: dict[str, Any], expected: bytes | None = None, key: str = "") -> bytes:
        """Replace the file with ``doc``. With ``expected`` (the bytes read under the lock), a hand edit
        that landed since — editors take no lock — is never overwritten: the new file is swapped in with
        the old one in one step (``renameat2`` RENAME_EXCHANGE), the old one is compared with what was
        read, and if someone changed it meanwhile it is swapped back and the write is refused."""
        data = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix="." + self.path.name + ".", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise BackendError(f"{directory}: cannot write the flag file here ({exc.strerror}) — {_WRITABLE_FIX}") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self._set_access(tmp)
            if expected is None or not self.path.exists():
                os.replace(tmp, self.path)
            else:
                try:
                    self._swap_in(tmp, expected, key)
                except ConflictError:
                    os.unlink(tmp)
                    raise
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if exc.errno == errno.ENOSPC:
                raise BackendError(f"{self.path}: disk full — the flag file was not changed") from None
            raise BackendError(f"{self.path}: write failed ({exc.strerror}) — the flag file was not changed") from None
        return data

    def _swap_in(self, tmp: str, expected: bytes, key: str) -> None:
        """Put ``tmp`` in place of the file unless the file no longer holds ``expected``."""
        if self.path.read_bytes() != expected:  # most hand edits are seen here, before anything moves
            raise self._edited_meanwhile(key)
        if not _exchange(tmp, self.path):  # no atomic exchange on this file system: checked just before
            os.replace(tmp, self.path)
            return
        try:
            replaced = Path(tmp).read_bytes()
        except OSError:
            replaced = None
        if replaced != expected:  # an edit landed between the check and the exchange: give it back
            _exchange(tmp, self.path)
            raise self._edited_meanwhile(key)
        os.unlink(tmp)

    def _edited_meanwhile(self, key: str) -> ConflictError:
        return ConflictError(
            f"{self.path}: the file was edited by someone else while routedeck wrote flag {key}; their edit is kept "
            "and nothing was written — reload and retry", current_revision=None)

    def _set_access(self, tmp: str) -> None:
        """The new file gets the mode and group asked for (``flagd:PATH?mode=0640&group=NAME``), else those of
        the file it replaces, else what a new file gets under the umask (an application running as another
        user must be able to read it)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            st = None
        mode = self.mode if self.mode is not None else (st.st_mode & 0o777 if st else 0o666 & ~_umask())
        os.chmod(tmp, mode)
        gid = self.group_id if self.group_id is not None else (st.st_gid if st else None)
        if gid is not None and gid != os.stat(tmp).st_gid:
            try:
                os.chown(tmp, -1, gid)
            except PermissionError:
                if self.group_id is not None:
                    raise BackendError(f"{self.path}: cannot give the flag file group {self.group} (not a member) "
                                       "— fix group= in the --flags spec") from None

    # ---- history ------------------------------------------------------------------

    def _summary(self, key: str, raw_flag: Any) -> dict[str, Any] | None:
        """What a flag routed, for the history: allocation, baseline, candidate (None if unreadable)."""
        if raw_flag is None:
            return None
        try:
            flag = self._parse({"flags": {key: raw_flag}}, key, "")
        except BadInput:
            return {"describe": "unreadable"}
        out: dict[str, Any] = {
            "describe": flag.allocation.describe(),
            "baseline": flag.baseline,
            "candidate": flag.candidate,
            "allocation": flag.allocation.model_dump(mode="json", exclude_none=True),
        }
        if flag.foreign_targeting:
            out["foreign"] = flag.foreign_targeting
        return out

    def _read_history(self) -> list[dict[str, Any]]:
        try:
            lines = self.history_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []
        entries = []
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line after a crash; the rest is still good
            if isinstance(entry, dict) and isinstance(entry.get("flag"), str) and "at" in entry:
                entries.append(entry)
        return entries

    def _append_history(self, entry: dict[str, Any]) -> None:
        try:
            with open(self.history_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        except OSError:
            pass  # the audit journal is the record that must not be lost; this sidecar is a convenience

    def _note_outside_edits(self, doc: dict[str, Any], revision: str) -> None:
        """Before routedeck writes, record flags someone changed since routedeck last wrote them,
        so the next write does not make a hand edit vanish from the history."""
        last = self._last_written_digests()
        if not last:
            return
        now = file_digests(doc)
        changed = [key for key in sorted(set(last) | set(now)) if last.get(key) != now.get(key)]
        if not changed:
            return
        mtime, owner = self._file_stamp()
        for key in changed:
            raw_flag = doc["flags"].get(key)
            self._append_history(
                {
                    "at": mtime.isoformat(),
                    "actor": owner,
                    "flag": key,
                    "action": OUTSIDE_EDIT,
                    "revision_after": revision,
                    "digest_after": now.get(key),
                    "digests": now,
                    "before": None,
                    "after": self._summary(key, raw_flag),
                }
            )

    def _last_written_digests(self) -> dict[str, str]:
        """Each flag's digest as routedeck last saw it, from the sidecar's last entry.

        Only the tail is read, so a long history does not slow a rollback down."""
        try:
            with open(self.history_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - _TAIL_BYTES))
                tail = fh.read()
        except OSError:
            return {}
        for line in reversed(tail.splitlines()):
            try:
                entry = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(entry, dict) and isinstance(entry.get("digests"), dict):
                return entry["digests"]
        return {}

    def _file_stamp(self) -> tuple[datetime, str]:
        try:
            st = self.path.stat()
        except OSError:
            return _now(), "?"
        return datetime.fromtimestamp(st.st_mtime, tz=timezone.utc), _owner(st.st_uid)

    def history(self, key: str, limit: int = 100) -> list[ChangeEvent]:
        """routedeck's writes to the flag from the sidecar, plus one "edited outside routedeck"
        event when the flag in the file is not what routedeck last wrote. Newest first."""
        entries = [e for e in self._read_history() if e["flag"] == key]
        events = [_event(e) for e in entries[-limit:]]
        last = next((e["digest_after"] for e in reversed(entries) if "digest_after" in e), None)
        if last is not None:
            try:
                doc, _ = self._load()
            except BadInput:
                doc = None
            current = doc["flags"].get(key) if doc is not None else None
            if doc is None or flag_digest(current) != last:
                mtime, owner = self._file_stamp()
                summary = self._summary(key, current) if current is not None else None
                now = "file unreadable" if doc is None else ("flag removed" if current is None else summary["describe"])
                events.append(
                    ChangeEvent(
                        at=mtime,
                        actor=owner,
                        flag=key,
                        action=OUTSIDE_EDIT,
                        detail=f"{self.path} changed since routedeck last wrote it: now {now}",
                        after=summary,
                    )
                )
        events.sort(key=lambda ev: ev.at, reverse=True)
        return events[:limit]


OUTSIDE_EDIT = "edited outside routedeck"
#: how much of the history sidecar's end is read to find the last entry (one entry is ~1 KB)
_TAIL_BYTES = 256 * 1024
_WRITABLE_FIX = "make it writable or keep the flag file in a writable directory (--flags flagd:PATH)"


def flag_digest(raw_flag: Any) -> str | None:
    """A fingerprint of one flag's JSON, independent of formatting and of the rest of the file."""
    return None if raw_flag is None else _digest(raw_flag)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def file_digests(doc: dict[str, Any]) -> dict[str, str]:
    """The digest of every route flag in a flag file document."""
    return {key: _digest(raw) for key, raw in doc["flags"].items() if _is_route_flag(raw)}


def _event(e: dict[str, Any]) -> ChangeEvent:
    before, after = e.get("before"), e.get("after")
    before = before if isinstance(before, dict) else None
    after = after if isinstance(after, dict) else None
    was = before.get("describe", "?") if before else "—"
    now = after.get("describe", "?") if after else "flag removed"
    action = str(e.get("action", "write"))
    return ChangeEvent(
        at=_parse_time(e["at"]),
        actor=str(e.get("actor", "?")),
        flag=e["flag"],
        action=action,
        detail=f"now {now}" if action == OUTSIDE_EDIT else f"{was} → {now}",
        before=before,
        after=after,
    )


def _parse_time(text: Any) -> datetime:
    try:
        at = datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.fromtimestamp(0, tz=timezone.utc)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ---- targeting <-> allocation ----------------------------------------------------------


def render_targeting(flag: RouteFlag) -> dict[str, Any] | None:
    """The JsonLogic routedeck writes for ``flag``'s allocation (None: baseline for everyone).

    An emergency switch wraps the held targeting as ``{"if": [true, SWITCH, <held>]}``: every
    unit gets SWITCH, and the held allocation stays in the file for the undo to restore."""
    held = _allocation_targeting(flag)
    if flag.allocation.serve_all is not None:
        return {"if": [True, flag.allocation.serve_all, held if held is not None else flag.baseline]}
    return held


def _allocation_targeting(flag: RouteFlag) -> dict[str, Any] | None:
    if flag.candidate is None:
        return None
    a = flag.allocation
    bp = a.candidate_bp
    fractional = {"fractional": [*_bucketing(flag.key, a.cohort_salt), [flag.candidate, bp],
                                 [flag.baseline, FULL_SHARE_BP - bp]]}
    branches: list[Any] = []
    excluded = a.exclusion_rule()
    if excluded is not None:
        # an excluded segment gets the baseline before anything else is asked
        branches += [excluded, flag.baseline]
    audience = a.audience_rule()
    if a.internal_enabled and audience is not None:
        branches += [audience, flag.candidate]
    scope = a.scope_rule()
    if scope is not None:
        return {"if": branches + [scope, fractional, flag.baseline]}
    if not branches:
        return fractional
    return {"if": branches + [fractional]}


def parse_targeting(
    targeting: Any, base: Allocation, baseline: str, candidate: str | None, flag_key: str = ""
) -> tuple[Allocation, str | None]:
    """Read an allocation back from targeting; (allocation, None) or (best reading, why it is foreign)."""
    salt = tuple(_bucketing(flag_key, base.cohort_salt))
    switch = targeting.get("if") if isinstance(targeting, dict) and list(targeting) == ["if"] else None
    if isinstance(switch, list) and len(switch) == 3 and switch[0] is True and isinstance(switch[1], str):
        held = None if switch[2] == baseline else switch[2]
        allocation, why = parse_targeting(held, base, baseline, candidate, flag_key)
        return allocation.model_copy(update={"serve_all": switch[1]}), why
    if targeting in (None, {}):
        return base, None
    if candidate is None:
        return base, "targeting present on a flag with no candidate"
    if isinstance(targeting, dict) and "fractional" in targeting:
        bp = _fraction_bp(targeting, baseline, candidate, salt)
        if bp is not None and base.eligible_scope is None and not base.excluded_segments:
            return base.model_copy(update={"candidate_bp": bp}), None
        return base, "fractional split not in the shape routedeck writes"
    branches = targeting.get("if") if isinstance(targeting, dict) else None
    if not isinstance(branches, list) or len(branches) % 2 != 1:
        return base, "targeting not in the shape routedeck writes"
    internal = False
    rest = branches
    excluded = base.exclusion_rule()
    if excluded is not None:
        if len(rest) < 3 or rest[0] != excluded or rest[1] != baseline:
            return base, "excluded segments in metadata are not in the targeting"
        rest = rest[2:]
    audience = base.audience_rule()
    if len(rest) >= 2 and rest[1] == candidate and audience is not None and rest[0] == audience:
        internal = True
        rest = rest[2:]
    scope = base.scope_rule()
    if len(rest) == 1 and scope is None:
        bp = _fraction_bp(rest[0], baseline, candidate, salt)
        if bp is None:
            return base, "fractional split not in the shape routedeck writes"
        return base.model_copy(update={"internal_enabled": internal, "candidate_bp": bp}), None
    if len(rest) == 3 and rest[2] == baseline and scope is not None and rest[0] == scope:
        bp = _fraction_bp(rest[1], baseline, candidate, salt)
        if bp is None:
            return base, "fractional split not in the shape routedeck writes"
        return base.model_copy(update={"internal_enabled": internal, "candidate_bp": bp}), None
    return base, "targeting not in the shape routedeck writes"


def _bucketing(flag_key: str, salt: str | None) -> list[Any]:
    """The explicit bucketing value of a redrawn cohort: the flag key and the salt before the unit's
    targeting key (none for the flag's first cohort: flagd's shorthand, flag key + targeting key)."""
    if salt is None:
        return []
    return [{"cat": [f"{flag_key}:{salt}:", {"var": "targetingKey"}]}]


def _fraction_bp(node: Any, baseline: str, candidate: str, salt: tuple[Any, ...] = ()) -> int | None:
    if not isinstance(node, dict) or list(node) != ["fractional"]:
        return None
    parts = node["fractional"]
    if not isinstance(parts, list) or parts[:len(salt)] != list(salt):
        return None
    parts = parts[len(salt):]
    if (
        isinstance(parts, list)
        and len(parts) == 2
        and all(isinstance(p, list) and len(p) == 2 for p in parts)
        and parts[0][0] == candidate
        and parts[1][0] == baseline
        and all(isinstance(p[1], int) and not isinstance(p[1], bool) for p in parts)
        and parts[0][1] + parts[1][1] == FULL_SHARE_BP
        and 0 <= parts[0][1] <= FULL_SHARE_BP
    ):
        return parts[0][1]
    return None


def render_flag(flag: RouteFlag, previous: dict[str, Any] | None) -> dict[str, Any]:
    """The flag's JSON, keeping keys routedeck does not manage from ``previous``."""
    out: dict[str, Any] = dict(previous or {})
    out["state"] = "ENABLED"
    out["defaultVariant"] = flag.baseline
    out["variants"] = {name: p.to_wire() for name, p in flag.variations.items()}
    targeting = render_targeting(flag)
    if targeting is None:
        out.pop("targeting", None)
    else:
        out["targeting"] = targeting
    meta = {k: v for k, v in (out.get("metadata") or {}).items() if not k.startswith(META)}
    a = flag.allocation
    meta[META + "baseline"] = flag.baseline
    if flag.candidate:
        meta[META + "candidate"] = flag.candidate
    if a.internal_audience:
        meta[META + "internalAudience"] = a.internal_audience
    if a.eligible_scope:
        meta[META + "eligibleScope"] = a.eligible_scope
    if a.audience_predicate is not None:
        meta[META + "audiencePredicate"] = json.dumps(a.audience_predicate, sort_keys=True)
    if a.scope_predicate is not None:
        meta[META + "scopePredicate"] = json.dumps(a.scope_predicate, sort_keys=True)
    if a.excluded_segments:
        meta[META + "excludedSegments"] = json.dumps([list(s) for s in a.excluded_segments])
    if a.cohort_salt is not None:
        meta[META + "cohortSalt"] = a.cohort_salt
    if flag.rollout is not None:
        meta[META + "rollout"] = flag.rollout.model_dump_json(exclude_none=True)
    out["metadata"] = meta
    return out


def _is_route_flag(raw: Any) -> bool:
    variants = raw.get("variants") if isinstance(raw, dict) else None
    return isinstance(variants, dict) and bool(variants) and all(
        isinstance(v, dict) and isinstance(v.get("route"), str) for v in variants.values()
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _json_or_none(text: Any) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _segments_or_empty(text: Any) -> tuple[tuple[str, str], ...]:
    """Excluded segments from metadata: a JSON list of [attribute, value] pairs (anything else: none)."""
    if not text:
        return ()
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return ()
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) and x for x in p) for p in value
    ):
        return ()
    return tuple((p[0], p[1]) for p in value)


def _group_id(name: str) -> int:
    import grp

    try:
        return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
    except KeyError:
        raise BadInput(f"--flags flagd:…?group={name}: no such group on this machine") from None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_RENAME_EXCHANGE = 2
_libc = None


def _exchange(a: str | Path, b: str | Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2`` with RENAME_EXCHANGE); False where it is not available."""
    global _libc
    import ctypes

    if _libc is None:
        try:
            # the process's own C library (ctypes.util.find_library runs `ldconfig -p` in a subprocess: 15–20 ms
            # of the first write, e.g. `routedeck rollback`)
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.renameat2  # noqa: B018 - present from glibc 2.28
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    at_fdcwd = -100
    if _libc.renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # the file system cannot exchange
        return False
    raise OSError(err, os.strerror(err))


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _owner(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"uid:{uid}"
