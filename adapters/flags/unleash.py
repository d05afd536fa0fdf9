"""Route flags on an Unleash server, through its Admin API.

A route flag is one Unleash feature flag whose strategies, in one environment, are (in order)::

    routedeck:internal   flexibleRollout 100 % (0 % when off), constraint audience → candidate variant
    routedeck:candidate  flexibleRollout N %, groupId = flag key, constraint scope  → candidate variant
    routedeck:baseline   flexibleRollout 100 %, no constraint                       → baseline variant

Each strategy carries one variant whose JSON payload is the route profile. Unleash serves the
variant of the first strategy that matches, so units outside the rollout (or outside the scope)
fall through to the explicit baseline strategy and get the baseline *profile*, never the SDK's
disabled variant. The candidate strategy's ``groupId`` is fixed to the flag key, so Unleash's
bucketing (murmur3 of ``groupId:userId``) keeps the 5 % cohort inside the 20 % cohort.
Rollback sets both candidate strategies' rollout to 0; the flag is never switched off.

routedeck's own state (which variation is the baseline, the candidate, the audience and scope
names, other variations, the rollout state) is a JSON string in the baseline strategy's
``parameters["routedeck"]``: it lives in the same environment as the split it describes and
reaches Unleash's change history with it. Route flags carry the tag ``simple:routedeck``.

Unleash strategies carry no revision. The revision here is a hash of the environment's
strategies as read; ``_write_flag`` re-reads and compares before writing. That detects most
foreign changes but is racy (a change landing between the compare and the write is lost):
best effort, and said so in ``docs/backends.md``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from console.core.change_note import UNLEASH_PARAMETER as NOTE_PARAMETER
from console.core.change_note import current_note
from console.core.credentials import read_token
from console.core.errors import BackendError, BadInput, ConflictError
from console.core.models import (
    FULL_SHARE_BP,
    ChangeEvent,
    PendingWrite,
    RouteFlag,
    RouteProfile,
)
from console.core.ports import FlagPlatform, describe_difference_short

from ..http import JsonHttp, RetryPolicy, error_detail, make_client, redact_url
from ..spec import parse_http_spec
from .state_meta import allocation_from_meta, rollout_from_meta, state_meta

TOKEN_ENV = "ROUTEDECK_UNLEASH_TOKEN"
TAG = {"type": "simple", "value": "routedeck"}
META_KEY = "routedeck"
INTERNAL, CANDIDATE, BASELINE = "routedeck:internal", "routedeck:candidate", "routedeck:baseline"
ORDER = (INTERNAL, CANDIDATE, BASELINE)
#: strategy fields that decide routing (and so make up the revision)
_ROUTING_FIELDS = ("name", "title", "disabled", "constraints", "parameters", "variants", "segments", "sortOrder")


class UnleashPlatform(FlagPlatform):
    """Route flags in one project and environment of an Unleash server."""

    kind = "unleash"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        project: str = "default",
        environment: str = "development",
        timeout_s: float | None = None,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.environment = environment
        client = make_client(
            self.base_url,
            headers={"Authorization": token, "Content-Type": "application/json"},
            timeout_s=timeout_s,
            transport=transport,
        )
        self.http = JsonHttp(client, "Unleash", retry=retry)
        self._context_done: set[tuple[str, str]] = set()

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> "UnleashPlatform":
        """``unleash:http://HOST:PORT?project=P&environment=E``; the admin token comes from ROUTEDECK_UNLEASH_TOKEN."""
        given = parse_http_spec(spec, "unleash", "expected unleash:http://HOST:PORT?project=P&environment=E",
                                    ("project", "environment"), TOKEN_ENV)
        token = options.pop("token", None) or read_token(TOKEN_ENV)
        if not token:
            raise BadInput(f"--flags unleash:…: no admin API token — run `routedeck login PROFILE` or set {TOKEN_ENV}")
        return cls(
            given.base_url, token,
            project=given.options.get("project") or "default",
            environment=given.options.get("environment") or "development",
            **options,
        )

    def describe(self) -> str:
        return f"unleash:{redact_url(self.base_url)}?project={self.project}&environment={self.environment}"

    def close(self) -> None:
        self.http.close()

    # ---- paths ---------------------------------------------------------------------------

    def _features(self) -> str:
        return f"/api/admin/projects/{quote(self.project, safe='')}/features"

    def _feature(self, key: str) -> str:
        return f"{self._features()}/{quote(key, safe='')}"

    def _strategies(self, key: str) -> str:
        return f"{self._feature(key)}/environments/{quote(self.environment, safe='')}/strategies"

    # ---- reading -------------------------------------------------------------------------

    def list_flags(self) -> list[str]:
        # the project's feature list, filtered by routedeck's tag: the search endpoint is rate-limited
        # (15 a minute by default), which a console polling every few seconds would exhaust
        body = self.http.json("GET", self._features(), params={"tag": f"{TAG['type']}:{TAG['value']}"})
        return sorted(f["name"] for f in (body or {}).get("features", []) if isinstance(f, dict) and "name" in f)

    def _read_raw(self, key: str) -> dict[str, Any]:
        response = self.http.request("GET", self._feature(key))
        if response.status_code == 404:
            raise BadInput(f"{self.describe()}: no flag {key!r} in project {self.project} — check the key or run init")
        if response.status_code != 200:
            self.http.json("GET", self._feature(key))  # raises the one-line error
        feature = self.http.decode(response, self._feature(key))
        if not isinstance(feature, dict) or not isinstance(feature.get("environments", []), list):
            raise self.http.error(f"Unleash at {self.http.where(self._feature(key))}: the answer is not a feature flag "
                                  "— is this the right URL?")
        env = next((e for e in feature.get("environments", []) if isinstance(e, dict)
                    and e.get("name") == self.environment), None)
        if env is None:
            raise BackendError(f"{self.describe()}: flag {key} has no environment {self.environment!r} — check the spec")
        return env

    def read_flag(self, key: str) -> RouteFlag:
        env = self._read_raw(key)
        return parse_flag(key, env, self.describe())

    # ---- writing -------------------------------------------------------------------------

    def _write_flag(self, flag: RouteFlag, expected_revision: str | None) -> None:
        env = self._read_raw(flag.key)
        if expected_revision is not None and revision_of(env) != expected_revision:
            try:
                what = describe_difference_short(parse_flag(flag.key, env, self.describe()))
            except BadInput:
                what = "no longer in routedeck's shape"
            raise ConflictError(
                f"{self.describe()}: flag {flag.key} was changed by someone else ({what}); nothing written — reload and retry",
                current_revision=revision_of(env),
            )
        self._ensure_context_fields(flag)
        self._put_strategies(flag, env.get("strategies", []), enabled=bool(env.get("enabled")))

    # ---- context fields -----------------------------------------------------------------------

    def _ensure_context_fields(self, flag: RouteFlag) -> None:
        """Register the context fields routedeck's strategies constrain, with descriptions and the values
        routedeck uses, so Unleash's UI can show, explain and edit them. A field the team already has keeps
        its description; a value routedeck needs is added to its legal values when it has any (Unleash
        would refuse a constraint on a value outside them). Done once per field and value per client."""
        wanted = [(f, v, what) for f, v, what in context_values(flag) if (f, v) not in self._context_done]
        if not wanted:
            return
        fields = {c.get("name"): c for c in self.http.json("GET", "/api/admin/context") or [] if isinstance(c, dict)}
        for name in dict.fromkeys(f for f, _, _ in wanted):
            values = [(v, what) for f, v, what in wanted if f == name]
            current = fields.get(name)
            legal = [{"value": v, "description": what} for v, what in values]
            if current is None:
                self.http.json("POST", "/api/admin/context", ok=(200, 201, 409), json={
                    "name": name, "description": CONTEXT_DESCRIPTIONS.get(name, CONTEXT_DESCRIPTIONS[""]).format(name=name),
                    "legalValues": legal, "stickiness": False})
            else:
                have = {lv.get("value") for lv in current.get("legalValues") or []}
                missing = [lv for lv in legal if lv["value"] not in have]
                if (have and missing) or not current.get("description"):
                    self.http.json("PUT", f"/api/admin/context/{quote(name, safe='')}", ok=(200, 204), json={
                        "description": current.get("description") or
                        CONTEXT_DESCRIPTIONS.get(name, CONTEXT_DESCRIPTIONS[""]).format(name=name),
                        "legalValues": list(current.get("legalValues") or []) + (missing if have else []),
                        "stickiness": bool(current.get("stickiness")), "sortOrder": current.get("sortOrder", 0)},
                        idempotent=True)
            self._context_done.update((name, v) for v, _ in values)

    def _put_strategies(self, flag: RouteFlag, existing: list[dict[str, Any]], enabled: bool = True) -> None:
        """Make the environment's strategies those of ``flag``, in an order whose every prefix is safe.

        Unleash takes one strategy per request, and a write can stop after any of them (a timeout, a
        server stopped mid-way). The state object rides on the baseline strategy, so:

        1. when more than the baseline strategy changes, the baseline is first rewritten with its
           routing and state as they are plus a ``pending`` marker naming the write in flight;
        2. the candidate strategies change, those that lower the candidate's share first, and
           strategies routedeck does not own are removed (they would route units their own way);
        3. the baseline strategy is written last, with the new state and no marker.

        Interrupted before 3, the state still names the old stage and the marker says that the
        routing may hold part of the change: nothing reads "rolled back" while the candidate serves.
        A promote's leftover candidate strategies serve the route that is the baseline now, so they
        go after 3.
        """
        wanted = render_strategies(flag)
        by_title = {s.get("title"): s for s in existing if s.get("title") in ORDER}
        base = self._strategies(flag.key)
        routing = [b for b in wanted if b["title"] != BASELINE]
        final = next(b for b in wanted if b["title"] == BASELINE)
        wanted_titles = {b["title"] for b in wanted}
        changed = [b for b in routing if not _same_strategy(b, by_title.get(b["title"]))]
        foreign = [s for s in existing if s.get("title") not in ORDER]
        obsolete = [s for s in existing if s.get("title") in ORDER and s.get("title") not in wanted_titles]
        old_base = by_title.get(BASELINE)
        marked = old_base is not None and bool(changed or foreign or obsolete or not enabled)
        if marked:
            self._put_one(base, old_base, _with_pending(old_base, flag))
        # lower shares first: a write that stops half-way has moved traffic the safe way
        for body in sorted(changed, key=lambda b: _rollout_bp(b) >= _rollout_bp(by_title.get(b["title"]) or b)):
            current = by_title.get(body["title"])
            if current is None:
                self._post_strategy(flag.key, body)
            else:
                self._put_one(base, current, body)
        for s in foreign + ([] if flag.candidate is None else obsolete):
            self.http.json("DELETE", f"{base}/{quote(s['id'], safe='')}")
        if not enabled:
            self.http.json("POST", f"{self._feature(flag.key)}/environments/{quote(self.environment, safe='')}/on",
                           idempotent=True)
        if old_base is None:
            self._post_strategy(flag.key, final)
        elif marked or not _same_strategy(final, old_base):
            self._put_one(base, old_base, final)
        if flag.candidate is None:
            for s in obsolete:
                self.http.json("DELETE", f"{base}/{quote(s['id'], safe='')}")

    def _put_one(self, base: str, current: dict[str, Any], body: dict[str, Any]) -> None:
        self.http.json("PUT", f"{base}/{quote(current['id'], safe='')}", json=_noted(body))

    def _post_strategy(self, key: str, body: dict[str, Any]) -> None:
        """Add one strategy. A POST that may have been applied is not sent twice blindly: the
        environment is read again, and a strategy with this title already there is updated instead."""
        try:
            self.http.json("POST", self._strategies(key), json=_noted(body))
            return
        except BackendError:
            env = self._read_raw(key)
        there = next((s for s in env.get("strategies", []) if s.get("title") == body["title"]), None)
        if there is None:
            self.http.json("POST", self._strategies(key), json=_noted(body))
        elif not _same_strategy(body, there):
            self._put_one(self._strategies(key), there, body)

    def _create_flag(self, flag: RouteFlag) -> None:
        response = self.http.request("POST", self._features(), json={
            "name": flag.key, "type": "experiment",
            "description": "Model route flag managed by routedeck (variants are route profiles).",
        })
        if response.status_code == 409:
            raise BadInput(f"{self.describe()}: flag {flag.key} already exists — nothing changed")
        if response.status_code not in (200, 201):  # say why, without sending the create a second time
            raise self.http.error(f"Unleash at {self.http.where(self._features())}: HTTP {response.status_code}"
                                  f"{error_detail(response)} — the flag was not created")
        self.http.json("POST", f"/api/admin/features/{quote(flag.key, safe='')}/tags", ok=(200, 201), json=TAG,
                       idempotent=True)  # tagging twice is refused, never doubled
        self._ensure_context_fields(flag)
        self._put_strategies(flag, [])
        self.http.json("POST", f"{self._feature(flag.key)}/environments/{quote(self.environment, safe='')}/on",
                       idempotent=True)

    # ---- history -------------------------------------------------------------------------

    def history(self, key: str, limit: int = 100) -> list[ChangeEvent]:
        body = self.http.json("GET", "/api/admin/search/events", params={"feature": f"IS:{key}", "limit": str(limit)})
        events = []
        for e in _since_created((body or {}).get("events", [])):
            env = e.get("environment")
            if env not in (None, self.environment):
                continue
            events.append(ChangeEvent(
                at=_parse_time(e.get("createdAt")),
                actor=str(e.get("createdBy") or "?"),
                flag=key,
                action=str(e.get("label") or e.get("type") or "change"),
                detail=_event_detail(e),
                before=e.get("preData") if isinstance(e.get("preData"), dict) else None,
                after=e.get("data") if isinstance(e.get("data"), dict) else None,
            ))
        events.sort(key=lambda ev: ev.at, reverse=True)
        return events[:limit]


