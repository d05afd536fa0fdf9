"""A local LaunchDarkly for tests: the REST API (flags, semantic and JSON patch, audit log, projects
and environments) and the server-side SDK endpoints (polling and the streaming feed), on 127.0.0.1.

No LaunchDarkly service can run here, so the tests talk to this fake. Its shapes follow the
documented REST API and what the official server-side SDK reads:

* REST calls authenticate by the ``Authorization`` header holding an access token (401
  ``{"code":"unauthorized"}`` otherwise); errors are ``{"code", "message"}``;
* a flag has flag-level settings (``key``, ``name``, ``variations`` with ``_id``/``value``/``name``,
  ``tags``, ``customProperties``, ``_version``) and per-environment targeting under
  ``environments[ENV]`` (``on``, ``salt``, ``version``, ``targets``, ``rules`` with ``_id``,
  ``clauses``, ``variation`` or ``rollout``, ``fallthrough``, ``offVariation``, ``prerequisites``);
* ``PATCH /api/v2/flags/{project}/{key}`` with ``Content-Type: application/json;
  domain-model=launchdarkly.semanticpatch`` applies ``instructions`` all or nothing (an instruction
  that cannot apply is 400 ``invalid_request`` and nothing changes); without that header the body
  is a JSON patch (optionally ``{"patch": [...], "comment": ...}``) whose ``test`` operation on
  ``/version`` refuses a stale write with 409;
* every change bumps the flag's ``_version`` and the changed environments' ``version``, writes an
  audit log entry (who, when, the comment, the flag before and after) and is pushed to every
  streaming connection of the environments it changed;
* the SDK endpoints authenticate by an environment's SDK key: ``GET /sdk/latest-all`` answers
  ``{"flags", "segments"}`` in the SDK's flag shape; ``GET /all`` is a server-sent event stream:
  ``put`` with everything, then ``patch`` ``{"path": "/flags/KEY", "data": FLAG}`` on each change;
  an unknown SDK key is 401, which the SDK treats as final.

Rollouts are served in the order of the flag's variations; weights are thousandths of a percent
(100000 = everyone). ``FakeLaunchDarkly().start()`` runs one; ``stop()`` closes it. From a shell,
``python -m tests.fakes.launchdarkly_server [--port 8030] [--seed-demo]`` runs one until Ctrl-C and
prints the SPEC and the credentials.
"""

from __future__ import annotations

import copy
import json
import queue
import re
import secrets
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

KEY_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
SEMANTIC = "domain-model=launchdarkly.semanticpatch"
FULL_WEIGHT = 100_000
ENV_INSTRUCTIONS = {
    "turnFlagOn", "turnFlagOff", "addRule", "removeRule", "replaceRules", "updateRuleVariationOrRollout",
    "updateRuleDescription", "updateFallthroughVariationOrRollout", "updateOffVariation", "addTargets",
    "removeTargets", "clearTargets", "reorderRules", "replacePrerequisites",
}
FLAG_INSTRUCTIONS = {
    "addVariation", "updateVariation", "removeVariation", "addCustomProperties", "replaceCustomProperties",
    "removeCustomProperties", "updateDescription", "updateName", "addTags", "removeTags",
}


