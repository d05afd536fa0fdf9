"""A local FeatBit for tests: the Open API (flags, targeting, JSON-Patch, audit logs) and the
evaluation server's websocket data-sync, on 127.0.0.1, on free ports.

No FeatBit server can run here (.NET, MongoDB or PostgreSQL, Redis, Docker), so the tests talk
to this fake. Its shapes follow FeatBit's public source:

* responses are ``{"success", "errors", "data"}``; lists are ``{"totalCount", "items"}``;
* a flag's ``revision`` is a new GUID on every change; ``PUT /{key}/targeting`` with another
  revision answers 409 ``["Conflict"]``; a missing flag 404 ``["ResourceNotFound"]``; a used
  key 422 ``["KeyHasBeenUsed"]``; validation 400 with ``"<field>_is_invalid"`` codes;
* the Open API authenticates by the ``Authorization`` header (an access token; 401 otherwise);
* every change writes an audit log whose ``dataChange`` holds the serialised flag before/after;
* the stream (``/streaming?type=server&version=2&token=…``) accepts the connection, then closes
  it with 4003 when the token is invalid (FeatBit's token envelope: a 5-character header, the
  secret with an encoded timestamp spliced in, 30 s expiry, a 44-character secret);
  ``data-sync`` with timestamp 0 answers ``full``, otherwise ``patch`` with what changed after
  it; every flag change is pushed to every connection as a ``patch``; ``ping`` → ``pong``.

Start it with ``FakeFeatBit().start()``; ``stop()`` closes both servers and joins their threads.
From a shell, ``python -m tests.fakes.featbit_server [--port 5000] [--stream-port 5100] [--seed-demo]``
runs one until Ctrl-C and prints the SPEC, the environment id and the two credentials to use.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

KEY_PATTERN = re.compile(r"^[a-zA-Z0-9._-]+$")
VARIATION_TYPES = ("boolean", "string", "number", "json")
TOKEN_DIGITS = {"Q": "0", "B": "1", "W": "2", "S": "3", "P": "4", "H": "5", "D": "6", "X": "7", "Z": "8", "U": "9"}
TOKEN_EXPIRY_S = 30
CLOSE_INVALID = 4003


def new_secret() -> str:
    """An environment secret of FeatBit's length (44 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(33)).decode()


