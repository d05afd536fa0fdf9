"""Route flags on LaunchDarkly, through its REST API (semantic patch), with live changes from the
server-side SDK stream.

A route flag is one multivariate LaunchDarkly flag whose variations are JSON route profiles (the
variation's ``name`` is the profile's name). Its targeting, in one environment::

    rule "routedeck:exclude ATTR=VALUE"  ATTR in [VALUE]     → baseline                (one per excluded segment)
    rule "routedeck:internal"            audience in [NAME]  → candidate               (only while internal is on)
    rule "routedeck:scope"               scope in [NAME]     → rollout candidate w, baseline 100000 - w
    default rule (fallthrough)                               → baseline (the rollout itself when there is no scope)
    off variation                                            → baseline

LaunchDarkly buckets a unit by SHA-1 of flag key, the environment's salt and the bucketing
attribute (``key`` unless the SPEC names another with ``bucketBy``) and serves the variations of a
rollout in order, each over its weight; so widening the candidate from 5 % to 20 % keeps the 5 %
cohort inside the 20 %. Rules are recognised by their description (``routedeck:…``).

routedeck's own state (baseline, candidate, audience and scope, rollout state) is one JSON string
in the flag's custom property ``routedeck-ENV`` (one per environment; custom properties are
flag-wide). Route flags carry the tag ``routedeck``.

Every change is one semantic patch (``Content-Type: application/json;
domain-model=launchdarkly.semanticpatch``) with a comment: LaunchDarkly applies all of its
instructions or none, and writes one audit log entry for it. A semantic patch carries no version
precondition, so the flag's ``_version`` is the revision: ``_write_flag`` re-reads it immediately
before the patch and refuses a stale one; the shared ``write_flag`` reads the flag back after it.
A change that lands between that last read and the patch (milliseconds) is merged by LaunchDarkly
instruction by instruction and shows in the read-back — said so in ``docs/launchdarkly.md``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import httpx
from pydantic import ValidationError

from console.core.change_note import current_note
from console.core.credentials import read_token
from console.core.errors import BackendError, BadInput, ConflictError, RouteDeckError
from console.core.models import FULL_SHARE_BP, Allocation, ChangeEvent, RouteFlag, RouteProfile
from console.core.ports import FlagPlatform, describe_difference_short

from ..http import JsonHttp, RetryPolicy, error_detail, make_client, redact_url, ssl_verify
from ..spec import parse_http_spec
from .state_meta import allocation_from_meta, rollout_from_meta, state_meta

TOKEN_ENV = "ROUTEDECK_LAUNCHDARKLY_TOKEN"
SDK_KEY_ENV = "ROUTEDECK_LAUNCHDARKLY_SDK_KEY"
TAG = "routedeck"
INTERNAL, SCOPE, EXCLUDE = "routedeck:internal", "routedeck:scope", "routedeck:exclude"
SEMANTIC_PATCH = "application/json; domain-model=launchdarkly.semanticpatch"
FULL_WEIGHT = 100_000  # LaunchDarkly's weights are thousandths of a percent
WEIGHT_PER_BP = FULL_WEIGHT // FULL_SHARE_BP
DEFAULT_URL = "https://app.launchdarkly.com"
API_VERSION = "20240415"
DESCRIPTION = "Model route flag managed by routedeck: the variations are route profiles."
_SPEC_OPTIONS = ("project", "env", "stream", "bucketBy")


def state_property(env: str) -> str:
    """The custom property holding routedeck's state for environment ``env``."""
    return f"routedeck-{env}"


def launchdarkly_credentials() -> tuple[str | None, str | None]:
    """The REST access token and the SDK key (the one place that knows where they come from)."""
    return read_token(TOKEN_ENV) or None, read_token(SDK_KEY_ENV) or None