class Refused(Exception):
    """A request LaunchDarkly refuses: ``status`` and ``code`` as its error body says."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _now_ms() -> int:
    return int(time.time() * 1000)


def _id() -> str:
    return str(uuid.uuid4())


class FakeLaunchDarkly:
    """One account with one project, its environments, access tokens and flags."""

    def __init__(self, project: str = "default", environments: tuple[str, ...] = ("production", "test")) -> None:
        self.project = project
        self.environments: dict[str, dict[str, Any]] = {
            env: {"_id": secrets.token_hex(12), "key": env, "name": env.title(),
                  "apiKey": "sdk-" + _id(), "color": "417505"}
            for env in environments
        }
        #: access token → member
        self.tokens: dict[str, dict[str, Any]] = {}
        self.token = self.add_token("routedeck-operator")
        self.flags: dict[str, dict[str, Any]] = {}
        self.audit: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self._streams: list[tuple[str, queue.Queue]] = []  # (environment, queue of SSE messages or None)
        self.stream_log: list[str] = []
        self.heartbeat_s = 15.0
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._last_ms = 0

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self, port: int = 0) -> "FakeLaunchDarkly":
        fake = self

        class Handler(_Handler):
            ld = fake

        self._http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._http.daemon_threads = True
        http = self._http
        self._thread = threading.Thread(target=lambda: http.serve_forever(poll_interval=0.05), daemon=True,
                                        name="fake-launchdarkly")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.drop_streams()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def sdk_key(self, env: str = "production") -> str:
        return self.environments[env]["apiKey"]

    def add_token(self, name: str, token: str | None = None) -> str:
        """A new access token acting as the member ``name``."""
        token = token or "api-" + _id()
        first, _, last = name.partition("-")
        self.tokens[token] = {"_id": secrets.token_hex(12), "email": f"{name}@example.invalid",
                              "firstName": first, "lastName": last}
        return token

    def revoke(self, token: str) -> None:
        self.tokens.pop(token, None)

    # ---- the store ----------------------------------------------------------------------

    def _tick(self) -> int:
        self._last_ms = max(_now_ms(), self._last_ms + 1)
        return self._last_ms

    def raw(self, key: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.flags[key])

    def create(self, body: dict[str, Any], member: dict[str, Any]) -> dict[str, Any]:
        key, name = body.get("key"), body.get("name")
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise Refused(400, "invalid_request", "key must start with a letter or number and contain only "
                                                  "letters, numbers, '.', '_' or '-'")
        if not isinstance(name, str) or not name:
            raise Refused(400, "invalid_request", "name is required")
        variations = body.get("variations") or [{"value": True}, {"value": False}]
        if not isinstance(variations, list) or len(variations) < 2:
            raise Refused(400, "invalid_request", "a flag needs at least two variations")
        defaults = body.get("defaults") or {"onVariation": 0, "offVariation": len(variations) - 1}
        for which in ("onVariation", "offVariation"):
            if not isinstance(defaults.get(which), int) or not 0 <= defaults[which] < len(variations):
                raise Refused(400, "invalid_request", f"defaults.{which} is not the index of a variation")
        with self.lock:
            if key in self.flags:
                raise Refused(409, "key_exists", "Duplicate flag key")
            now = self._tick()
            kind = "boolean" if all(isinstance(v.get("value"), bool) for v in variations) else "multivariate"
            flag = {
                "key": key, "name": name, "kind": kind, "description": body.get("description") or "",
                "_version": 1, "creationDate": now, "temporary": bool(body.get("temporary", True)),
                "tags": sorted(set(body.get("tags") or [])), "archived": False, "deprecated": False,
                "variations": [{"_id": _id(), "value": v.get("value"), **({"name": v["name"]} if v.get("name") else {}),
                                **({"description": v["description"]} if v.get("description") else {})}
                               for v in variations],
                "customProperties": copy.deepcopy(body.get("customProperties") or {}),
                "defaults": {"onVariation": defaults["onVariation"], "offVariation": defaults["offVariation"]},
                "maintainerId": member["_id"],
                "environments": {env: self._new_env(env, defaults, now) for env in self.environments},
            }
            self.flags[key] = flag
            self._log(flag, member, "createFlag", None, "", list(self.environments), now)
            created = copy.deepcopy(flag)
        self._push(created, list(self.environments))
        return created

    def _new_env(self, env: str, defaults: dict[str, int], now: int) -> dict[str, Any]:
        return {"on": False, "archived": False, "salt": secrets.token_hex(16), "sel": secrets.token_hex(16),
                "lastModified": now, "version": 1, "targets": [], "contextTargets": [], "rules": [],
                "fallthrough": {"variation": defaults["onVariation"]}, "offVariation": defaults["offVariation"],
                "prerequisites": [], "trackEvents": False, "trackEventsFallthrough": False,
                "_environmentName": self.environments[env]["name"],
                "_site": {"href": f"/{self.project}/{env}/features/", "type": "text/html"}}

    def change(self, key: str, member: dict[str, Any], mutate, comment: str = "", envs: list[str] | None = None,
               expect_version: int | None = None) -> dict[str, Any]:
        """Apply ``mutate(flag)`` to a copy; on success store it, bump versions, log and push."""
        with self.lock:
            if key not in self.flags:
                raise Refused(404, "not_found", "Unknown flag")
            current = self.flags[key]
            if expect_version is not None and current["_version"] != expect_version:
                raise Refused(409, "conflict", f"flag version {current['_version']} is not {expect_version}")
            work = copy.deepcopy(current)
            touched = mutate(work)  # the environments it changed, or None for flag-level changes
            changed_envs = list(self.environments) if touched is None else list(touched)
            now = self._tick()
            work["_version"] = current["_version"] + 1
            for env in changed_envs:
                work["environments"][env]["version"] += 1
                work["environments"][env]["lastModified"] = now
            self.flags[key] = work
            self._log(work, member, "updateFlag", current, comment, changed_envs, now)
            after = copy.deepcopy(work)
        self._push(after, changed_envs)
        return after

    def _log(self, flag: dict, member: dict, verb: str, before: dict | None, comment: str, envs: list[str],
             now: int) -> None:
        resources = [f"proj/{self.project}:env/{env}:flag/{flag['key']}" for env in envs]
        who = f"{member['firstName']} {member['lastName']}".strip()
        title = "created the flag" if before is None else "updated the flag"
        self.audit.append({
            "_id": secrets.token_hex(12), "_accountId": "fake-account", "date": now,
            "accesses": [{"action": verb, "resource": r} for r in resources],
            "kind": "flag", "name": flag["name"],
            "description": f"* {title} {flag['key']}" + (f" in {', '.join(envs)}" if envs else ""),
            "shortDescription": title, "comment": comment,
            "member": {"_id": member["_id"], "email": member["email"], "firstName": member["firstName"],
                       "lastName": member["lastName"]},
            "titleVerb": title, "title": f"{who} {title} {flag['key']}",
            "target": {"name": flag["name"], "resources": resources},
            "previousVersion": copy.deepcopy(before), "currentVersion": copy.deepcopy(flag),
        })

    # ---- the SDK's view -------------------------------------------------------------------

    def sdk_flag(self, flag: dict[str, Any], env: str) -> dict[str, Any]:
        """The flag as a server-side SDK receives it for ``env``."""
        e = flag["environments"][env]

        def serve(vr: dict[str, Any]) -> dict[str, Any]:
            if "rollout" in vr:
                r = vr["rollout"]
                out = {"variations": [{"variation": w["variation"], "weight": w["weight"]} for w in r["variations"]]}
                for k in ("bucketBy", "contextKind", "seed"):
                    if r.get(k) is not None:
                        out[k] = r[k]
                return {"rollout": out}
            return {"variation": vr.get("variation")}

        return {
            "key": flag["key"], "version": e["version"], "on": e["on"], "salt": e["salt"],
            "variations": [v["value"] for v in flag["variations"]],
            "targets": copy.deepcopy(e["targets"]), "contextTargets": copy.deepcopy(e["contextTargets"]),
            "rules": [{"id": r["_id"], **serve(r), "trackEvents": r.get("trackEvents", False),
                       "clauses": [{k: c[k] for k in ("attribute", "op", "values", "negate", "contextKind") if k in c}
                                   for c in r["clauses"]]}
                      for r in e["rules"]],
            "fallthrough": serve(e["fallthrough"]), "offVariation": e["offVariation"],
            "prerequisites": copy.deepcopy(e["prerequisites"]), "trackEvents": e["trackEvents"],
            "trackEventsFallthrough": e["trackEventsFallthrough"], "clientSide": False, "deleted": False,
        }

    def sdk_payload(self, env: str) -> dict[str, Any]:
        with self.lock:
            return {"flags": {k: self.sdk_flag(f, env) for k, f in self.flags.items()}, "segments": {}}

    def env_of_sdk_key(self, key: str) -> str | None:
        return next((env for env, e in self.environments.items() if e["apiKey"] == key), None)

    def _push(self, flag: dict[str, Any], envs: list[str]) -> None:
        with self.lock:
            targets = [(env, q) for env, q in self._streams if env in envs]
        for env, q in targets:
            data = {"path": f"/flags/{flag['key']}", "data": self.sdk_flag(flag, env)}
            q.put(f"event: patch\ndata: {json.dumps(data)}\n\n")

    def drop_streams(self) -> int:
        """End every open stream (the SDK and routedeck reconnect)."""
        with self.lock:
            targets, self._streams = list(self._streams), []
        for _, q in targets:
            q.put(None)
        return len(targets)

    @property
    def open_streams(self) -> int:
        with self.lock:
            return len(self._streams)

    # ---- semantic patch -------------------------------------------------------------------

    def semantic_patch(self, key: str, body: dict[str, Any], member: dict[str, Any]) -> dict[str, Any]:
        instructions = body.get("instructions")
        if not isinstance(instructions, list) or not instructions:
            raise Refused(400, "invalid_request", "instructions are required")
        env = body.get("environmentKey")
        for ins in instructions:
            kind = ins.get("kind") if isinstance(ins, dict) else None
            if kind not in ENV_INSTRUCTIONS | FLAG_INSTRUCTIONS:
                raise Refused(400, "invalid_request", f"unknown instruction kind {kind!r}")
            if kind in ENV_INSTRUCTIONS:
                if not env:
                    raise Refused(400, "invalid_request", f"instruction {kind} requires environmentKey")
                if env not in self.environments:
                    raise Refused(404, "not_found", "Unknown environment")

        def mutate(flag: dict[str, Any]) -> list[str] | None:
            flag_level = False
            for ins in instructions:
                if ins["kind"] in FLAG_INSTRUCTIONS:
                    flag_level = True
                    _flag_instruction(flag, ins)
                else:
                    _env_instruction(flag, flag["environments"][env], ins)
            _check_references(flag)
            return None if flag_level else [env]

        return self.change(key, member, mutate, comment=str(body.get("comment") or ""))

    def json_patch(self, key: str, ops: Any, comment: str, member: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(ops, list):
            raise Refused(400, "invalid_request", "a JSON patch is a list of operations")
        expect = None
        for op in ops:
            if isinstance(op, dict) and op.get("op") == "test" and op.get("path") == "/version":
                expect = op.get("value")

        def mutate(flag: dict[str, Any]) -> list[str] | None:
            envs: set[str] = set()
            for op in ops:
                if not isinstance(op, dict) or op.get("op") not in ("replace", "add", "remove", "test"):
                    raise Refused(400, "invalid_request", f"unsupported patch operation {op!r}")
                if op["op"] == "test":
                    continue
                parts = [unquote(p).replace("~1", "/").replace("~0", "~") for p in str(op.get("path")).split("/")[1:]]
                if not parts or parts[0].startswith("_") or parts[0] in ("key", "version"):
                    raise Refused(400, "invalid_request", f"path {op.get('path')} cannot be changed")
                if parts[0] == "environments" and len(parts) > 1:
                    envs.add(parts[1])
                else:
                    envs.update(self.environments)
                _apply_pointer(flag, parts, op)
            _check_references(flag)
            return sorted(envs)

        return self.change(key, member, mutate, comment=comment,
                           expect_version=expect if isinstance(expect, int) else None)


def _variation_index(flag: dict[str, Any], variation_id: Any) -> int:
    for i, v in enumerate(flag["variations"]):
        if v["_id"] == variation_id:
            return i
    raise Refused(400, "invalid_request", f"unknown variation id {variation_id!r}")


def _serve(flag: dict[str, Any], ins: dict[str, Any]) -> dict[str, Any]:
    """``variationId`` or ``rolloutWeights`` (+ bucketBy, contextKind) as stored: ``variation`` or ``rollout``."""
    if ins.get("variationId") is not None:
        return {"variation": _variation_index(flag, ins["variationId"])}
    weights = ins.get("rolloutWeights")
    if not isinstance(weights, dict) or not weights:
        raise Refused(400, "invalid_request", f"{ins.get('kind')}: needs variationId or rolloutWeights")
    if any(not isinstance(w, int) or isinstance(w, bool) or w < 0 for w in weights.values()):
        raise Refused(400, "invalid_request", "rollout weights must be whole numbers from 0 to 100000")
    if sum(weights.values()) != FULL_WEIGHT:
        raise Refused(400, "invalid_request", f"rollout weights must add up to {FULL_WEIGHT}")
    ordered = sorted((_variation_index(flag, vid), w) for vid, w in weights.items())
    rollout: dict[str, Any] = {"variations": [{"variation": i, "weight": w} for i, w in ordered],
                               "contextKind": ins.get("rolloutContextKind") or "user"}
    if ins.get("rolloutBucketBy"):
        rollout["bucketBy"] = ins["rolloutBucketBy"]
    return {"rollout": rollout}


def _clauses(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise Refused(400, "invalid_request", "clauses must be a list")
    out = []
    for c in raw:
        if not isinstance(c, dict) or not c.get("attribute") or not c.get("op") or not isinstance(c.get("values"), list):
            raise Refused(400, "invalid_request", "a clause needs attribute, op and values")
        if c["op"] != c["op"].lower():
            raise Refused(400, "invalid_request", f"clause op {c['op']!r} must be lower-case")
        out.append({"_id": _id(), "attribute": c["attribute"], "op": c["op"], "values": list(c["values"]),
                    "negate": bool(c.get("negate")), "contextKind": c.get("contextKind") or "user"})
    return out


def _rule(flag: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    rule = {"_id": _id(), "clauses": _clauses(spec.get("clauses") or []), "trackEvents": bool(spec.get("trackEvents")),
            **_serve(flag, spec)}
    if spec.get("description"):
        rule["description"] = str(spec["description"])
    return rule


def _find_rule(env: dict[str, Any], rule_id: Any) -> dict[str, Any]:
    for r in env["rules"]:
        if r["_id"] == rule_id:
            return r
    raise Refused(400, "invalid_request", f"unknown rule id {rule_id!r}")


def _env_instruction(flag: dict[str, Any], env: dict[str, Any], ins: dict[str, Any]) -> None:
    kind = ins["kind"]
    if kind in ("turnFlagOn", "turnFlagOff"):
        env["on"] = kind == "turnFlagOn"
    elif kind == "addRule":
        rule = _rule(flag, ins)
        before = ins.get("beforeRuleId")
        if before:
            index = env["rules"].index(_find_rule(env, before))
            env["rules"].insert(index, rule)
        else:
            env["rules"].append(rule)
    elif kind == "removeRule":
        env["rules"] = [r for r in env["rules"] if r["_id"] != ins.get("ruleId")]
    elif kind == "replaceRules":
        rules = ins.get("rules")
        if not isinstance(rules, list):
            raise Refused(400, "invalid_request", "replaceRules needs a list of rules")
        env["rules"] = [_rule(flag, r) for r in rules]
    elif kind == "updateRuleVariationOrRollout":
        rule = _find_rule(env, ins.get("ruleId"))
        rule.pop("variation", None)
        rule.pop("rollout", None)
        rule.update(_serve(flag, ins))
    elif kind == "updateRuleDescription":
        _find_rule(env, ins.get("ruleId"))["description"] = str(ins.get("description") or "")
    elif kind == "updateFallthroughVariationOrRollout":
        env["fallthrough"] = _serve(flag, ins)
    elif kind == "updateOffVariation":
        env["offVariation"] = _variation_index(flag, ins.get("variationId"))
    elif kind == "replacePrerequisites":
        prerequisites = ins.get("prerequisites")
        if not isinstance(prerequisites, list):
            raise Refused(400, "invalid_request", "replacePrerequisites needs a list of prerequisites")
        env["prerequisites"] = [{"key": p.get("key"), "variation": p.get("variationId")} for p in prerequisites]
    elif kind == "reorderRules":
        ids = ins.get("ruleIds")
        if not isinstance(ids, list) or sorted(ids) != sorted(r["_id"] for r in env["rules"]):
            raise Refused(400, "invalid_request", "ruleIds must name every rule of the flag")
        env["rules"] = [_find_rule(env, i) for i in ids]
    elif kind in ("addTargets", "removeTargets", "clearTargets"):
        index = _variation_index(flag, ins.get("variationId"))
        kind_ = ins.get("contextKind") or "user"
        bucket = "targets" if kind_ == "user" else "contextTargets"
        entry = next((t for t in env[bucket] if t["variation"] == index and t.get("contextKind", "user") == kind_), None)
        if entry is None:
            entry = {"values": [], "variation": index, "contextKind": kind_}
            env[bucket].append(entry)
        if kind == "addTargets":
            entry["values"] = sorted(set(entry["values"]) | set(ins.get("values") or []))
        elif kind == "removeTargets":
            entry["values"] = [v for v in entry["values"] if v not in set(ins.get("values") or [])]
        else:
            entry["values"] = []
        env[bucket] = [t for t in env[bucket] if t["values"]]


def _flag_instruction(flag: dict[str, Any], ins: dict[str, Any]) -> None:
    kind = ins["kind"]
    if kind == "addVariation":
        if "value" not in ins:
            raise Refused(400, "invalid_request", "addVariation needs a value")
        if any(v["value"] == ins["value"] for v in flag["variations"]):
            raise Refused(400, "invalid_request", "variation values must be unique")
        flag["variations"].append({"_id": _id(), "value": ins["value"],
                                   **({"name": ins["name"]} if ins.get("name") else {})})
    elif kind == "updateVariation":
        index = _variation_index(flag, ins.get("variationId"))
        for field in ("value", "name", "description"):
            if field in ins:
                flag["variations"][index][field] = ins[field]
    elif kind == "removeVariation":
        index = _variation_index(flag, ins.get("variationId"))
        for env_key, env in flag["environments"].items():
            if index in _used_indexes(env):
                raise Refused(400, "invalid_request", f"variation is in use in environment {env_key}")
        flag["variations"].pop(index)
        for env in flag["environments"].values():
            _shift_indexes(env, index)
    elif kind in ("addCustomProperties", "replaceCustomProperties"):
        key, values = ins.get("key"), ins.get("values")
        if not key or not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise Refused(400, "invalid_request", f"{kind} needs a key and a list of string values")
        if kind == "addCustomProperties" and key in flag["customProperties"]:
            old = flag["customProperties"][key]
            old["value"] = old["value"] + [v for v in values if v not in old["value"]]
        else:
            flag["customProperties"][key] = {"name": str(ins.get("name") or key), "value": list(values)}
    elif kind == "removeCustomProperties":
        prop = flag["customProperties"].get(ins.get("key"))
        if prop is not None:
            prop["value"] = [v for v in prop["value"] if v not in set(ins.get("values") or [])]
            if not prop["value"]:
                flag["customProperties"].pop(ins.get("key"))
    elif kind == "updateDescription":
        flag["description"] = str(ins.get("value") or "")
    elif kind == "updateName":
        flag["name"] = str(ins.get("value") or flag["name"])
    elif kind in ("addTags", "removeTags"):
        values = set(ins.get("values") or [])
        flag["tags"] = sorted(set(flag["tags"]) | values if kind == "addTags" else set(flag["tags"]) - values)


def _used_indexes(env: dict[str, Any]) -> set[int]:
    used = {env["offVariation"]}
    for vr in [env["fallthrough"], *env["rules"]]:
        if "variation" in vr and vr["variation"] is not None:
            used.add(vr["variation"])
        for w in (vr.get("rollout") or {}).get("variations") or []:
            if w["weight"]:
                used.add(w["variation"])
    used.update(t["variation"] for t in env["targets"] + env["contextTargets"])
    return used


def _shift_indexes(env: dict[str, Any], removed: int) -> None:
    def shift(i: int) -> int:
        return i - 1 if i > removed else i

    env["offVariation"] = shift(env["offVariation"])
    for vr in [env["fallthrough"], *env["rules"]]:
        if vr.get("variation") is not None:
            vr["variation"] = shift(vr["variation"])
        rollout = vr.get("rollout")
        if rollout:
            rollout["variations"] = [{**w, "variation": shift(w["variation"])} for w in rollout["variations"]
                                     if w["variation"] != removed]
    for t in env["targets"] + env["contextTargets"]:
        t["variation"] = shift(t["variation"])


def _check_references(flag: dict[str, Any]) -> None:
    count = len(flag["variations"])
    for env_key, env in flag["environments"].items():
        for i in _used_indexes(env):
            if not isinstance(i, int) or not 0 <= i < count:
                raise Refused(400, "invalid_request", f"environment {env_key} refers to a variation that does not exist")


def _apply_pointer(doc: Any, parts: list[str], op: dict[str, Any]) -> None:
    parent = doc
    for p in parts[:-1]:
        try:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        except (KeyError, IndexError, ValueError):
            raise Refused(400, "invalid_request", f"path {op.get('path')} not found") from None
    last = parts[-1]
    try:
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op["op"] == "remove":
                parent.pop(index)
            elif op["op"] == "add":
                parent.insert(index, op.get("value"))
            else:
                parent[index] = op.get("value")
        elif op["op"] == "remove":
            parent.pop(last)
        else:
            if op["op"] == "replace" and last not in parent:
                raise Refused(400, "invalid_request", f"path {op.get('path')} not found")
            parent[last] = op.get("value")
    except (KeyError, IndexError, ValueError, TypeError):
        raise Refused(400, "invalid_request", f"path {op.get('path')} not found") from None


def _filtered(flag: dict[str, Any], envs: list[str] | None) -> dict[str, Any]:
    out = copy.deepcopy(flag)
    if envs is not None:
        out["environments"] = {k: v for k, v in out["environments"].items() if k in envs}
    return out


class _Handler(BaseHTTPRequestHandler):
    ld: FakeLaunchDarkly
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, status: int, body: Any = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if raw:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"code": code, "message": message, "id": _id()})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        try:
            return json.loads(self.rfile.read(length))
        except ValueError:
            return ...

    def _route(self, method: str) -> None:
        ld = self.ld
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segs = [unquote(s) for s in parts.path.strip("/").split("/")]
        if parts.path in ("/all", "/sdk/latest-all"):
            return self._sdk(parts.path)
        if parts.path in ("/bulk", "/diagnostic"):
            self._body()
            return self._send(202)
        body = self._body() if method in ("POST", "PATCH", "PUT") else None
        member = ld.tokens.get(self.headers.get("Authorization") or "")
        if member is None:
            return self._error(401, "unauthorized", "Invalid access token")
        if body is ...:
            return self._error(400, "invalid_request", "The request body is not valid JSON")
        try:
            if segs[:2] != ["api", "v2"]:
                return self._error(404, "not_found", "Unknown resource")
            rest = segs[2:]
            if rest[:1] == ["projects"] and len(rest) >= 2:
                return self._project(rest[1:])
            if rest[:1] == ["auditlog"]:
                return self._audit(rest[1:], query)
            if rest[:1] == ["flags"] and len(rest) >= 2:
                if rest[1] != ld.project:
                    return self._error(404, "not_found", "Unknown project")
                envs = [e for e in (query.get("env") or query.get("filterEnv") or "").split(",") if e] or None
                if envs and any(e not in ld.environments for e in envs):
                    return self._error(404, "not_found", "Unknown environment")
                if len(rest) == 2:
                    if method == "GET":
                        return self._list(query, envs)
                    if method == "POST":
                        return self._send(201, ld.create(body or {}, member))
                    return self._error(405, "method_not_allowed", "Method not allowed")
                key = rest[2]
                if key not in ld.flags:
                    return self._error(404, "not_found", "Unknown flag")
                if method == "GET":
                    return self._send(200, _filtered(ld.raw(key), envs))
                if method == "PATCH":
                    semantic = SEMANTIC in (self.headers.get("Content-Type") or "")
                    if semantic:
                        if not isinstance(body, dict):
                            return self._error(400, "invalid_request", "a semantic patch is a JSON object")
                        return self._send(200, ld.semantic_patch(key, body, member))
                    ops, comment = body, ""
                    if isinstance(body, dict):
                        ops, comment = body.get("patch"), str(body.get("comment") or "")
                    return self._send(200, ld.json_patch(key, ops, comment, member))
                return self._error(405, "method_not_allowed", "Method not allowed")
            return self._error(404, "not_found", "Unknown resource")
        except Refused as exc:
            return self._error(exc.status, exc.code, exc.message)

    def _project(self, rest: list[str]) -> None:
        ld = self.ld
        if rest[0] != ld.project:
            return self._error(404, "not_found", "Unknown project")
        if len(rest) == 1:
            return self._send(200, {"key": ld.project, "name": ld.project.title(), "_id": "proj-" + ld.project,
                                    "environments": {"items": list(ld.environments.values())}})
        if rest[1] == "environments" and len(rest) == 3:
            env = ld.environments.get(rest[2])
            if env is None:
                return self._error(404, "not_found", "Unknown environment")
            return self._send(200, env)
        return self._error(404, "not_found", "Unknown resource")

    def _list(self, query: dict[str, str], envs: list[str] | None) -> None:
        ld = self.ld
        tags: list[str] = []
        for part in (query.get("filter") or "").split(","):
            name, _, value = part.partition(":")
            if name == "tags" and value:
                tags += value.split("+")
        limit, offset = int(query.get("limit") or 20), int(query.get("offset") or 0)
        with ld.lock:
            flags = [f for f in ld.flags.values() if all(t in f["tags"] for t in tags)]
            flags.sort(key=lambda f: f["creationDate"], reverse=True)
            items = [_filtered(f, envs) for f in flags[offset:offset + limit]]
        self._send(200, {"items": items, "totalCount": len(flags), "_links": {}})

    def _audit(self, rest: list[str], query: dict[str, str]) -> None:
        ld = self.ld
        with ld.lock:
            entries = list(reversed(ld.audit))
        if rest:
            entry = next((e for e in entries if e["_id"] == rest[0]), None)
            if entry is None:
                return self._error(404, "not_found", "Unknown audit log entry")
            detail = copy.deepcopy(entry)
            detail["delta"] = {"previous": entry["previousVersion"], "current": entry["currentVersion"]}
            return self._send(200, detail)
        spec = query.get("spec") or ""
        if spec:
            pattern = re.compile("^" + re.escape(spec).replace(r"\*", "[^:]*") + "$")
            entries = [e for e in entries if any(pattern.match(a["resource"]) for a in e["accesses"])]
        if query.get("before"):
            entries = [e for e in entries if e["date"] < int(query["before"])]
        if query.get("after"):
            entries = [e for e in entries if e["date"] > int(query["after"])]
        limit = int(query.get("limit") or 10)
        items = [{k: v for k, v in e.items() if k not in ("previousVersion", "currentVersion")} for e in entries[:limit]]
        self._send(200, {"items": items, "totalCount": len(entries), "_links": {}})

    def _sdk(self, path: str) -> None:
        ld = self.ld
        env = ld.env_of_sdk_key(self.headers.get("Authorization") or "")
        if env is None:
            ld.stream_log.append("401")
            return self._error(401, "unauthorized", "Invalid SDK key")
        if path == "/sdk/latest-all":
            return self._send(200, ld.sdk_payload(env))
        q: queue.Queue = queue.Queue()
        q.put(f"event: put\ndata: {json.dumps({'path': '/', 'data': ld.sdk_payload(env)})}\n\n")
        with ld.lock:
            ld._streams.append((env, q))
        ld.stream_log.append(f"open:{env}")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")  # each event reaches the reader as soon as it is sent
        self.end_headers()
        self.close_connection = True
        try:
            while True:
                try:
                    message = q.get(timeout=ld.heartbeat_s)
                except queue.Empty:
                    message = ":\n\n"  # a comment keeps the connection visibly alive
                if message is None:
                    self.wfile.write(b"0\r\n\r\n")
                    break
                data = message.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
        except OSError:
            pass
        finally:
            with ld.lock:
                ld._streams = [(e, s) for e, s in ld._streams if s is not q]

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._route("PATCH")

    def do_PUT(self) -> None:  # noqa: N802
        self._error(405, "method_not_allowed", "Method not allowed")

    def do_DELETE(self) -> None:  # noqa: N802
        self._error(405, "method_not_allowed", "Method not allowed")


# ---- running one by hand --------------------------------------------------------------------

SOMEONE_ELSE = "someone-else"


def seed_demo(fake: FakeLaunchDarkly, env: str = "production") -> list[str]:
    """Create the demo's route flags through the REST API, as ``routedeck init`` would; their keys."""
    from adapters.flags.launchdarkly import LaunchDarklyPlatform
    from console.core.simulator.portfolio import demo_flags

    platform = LaunchDarklyPlatform(fake.url, fake.add_token("demo-seed"), fake.project, env)
    try:
        flags = demo_flags(fresh=True)
        for flag in flags:
            platform.create_flag(flag)
        return [flag.key for flag in flags]
    finally:
        platform.close()