def decode_stream_token(token: str, now_ms: int) -> str | None:
    """The secret inside a stream token, or None when the envelope is invalid or expired."""

    def number(chars: str) -> int | None:
        if not chars.strip():
            return 0
        digits = [TOKEN_DIGITS.get(c) for c in chars]
        return None if None in digits else int("".join(digits))  # type: ignore[arg-type]

    if len(token) < 5:
        return None
    position, length = number(token[:3]), number(token[3:5])
    if position is None or length is None:
        return None
    payload = token[5:]
    if len(payload) < position + length:
        return None
    stamp = number(payload[position:position + length])
    if stamp is None:
        return None
    secret = payload[:position] + payload[position + length:]
    if len(secret) % 4:
        secret += "=" * (4 - len(secret) % 4)
    if len(secret) != 44 or abs(now_ms - stamp) > TOKEN_EXPIRY_S * 1000:
        return None
    return secret


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class FakeFeatBit:
    """One FeatBit workspace with one environment, one access token per actor and one server secret."""

    def __init__(self, *, env_id: str | None = None) -> None:
        self.env_id = env_id or str(uuid.uuid4())
        self.secret = new_secret()
        #: access token → (member id, name); "someone else" gets a second token
        self.tokens: dict[str, tuple[str, str]] = {}
        self.token = self.add_token("routedeck-operator")
        self.flags: dict[str, dict[str, Any]] = {}
        self.audit: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self._last_ms = 0
        self._streams: list[ServerConnection] = []
        self.stream_log: list[str] = []  # what the stream did, for tests: "open", "ping", "sync:full", "4003"…
        self._http: ThreadingHTTPServer | None = None
        self._ws: Server | None = None
        self._threads: list[threading.Thread] = []
        self.stream_enabled = True

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self, port: int = 0, stream_port: int = 0) -> "FakeFeatBit":
        """Serve the Open API on ``port`` and the stream on ``stream_port`` (0: free ports), 127.0.0.1 only."""
        fake = self

        class Handler(_OpenApiHandler):
            featbit = fake

        self._http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._http.daemon_threads = True
        try:
            self._ws = serve(self._stream, "127.0.0.1", stream_port, ping_interval=None, compression=None,
                             close_timeout=1)
        except OSError:
            self._http.server_close()
            raise
        self._ws_port = self._ws.socket.getsockname()[1]
        http = self._http
        for target in (lambda: http.serve_forever(poll_interval=0.05), self._ws.serve_forever):
            t = threading.Thread(target=target, daemon=True, name="fake-featbit")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self.stream_enabled = False  # a client that reconnects now is refused instead of held open
        self.drop_streams(1001)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._ws is not None:
            self._ws.shutdown()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()

    @property
    def url(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def stream_url(self) -> str:
        assert self._ws is not None
        return f"ws://127.0.0.1:{self._ws_port}"

    def add_token(self, name: str, token: str | None = None) -> str:
        """A new access token acting as ``name`` (generated unless given)."""
        token = token or "api-" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")
        self.tokens[token] = (str(uuid.uuid4()), name)
        return token

    # ---- the store ----------------------------------------------------------------------

    def _tick(self) -> int:
        """A strictly increasing clock in ms, so every change is newer than the last."""
        now = int(time.time() * 1000)
        self._last_ms = max(now, self._last_ms + 1)
        return self._last_ms

    def raw(self, key: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.flags[key])

    def change(self, key: str, actor: str, mutate, operation: str = "Update", comment: str = "") -> str:
        """Apply ``mutate(flag)``, bump revision and updatedAt, write the audit log and push the patch."""
        with self.lock:
            flag = self.flags[key]
            before = json.dumps(flag, separators=(",", ":"))
            mutate(flag)
            now = self._tick()
            flag["revision"] = str(uuid.uuid4())
            flag["updatedAt"] = _iso(now)
            flag["updatorId"] = self.tokens[actor][0]
            self._log(flag, actor, operation, before, json.dumps(flag, separators=(",", ":")), comment, now)
            pushed = copy.deepcopy(flag)
        self._push(pushed)
        return pushed["revision"]

    def _log(self, flag: dict, actor: str, operation: str, before: str, after: str, comment: str, now: int) -> None:
        member, name = self.tokens[actor]
        self.audit.append({
            "id": str(uuid.uuid4()),
            "refId": flag["id"],
            "refType": "FeatureFlag",
            "keyword": f"{flag['key']},{flag['name']}",
            "operation": operation,
            "dataChange": {"previous": before, "current": after},
            "comment": comment or "",
            "creatorId": member,
            "creatorName": name,
            "creatorEmail": f"{name}@example.invalid",
            "createdAt": _iso(now),
            "instructions": [],
        })

    def create(self, body: dict[str, Any], actor: str) -> dict[str, Any]:
        with self.lock:
            now = self._tick()
            member = self.tokens[actor][0]
            flag = {
                "id": str(uuid.uuid4()),
                "envId": self.env_id,
                "revision": str(uuid.uuid4()),
                "name": body["name"],
                "description": body.get("description") or "",
                "key": body["key"],
                "variationType": body["variationType"],
                "variations": body["variations"],
                "targetUsers": [],
                "rules": [],
                "isEnabled": bool(body.get("isEnabled")),
                "disabledVariationId": body["disabledVariationId"],
                "fallthrough": {
                    "dispatchKey": None,
                    "includedInExpt": True,
                    "variations": [{"id": body["enabledVariationId"], "rollout": [0, 1], "exptRollout": 1}],
                },
                "exptIncludeAllTargets": True,
                "tags": body.get("tags") or [],
                "isArchived": False,
                "createdAt": _iso(now),
                "updatedAt": _iso(now),
                "creatorId": member,
                "updatorId": member,
            }
            self.flags[flag["key"]] = flag
            self._log(flag, actor, "Create", "", json.dumps(flag, separators=(",", ":")), "", now)
            pushed = copy.deepcopy(flag)
        self._push(pushed)
        return pushed

    # ---- the stream ---------------------------------------------------------------------

    def _stream(self, ws: ServerConnection) -> None:
        parts = urlsplit(ws.request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        secret = decode_stream_token(query.get("token", ""), int(time.time() * 1000))
        if (
            parts.path != "/streaming"
            or query.get("type") != "server"
            or query.get("version", "") not in ("", "1", "2")
            or secret is None
            or secret.rstrip("=") != self.secret.rstrip("=")
            or not self.stream_enabled
        ):
            self.stream_log.append("4003")
            ws.close(CLOSE_INVALID, "invalid request, close by server")
            return
        self.stream_log.append("open")
        with self.lock:
            self._streams.append(ws)
        try:
            for raw in ws:
                try:
                    message = json.loads(raw)
                except (TypeError, ValueError):
                    continue
                kind = message.get("messageType") if isinstance(message, dict) else None
                if kind == "ping":
                    self.stream_log.append("ping")
                    ws.send('{"messageType":"pong","data":{}}')
                elif kind == "data-sync":
                    data = message.get("data") or {}
                    since = data.get("timestamp") or 0
                    with self.lock:
                        flags = [copy.deepcopy(f) for f in self.flags.values() if _ms(f["updatedAt"]) > since]
                    event = "full" if since == 0 else "patch"
                    self.stream_log.append(f"sync:{event}")
                    ws.send(json.dumps({"messageType": "data-sync",
                                        "data": {"eventType": event, "featureFlags": flags, "segments": []}}))
        except ConnectionClosed:
            pass
        finally:
            with self.lock:
                if ws in self._streams:
                    self._streams.remove(ws)

    def _push(self, flag: dict[str, Any]) -> None:
        text = json.dumps({"messageType": "data-sync",
                           "data": {"eventType": "patch", "featureFlags": [flag], "segments": []}})
        with self.lock:
            targets = list(self._streams)
        for ws in targets:
            try:
                ws.send(text)
            except ConnectionClosed:
                pass

    def drop_streams(self, code: int = 1011) -> int:
        """Close every open stream with ``code`` (1011 = transient: clients reconnect)."""
        with self.lock:
            targets, self._streams = list(self._streams), []
        for ws in targets:
            try:
                ws.close(code, "service unavailable, close by server")
            except ConnectionClosed:
                pass
        return len(targets)

    @property
    def open_streams(self) -> int:
        with self.lock:
            return len(self._streams)


def _validate_create(body: dict[str, Any]) -> list[str]:
    errors = []
    name, key = body.get("name"), body.get("key")
    if not name:
        errors.append("name_is_required")
    elif len(name) > 128:
        errors.append("name_is_invalid")
    if not key:
        errors.append("key_is_required")
    elif len(key) > 128 or not KEY_PATTERN.match(key):
        errors.append("key_is_invalid")
    if body.get("variationType") not in VARIATION_TYPES:
        errors.append("variationType_is_invalid")
    variations = body.get("variations") or []
    if not variations or not all(isinstance(v, dict) and str(v.get("id") or "").strip()
                                 and str(v.get("name") or "").strip() for v in variations):
        errors.append("variations_is_invalid")
    ids = {v.get("id") for v in variations if isinstance(v, dict)}
    if body.get("disabledVariationId") not in ids:
        errors.append("disabledVariationId_is_invalid")
    if body.get("enabledVariationId") not in ids:
        errors.append("enabledVariationId_is_invalid")
    return errors


_PATCHABLE = ("name", "description", "isEnabled", "disabledVariationId", "variations", "targetUsers", "rules",
              "fallthrough", "exptIncludeAllTargets", "tags")


def apply_json_patch(flag: dict[str, Any], ops: Any) -> str | None:
    """Apply RFC 6902 add/replace/remove ops to a copy of the flag's fields; an error message or None."""
    if not isinstance(ops, list):
        return "The JSON patch document was malformed and could not be parsed."
    work = copy.deepcopy(flag)
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            return f"Invalid JsonPatch operation '{op.get('op') if isinstance(op, dict) else op}'."
        path = [unquote(p).replace("~1", "/").replace("~0", "~") for p in str(op.get("path", "")).split("/")[1:]]
        if not path or path[0] not in _PATCHABLE:
            return f"The target location specified by path segment '{path[0] if path else ''}' was not found."
        parent: Any = work
        for seg in path[:-1]:
            try:
                parent = parent[int(seg)] if isinstance(parent, list) else parent[seg]
            except (KeyError, IndexError, ValueError):
                return f"The target location specified by path segment '{seg}' was not found."
        last = path[-1]
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
                    return f"The target location specified by path segment '{last}' was not found."
                parent[last] = op.get("value")
        except (KeyError, IndexError, ValueError):
            return f"The target location specified by path segment '{last}' was not found."
    flag.clear()
    flag.update(work)
    return None


class _OpenApiHandler(BaseHTTPRequestHandler):
    featbit: FakeFeatBit
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return

    def setup(self) -> None:
        super().setup()
        # headers and body go out as two writes: without this, Nagle + delayed ACK add ~40 ms a call
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ---- plumbing -----------------------------------------------------------------------

    def _send(self, status: int, body: Any = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if raw:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _ok(self, data: Any) -> None:
        self._send(200, {"success": True, "errors": [], "data": data})

    def _error(self, status: int, *errors: str) -> None:
        self._send(status, {"success": False, "errors": list(errors), "data": None})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        try:
            return json.loads(self.rfile.read(length))
        except ValueError:
            return ...

    def _route(self, method: str) -> None:
        fb = self.featbit
        body = self._body() if method in ("POST", "PUT", "PATCH") else None
        parts = urlsplit(self.path)
        query = {k: v for k, v in parse_qs(parts.query).items()}
        segs = [unquote(s) for s in parts.path.strip("/").split("/")]
        if len(segs) < 5 or segs[:3] != ["api", "v1", "envs"] or segs[4] not in ("feature-flags", "audit-logs"):
            return self._send(404)
        try:
            uuid.UUID(segs[3])
        except ValueError:
            return self._send(404)  # the route's {envId:guid} constraint does not match
        actor = self.headers.get("Authorization") or ""
        if actor not in fb.tokens:
            return self._send(401)
        if segs[3] != fb.env_id:
            return self._error(403, "Forbidden")
        if body is ...:
            return self._error(400, "The JSON value could not be converted.")
        rest = segs[5:]
        if segs[4] == "audit-logs":
            return self._audit(query) if method == "GET" and not rest else self._send(405)
        if not rest:
            if method == "GET":
                return self._list(query)
            if method == "POST":
                return self._create(body or {}, actor)
            return self._send(405)
        key = rest[0]
        with fb.lock:
            exists = key in fb.flags
        if not exists:
            return self._error(404, "ResourceNotFound")
        if len(rest) == 1 and method == "GET":
            return self._ok(fb.raw(key))
        if len(rest) == 1 and method == "PATCH":
            error: list[str | None] = [None]

            def patch(flag: dict) -> None:
                error[0] = apply_json_patch(flag, body)
                if error[0] is not None:
                    raise _Rejected

            try:
                fb.change(key, actor, patch)
            except _Rejected:
                return self._error(200, error[0] or "")
            return self._ok(True)
        if len(rest) == 3 and rest[1] == "toggle" and method == "PUT":
            status = rest[2].lower()
            if status not in ("true", "false"):
                return self._error(400, "status_is_invalid")
            comment = (body or {}).get("comment", "") if isinstance(body, dict) else ""
            return self._ok(fb.change(key, actor, lambda f: f.__setitem__("isEnabled", status == "true"),
                                      comment=comment))
        if len(rest) == 2 and method == "PUT":
            return self._put(key, rest[1], body if isinstance(body, dict) else {}, actor)
        return self._send(405)

    # ---- endpoints ----------------------------------------------------------------------

    def _list(self, query: dict[str, list[str]]) -> None:
        fb = self.featbit
        index = int((query.get("pageIndex") or ["0"])[0])
        size = int((query.get("pageSize") or ["10"])[0])
        name = (query.get("name") or [""])[0].lower()
        tags = query.get("tags") or []
        archived = (query.get("isArchived") or ["false"])[0].lower() == "true"
        with fb.lock:
            flags = [copy.deepcopy(f) for f in fb.flags.values()]
        flags = [
            f for f in flags
            if f["isArchived"] == archived
            and (not name or name in f["name"].lower() or name in f["key"].lower())
            and all(t in f["tags"] for t in tags)
        ]
        flags.sort(key=lambda f: f["createdAt"], reverse=True)
        items = [{
            "id": f["id"], "name": f["name"], "description": f["description"], "key": f["key"],
            "isEnabled": f["isEnabled"], "variationType": f["variationType"], "variations": f["variations"],
            "createdAt": f["createdAt"], "updatedAt": f["updatedAt"], "tags": f["tags"],
        } for f in flags[index * size:(index + 1) * size]]
        self._ok({"totalCount": len(flags), "items": items})

    def _create(self, body: dict[str, Any], actor: str) -> None:
        errors = _validate_create(body)
        if errors:
            return self._error(400, *errors)
        with self.featbit.lock:
            if body["key"] in self.featbit.flags:
                return self._error(422, "KeyHasBeenUsed")
        self._ok(self.featbit.create(body, actor))

    def _put(self, key: str, what: str, body: dict[str, Any], actor: str) -> None:
        fb = self.featbit
        comment = str(body.get("comment") or "")
        if what == "targeting":
            targeting = body.get("targeting")
            if not isinstance(targeting, dict):
                return self._error(400, "targeting_is_required")
            with fb.lock:
                if fb.flags[key]["revision"] != str(body.get("revision") or uuid.UUID(int=0)):
                    return self._error(409, "Conflict")

                def retarget(flag: dict) -> None:
                    flag["targetUsers"] = targeting.get("targetUsers") or []
                    flag["rules"] = targeting.get("rules") or []
                    flag["fallthrough"] = targeting.get("fallthrough")
                    flag["exptIncludeAllTargets"] = bool(targeting.get("exptIncludeAllTargets"))

                return self._ok(fb.change(key, actor, retarget, comment=comment))
        if what == "description":
            description = str(body.get("description") or "")
            with fb.lock:
                if fb.flags[key]["description"] == description:
                    return self._ok(fb.flags[key]["revision"])
                return self._ok(fb.change(key, actor, lambda f: f.__setitem__("description", description),
                                          comment=comment))
        if what == "variations":
            variations = body.get("variations")
            if not isinstance(variations, list) or not variations:
                return self._error(400, "variations_is_invalid")
            return self._ok(fb.change(key, actor, lambda f: f.__setitem__("variations", variations), comment=comment))
        if what == "tags":
            tags = body.get("tags") or []
            fb.change(key, actor, lambda f: f.__setitem__("tags", tags))
            return self._ok(True)
        return self._send(405)

    def _audit(self, query: dict[str, list[str]]) -> None:
        fb = self.featbit

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        index, size = int(one("pageIndex") or 0), int(one("pageSize") or 10)
        text, ref_id, ref_type = (one("query") or "").lower(), one("refId"), one("refType")
        start, end = one("from"), one("to")
        with fb.lock:
            logs = list(fb.audit)
        logs = [
            a for a in logs
            if (not text or text in a["keyword"].lower() or text in a["comment"].lower())
            and (not ref_id or a["refId"] == ref_id)
            and (not ref_type or a["refType"] == ref_type)
            and (start is None or _ms(a["createdAt"]) >= int(start))
            and (end is None or _ms(a["createdAt"]) <= int(end))
        ]
        logs.reverse()  # newest first
        items = [{k: v for k, v in a.items() if k != "keyword"} for a in logs[index * size:(index + 1) * size]]
        self._ok({"totalCount": len(logs), "items": items})

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._route("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._route("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._send(405)


class _Rejected(Exception):
    """A JSON-Patch that failed: nothing is stored."""


# ---- running one by hand --------------------------------------------------------------------

DEMO_SEED_ACTOR = "demo-seed"
SOMEONE_ELSE = "someone-else"


def seed_demo(fake: FakeFeatBit) -> list[str]:
    """Create the demo's route flags (support answers at 100 % baseline, candidate ready; two steady
    workflows) through the Open API, as ``routedeck init`` would; their keys."""
    from adapters.flags.featbit import FeatBitPlatform
    from console.core.simulator.portfolio import demo_flags

    platform = FeatBitPlatform(fake.url, fake.add_token(DEMO_SEED_ACTOR), fake.env_id)
    try:
        flags = demo_flags(fresh=True)
        for flag in flags:
            platform.create_flag(flag)
        return [flag.key for flag in flags]
    finally:
        platform.close()


def banner(fake: FakeFeatBit, other_token: str, seeded: list[str]) -> str:
    """What a person needs to point routedeck at this fake, and a change to make through its API."""
    spec = f"featbit:{fake.url}?env={fake.env_id}&stream={fake.stream_url}"
    flags = f"{fake.url}/api/v1/envs/{fake.env_id}/feature-flags"
    lines = [
        f"fake FeatBit: Open API {fake.url}, stream {fake.stream_url} (127.0.0.1 only) — Ctrl-C stops it",
        "",
        f"  environment id  {fake.env_id}",
        f"  flags SPEC      {spec}",
        f"  Open API token  {fake.token}",
        f"  stream secret   {fake.secret}",
        "",
        "Store the two credentials for a profile (routedeck login PROFILE --which featbit-token, then",
        "--which featbit-secret), or without a keyring export them:",
        f"  export ROUTEDECK_FEATBIT_TOKEN='{fake.token}'",
        f"  export ROUTEDECK_FEATBIT_SECRET='{fake.secret}'",
    ]
    if seeded:
        lines += ["", f"seeded: {', '.join(seeded)} (support-answer-route: 100% baseline, candidate ready)"]
    key = seeded[0] if seeded else "FLAG_KEY"
    lines += [
        "",
        f"A change made in FeatBit by someone else (access token {other_token}):",
        f"  curl -s -X PUT -H 'Authorization: {other_token}' {flags}/{key}/toggle/false",
        f"  curl -s -X PUT -H 'Authorization: {other_token}' {flags}/{key}/toggle/true",
        f"  curl -s -H 'Authorization: {other_token}' {flags}/{key}      # the flag as FeatBit holds it",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.featbit_server",
        description="Run the local FeatBit fake on 127.0.0.1 until Ctrl-C: the Open API and the evaluation "
                    "server's websocket, in memory (nothing is kept when it stops).")
    parser.add_argument("--port", type=int, default=5000, help="Open API port (default 5000, as FeatBit's API server)")
    parser.add_argument("--stream-port", type=int, default=5100,
                        help="stream port (default 5100, as FeatBit's evaluation server)")
    parser.add_argument("--env", help="the environment id, a GUID (default: a new one)")
    parser.add_argument("--token", help="the Open API access token to accept (default: a new api-… token)")
    parser.add_argument("--secret", help="the environment's server secret, 44 characters (default: a new one)")
    parser.add_argument("--seed-demo", action="store_true",
                        help="create the demo's route flags (support-answer-route ready for a rollout, and two more)")
    args = parser.parse_args(argv)
    if args.env is not None:
        try:
            args.env = str(uuid.UUID(args.env))
        except ValueError:
            parser.error(f"--env {args.env!r}: must be a GUID such as {uuid.uuid4()}")
    if args.secret is not None and len(args.secret) != 44:
        parser.error(f"--secret: must be 44 characters, as FeatBit's secrets are (got {len(args.secret)})")
    fake = FakeFeatBit(env_id=args.env)
    if args.token:
        fake.tokens = {args.token: fake.tokens.pop(fake.token)}
        fake.token = args.token
    if args.secret:
        fake.secret = args.secret
    try:
        fake.start(args.port, args.stream_port)
    except OSError as exc:
        print(f"fake FeatBit: cannot listen on 127.0.0.1:{args.port} or :{args.stream_port} "
              f"({exc.strerror or exc}) — choose others with --port and --stream-port", file=sys.stderr)
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
    print("fake FeatBit stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
