"""Route flags on a FeatBit server, through its Open API, with live changes from its stream.

A route flag is one FeatBit flag of ``variationType: "json"`` whose variations are route
profiles (each ``value`` a JSON string, as FeatBit stores it). Its targeting, in one environment::

    rule "routedeck:internal"  audience condition → candidate, range [0, 1]   (only while internal is on)
    rule "routedeck:scope"     scope condition    → candidate [0, s), baseline [s, 1]
    fallthrough                                    → baseline [0, 1]   (the split itself when there is no scope)

FeatBit buckets a unit by MD5 of flag key + dispatch value and serves the range it falls in, so
widening the candidate's range from [0, 0.05) to [0, 0.20) keeps the 5 % cohort inside the 20 %.
The off variation is the baseline: a flag switched off in FeatBit still serves the baseline route.

routedeck's own state (which variation is the baseline and the candidate, the audience and scope
names, the rollout state) is one JSON line in the flag's ``description``, after a plain sentence.
FeatBit keeps the description verbatim, returns it on every read, copies it into every audit log
entry with the rest of the flag and never evaluates it; tags are a filter list (route flags carry
the tag ``routedeck``) and rule or variation names would show in evaluation results.

Writes carry FeatBit's ``revision``: ``PUT /{key}/targeting`` is refused (409) when the flag changed
since it was read, so a stale write is a conflict, never an overwrite. A rollout-state change is a
second call (``PUT /{key}/description``, which takes no revision): it is made only after checking
that the revision is still the one routedeck's own targeting write produced.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import httpx
from pydantic import ValidationError

from console.core.change_note import current_note
from console.core.credentials import read_token
from console.core.errors import BackendError, BadInput, ConflictError
from console.core.models import FULL_SHARE_BP, ChangeEvent, PendingWrite, RolloutState, RouteFlag, RouteProfile
from console.core.ports import FlagPlatform, describe_difference_short
from console.core.redact import redact

from ..http import PERMANENT_STATUSES, JsonHttp, RetryPolicy, make_client, redact_url, ssl_context
from ..spec import parse_http_spec
from .state_meta import allocation_from_meta, rollout_from_meta, state_meta

TOKEN_ENV = "ROUTEDECK_FEATBIT_TOKEN"
SECRET_ENV = "ROUTEDECK_FEATBIT_SECRET"
TAG = "routedeck"
INTERNAL, SCOPE, EXCLUDE = "routedeck:internal", "routedeck:scope", "routedeck:exclude"
META_PREFIX = "routedeck:"
DESCRIPTION = "Model route flag managed by routedeck (variations are route profiles; the line below is its rollout state)."
DISPATCH_KEY = "keyId"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def featbit_credentials() -> tuple[str | None, str | None]:
    """The Open API token and the stream secret (the one place that knows where they come from)."""
    return read_token(TOKEN_ENV) or None, read_token(SECRET_ENV) or None


class FeatBitPlatform(FlagPlatform):
    """Route flags in one environment of a FeatBit server."""

    kind = "featbit"

    def __init__(
        self,
        base_url: str,
        token: str,
        env_id: str,
        *,
        stream_url: str | None = None,
        secret: str | None = None,
        timeout_s: float | None = None,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.env_id = env_id
        self.stream_url = stream_url.rstrip("/") if stream_url else None
        self._secret = secret
        client = make_client(
            self.base_url,
            headers={"Authorization": token, "Content-Type": "application/json"},
            timeout_s=timeout_s,
            transport=transport,
        )
        self.http = JsonHttp(client, "FeatBit", retry=retry)
        self._stream = None

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> "FeatBitPlatform":
        """``featbit:http://HOST:PORT?env=ENV_ID&stream=ws://HOST:PORT``; tokens from the environment."""
        given = parse_http_spec(spec, "featbit", "expected featbit:http://HOST:PORT?env=ENV_ID&stream=ws://HOST:PORT",
                                    ("env", "stream"), TOKEN_ENV)
        env_id = given.options.get("env", "")
        if not _GUID.match(env_id):
            raise BadInput(f"--flags {given.shown!r}: env must be the environment's id (a GUID, "
                           "shown in FeatBit under the environment's settings)")
        stream = given.options.get("stream") or None
        if stream is not None:
            sp = urlsplit(stream)
            if sp.scheme not in ("ws", "wss") or not sp.netloc or sp.query or sp.username:
                raise BadInput(f"--flags featbit:…: stream {redact_url(stream)!r} must be ws://HOST:PORT or "
                               f"wss://HOST:PORT, with no token in it — set {SECRET_ENV}")
        env_token, env_secret = featbit_credentials()
        token = options.pop("token", None) or env_token
        secret = options.pop("secret", None) or env_secret
        if not token:
            raise BadInput(f"--flags featbit:…: no Open API access token — run `routedeck login PROFILE` or set {TOKEN_ENV}")
        return cls(given.base_url, token, env_id, stream_url=stream, secret=secret, **options)

    def describe(self) -> str:
        return f"featbit:{redact_url(self.base_url)}?env={self.env_id}"

    def close(self) -> None:
        self.stop_watching()
        self.http.close()

    # ---- live changes ----------------------------------------------------------------------

    def watch_changes(self, on_change: Callable[[list[str]], None],
                      on_status: Callable[[str, bool], None] | None = None):
        """Start the stream (when a stream URL and secret are set): ``on_change(keys)`` runs on the
        stream's thread as soon as FeatBit pushes a change; ``on_status(text, final)`` on every state
        change (``final`` when FeatBit refused the stream for good). Returns the stream, or None."""
        if self.stream_url is None or not self._secret:
            return None
        from .featbit_stream import FlagStream

        self.stop_watching()
        tls = ssl_context() if self.stream_url.startswith("wss:") else None  # the profile's CA and verify settings
        self._stream = FlagStream(self.stream_url, self._secret, on_change, on_status=on_status, ssl=tls)
        self._stream.start()
        return self._stream

    def stop_watching(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream = None

    # ---- paths and answers -------------------------------------------------------------

    def _flags(self) -> str:
        return f"/api/v1/envs/{quote(self.env_id, safe='')}/feature-flags"

    def _flag(self, key: str) -> str:
        return f"{self._flags()}/{quote(key, safe='')}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """``data`` of a FeatBit answer ``{success, errors, data}``; one-line errors otherwise."""
        return self._data(self.http.request(method, path, **kwargs), path)

    def _data(self, response: httpx.Response, path: str) -> Any:
        body = _body(response)
        if response.status_code == 200 and isinstance(body, dict) and body.get("success"):
            return body.get("data")
        errors = ", ".join(map(str, body.get("errors") or [])) if isinstance(body, dict) else ""
        hint = {
            401: f" — check the access token in {TOKEN_ENV}",
            403: f" — the access token may not act on environment {self.env_id}",
            404: " — check the URL, the environment id and the flag key",
        }.get(response.status_code, "")
        detail = f": {redact(errors)}" if errors else ""
        raise self.http.error(f"FeatBit at {self.http.where(path)}: HTTP {response.status_code}{detail}{hint}",
                              transient=response.status_code not in PERMANENT_STATUSES)

    def _read_raw(self, key: str) -> dict[str, Any]:
        response = self.http.request("GET", self._flag(key))
        if response.status_code == 404:
            raise BadInput(f"{self.describe()}: no flag {key!r} — check the key or create it with routedeck init")
        raw = self._data(response, self._flag(key))
        if not isinstance(raw, dict):
            raise BackendError(f"FeatBit at {self.http.where(self._flag(key))}: the answer holds no flag — is this FeatBit?")
        return raw

    # ---- reading -------------------------------------------------------------------------

    def list_flags(self) -> list[str]:
        keys: list[str] = []
        page = 0
        while True:
            data = self._call("GET", self._flags(), params={"tags": TAG, "pageIndex": str(page), "pageSize": "100"})
            items = (data or {}).get("items") or []
            keys += [str(f["key"]) for f in items if isinstance(f, dict) and "key" in f]
            if not items or len(keys) >= int((data or {}).get("totalCount") or 0):
                return sorted(keys)
            page += 1

    def read_flag(self, key: str) -> RouteFlag:
        return parse_flag(self._read_raw(key), self.describe())

    # ---- writing -------------------------------------------------------------------------

    def _write_flag(self, flag: RouteFlag, expected_revision: str | None) -> None:
        for attempt in range(3):
            raw = self._read_raw(flag.key)
            if expected_revision is not None and raw.get("revision") != expected_revision:
                raise self._conflict(flag.key, raw)
            try:
                self._apply(flag, raw, checked=expected_revision is not None)
                return
            except ConflictError:
                # a stale revision only makes an unchecked write (rollback) re-read and re-apply
                if expected_revision is not None or attempt == 2:
                    raise

    def _apply(self, flag: RouteFlag, raw: dict[str, Any], *, checked: bool) -> None:
        """Variations, targeting, then the state line of the description, each a request of its own. When
        the routing changes, the state line is first rewritten as it is plus a ``pending`` marker naming the
        write (as on Unleash): a write that stops half-way never leaves a state claiming more than the
        routing serves, and says that it stopped."""
        revision = raw.get("revision")
        ids = {v.get("name"): v.get("id") for v in raw.get("variations") or []}
        wanted_variations = render_variations(flag, ids)
        variations_change = _variations_key(wanted_variations) != _variations_key(raw.get("variations") or [])
        targeting_now = render_targeting(flag, ids, raw.get("rules") or [])
        current_targeting = {k: raw.get(k) for k in ("targetUsers", "rules", "fallthrough", "exptIncludeAllTargets")}
        marked = _with_pending(raw.get("description") or "", flag)
        if (variations_change or normalise_targeting(targeting_now) != normalise_targeting(current_targeting)) \
                and marked is not None:
            self._call("PUT", f"{self._flag(flag.key)}/description",
                       json={"description": marked, "comment": "routedeck: a write begins"})
            # the description takes no revision: what routes must still be what was read, or someone wrote
            now = self._read_raw(flag.key)
            keys = ("targetUsers", "rules", "fallthrough", "exptIncludeAllTargets")
            if normalise_targeting({k: now.get(k) for k in keys}) != normalise_targeting(current_targeting) \
                    or _variations_key(now.get("variations") or []) != _variations_key(raw.get("variations") or []) \
                    or bool(now.get("isEnabled")) != bool(raw.get("isEnabled")):
                raise self._conflict(flag.key, now)
            revision = now.get("revision")
            raw = dict(raw, description=marked)
        if variations_change:
            revision = self._call("PUT", f"{self._flag(flag.key)}/variations",
                                  json={"variations": wanted_variations, "comment": "routedeck: route profiles"})
            ids = {v["name"]: v["id"] for v in wanted_variations}
        targeting = render_targeting(flag, ids, raw.get("rules") or [])
        current = {k: raw.get(k) for k in ("targetUsers", "rules", "fallthrough", "exptIncludeAllTargets")}
        if normalise_targeting(targeting) != normalise_targeting(current):
            path = f"{self._flag(flag.key)}/targeting"
            response = self.http.request("PUT", path, json={
                "revision": revision, "comment": _with_note(f"routedeck: {flag.allocation.describe()}"),
                "targeting": targeting,
            })
            if response.status_code == 409:
                raise self._conflict(flag.key, self._read_raw(flag.key))
            revision = self._data(response, path)
        if not raw.get("isEnabled"):  # part of the routing: before the state says the write is done
            toggled = self._call("PUT", f"{self._flag(flag.key)}/toggle/true",
                                 json={"comment": "routedeck: route flags stay on (the split decides)"})
            revision = toggled if isinstance(toggled, str) else revision
        description = render_description(flag)
        if description != (raw.get("description") or ""):
            if checked:
                now = self._read_raw(flag.key)
                if now.get("revision") != revision:  # someone wrote after our targeting: do not overwrite
                    raise self._conflict(flag.key, now)
            self._call("PUT", f"{self._flag(flag.key)}/description",
                       json={"description": description, "comment": _with_note(_state_comment(flag.rollout))})

    def _conflict(self, key: str, raw: dict[str, Any]) -> ConflictError:
        try:
            what = describe_difference_short(parse_flag(raw, self.describe()))
        except BadInput:
            what = "no longer in routedeck's shape"
        return ConflictError(
            f"{self.describe()}: flag {key} was changed by someone else ({what}); nothing overwritten — reload and retry",
            current_revision=raw.get("revision"),
        )

    def _create_flag(self, flag: RouteFlag) -> None:
        variations = render_variations(flag, {})
        ids = {v["name"]: v["id"] for v in variations}
        response = self.http.request("POST", self._flags(), json={
            "name": flag.key, "key": flag.key, "isEnabled": True,
            "description": render_description(flag), "variationType": "json", "variations": variations,
            "enabledVariationId": ids[flag.baseline], "disabledVariationId": ids[flag.baseline], "tags": [TAG],
        })
        body = _body(response)
        if response.status_code == 422 and "KeyHasBeenUsed" in (body or {}).get("errors", []):
            raise BadInput(f"{self.describe()}: flag {flag.key} already exists — nothing changed")
        created = self._data(response, self._flags())
        targeting = render_targeting(flag, ids, [])
        self._call("PUT", f"{self._flag(flag.key)}/targeting", json={
            "revision": created["revision"], "comment": "routedeck: created", "targeting": targeting})

    # ---- history -------------------------------------------------------------------------

    def history(self, key: str, limit: int = 100) -> list[ChangeEvent]:
        flag_id = str(self._read_raw(key).get("id"))  # audit logs are filed under the flag's id, not its key
        data = self._call("GET", f"/api/v1/envs/{quote(self.env_id, safe='')}/audit-logs", params={
            "refType": "FeatureFlag", "refId": flag_id, "pageIndex": "0", "pageSize": str(limit)})
        events = []
        for item in (data or {}).get("items") or []:
            change = item.get("dataChange") or {}
            before, after = _loads(change.get("previous")), _loads(change.get("current"))
            events.append(ChangeEvent(
                at=_parse_time(item.get("createdAt")),
                actor=str(item.get("creatorName") or item.get("creatorId") or "?"),
                flag=key,
                action=str(item.get("operation") or "Update"),
                detail=_event_detail(before, after, str(item.get("comment") or ""), self.describe()),
                before=before,
                after=after,
            ))
        events.sort(key=lambda e: e.at, reverse=True)
        return events[:limit]


# ---- RouteFlag <-> FeatBit flag -----------------------------------------------------------


def _body(response: httpx.Response) -> Any:
    try:
        return response.json() if response.content else None
    except (ValueError, RecursionError):  # not JSON, or nested beyond reading: the caller says what it expected
        return None


def _loads(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def render_variations(flag: RouteFlag, ids: dict[str, str]) -> list[dict[str, Any]]:
    """FeatBit variations for the flag's profiles, keeping the ids of variations that exist."""
    return [
        {"id": ids.get(name) or str(uuid.uuid4()), "name": name, "value": profile.canonical_json()}
        for name, profile in flag.variations.items()
    ]


def _variations_key(variations: list[dict[str, Any]]) -> list[tuple]:
    out = []
    for v in variations:
        try:
            value = json.loads(v.get("value") or "null")
        except ValueError:
            value = v.get("value")
        out.append((v.get("name"), json.dumps(value, sort_keys=True)))
    return sorted(out)


def predicate_to_condition(predicate: dict[str, Any], what: str) -> dict[str, Any]:
    """``{"==": [{"var": FIELD}, VALUE]}`` as a FeatBit condition; other predicates cannot be expressed."""
    match = predicate.get("==") if isinstance(predicate, dict) and len(predicate) == 1 else None
    if (
        isinstance(match, list) and len(match) == 2 and isinstance(match[0], dict)
        and list(match[0]) == ["var"] and isinstance(match[0]["var"], str)
        and isinstance(match[1], (str, int, float)) and not isinstance(match[1], bool)
    ):
        return {"property": match[0]["var"], "op": "Equal", "value": str(match[1])}
    raise BadInput(f"{what} predicate {json.dumps(predicate)} cannot be a FeatBit condition — "
                   'use {"==": [{"var": FIELD}, VALUE]}')


def cohort_offset(salt: str | None) -> float:
    """Where the candidate's range starts: 0 for the flag's first cohort; after a restart that drew a new
    cohort, a point fixed by the salt (FeatBit buckets by MD5 of flag key + unit, so another range of the
    same width is another cohort, and widening it from the same start keeps cohorts nested)."""
    if salt is None:
        return 0.0
    return int(hashlib.sha256(salt.encode()).hexdigest(), 16) % FULL_SHARE_BP / FULL_SHARE_BP


def split_ranges(cand: str, base: str, share: float, offset: float) -> list[dict[str, Any]]:
    """The candidate over ``share`` of [0, 1) starting at ``offset`` (wrapping round), the baseline the rest."""
    if offset == 0:
        return [_range(cand, 0, share), _range(base, share, 1)]
    end = offset + share
    if end <= 1:
        pieces = [(base, 0, offset), (cand, offset, end), (base, end, 1)]
    else:
        pieces = [(cand, 0, round(end - 1, 6)), (base, round(end - 1, 6), offset), (cand, offset, 1)]
    return [_range(v, a, b) for v, a, b in pieces if b > a]


def _range(variation_id: str, start: float, end: float) -> dict[str, Any]:
    return {"id": variation_id, "rollout": [start, end], "exptRollout": 1}


def render_targeting(flag: RouteFlag, ids: dict[str, str], existing_rules: list[dict[str, Any]]) -> dict[str, Any]:
    """The targeting routedeck writes for ``flag`` (rule ids kept from ``existing_rules``)."""
    a = flag.allocation
    base = ids[flag.baseline]
    share = a.candidate_bp / FULL_SHARE_BP
    old_ids = {r.get("name"): r.get("id") for r in existing_rules}
    rules = []

    def rule(name: str, predicate: dict[str, Any], what: str, variations: list[dict[str, Any]]) -> dict[str, Any]:
        condition = {"id": str(uuid.uuid4()), **predicate_to_condition(predicate, what)}
        return {"id": old_ids.get(name) or str(uuid.uuid4()), "name": name, "dispatchKey": DISPATCH_KEY,
                "includedInExpt": False, "conditions": [condition], "variations": variations}

    def excluded(attr: str, value: str) -> dict[str, Any]:
        name = f"{EXCLUDE} {attr}={value}"
        return {"id": old_ids.get(name) or str(uuid.uuid4()), "name": name, "dispatchKey": DISPATCH_KEY,
                "includedInExpt": False, "variations": [_range(base, 0, 1)],
                "conditions": [{"id": str(uuid.uuid4()), "property": attr, "op": "Equal", "value": value}]}

    if a.serve_all is not None:  # the emergency switch: one answer for everyone, nothing else evaluated
        return {"targetUsers": [], "rules": [], "exptIncludeAllTargets": False,
                "fallthrough": {"dispatchKey": DISPATCH_KEY, "includedInExpt": False,
                                "variations": [_range(ids[a.serve_all], 0, 1)]}}
    rules += [excluded(attr, value) for attr, value in a.excluded_segments]
    if flag.candidate is not None:
        cand = ids[flag.candidate]
        split = split_ranges(cand, base, share, cohort_offset(a.cohort_salt))
        audience = a.audience_rule()
        if a.internal_enabled and audience is not None:
            rules.append(rule(INTERNAL, audience, "audience", [_range(cand, 0, 1)]))
    else:
        split = [_range(base, 0, 1)]
    scope = a.scope_rule()
    if scope is not None:
        rules.append(rule(SCOPE, scope, "eligible scope", split))
        fallthrough = [_range(base, 0, 1)]
    else:
        fallthrough = split
    return {
        "targetUsers": [],
        "rules": rules,
        "fallthrough": {"dispatchKey": DISPATCH_KEY, "includedInExpt": False, "variations": fallthrough},
        "exptIncludeAllTargets": False,
    }


def normalise_targeting(t: dict[str, Any]) -> tuple:
    """What decides routing in a targeting, without ids."""
    def ranges(vs: Any) -> tuple:
        return tuple((v.get("id"), tuple(round(float(x), 6) for x in v.get("rollout") or ())) for v in vs or [])

    users = tuple(sorted((u.get("variationId"), tuple(sorted(u.get("keyIds") or [])))
                         for u in t.get("targetUsers") or [] if u.get("keyIds")))
    rules = tuple(
        (r.get("name"), r.get("dispatchKey") or None,
         tuple(sorted((c.get("property"), c.get("op"), c.get("value")) for c in r.get("conditions") or [])),
         ranges(r.get("variations")))
        for r in t.get("rules") or []
    )
    fall = t.get("fallthrough") or {}
    return users, rules, (fall.get("dispatchKey") or None, ranges(fall.get("variations")))


def read_meta(description: str) -> dict[str, Any] | None:
    """routedeck's state line in a flag description, or None when there is none."""
    for line in reversed((description or "").splitlines()):
        if line.startswith(META_PREFIX):
            try:
                meta = json.loads(line[len(META_PREFIX):])
            except ValueError:
                return None
            return meta if isinstance(meta, dict) else None
    return None


def _with_pending(description: str, target: RouteFlag) -> str | None:
    """``description`` with its state line marked as having a write to ``target`` in flight (None when it
    has no state line yet: a flag being created)."""
    meta = read_meta(description)
    if meta is None:
        return None
    stage = (target.rollout.stage_label or target.rollout.stage.value) if target.rollout else "baseline"
    pending = PendingWrite(stage=stage, allocation=target.allocation.describe(), started_at=datetime.now(timezone.utc))
    meta["rollout"] = dict(meta.get("rollout") or {}) | {"pending": pending.model_dump(mode="json")}
    return f"{DESCRIPTION}\n{META_PREFIX}{json.dumps(meta, sort_keys=True, separators=(',', ':'))}"


def render_description(flag: RouteFlag) -> str:
    a = flag.allocation
    meta = state_meta(flag)
    if a.excluded_segments:
        meta["excluded"] = [list(pair) for pair in a.excluded_segments]
    if a.serve_all is not None:
        meta["serveAll"] = a.serve_all
        meta["held"] = {"internalEnabled": a.internal_enabled, "candidateBp": a.candidate_bp}
    return f"{DESCRIPTION}\n{META_PREFIX}{json.dumps(meta, sort_keys=True, separators=(',', ':'))}"


def _with_note(comment: str) -> str:
    """The comment with who made the change and why, when an operation names them (``change_note``)."""
    note = current_note()
    return f"{comment} — {note}" if note else comment


def _state_comment(rollout: RolloutState | None) -> str:
    if rollout is None:
        return "routedeck: rollout state cleared"
    return f"routedeck: rollout state {rollout.stage_label or rollout.stage.value}"


def parse_flag(raw: dict[str, Any], where: str) -> RouteFlag:
    """A RouteFlag from a FeatBit flag document; targeting not in routedeck's shape is reported, not hidden."""
    key = str(raw.get("key"))
    here = f"{where}: flag {key}"
    if raw.get("variationType") != "json":
        raise BadInput(f"{here}: variation type is {raw.get('variationType')!r}, not json — route flags hold JSON profiles")
    names: dict[str, str] = {}
    variations: dict[str, RouteProfile] = {}
    for v in raw.get("variations") or []:
        name = str(v.get("name"))
        try:
            wire = json.loads(v.get("value") or "")
        except (TypeError, ValueError):
            raise BadInput(f"{here}: variation {name} value is not JSON — fix it in FeatBit") from None
        variations[name] = _profile(wire, f"{here}: variation {name}")
        names[str(v.get("id"))] = name
    meta = read_meta(str(raw.get("description") or ""))
    foreign: list[str] = []
    if meta is None:
        meta = {"baseline": names.get(str(raw.get("disabledVariationId")))}
        foreign.append("no routedeck state line in the description (the off variation is taken as the baseline)")
    baseline, candidate = meta.get("baseline"), meta.get("candidate")
    if not baseline or baseline not in variations:
        raise BadInput(f"{here}: baseline variation {baseline!r} not found — restore the description from the audit log")
    if candidate is not None and candidate not in variations:
        foreign.append(f"candidate {candidate} is no longer a variation")
        candidate = None
    rollout = rollout_from_meta(meta, here, "remove it from the description to reset")
    alloc = allocation_from_meta(meta, excluded_segments=tuple((str(a), str(v)) for a, v in meta.get("excluded") or []))
    ids = {name: vid for vid, name in names.items()}
    switch = meta.get("serveAll")
    if switch is not None:
        if switch not in variations:
            raise BadInput(f"{here}: the switch names variation {switch!r}, which is gone — roll back to reset")
        held = meta.get("held") or {}
        parsed = RouteFlag(key=key, variations=variations, baseline=baseline, candidate=candidate,
                           allocation=alloc.model_copy(update={
                               "serve_all": switch, "internal_enabled": bool(held.get("internalEnabled")),
                               "candidate_bp": int(held.get("candidateBp") or 0)}),
                           revision=str(raw.get("revision") or ""), rollout=rollout)
        foreign += _differences(parsed, raw, ids, names)
        return parsed.model_copy(update={"foreign_targeting": "; ".join(foreign) or None})
    rules = {r.get("name"): r for r in raw.get("rules") or []}
    internal_on = INTERNAL in rules
    split = (rules.get(SCOPE) or {}).get("variations") if alloc.scope_rule() is not None else \
        (raw.get("fallthrough") or {}).get("variations")
    bp = 0
    if candidate is not None:
        width = 0.0
        for v in split or []:
            r = v.get("rollout") or [0, 0]
            if v.get("id") == ids[candidate] and len(r) == 2:
                width += float(r[1]) - float(r[0])
        bp = max(0, min(FULL_SHARE_BP, round(width * FULL_SHARE_BP)))
    parsed = RouteFlag(key=key, variations=variations, baseline=baseline, candidate=candidate,
                       allocation=alloc.model_copy(update={"internal_enabled": internal_on and candidate is not None,
                                                           "candidate_bp": bp}),
                       revision=str(raw.get("revision") or ""), rollout=rollout)
    foreign += _differences(parsed, raw, ids, names)
    return parsed.model_copy(update={"foreign_targeting": "; ".join(foreign) or None})


def _differences(flag: RouteFlag, raw: dict[str, Any], ids: dict[str, str], names: dict[str, str]) -> list[str]:
    """How the flag's targeting differs from what routedeck would write for its allocation."""
    out: list[str] = []
    if not raw.get("isEnabled"):
        out.append(f"the flag is off in FeatBit — every unit gets the off variation "
                   f"{names.get(str(raw.get('disabledVariationId')), '?')}")
    try:
        wanted = render_targeting(flag, ids, raw.get("rules") or [])
    except BadInput as exc:
        return out + [str(exc)]
    current = {k: raw.get(k) for k in ("targetUsers", "rules", "fallthrough")}
    if normalise_targeting(wanted) == normalise_targeting(current):
        return out
    users = sum(len(u.get("keyIds") or []) for u in raw.get("targetUsers") or [])
    if users:
        out.append(f"individual targeting sends {users} user(s) to a fixed variation")
    others = [str(r.get("name")) for r in raw.get("rules") or []
              if r.get("name") not in (INTERNAL, SCOPE) and not str(r.get("name")).startswith(EXCLUDE)]
    if others:
        out.append(f"rules not written by routedeck: {', '.join(others)}")
    w_rules = {r[0]: r for r in normalise_targeting(wanted)[1]}
    c_rules = {r[0]: r for r in normalise_targeting(current)[1]}
    for name in (INTERNAL, SCOPE):
        if name in w_rules and name in c_rules and w_rules[name] != c_rules[name]:
            out.append(f"the {name} rule was changed outside routedeck")
        elif name in c_rules and name not in w_rules:
            out.append(f"the {name} rule serves units routedeck does not expect")
        elif name in w_rules and name not in c_rules and name != INTERNAL:
            out.append(f"the {name} rule is missing")
    if normalise_targeting(wanted)[2] != normalise_targeting(current)[2]:
        out.append("the default rule (fallthrough) was changed outside routedeck")
    return out or ["targeting changed outside routedeck"]


def _profile(wire: Any, where: str) -> RouteProfile:
    try:
        return RouteProfile.model_validate(wire)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "value"
        raise BadInput(f"{where}: {field}: {err['msg']} — fix the route profile") from None


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _parse_time(raw: Any) -> datetime:
    text = _FRACTION.sub(r"\1", str(raw or "")).replace("Z", "+00:00")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return datetime.fromtimestamp(0, tz=timezone.utc)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _event_detail(before: dict | None, after: dict | None, comment: str, where: str) -> str:
    """One line for an audit entry: the allocation change when there is one, else the comment."""
    if after is not None:
        try:
            new = parse_flag(after, where)
        except BadInput:
            new = None
        old = None
        if before is not None:
            try:
                old = parse_flag(before, where)
            except BadInput:
                old = None
        if new is not None:
            if old is None:
                return f"created: {new.allocation.describe()}"
            if old.allocation != new.allocation:
                text = f"{old.allocation.describe()} → {new.allocation.describe()}"
                return text + (f" ({new.foreign_targeting})" if new.foreign_targeting else "")
            if old.foreign_targeting != new.foreign_targeting:
                if new.foreign_targeting:
                    return f"targeting changed outside routedeck: {new.foreign_targeting}"
                return f"routedeck's targeting applied ({new.allocation.describe()}), replacing: {old.foreign_targeting}"
            begun = new.rollout.pending if new.rollout else None
            done = old.rollout.pending if old.rollout else None
            if begun is not None and done is None:
                return f"a write to {begun.allocation} (stage {begun.stage}) begins"
            if done is not None and begun is None:
                return f"state stored after the write to {done.allocation} (stage {done.stage})"
            if old.rollout != new.rollout:
                stage = new.rollout.stage_label or new.rollout.stage.value if new.rollout else "none"
                return f"rollout state: stage {stage}"
    return " ".join(comment.split())[:300] or "changed"