def banner(fake: FakeLaunchDarkly, other_token: str, seeded: list[str], env: str = "production") -> str:
    spec = f"launchdarkly:{fake.url}?project={fake.project}&env={env}&stream={fake.url}"
    key = seeded[0] if seeded else "FLAG_KEY"
    flag_url = f"{fake.url}/api/v2/flags/{fake.project}/{key}"
    lines = [
        f"fake LaunchDarkly: REST API and SDK stream on {fake.url} (127.0.0.1 only) — Ctrl-C stops it",
        "",
        f"  project / env   {fake.project} / {env} (also: {', '.join(e for e in fake.environments if e != env)})",
        f"  flags SPEC      {spec}",
        f"  access token    {fake.token}",
        f"  SDK key         {fake.sdk_key(env)}",
        "",
        "Store them for a profile (routedeck login PROFILE --which launchdarkly-token, then",
        "--which launchdarkly-sdk-key), or without a keyring export them:",
        f"  export ROUTEDECK_LAUNCHDARKLY_TOKEN='{fake.token}'",
        f"  export ROUTEDECK_LAUNCHDARKLY_SDK_KEY='{fake.sdk_key(env)}'",
    ]
    if seeded:
        lines += ["", f"seeded: {', '.join(seeded)} (support-answer-route: 100% baseline, candidate ready)"]
    lines += [
        "",
        f"A change made in LaunchDarkly by someone else (access token {other_token}):",
        f"  curl -s -X PATCH -H 'Authorization: {other_token}' -H 'Content-Type: application/json; {SEMANTIC}' "
        f"-d '{{\"environmentKey\":\"{env}\",\"comment\":\"by hand\",\"instructions\":[{{\"kind\":\"turnFlagOff\"}}]}}' "
        f"{flag_url}",
        f"  curl -s -H 'Authorization: {other_token}' '{flag_url}?env={env}'   # the flag as LaunchDarkly holds it",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.launchdarkly_server",
        description="Run the local LaunchDarkly fake on 127.0.0.1 until Ctrl-C: the REST API and the SDK "
                    "endpoints, in memory (nothing is kept when it stops).")
    parser.add_argument("--port", type=int, default=8030, help="port (default 8030)")
    parser.add_argument("--project", default="default", help="the project key (default: default)")
    parser.add_argument("--token", help="the access token to accept (default: a new api-… token)")
    parser.add_argument("--seed-demo", action="store_true", help="create the demo's route flags")
    args = parser.parse_args(argv)
    fake = FakeLaunchDarkly(project=args.project)
    if args.token:
        fake.tokens = {args.token: fake.tokens.pop(fake.token)}
        fake.token = args.token
    try:
        fake.start(args.port)
    except OSError as exc:
        print(f"fake LaunchDarkly: cannot listen on 127.0.0.1:{args.port} ({exc.strerror or exc}) — "
              "choose another with --port", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        seeded = seed_demo(fake) if args.seed_demo else []
        print(banner(fake, fake.add_token(SOMEONE_ELSE), seeded), flush=True)
        stop.wait()
    finally:
        fake.stop()
    print("fake LaunchDarkly stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