class LaunchDarklyPlatform(FlagPlatform):
    """Route flags in one project and environment of LaunchDarkly."""

    kind = "launchdarkly"

    def __init__(
        self,
        base_url: str,
        token: str,
        project: str,
        env: str,
        *,
        stream_url: str | None = None,
        sdk_key: str | None = None,
        bucket_by: str | None = None,
        timeout_s: float | None = None,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.project, self.env = project, env
        self.stream_url = stream_url.rstrip("/") if stream_url else None
        self.bucket_by = bucket_by or None
        self._sdk_key = sdk_key
        client = make_client(self.base_url, headers={"Authorization": token, "LD-API-Version": API_VERSION},
                             timeout_s=timeout_s, transport=transport)
        self.http = JsonHttp(client, "LaunchDarkly", retry=retry)
        self._stream = None
        self._checked_place = False

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> "LaunchDarklyPlatform":
        """``launchdarkly:https://app.launchdarkly.com?project=P&env=E[&stream=URL][&bucketBy=ATTR]``."""
        given = parse_http_spec(
            spec, "launchdarkly", "expected launchdarkly:https://app.launchdarkly.com?project=PROJECT&env=ENVIRONMENT",
            _SPEC_OPTIONS, TOKEN_ENV)
        project, env = given.options.get("project", ""), given.options.get("env", "")
        if not project or not env:
            raise BadInput(f"--flags {given.shown!r}: name the project and the environment "
                           "(?project=KEY&env=KEY, as in LaunchDarkly's project settings)")
        stream = given.options.get("stream") or None
        if stream is not None:
            sp = urlsplit(stream)
            if sp.scheme not in ("http", "https") or not sp.netloc or sp.query or sp.username:
                raise BadInput(f"--flags launchdarkly:…: stream {redact_url(stream)!r} must be https://HOST "
                               f"(e.g. https://stream.launchdarkly.com), with no key in it — set {SDK_KEY_ENV}")
        bucket_by = given.options.get("bucketBy") or None
        if bucket_by is not None and not bucket_by.replace("_", "").replace("-", "").replace("/", "").isalnum():
            raise BadInput(f"--flags launchdarkly:…: bucketBy {bucket_by!r} is not a context attribute name")
        env_token, env_key = launchdarkly_credentials()
        token = options.pop("token", None) or env_token
        sdk_key = options.pop("sdk_key", None) or env_key
        if not token:
            raise BadInput(f"--flags launchdarkly:…: no access token — run `routedeck login PROFILE "
                           f"--which launchdarkly-token` or set {TOKEN_ENV}")
        return cls(given.base_url, token, project, env, stream_url=stream, sdk_key=sdk_key, bucket_by=bucket_by,
                   **options)

    def describe(self) -> str:
        return f"launchdarkly:{redact_url(self.base_url)}?project={self.project}&env={self.env}"

    def close(self) -> None:
        self.stop_watching()
        self.http.close()

    # ---- live changes ----------------------------------------------------------------------

    def watch_changes(self, on_change: Callable[[list[str]], None],
                      on_status: Callable[[str, bool], None] | None = None):
        """Follow the SDK stream (when a stream URL and SDK key are set): ``on_change(keys)`` runs on the
        stream's thread when LaunchDarkly pushes a change; ``on_status(text, final)`` on every state change
        (``final`` when the key was refused for good). Returns the stream, or None."""
        if self.stream_url is None or not self._sdk_key:
            return None
        from console.core.tls import tls_settings

        from .launchdarkly_stream import SdkStream

        self.stop_watching()
        self._stream = SdkStream(self.stream_url, self._sdk_key, on_change, on_status=on_status,
                                 verify=ssl_verify(tls_settings()))
        self._stream.start()
        return self._stream

    def stop_watching(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream = None

    # ---- paths and answers -------------------------------------------------------------

    def _flags(self) -> str:
        return f"/api/v2/flags/{quote(self.project, safe='')}"

    def _flag(self, key: str) -> str:
        return f"{self._flags()}/{quote(key, safe='')}"

    def _fail(self, response: httpx.Response, path: str, key: str | None = None) -> RouteDeckError:
        """A one-line error for an answer LaunchDarkly refused, naming the flag and what to do."""
        def bad(text: str) -> BadInput:  # through the client's scrubbing: the body may echo the token
            return BadInput(self.http.error(text).message)

        status = response.status_code
        about = f"flag {key}: " if key else ""
        where = f"LaunchDarkly at {self.http.where(path)}"
        detail = error_detail(response)
        if status == 401:
            return bad(f"{about}{where}: HTTP 401{detail} — the access token was refused (revoked or "
                            f"mistyped): store a valid one with `routedeck login PROFILE --which launchdarkly-token` "
                            f"or set {TOKEN_ENV}; nothing was changed")
        if status == 403:
            return bad(f"{about}{where}: HTTP 403{detail} — the access token may not do this in project "
                            f"{self.project}, environment {self.env}: give it a role that can; nothing was changed")
        if status == 404:
            return bad(f"{about}{where}: HTTP 404{detail} — check the project ({self.project}) and the "
                            f"environment ({self.env}) in the SPEC, and the flag key")
        if status == 405:
            return bad(f"{about}{where}: HTTP 405{detail} — LaunchDarkly requires an approval for changes "
                            "in this environment: request one there; nothing was changed")
        if status in (400, 422):
            return bad(f"{about}{where}: LaunchDarkly refused the change (HTTP {status}{detail}); "
                            "nothing was changed — reload the flag and check it in LaunchDarkly")
        return self.http.error(f"{about}{where}: HTTP {status}{detail}")

    def _check_place(self) -> None:
        """Once: the project and environment exist (a one-line error naming them otherwise)."""
        if self._checked_place:
            return
        path = f"/api/v2/projects/{quote(self.project, safe='')}/environments/{quote(self.env, safe='')}"
        response = self.http.request("GET", path)
        if response.status_code == 404:
            body = _body(response)
            what = str((body or {}).get("message") or "") if isinstance(body, dict) else ""
            thing = "project" if "project" in what.lower() else "environment"
            name = self.project if thing == "project" else self.env
            raise BadInput(f"{self.describe()}: LaunchDarkly has no {thing} {name!r} — check ?project= and "
                           "?env= in the SPEC (the keys shown in LaunchDarkly's project settings)")
        if response.status_code != 200:
            raise self._fail(response, path)
        self._checked_place = True

    def _read_raw(self, key: str) -> dict[str, Any]:
        self._check_place()
        path = self._flag(key)
        response = self.http.request("GET", path, params={"env": self.env})
        if response.status_code == 404:
            raise BadInput(f"{self.describe()}: no flag {key!r} — check the key or create it with routedeck init")
        if response.status_code != 200:
            raise self._fail(response, path, key)
        raw = _body(response)
        if not isinstance(raw, dict) or self.env not in (raw.get("environments") or {}):
            raise BackendError(f"LaunchDarkly at {self.http.where(path)}: the answer holds no flag for "
                               f"environment {self.env} — is this LaunchDarkly?")
        return raw

    def _patch(self, key: str, instructions: list[dict[str, Any]], comment: str) -> dict[str, Any]:
        path = self._flag(key)
        response = self.http.request(
            "PATCH", path, headers={"Content-Type": SEMANTIC_PATCH},
            content=json.dumps({"environmentKey": self.env, "comment": comment, "instructions": instructions}),
        )
        if response.status_code == 409:
            raise self._conflict(key, self._read_raw(key))
        if response.status_code != 200:
            raise self._fail(response, path, key)
        body = _body(response)
        return body if isinstance(body, dict) else {}

    # ---- reading -------------------------------------------------------------------------

    def list_flags(self) -> list[str]:
        self._check_place()
        keys: list[str] = []
        offset = 0
        while True:
            response = self.http.request("GET", self._flags(), params={
                "filter": f"tags:{TAG}", "limit": "100", "offset": str(offset), "summary": "true"})
            if response.status_code != 200:
                raise self._fail(response, self._flags())
            data = _body(response) or {}
            items = data.get("items") or []
            keys += [str(f["key"]) for f in items if isinstance(f, dict) and "key" in f]
            offset += len(items)
            if not items or offset >= int(data.get("totalCount") or 0):
                return sorted(keys)

    def read_flag(self, key: str) -> RouteFlag:
        return parse_flag(self._read_raw(key), self.env, self.bucket_by, self.describe())

    # ---- writing -------------------------------------------------------------------------

    def _write_flag(self, flag: RouteFlag, expected_revision: str | None) -> None:
        for attempt in range(3):
            raw = self._read_raw(flag.key)
            if expected_revision is not None and revision_of(raw) != expected_revision:
                raise self._conflict(flag.key, raw)
            try:
                self._apply(flag, raw, checked=expected_revision is not None)
                return
            except ConflictError:
                if expected_revision is not None or attempt == 2:
                    raise

    def _apply(self, flag: RouteFlag, raw: dict[str, Any], *, checked: bool) -> None:
        comment = _comment(flag)
        variation_steps = variation_instructions(flag, raw)
        if variation_steps:  # new variations get their ids from LaunchDarkly: a patch of their own first
            after = self._patch(flag.key, variation_steps, "routedeck: route profiles")
            if checked and revision_of(after) != str(int(revision_of(raw)) + 1):
                raise self._conflict(flag.key, self._read_raw(flag.key))
            raw = self._read_raw(flag.key)
        instructions = targeting_instructions(flag, raw, self.env, self.bucket_by)
        if instructions:
            raw = self._patch(flag.key, instructions, comment) or raw
        self._apply_seed(flag, raw, comment)

    def _apply_seed(self, flag: RouteFlag, raw: dict[str, Any], comment: str) -> None:
        """Give the split's rollout the seed of the flag's cohort (none for its first cohort). The semantic
        patch has no seed parameter: this is a JSON patch, refused by LaunchDarkly (409) if the flag moved."""
        where = split_pointer(raw, self.env)
        if where is None:
            return
        path, rollout = where
        want = cohort_seed(flag.allocation.cohort_salt)
        if rollout.get("seed") == want:
            return
        op = ({"op": "remove", "path": f"{path}/seed"} if want is None else
              {"op": "add" if "seed" not in rollout else "replace", "path": f"{path}/seed", "value": want})
        response = self.http.request("PATCH", self._flag(flag.key), json={
            "comment": f"{comment} (cohort seed)",
            "patch": [{"op": "test", "path": "/version", "value": raw.get("_version")}, op]})
        if response.status_code == 409:
            raise self._conflict(flag.key, self._read_raw(flag.key))
        if response.status_code != 200:
            raise self._fail(response, self._flag(flag.key), flag.key)

    def _conflict(self, key: str, raw: dict[str, Any]) -> ConflictError:
        try:
            what = describe_difference_short(parse_flag(raw, self.env, self.bucket_by, self.describe()))
        except BadInput:
            what = "no longer in routedeck's shape"
        return ConflictError(
            f"{self.describe()}: flag {key} was changed by someone else (version {revision_of(raw)}, {what}); "
            "nothing overwritten — reload and retry",
            current_revision=revision_of(raw),
        )

    def _create_flag(self, flag: RouteFlag) -> None:
        self._check_place()
        names = list(flag.variations)
        response = self.http.request("POST", self._flags(), json={
            "name": flag.key, "key": flag.key, "description": DESCRIPTION, "tags": [TAG], "temporary": False,
            "variations": [{"value": p.to_wire(), "name": n} for n, p in flag.variations.items()],
            "defaults": {"onVariation": names.index(flag.baseline), "offVariation": names.index(flag.baseline)},
        })
        if response.status_code == 409:
            raise BadInput(f"{self.describe()}: flag {flag.key} already exists — nothing changed")
        if response.status_code not in (200, 201):
            raise self._fail(response, self._flags(), flag.key)
        raw = self._read_raw(flag.key)
        self._patch(flag.key, targeting_instructions(flag, raw, self.env, self.bucket_by), "routedeck: created")

    # ---- history -------------------------------------------------------------------------

    def history(self, key: str, limit: int = 100, details: int = 25) -> list[ChangeEvent]:
        """The audit log entries of the flag in this environment, newest first; the newest ``details``
        of them with the flag before and after (one more call each)."""
        self._check_place()
        spec = f"proj/{self.project}:env/{self.env}:flag/{key}"
        response = self.http.request("GET", "/api/v2/auditlog", params={"spec": spec, "limit": str(limit)})
        if response.status_code != 200:
            raise self._fail(response, "/api/v2/auditlog", key)
        events = []
        for i, item in enumerate((_body(response) or {}).get("items") or []):
            before = after = None
            if i < details and item.get("_id"):
                detail = self.http.request("GET", f"/api/v2/auditlog/{quote(str(item['_id']), safe='')}")
                if detail.status_code == 200:
                    full = _body(detail) or {}
                    before = _routing(full.get("previousVersion"), self.env, self.bucket_by, self.describe())
                    after = _routing(full.get("currentVersion"), self.env, self.bucket_by, self.describe())
            member = item.get("member") or {}
            who = member.get("email") or " ".join(filter(None, [member.get("firstName"), member.get("lastName")]))
            token = item.get("token") or {}
            events.append(ChangeEvent(
                at=datetime.fromtimestamp(int(item.get("date") or 0) / 1000, tz=timezone.utc),
                actor=str(who or token.get("name") or "?"),
                flag=key,
                action=str(item.get("titleVerb") or item.get("shortDescription") or "changed"),
                detail=_event_detail(before, after, str(item.get("comment") or ""), str(item.get("title") or "")),
                before=before,
                after=after,
            ))
        events.sort(key=lambda e: e.at, reverse=True)
        return events[:limit]


# ---- RouteFlag <-> LaunchDarkly flag -------------------------------------------------------


def _body(response: httpx.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return None


def revision_of(raw: dict[str, Any]) -> str:
    return str(raw.get("_version") or "")


def cohort_seed(salt: str | None) -> int | None:
    """The rollout seed of a cohort drawn anew at a restart (LaunchDarkly then hashes the seed instead of
    the flag key and salt); None for the flag's first cohort."""
    if salt is None:
        return None
    return int(hashlib.sha256(salt.encode()).hexdigest(), 16) % 2_000_000_000


def split_pointer(raw: dict[str, Any], env: str) -> tuple[str, dict[str, Any]] | None:
    """The JSON pointer and the rollout of routedeck's split (the scope rule's, else the default rule's)."""
    e = (raw.get("environments") or {}).get(env) or {}
    for i, rule in enumerate(e.get("rules") or []):
        if rule.get("description") == SCOPE and isinstance(rule.get("rollout"), dict):
            return f"/environments/{env}/rules/{i}/rollout", rule["rollout"]
    if not any(r.get("description") == SCOPE for r in e.get("rules") or []):
        fall = e.get("fallthrough") or {}
        if isinstance(fall.get("rollout"), dict):
            return f"/environments/{env}/fallthrough/rollout", fall["rollout"]
    return None


def _comment(flag: RouteFlag) -> str:
    """What the change does and — when an operation names them (``change_note``) — who made it and why."""
    text = f"routedeck: {flag.allocation.describe()}"
    if flag.rollout is not None:
        text += f" (stage {flag.rollout.stage_label or flag.rollout.stage.value})"
    note = current_note()
    return f"{text} — {note}" if note else text


def predicate_to_clause(predicate: dict[str, Any], what: str) -> dict[str, Any]:
    """``{"==": [{"var": FIELD}, VALUE]}`` as a LaunchDarkly clause; other predicates cannot be expressed."""
    match = predicate.get("==") if isinstance(predicate, dict) and len(predicate) == 1 else None
    if (
        isinstance(match, list) and len(match) == 2 and isinstance(match[0], dict)
        and list(match[0]) == ["var"] and isinstance(match[0]["var"], str)
        and isinstance(match[1], (str, int, float)) and not isinstance(match[1], bool)
    ):
        return {"contextKind": "user", "attribute": match[0]["var"], "op": "in", "negate": False,
                "values": [match[1]]}
    raise BadInput(f"{what} predicate {json.dumps(predicate)} cannot be a LaunchDarkly clause — "
                   'use {"==": [{"var": FIELD}, VALUE]}')


def _state(flag: RouteFlag) -> str:
    meta = state_meta(flag)
    a = flag.allocation
    if a.excluded_segments:
        meta["excluded"] = [list(pair) for pair in a.excluded_segments]
    if a.serve_all is not None:
        meta["serveAll"] = a.serve_all
        meta["held"] = {"internalEnabled": a.internal_enabled, "candidateBp": a.candidate_bp}
    return json.dumps(meta, sort_keys=True, separators=(",", ":"))


def wanted_targeting(flag: RouteFlag, ids: dict[str, str], bucket_by: str | None) -> dict[str, Any]:
    """What routedeck wants in the environment, by variation id: ``rules`` (each with a description,
    clauses and a serve), ``fallthrough`` (a serve) and ``off`` (a variation id)."""
    a = flag.allocation
    base = ids[flag.baseline]

    def fixed(name: str) -> dict[str, Any]:
        return {"variationId": ids[name]}

    if a.serve_all is not None:  # the emergency switch: one answer for everyone
        return {"rules": [], "fallthrough": fixed(a.serve_all), "off": base}
    rules = [{"description": f"{EXCLUDE} {attr}={value}", "serve": {"variationId": base},
              "clauses": [{"contextKind": "user", "attribute": attr, "op": "in", "negate": False, "values": [value]}]}
             for attr, value in a.excluded_segments]
    if flag.candidate is not None:
        weight = a.candidate_bp * WEIGHT_PER_BP
        split: dict[str, Any] = {"rolloutWeights": {ids[flag.candidate]: weight, base: FULL_WEIGHT - weight},
                                 "rolloutContextKind": "user"}
        if bucket_by:
            split["rolloutBucketBy"] = bucket_by
        if a.cohort_salt is not None:
            split["seed"] = cohort_seed(a.cohort_salt)
        audience = a.audience_rule()
        if a.internal_enabled and audience is not None:
            rules.append({"description": INTERNAL, "serve": fixed(flag.candidate),
                          "clauses": [predicate_to_clause(audience, "audience")]})
    else:
        split = {"variationId": base}
    scope = a.scope_rule()
    if scope is not None:
        rules.append({"description": SCOPE, "serve": split, "clauses": [predicate_to_clause(scope, "eligible scope")]})
        fallthrough: dict[str, Any] = {"variationId": base}
    else:
        fallthrough = split
    return {"rules": rules, "fallthrough": fallthrough, "off": base}


def _serve_of(vr: dict[str, Any], ids_by_index: list[str]) -> dict[str, Any]:
    """A stored ``variation``/``rollout`` in the shape of ``wanted_targeting``'s serves."""
    if vr.get("rollout"):
        r = vr["rollout"]
        out: dict[str, Any] = {"rolloutWeights": {}, "rolloutContextKind": r.get("contextKind") or "user"}
        for w in r.get("variations") or []:
            index = w.get("variation")
            vid = ids_by_index[index] if isinstance(index, int) and 0 <= index < len(ids_by_index) else f"#{index}"
            out["rolloutWeights"][vid] = out["rolloutWeights"].get(vid, 0) + int(w.get("weight") or 0)
        if r.get("bucketBy"):
            out["rolloutBucketBy"] = r["bucketBy"]
        if r.get("seed") is not None:
            out["seed"] = r["seed"]
        return out
    index = vr.get("variation")
    return {"variationId": ids_by_index[index] if isinstance(index, int) and 0 <= index < len(ids_by_index) else None}


def _norm_serve(serve: dict[str, Any]) -> tuple:
    if "rolloutWeights" in serve:
        weights = tuple(sorted((k, v) for k, v in serve["rolloutWeights"].items() if v))
        if len(weights) == 1 and weights[0][1] == FULL_WEIGHT:
            return ("variation", weights[0][0])  # a rollout of everyone to one variation serves that variation
        return ("rollout", weights, serve.get("rolloutBucketBy") or "key", serve.get("rolloutContextKind") or "user",
                serve.get("seed"))
    return ("variation", serve.get("variationId"))


def _norm_clauses(clauses: list[dict[str, Any]]) -> tuple:
    return tuple(sorted((c.get("contextKind") or "user", c.get("attribute"), c.get("op"), bool(c.get("negate")),
                         tuple(map(str, c.get("values") or ()))) for c in clauses))


def current_targeting(raw: dict[str, Any], env: str) -> dict[str, Any]:
    """The environment's targeting in ``wanted_targeting``'s shape (plus rule ids)."""
    e = raw["environments"][env]
    ids = [str(v.get("_id")) for v in raw.get("variations") or []]
    off = e.get("offVariation")
    return {
        "rules": [{"id": r.get("_id"), "description": r.get("description") or "", "serve": _serve_of(r, ids),
                   "clauses": r.get("clauses") or []} for r in e.get("rules") or []],
        "fallthrough": _serve_of(e.get("fallthrough") or {}, ids),
        "off": ids[off] if isinstance(off, int) and 0 <= off < len(ids) else None,
    }


def _norm(t: dict[str, Any]) -> tuple:
    return (tuple((r["description"], _norm_clauses(r["clauses"]), _norm_serve(r["serve"])) for r in t["rules"]),
            _norm_serve(t["fallthrough"]), t["off"])


def _instruction_serve(serve: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in serve.items() if k != "seed"}


def variation_instructions(flag: RouteFlag, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Flag-level instructions that make LaunchDarkly hold every profile of ``flag`` (none are removed)."""
    have = {str(v.get("name") or ""): v for v in raw.get("variations") or []}
    out = []
    for name, profile in flag.variations.items():
        wire = profile.to_wire()
        if name not in have:
            out.append({"kind": "addVariation", "name": name, "value": wire})
        elif have[name].get("value") != wire:
            out.append({"kind": "updateVariation", "variationId": have[name]["_id"], "value": wire})
    return out


def targeting_instructions(flag: RouteFlag, raw: dict[str, Any], env: str, bucket_by: str | None) -> list[dict[str, Any]]:
    """The instructions of one semantic patch taking the environment from ``raw`` to ``flag``: per-rule
    updates when the rules are the same ones (an advance is one rollout update), else a replacement."""
    ids = {str(v.get("name") or ""): str(v.get("_id")) for v in raw.get("variations") or []}
    missing = [n for n in flag.variations if n not in ids]
    if missing:
        raise BadInput(f"flag {flag.key}: variation {missing[0]} is not on LaunchDarkly — reload and retry")
    wanted = wanted_targeting(flag, ids, bucket_by)
    current = current_targeting(raw, env)
    e = raw["environments"][env]
    out: list[dict[str, Any]] = []
    if _norm(wanted) != _norm(current):
        same_rules = [(r["description"], _norm_clauses(r["clauses"])) for r in wanted["rules"]] == \
                     [(r["description"], _norm_clauses(r["clauses"])) for r in current["rules"]]
        if same_rules:
            for w, c in zip(wanted["rules"], current["rules"]):
                if _norm_serve(w["serve"]) != _norm_serve(c["serve"]):
                    out.append({"kind": "updateRuleVariationOrRollout", "ruleId": c["id"],
                                **_instruction_serve(w["serve"])})
        else:
            out.append({"kind": "replaceRules", "rules": [
                {"description": r["description"], "clauses": r["clauses"], **_instruction_serve(r["serve"])}
                for r in wanted["rules"]]})
        if _norm_serve(wanted["fallthrough"]) != _norm_serve(current["fallthrough"]):
            out.append({"kind": "updateFallthroughVariationOrRollout", **_instruction_serve(wanted["fallthrough"])})
        if wanted["off"] != current["off"]:
            out.append({"kind": "updateOffVariation", "variationId": wanted["off"]})
    for target in (e.get("targets") or []) + (e.get("contextTargets") or []):
        index = target.get("variation")
        vids = [str(v.get("_id")) for v in raw.get("variations") or []]
        if target.get("values") and isinstance(index, int) and 0 <= index < len(vids):
            clear = {"kind": "clearTargets", "variationId": vids[index]}
            if clear not in out:
                out.append(clear)  # individual targets would override the split routedeck sets
    if e.get("prerequisites"):
        out.append({"kind": "replacePrerequisites", "prerequisites": []})
    if not e.get("on"):
        out.append({"kind": "turnFlagOn"})
    state = _state(flag)
    prop = (raw.get("customProperties") or {}).get(state_property(env)) or {}
    if list(prop.get("value") or []) != [state]:
        out.append({"kind": "replaceCustomProperties", "key": state_property(env),
                    "name": f"routedeck state ({env})", "values": [state]})
    if TAG not in (raw.get("tags") or []):
        out.append({"kind": "addTags", "values": [TAG]})
    return out


def parse_flag(raw: dict[str, Any], env: str, bucket_by: str | None, where: str) -> RouteFlag:
    """A RouteFlag from a LaunchDarkly flag; targeting not in routedeck's shape is reported, not hidden."""
    key = str(raw.get("key"))
    here = f"{where}: flag {key}"
    variations: dict[str, RouteProfile] = {}
    names_by_index: list[str] = []
    for i, v in enumerate(raw.get("variations") or []):
        name = str(v.get("name") or f"variation-{i}")
        if not isinstance(v.get("value"), dict):
            raise BadInput(f"{here}: variation {name} is not a JSON object — route flags hold JSON route profiles")
        variations[name] = _profile(v["value"], f"{here}: variation {name}")
        names_by_index.append(name)
    e = (raw.get("environments") or {}).get(env) or {}
    prop = (raw.get("customProperties") or {}).get(state_property(env)) or {}
    meta: dict[str, Any] | None = None
    values = prop.get("value") or []
    if values:
        try:
            meta = json.loads(values[0])
        except (TypeError, ValueError):
            meta = None
    foreign: list[str] = []
    if not isinstance(meta, dict):
        off = e.get("offVariation")
        meta = {"baseline": names_by_index[off] if isinstance(off, int) and 0 <= off < len(names_by_index) else None}
        foreign.append(f"no routedeck state in custom property {state_property(env)} (the off variation is taken "
                       "as the baseline)")
    baseline, candidate = meta.get("baseline"), meta.get("candidate")
    if not baseline or baseline not in variations:
        raise BadInput(f"{here}: baseline variation {baseline!r} not found — restore custom property "
                       f"{state_property(env)} from the audit log")
    if candidate is not None and candidate not in variations:
        foreign.append(f"candidate {candidate} is no longer a variation")
        candidate = None
    rollout = rollout_from_meta(meta, here, f"remove custom property {state_property(env)} to reset")
    alloc = allocation_from_meta(meta, excluded_segments=tuple((str(a), str(v)) for a, v in meta.get("excluded") or []))
    ids = {n: str(v.get("_id")) for n, v in zip(names_by_index, raw.get("variations") or [])}
    current = current_targeting(raw, env)
    switch = meta.get("serveAll")
    if switch is not None:
        if switch not in variations:
            raise BadInput(f"{here}: the switch names variation {switch!r}, which is gone — roll back to reset")
        held = meta.get("held") or {}
        alloc = alloc.model_copy(update={"serve_all": switch, "internal_enabled": bool(held.get("internalEnabled")),
                                         "candidate_bp": int(held.get("candidateBp") or 0)})
    else:
        rules = {r["description"]: r for r in current["rules"]}
        split = (rules.get(SCOPE) or {}).get("serve") if alloc.scope_rule() is not None else current["fallthrough"]
        bp = 0
        if candidate is not None and split and "rolloutWeights" in split:
            bp = int(split["rolloutWeights"].get(ids[candidate], 0)) // WEIGHT_PER_BP
        elif candidate is not None and split and split.get("variationId") == ids[candidate]:
            bp = FULL_SHARE_BP
        alloc = alloc.model_copy(update={"internal_enabled": INTERNAL in rules and candidate is not None,
                                         "candidate_bp": max(0, min(FULL_SHARE_BP, bp))})
    parsed = RouteFlag(key=key, variations=variations, baseline=baseline, candidate=candidate, allocation=alloc,
                       revision=revision_of(raw), rollout=rollout)
    foreign += _differences(parsed, raw, env, ids, current, bucket_by, names_by_index)
    return parsed.model_copy(update={"foreign_targeting": "; ".join(foreign) or None})


def _differences(flag: RouteFlag, raw: dict[str, Any], env: str, ids: dict[str, str], current: dict[str, Any],
                 bucket_by: str | None, names: list[str]) -> list[str]:
    """How the environment's targeting differs from what routedeck would write for the flag's allocation."""
    e = raw["environments"][env]
    out: list[str] = []
    if not e.get("on"):
        off = e.get("offVariation")
        name = names[off] if isinstance(off, int) and 0 <= off < len(names) else "?"
        out.append(f"targeting is off in LaunchDarkly — every unit gets the off variation {name}")
    targeted = sum(len(t.get("values") or []) for t in (e.get("targets") or []) + (e.get("contextTargets") or []))
    if targeted:
        out.append(f"individual targeting sends {targeted} context(s) to a fixed variation")
    if e.get("prerequisites"):
        out.append("prerequisites decide who gets the flag")
    try:
        wanted = wanted_targeting(flag, ids, bucket_by)
    except BadInput as exc:
        return out + [str(exc)]
    if _norm(wanted) == _norm(current):
        return out
    others = [r["description"] or "(no description)" for r in current["rules"]
              if r["description"] not in (INTERNAL, SCOPE) and not r["description"].startswith(EXCLUDE)]
    if others:
        out.append(f"rules not written by routedeck: {', '.join(others)}")
    w_rules = {r["description"]: r for r in wanted["rules"]}
    for r in current["rules"]:
        name = r["description"]
        if name not in (INTERNAL, SCOPE):
            continue
        w = w_rules.get(name)
        if w is None:
            out.append(f"the {name} rule serves units routedeck does not expect")
        elif (_norm_clauses(w["clauses"]), _norm_serve(w["serve"])) != (_norm_clauses(r["clauses"]), _norm_serve(r["serve"])):
            serve = r["serve"]
            if "rolloutWeights" in serve and (serve.get("rolloutBucketBy") or "key") != (bucket_by or "key"):
                out.append(f"the {name} rule buckets by {serve.get('rolloutBucketBy') or 'key'}, "
                           f"not {bucket_by or 'key'}")
            else:
                out.append(f"the {name} rule was changed outside routedeck")
    if SCOPE in w_rules and SCOPE not in {r["description"] for r in current["rules"]}:
        out.append(f"the {SCOPE} rule is missing")
    if _norm_serve(wanted["fallthrough"]) != _norm_serve(current["fallthrough"]):
        out.append("the default rule was changed outside routedeck")
    if wanted["off"] != current["off"]:
        out.append("the off variation is not the baseline")
    return out or ["targeting changed outside routedeck"]


def _profile(wire: Any, where: str) -> RouteProfile:
    try:
        return RouteProfile.model_validate(wire)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "value"
        raise BadInput(f"{where}: {field}: {err['msg']} — fix the route profile") from None


def _routing(raw: Any, env: str, bucket_by: str | None, where: str) -> dict[str, Any] | None:
    """What routes traffic in an audit entry's flag version (for the timeline), or None."""
    if not isinstance(raw, dict) or env not in (raw.get("environments") or {}):
        return None
    try:
        flag = parse_flag(raw, env, bucket_by, where)
    except BadInput:
        return None
    out: dict[str, Any] = {"allocation": flag.allocation.model_dump(mode="json"), "baseline": flag.baseline,
                           "candidate": flag.candidate, "version": flag.revision}
    if flag.rollout is not None:
        out["stage"] = flag.rollout.stage_label or flag.rollout.stage.value
    if flag.foreign_targeting:
        out["foreign"] = flag.foreign_targeting
    return out


def _event_detail(before: dict | None, after: dict | None, comment: str, title: str) -> str:
    """One line for an audit entry: the allocation change when there is one, else the comment or title."""
    if after is not None:
        new = Allocation.model_validate(after["allocation"])
        if before is None:
            return f"created: {new.describe()}"
        old = Allocation.model_validate(before["allocation"])
        if old != new:
            text = f"{old.describe()} → {new.describe()}"
            return text + (f" ({after['foreign']})" if after.get("foreign") else "")
        if before.get("foreign") != after.get("foreign"):
            if after.get("foreign"):
                return f"targeting changed outside routedeck: {after['foreign']}"
            return f"routedeck's targeting applied ({new.describe()}), replacing: {before.get('foreign')}"
        if before.get("stage") != after.get("stage"):
            return f"rollout state: stage {after.get('stage') or 'none'}"
    return " ".join((comment or title).split())[:300] or "changed"

