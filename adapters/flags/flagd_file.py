"""The embedded flag platform: route flags in an OpenFeature flagd flag file.

Targeting routedeck writes (and parses back)::

    {"if": [<audience predicate>, CANDIDATE,                      # while the internal audience is on
            <scope predicate>, {"fractional": [[CANDIDATE, BP], [BASELINE, 10000 - BP]]},
            BASELINE]}

Weights are integer basis points with a fixed total and the candidate listed first: with
flagd's bucketing (murmur3 of [flagKey, targetingKey] scaled to the total weight) this keeps
every unit that had the candidate at 5% on it at 20%. Rollout state lives in the flag's
``metadata`` as a JSON string (flagd metadata values must be scalars).
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from console.core.errors import BackendError, BadInput, ConflictError
from console.core.models import (
    FULL_SHARE_BP,
    Allocation,
    ChangeEvent,
    RolloutState,
    RouteFlag,
    RouteProfile,
)
from console.core.ports import FlagPlatform, describe_difference_short

META = "routedeck."


def revision_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class FlagdFilePlatform(FlagPlatform):
    """Route flags stored in a flagd flag file on local disk."""

    kind = "flagd"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.history_path = self.path.with_name(self.path.name + ".history.jsonl")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        # A console polls every second: re-parse only when the file's identity changed.
        # Writers replace the file (new inode), so (inode, size, mtime) catches every write.
        self._cache: tuple[tuple[int, int, int], dict[str, Any], bytes] | None = None
        self._parsed: dict[tuple[str, str], RouteFlag] = {}

    @classmethod
    def from_spec(cls, spec: str) -> "FlagdFilePlatform":
        kind, _, rest = spec.partition(":")
        if kind != "flagd" or not rest:
            raise BadInput(f"--flags {spec!r}: expected flagd:PATH")
        return cls(Path(rest).expanduser())

    def describe(self) -> str:
        return f"flagd:{self.path}"

    # ---- reading ------------------------------------------------------------------

    def _load_cached(self) -> tuple[dict[str, Any], bytes]:
        try:
            st = os.stat(self.path)
            ident = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            return self._load()
        if self._cache is not None and self._cache[0] == ident:
            return self._cache[1], self._cache[2]
        doc, raw = self._load()
        self._cache = (ident, doc, raw)
        return doc, raw

    def _load(self) -> tuple[dict[str, Any], bytes]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise BadInput(
                f"{self.path}: no such flag file — run `routedeck demo` to create the embedded default "
                "or pass --flags flagd:PATH"
            ) from None
        except OSError as exc:
            raise BackendError(f"{self.path}: cannot read the flag file ({exc.strerror}) — check its permissions") from None
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadInput(
                f"{self.path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}) — fix the file or restore it"
            ) from None
        except UnicodeDecodeError:
            raise BadInput(f"{self.path}: not UTF-8 text — is this a flag file?") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("flags"), dict):
            raise BadInput(f"{self.path}: a flagd flag file needs a top-level \"flags\" object")
        return doc, raw

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
        meta = raw_flag.get("metadata") or {}
        baseline = meta.get(META + "baseline") or raw_flag.get("defaultVariant")
        if not baseline or baseline not in variations:
            raise BadInput(f"{where}: baseline variant {baseline!r} is not among the variants — set defaultVariant")
        candidate = meta.get(META + "candidate") or None
        if candidate is not None and candidate not in variations:
            raise BadInput(f"{where}: metadata {META}candidate names {candidate!r}, which is not a variant")
        rollout = None
        if meta.get(META + "rollout"):
            try:
                rollout = RolloutState.model_validate_json(meta[META + "rollout"])
            except ValidationError:
                raise BadInput(f"{where}: metadata {META}rollout is not a valid rollout state — remove it to reset") from None
        base_alloc = Allocation(
            internal_audience=meta.get(META + "internalAudience") or None,
            eligible_scope=meta.get(META + "eligibleScope") or None,
            audience_predicate=_json_or_none(meta.get(META + "audiencePredicate")),
            scope_predicate=_json_or_none(meta.get(META + "scopePredicate")),
        )
        allocation, foreign = parse_targeting(raw_flag.get("targeting"), base_alloc, baseline, candidate)
        return RouteFlag(
            key=key,
            variations=variations,
            baseline=baseline,
            candidate=candidate,
            allocation=allocation,
            revision=revision,
            rollout=rollout,
            foreign_targeting=foreign,
        )

    # ---- writing ------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            fh = open(self.lock_path, "a+")
        except OSError as exc:
            raise BackendError(
                f"{self.lock_path.parent}: cannot write here ({exc.strerror}) — choose a writable --state-dir or fix permissions"
            ) from None
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_flag(self, flag: RouteFlag, expected_revision: str | None) -> None:
        with self._locked():
            doc, raw = self._load()
            current = revision_of(raw)
            if expected_revision is not None and current != expected_revision:
                now = self._parse(doc, flag.key, current) if flag.key in doc["flags"] else None
                what = describe_difference_short(now) if now else "flag removed"
                raise ConflictError(
                    f"{self.path}: flag {flag.key} was changed by someone else ({what}); nothing written — reload and retry",
                    current_revision=current,
                )
            before = doc["flags"].get(flag.key)
            doc["flags"][flag.key] = render_flag(flag, before)
            new_raw = self._atomic_write(doc)
            self._record(flag.key, "write", before, doc["flags"][flag.key], current, revision_of(new_raw))

    def _create_flag(self, flag: RouteFlag) -> None:
        with self._locked():
            if self.path.exists():
                doc, raw = self._load()
            else:
                doc, raw = {"flags": {}}, b""
            if flag.key in doc["flags"]:
                raise BadInput(f"{self.path}: flag {flag.key} already exists — nothing changed")
            doc["flags"][flag.key] = render_flag(flag, None)
            new_raw = self._atomic_write(doc)
            self._record(flag.key, "create", None, doc["flags"][flag.key], revision_of(raw), revision_of(new_raw))

    def _atomic_write(self, doc: dict[str, Any]) -> bytes:
        data = (json.dumps(doc, indent=2) + "\n").encode()
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix="." + self.path.name + ".", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise BackendError(
                f"{directory}: cannot write the flag file here ({exc.strerror}) — choose a writable --state-dir or fix permissions"
            ) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if self.path.exists():
                os.chmod(tmp, self.path.stat().st_mode & 0o777)
            os.replace(tmp, self.path)
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

    # ---- history ------------------------------------------------------------------

    def _record(self, key: str, action: str, before: Any, after: Any, rev_before: str, rev_after: str) -> None:
        entry = {
            "at": datetime.now(timezone.utc).isoformat(),
            "actor": _os_user(),
            "flag": key,
            "action": action,
            "revision_before": rev_before,
            "revision_after": rev_after,
            "before": _alloc_summary(before),
            "after": _alloc_summary(after),
        }
        try:
            with open(self.history_path, "a") as fh:
                fh.write(json.dumps(entry) + "\n")
        except OSError:
            pass  # the journal is the record that must not be lost; this sidecar is a convenience

    def history(self, key: str, limit: int = 100) -> list[ChangeEvent]:
        events: list[ChangeEvent] = []
        last_written = None
        try:
            lines = self.history_path.read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            last_written = e.get("revision_after", last_written)
            if e.get("flag") != key:
                continue
            events.append(
                ChangeEvent(
                    at=datetime.fromisoformat(e["at"]),
                    actor=e.get("actor", "?"),
                    flag=key,
                    action=e.get("action", "write"),
                    detail=f"{e.get('before') or '—'} → {e.get('after') or '—'}",
                    before={"allocation": e.get("before")},
                    after={"allocation": e.get("after")},
                )
            )
        try:
            st = self.path.stat()
            current = revision_of(self.path.read_bytes())
        except OSError:
            current, st = None, None
        if st is not None and last_written is not None and current != last_written:
            events.append(
                ChangeEvent(
                    at=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
                    actor=_owner(st.st_uid),
                    flag=key,
                    action="edited outside routedeck",
                    detail=f"file revision {current} was not written by routedeck",
                )
            )
        events.sort(key=lambda ev: ev.at, reverse=True)
        return events[:limit]


# ---- targeting <-> allocation ----------------------------------------------------------


def render_targeting(flag: RouteFlag) -> dict[str, Any] | None:
    """The JsonLogic routedeck writes for ``flag``'s allocation (None: baseline for everyone)."""
    if flag.candidate is None:
        return None
    a = flag.allocation
    bp = a.candidate_bp
    fractional = {"fractional": [[flag.candidate, bp], [flag.baseline, FULL_SHARE_BP - bp]]}
    branches: list[Any] = []
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
    targeting: Any, base: Allocation, baseline: str, candidate: str | None
) -> tuple[Allocation, str | None]:
    """Read an allocation back from targeting; (allocation, None) or (best reading, why it is foreign)."""
    if targeting in (None, {}):
        return base, None
    if candidate is None:
        return base, "targeting present on a flag with no candidate"
    if isinstance(targeting, dict) and "fractional" in targeting:
        bp = _fraction_bp(targeting, baseline, candidate)
        if bp is not None and base.eligible_scope is None:
            return base.model_copy(update={"candidate_bp": bp}), None
        return base, "fractional split not in the shape routedeck writes"
    branches = targeting.get("if") if isinstance(targeting, dict) else None
    if not isinstance(branches, list) or len(branches) % 2 != 1:
        return base, "targeting not in the shape routedeck writes"
    internal = False
    rest = branches
    audience = base.audience_rule()
    if len(rest) >= 2 and rest[1] == candidate and audience is not None and rest[0] == audience:
        internal = True
        rest = rest[2:]
    scope = base.scope_rule()
    if len(rest) == 1 and scope is None:
        bp = _fraction_bp(rest[0], baseline, candidate)
        if bp is None:
            return base, "fractional split not in the shape routedeck writes"
        return base.model_copy(update={"internal_enabled": internal, "candidate_bp": bp}), None
    if len(rest) == 3 and rest[2] == baseline and scope is not None and rest[0] == scope:
        bp = _fraction_bp(rest[1], baseline, candidate)
        if bp is None:
            return base, "fractional split not in the shape routedeck writes"
        return base.model_copy(update={"internal_enabled": internal, "candidate_bp": bp}), None
    return base, "targeting not in the shape routedeck writes"


def _fraction_bp(node: Any, baseline: str, candidate: str) -> int | None:
    if not isinstance(node, dict) or list(node) != ["fractional"]:
        return None
    parts = node["fractional"]
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
    if flag.rollout is not None:
        meta[META + "rollout"] = flag.rollout.model_dump_json(exclude_none=True)
    out["metadata"] = meta
    return out


def _is_route_flag(raw: Any) -> bool:
    variants = raw.get("variants") if isinstance(raw, dict) else None
    return isinstance(variants, dict) and bool(variants) and all(
        isinstance(v, dict) and isinstance(v.get("route"), str) for v in variants.values()
    )


def _json_or_none(text: Any) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _alloc_summary(raw_flag: Any) -> str | None:
    if not isinstance(raw_flag, dict):
        return None
    t = json.dumps(raw_flag.get("targeting") or {})
    return t if len(t) < 400 else t[:400] + "…"


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