# ---- RouteFlag <-> strategies -------------------------------------------------------------


def revision_of(env: dict[str, Any]) -> str:
    """A hash of what routes traffic in the environment (strategies in order, and on/off)."""
    strategies = sorted(env.get("strategies", []), key=lambda s: (s.get("sortOrder", 0), s.get("id", "")))
    doc = {
        "enabled": bool(env.get("enabled")),
        "strategies": [{k: s.get(k) for k in ("id",) + _ROUTING_FIELDS} for s in strategies],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def predicate_to_constraint(predicate: dict[str, Any], what: str) -> dict[str, Any]:
    """``{"==": [{"var": FIELD}, VALUE]}`` as an Unleash constraint; other predicates cannot be expressed."""
    match = predicate.get("==") if isinstance(predicate, dict) and len(predicate) == 1 else None
    if (
        isinstance(match, list) and len(match) == 2 and isinstance(match[0], dict)
        and list(match[0]) == ["var"] and isinstance(match[0]["var"], str) and isinstance(match[1], (str, int, float))
    ):
        return {"contextName": match[0]["var"], "operator": "IN", "values": [str(match[1])],
                "caseInsensitive": False, "inverted": False}
    raise BadInput(
        f"{what} predicate {json.dumps(predicate)} cannot be an Unleash constraint — "
        'use {"==": [{"var": FIELD}, VALUE]}'
    )


#: what each context field routedeck targets means, as Unleash shows it
CONTEXT_DESCRIPTIONS = {
    "audience": "Who the unit is, for routedeck's first stage: units whose audience is the rule's first audience "
                "(e.g. internal staff) get the candidate route before any share of real traffic.",
    "scope": "Where the unit takes part in a routedeck rollout: only units in the rule's eligible scope are "
             "split between the baseline and the candidate route; others stay on the baseline.",
    "": "A context attribute routedeck targets ({name}): units with an excluded value stay on the baseline route.",
}


def context_values(flag: RouteFlag) -> list[tuple[str, str, str]]:
    """(field, value, what the value means) for every constraint routedeck writes for ``flag``."""
    a = flag.allocation
    out = []
    for predicate, what in ((a.audience_rule(), "routedeck's first audience for flag {key}: gets the candidate "
                                                "route at the internal stage"),
                            (a.scope_rule(), "routedeck's eligible scope for flag {key}: split between baseline "
                                             "and candidate")):
        if predicate is None:
            continue
        try:
            c = predicate_to_constraint(predicate, "stored")
        except BadInput:
            continue
        out += [(c["contextName"], str(v), what.format(key=flag.key)) for v in c["values"]]
    out += [(attr, value, f"excluded from flag {flag.key}'s candidate after harm was seen there")
            for attr, value in a.excluded_segments]
    return out


def group_id(flag_key: str, salt: str | None) -> str:
    """The strategies' ``groupId``: the flag key, with the cohort's salt once a restart drew a new cohort
    (Unleash buckets by murmur3 of ``groupId:userId``, so a new group id is a new cohort)."""
    return flag_key if salt is None else f"{flag_key}:{salt}"


def _strategy(title: str, rollout_pct: int, group: str, variant: str, profile: RouteProfile,
              constraints: list[dict[str, Any]], sort_order: int, meta: str | None = None) -> dict[str, Any]:
    params = {"rollout": str(rollout_pct), "stickiness": "default", "groupId": group}
    if meta is not None:
        params[META_KEY] = meta
    return {
        "name": "flexibleRollout",
        "title": title,
        "disabled": False,
        "constraints": constraints,
        "parameters": params,
        "segments": [],
        "sortOrder": sort_order,
        "variants": [{
            "name": variant, "weight": 1000, "weightType": "variable", "stickiness": "default",
            "payload": {"type": "json", "value": profile.canonical_json()},
        }],
    }


def render_strategies(flag: RouteFlag) -> list[dict[str, Any]]:
    """The strategies routedeck writes for ``flag``, in evaluation order."""
    a = flag.allocation
    if a.excluded_segments:
        # strategies here carry no "send this segment to the baseline" branch routedeck could read back
        raise BadInput(
            f"flag {flag.key}: excluding a segment ({', '.join(f'{k}={v}' for k, v in a.excluded_segments)}) "
            "is not supported on Unleash — nothing written; roll back, or narrow the eligible scope in the rule"
        )
    if a.candidate_bp % 100:
        raise BadInput(
            f"flag {flag.key}: Unleash rollouts are whole percentages — "
            f"{a.candidate_bp / 100:g}% cannot be set; use a stage share such as 5% or 20%"
        )
    out = []
    group = group_id(flag.key, a.cohort_salt)
    if flag.candidate is not None:
        cand = flag.variations[flag.candidate]
        audience = a.audience_rule()
        if audience is not None:
            out.append(_strategy(INTERNAL, 100 if a.internal_enabled else 0, group, flag.candidate, cand,
                                 [predicate_to_constraint(audience, "audience")], 0))
        scope = a.scope_rule()
        scope_constraints = [predicate_to_constraint(scope, "eligible scope")] if scope is not None else []
        out.append(_strategy(CANDIDATE, a.candidate_bp // 100, group, flag.candidate, cand, scope_constraints, 1))
    out.append(_strategy(BASELINE, 100, group, flag.baseline, flag.variations[flag.baseline], [], 2,
                         meta=json.dumps(_meta(flag), sort_keys=True, separators=(",", ":"))))
    return out


def _meta(flag: RouteFlag) -> dict[str, Any]:
    meta = state_meta(flag)
    # variations other than the two routes have no strategy variant to live in: they ride along here
    others = {n: p.to_wire() for n, p in flag.variations.items() if n not in (flag.baseline, flag.candidate)}
    if others:
        meta["variations"] = others
    return meta


def _same_strategy(wanted: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """True when ``current`` (as Unleash returns it) already routes and reads as ``wanted``."""
    if current is None:
        return False
    return _strategy_key(wanted) == _strategy_key(current)


def _noted(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` carrying who made this change and why (``change_note``) in a parameter of its own, which
    Unleash shows in its event log beside the change; it never routes and is never compared."""
    note = current_note()
    if not note:
        return body
    return {**body, "parameters": {**(body.get("parameters") or {}), NOTE_PARAMETER: note}}


def _strategy_key(s: dict[str, Any]) -> tuple:
    params = {k: str(v) for k, v in (s.get("parameters") or {}).items() if k != NOTE_PARAMETER}
    variants = tuple(
        (v.get("name"), v.get("weight"), v.get("weightType"), v.get("stickiness"),
         (v.get("payload") or {}).get("type"), (v.get("payload") or {}).get("value"))
        for v in s.get("variants") or []
    )
    return (s.get("name"), s.get("title"), bool(s.get("disabled")), tuple(_norm(s.get("constraints") or [])),
            tuple(sorted(params.items())), variants, tuple(s.get("segments") or ()), s.get("sortOrder"))


def _with_pending(strategy: dict[str, Any], target: RouteFlag) -> dict[str, Any]:
    """``strategy`` (the baseline, as read) with the write about to be made named in its state object."""
    params = dict(strategy.get("parameters") or {})
    try:
        meta = json.loads(params.get(META_KEY) or "{}")
    except json.JSONDecodeError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    stage = (target.rollout.stage_label or target.rollout.stage.value) if target.rollout else "baseline"
    pending = PendingWrite(stage=stage, allocation=target.allocation.describe(), started_at=datetime.now(timezone.utc))
    meta["rollout"] = dict(meta.get("rollout") or {}) | {"pending": pending.model_dump(mode="json")}
    params[META_KEY] = json.dumps(meta, sort_keys=True, separators=(",", ":"))
    body = {k: strategy.get(k) for k in ("name", "title", "disabled", "constraints", "segments", "sortOrder", "variants")}
    body["parameters"] = params
    body["constraints"] = body["constraints"] or []
    body["segments"] = body["segments"] or []
    body["disabled"] = bool(body["disabled"])
    return body


def parse_flag(key: str, env: dict[str, Any], where: str) -> RouteFlag:
    """Read a RouteFlag back from an environment's strategies (foreign shapes are reported, not hidden)."""
    here = f"{where}: flag {key}"
    strategies = sorted(env.get("strategies", []), key=lambda s: s.get("sortOrder", 0))
    mine = {s.get("title"): s for s in strategies if s.get("title") in ORDER}
    base = mine.get(BASELINE)
    if base is None:
        raise BadInput(f"{here}: no {BASELINE!r} strategy — not a routedeck route flag (create it with routedeck init)")
    try:
        meta = json.loads((base.get("parameters") or {}).get(META_KEY) or "{}")
    except (json.JSONDecodeError, RecursionError):
        raise BadInput(f"{here}: parameter {META_KEY!r} of the baseline strategy is not JSON — restore it from history") from None
    baseline = meta.get("baseline")
    candidate = meta.get("candidate")
    variations: dict[str, RouteProfile] = {}
    for name, wire in (meta.get("variations") or {}).items():
        variations[name] = _profile(wire, f"{here}: variation {name}")
    foreign: list[str] = []
    for title, s in mine.items():
        for v in s.get("variants") or []:
            payload = (v.get("payload") or {}).get("value")
            if payload is None:
                continue
            try:
                variations[v["name"]] = _profile(json.loads(payload), f"{here}: variant {v.get('name')}")
            except (json.JSONDecodeError, RecursionError):
                raise BadInput(f"{here}: variant {v.get('name')} payload is not JSON — fix it in Unleash") from None
    if not baseline or baseline not in variations:
        raise BadInput(f"{here}: baseline variation {baseline!r} not found in the baseline strategy — restore it from history")
    if candidate is not None and candidate not in variations:
        foreign.append(f"candidate {candidate} has no strategy variant")
        candidate = None
    rollout = rollout_from_meta(meta, here, f"remove parameter {META_KEY}.rollout to reset")
    alloc = allocation_from_meta(meta)
    internal_on, bp = False, 0
    if candidate is not None:
        internal = mine.get(INTERNAL)
        if internal is not None:
            internal_on = _rollout_bp(internal) > 0
            foreign += _check(internal, group_id(key, alloc.cohort_salt), candidate, _constraints_for(alloc.audience_rule()), "internal")
        elif alloc.audience_rule() is not None:
            foreign.append("the internal-audience strategy is missing")
        cand = mine.get(CANDIDATE)
        if cand is not None:
            bp = _rollout_bp(cand)
            foreign += _check(cand, group_id(key, alloc.cohort_salt), candidate, _constraints_for(alloc.scope_rule()), "candidate")
        else:
            foreign.append("the candidate strategy is missing")
    foreign += _check(base, group_id(key, alloc.cohort_salt), baseline, [], "baseline", rollout_pct=100)
    others = [s.get("title") or s.get("name") for s in strategies if s.get("title") not in ORDER]
    if others:
        foreign.append(f"strategies not written by routedeck: {', '.join(map(str, others))}")
    order = [s.get("title") for s in strategies if s.get("title") in ORDER]
    if order != [t for t in ORDER if t in order]:
        foreign.append("routedeck's strategies are out of order")
    if not env.get("enabled"):
        foreign.append(f"the flag is off in {env.get('name', 'this environment')} — every unit gets the application's default")
    return RouteFlag(
        key=key,
        variations=variations,
        baseline=baseline,
        candidate=candidate,
        allocation=alloc.model_copy(update={"internal_enabled": internal_on, "candidate_bp": bp}),
        revision=revision_of(env),
        rollout=rollout,
        foreign_targeting="; ".join(foreign) or None,
    )


def _constraints_for(predicate: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [] if predicate is None else [predicate_to_constraint(predicate, "stored")]


def _check(s: dict[str, Any], key: str, variant: str, constraints: list[dict[str, Any]], what: str,
           rollout_pct: int | None = None) -> list[str]:
    """Ways ``s`` differs from the strategy routedeck writes (each would change who gets what)."""
    problems = []
    params = s.get("parameters") or {}
    if s.get("disabled"):
        problems.append(f"the {what} strategy is disabled")
    if s.get("name") != "flexibleRollout" or params.get("groupId") != key or params.get("stickiness", "default") != "default":
        problems.append(f"the {what} strategy is not a flexibleRollout on groupId {key} with default stickiness")
    if rollout_pct is not None and params.get("rollout") != str(rollout_pct):
        problems.append(f"the {what} strategy's rollout is {params.get('rollout')}%, not {rollout_pct}%")
    names = [v.get("name") for v in s.get("variants") or []]
    if names != [variant]:
        problems.append(f"the {what} strategy serves {', '.join(map(str, names)) or 'no variant'}, not {variant}")
    if _norm(s.get("constraints") or []) != _norm(constraints) or s.get("segments"):
        problems.append(f"the {what} strategy's constraints were changed outside routedeck")
    return problems


def _norm(constraints: list[dict[str, Any]]) -> list[tuple]:
    return sorted(
        (c.get("contextName"), c.get("operator"), tuple(c.get("values") or ([c["value"]] if c.get("value") else [])),
         bool(c.get("inverted")), bool(c.get("caseInsensitive")))
        for c in constraints
    )


def _rollout_bp(s: dict[str, Any]) -> int:
    try:
        pct = float((s.get("parameters") or {}).get("rollout", 0))
    except (TypeError, ValueError):
        return 0
    return max(0, min(FULL_SHARE_BP, round(pct * 100)))


def _profile(wire: Any, where: str) -> RouteProfile:
    try:
        return RouteProfile.model_validate(wire)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "value"
        raise BadInput(f"{where}: {field}: {err['msg']} — fix the route profile") from None


def _parse_time(raw: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, tz=timezone.utc)


def _since_created(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events of the flag as it exists now: Unleash keeps the events of a deleted flag of the same name."""
    ordered = sorted(events, key=lambda e: str(e.get("createdAt", "")), reverse=True)
    for i, e in enumerate(ordered):
        if e.get("type") == "feature-created":
            return ordered[: i + 1]
    return ordered


def _pending_in(strategy: dict[str, Any]) -> dict[str, Any] | None:
    """The ``pending`` marker in a strategy's state object (as an event carries it), or None."""
    try:
        meta = json.loads((strategy.get("parameters") or {}).get(META_KEY) or "{}")
    except (TypeError, json.JSONDecodeError):
        return None
    pending = (meta.get("rollout") or {}).get("pending") if isinstance(meta, dict) else None
    return pending if isinstance(pending, dict) else None


_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def _event_detail(e: dict[str, Any]) -> str:
    """A one-line account of an event (with routedeck's who-and-why when the change carried one)."""
    text = _event_what(e)
    data = e.get("data")
    note = (data.get("parameters") or {}).get(NOTE_PARAMETER) if isinstance(data, dict) else None
    return f"{text} [{note}]"[:400] if note else text


def _event_what(e: dict[str, Any]) -> str:
    """What an event changed: rollout changes spelled out, else Unleash's own summary."""
    data, pre = e.get("data"), e.get("preData")
    if isinstance(data, dict) and isinstance(pre, dict) and "parameters" in data:
        was, now = (pre.get("parameters") or {}).get("rollout"), (data.get("parameters") or {}).get("rollout")
        if was != now:
            return f"{data.get('title') or data.get('name')}: rollout {was}% → {now}%"
        begun, done = _pending_in(data), _pending_in(pre)
        if begun is not None:
            return f"{data.get('title')}: a write to {begun.get('allocation')} (stage {begun.get('stage')}) begins"
        if done is not None:
            return f"{data.get('title')}: state stored after the write to {done.get('allocation')} (stage {done.get('stage')})"
    summary = str(e.get("summary") or "")
    text = _LINK.sub(r"\1", summary).replace("**", "")
    return " ".join(text.split())[:300]

