"""HTTP endpoints (DESIGN.md): suggestions, events, graph writes, health, readiness, metrics."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from flask import Blueprint, Response, current_app, g, jsonify, request
from prometheus_client import generate_latest
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, request_id
from api.ratelimit import WRITE_METHODS
from api.schemas import BlockIn, FriendshipIn, UserIn
from candidates.newcomers import SOURCE as NEWCOMERS
from candidates.reasons import reasons
from candidates.types import SKIPPED
from graph.event_schema import parse_event
from graph.records import Event, Friendship

log = logging.getLogger(__name__)
bp = Blueprint("v1", __name__)
MAX_EVENTS_PER_REQUEST = 1000


def _svc():
    return current_app.extensions["pymk"]


def _require_key() -> None:
    keys = current_app.config["PYMK_SETTINGS"].api.api_keys
    if not keys:
        raise ApiError(401, "writes_disabled", "no API keys are configured (set PYMK_API_KEYS) so writes are refused")
    given = request.headers.get("X-API-Key", "").encode()
    # compare every key in constant time, so response timing does not reveal how much of a key matched
    if not any(hmac.compare_digest(given, key.encode()) for key in keys):
        raise ApiError(401, "bad_api_key", "missing or unknown X-API-Key header")


@bp.before_request
def _reads_need_a_key_too() -> None:
    """PYMK_API_AUTH=all: every /v1 request needs a key (writes check theirs in their own route)."""
    if (request.method not in WRITE_METHODS and request.path.startswith("/v1/")
            and current_app.config["PYMK_SETTINGS"].api.auth == "all"):
        _require_key()


def _json_body() -> object:
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "bad_json", "request body must be JSON (Content-Type: application/json)", "body")
    return body


def _validate(model: type[BaseModel], body: object) -> BaseModel:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, "invalid_field", f"{field}: {first['msg']}", field) from None


def _require_users(store, **named: str) -> None:
    """404 naming the first field whose user does not exist."""
    known = store.existing_users(named.values())
    for field, user in named.items():
        if user not in known:
            raise ApiError(404, "unknown_user", f"unknown user {user!r}", field)


def bucket(user_id: str) -> str:
    """Stable A/B bucket from a hash of the user id (same user, same bucket, every process)."""
    buckets = current_app.config["PYMK_SETTINGS"].api.ab_buckets
    digest = hashlib.sha256(user_id.encode()).digest()
    return buckets[int.from_bytes(digest[:8], "big") % len(buckets)]


# `path`: an id may hold '/' (ingested from a file, or created through POST /v1/users), sent percent-encoded or not
@bp.get("/v1/users/<path:user_id>/suggestions")
def suggestions(user_id: str):
    api = current_app.config["PYMK_SETTINGS"].api
    raw = request.args.get("limit", str(api.default_limit))
    # ASCII digits only: str.isdigit() also accepts '²' (int() refuses it) and other scripts' digits
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= api.max_limit:
        raise ApiError(400, "invalid_field", f"limit must be an integer from 1 to {api.max_limit} (got {raw!r})",
                       "limit")
    explain = request.args.get("explain", "true").lower()
    if explain not in ("true", "false", "1", "0"):
        raise ApiError(400, "invalid_field", f"explain must be true or false (got {explain!r})", "explain")
    rec = _svc().suggestions(user_id, int(raw), request_id())
    g.snapshot_version = _svc().served.snapshot_version
    items = []
    for pos, c in enumerate(rec.candidates):
        item = {"user_id": c.user_id, "position": pos, "sources": list(c.sources),
                "score": round(c.score("score", c.score("rrf", c.score(c.sources[0]))), 6)}
        if c.score("explore"):
            item["exploration"] = True
        for head in ("p_send", "p_accept", "p_connect"):
            if head in c.scores:
                item[head] = round(c.score(head), 6)
        if explain in ("true", "1"):
            item["reasons"] = reasons(c)
            item["proof"] = {k: v for k, v in c.proof.items() if k != "ranker"}  # features go to the served log
        items.append(item)
    metrics = current_app.extensions["pymk_metrics"]
    metrics.suggestions.inc(len(items))
    metrics.newcomers.inc(sum(NEWCOMERS in c.sources for c in rec.candidates))
    metrics.paths.labels("fresh" if "snapshot" in rec.skipped_sources
                         else "precomputed" if rec.precomputed else "online").inc()
    for reason, n in rec.removed.items():
        metrics.removed.labels(reason).inc(n)
    for part in rec.skipped_sources:
        metrics.skipped.labels(part, rec.skip_outcomes.get(part, SKIPPED)).inc()
    for stage, ms in rec.timings_ms.items():
        metrics.stages.labels(stage).observe(ms / 1000)
    return jsonify({"user_id": user_id, "request_id": request_id(), "bucket": bucket(user_id), "suggestions": items,
                    "skipped_sources": rec.skipped_sources, "snapshot_version": g.snapshot_version,
                    "embeddings_version": _svc().served.embeddings_version,
                    "ranker_version": _svc().served.ranker_version})


@bp.post("/v1/events")
def events():
    _require_key()
    body = _json_body()
    raw = body if isinstance(body, list) else [body]
    if not raw or len(raw) > MAX_EVENTS_PER_REQUEST:
        raise ApiError(400, "invalid_field", f"send 1 to {MAX_EVENTS_PER_REQUEST} events (got {len(raw)})", "body")
    parsed: list[Event] = []
    for i, obj in enumerate(raw):
        try:
            parsed.append(parse_event(obj))
        except ValueError as exc:
            raise ApiError(400, "invalid_field", f"event {i}: {exc}", f"[{i}]") from None
    svc = _svc()
    known = svc.store.existing_users({u for ev in parsed for u in (ev.src, ev.dst)})
    for i, ev in enumerate(parsed):
        for name in ("src", "dst"):
            if getattr(ev, name) not in known:
                raise ApiError(404, "unknown_user", f"event {i}: unknown user {getattr(ev, name)!r}", f"[{i}].{name}")
    svc.store.apply_events(parsed)
    svc.events.append(parsed)
    return jsonify({"accepted": len(parsed)}), 202


@bp.post("/v1/users")
def users():
    _require_key()
    user = _validate(UserIn, _json_body())
    # a sign-up without `created_at` is dated now; an update never moves an account's creation time
    _svc().store.upsert_users([user.record()], created_at_default=time.time())
    return jsonify({"user_id": user.id}), 201


@bp.delete("/v1/users/<path:user_id>")
def delete_user(user_id: str):
    """Delete an account: its node, ties, requests and blocks go from the graph store at once, and it is
    never suggested again nor served, though the served snapshot (made before) still holds it."""
    _require_key()
    store = _svc().store
    _require_users(store, user_id=user_id)
    store.delete_users([user_id])
    return jsonify({"user_id": user_id, "deleted": True})


@bp.post("/v1/friendships")
def friendships():
    _require_key()
    f = _validate(FriendshipIn, _json_body())
    if f.a == f.b:
        raise ApiError(400, "invalid_field", f"a and b are the same user {f.a!r}", "b")
    store = _svc().store
    _require_users(store, a=f.a, b=f.b)
    store.add_friendships([Friendship(f.a, f.b, f.since if f.since is not None else time.time())])
    return jsonify({"a": f.a, "b": f.b}), 201


@bp.delete("/v1/friendships/<a>/<b>")
@bp.delete("/v1/friendships")
def unfriend(a: str | None = None, b: str | None = None):
    """End a friendship (either order of the two ids); ending one that is not there is no error. The ids go
    in the path, or as the query's `a` and `b` (the form for ids that hold '/', which a path cannot split)."""
    _require_key()
    if a is None or b is None:
        a, b = request.args.get("a"), request.args.get("b")
        for name, value in (("a", a), ("b", b)):
            if not value:
                raise ApiError(400, "invalid_field", f"{name}: a user id is required "
                                                     "(DELETE /v1/friendships?a=<id>&b=<id>)", name)
    if a == b:
        raise ApiError(400, "invalid_field", f"a and b are the same user {a!r}", "b")
    store = _svc().store
    _require_users(store, a=a, b=b)
    return jsonify({"a": a, "b": b, "removed": store.remove_friendship(a, b)})


@bp.post("/v1/blocks")
def blocks():
    _require_key()
    b = _validate(BlockIn, _json_body())
    if b.src == b.dst:
        raise ApiError(400, "invalid_field", f"src and dst are the same user {b.src!r}", "dst")
    svc = _svc()
    _require_users(svc.store, src=b.src, dst=b.dst)
    ev = Event("block", b.src, b.dst, b.at if b.at is not None else time.time())
    svc.store.apply_events([ev])
    svc.events.append([ev])
    return jsonify({"src": b.src, "dst": b.dst}), 201


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    svc = _svc()
    problems = []
    if svc.served.pipeline is None:
        problems.append("no snapshot loaded")
    try:
        svc.store.server_info()
        svc.store.existing_users(["__readyz__"])
    except Exception as exc:  # any failure to reach the store means not ready
        problems.append(f"graph store unreachable: {exc.__class__.__name__}")
    if problems:
        raise ApiError(503, "not_ready", "; ".join(problems))
    return jsonify({"status": "ready", "snapshot_version": svc.served.snapshot_version})


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(current_app.extensions["pymk_metrics"].registry),
                    mimetype="text/plain; version=0.0.4")


@bp.get("/openapi.json")
def openapi():
    from api.openapi import spec

    return jsonify(spec(current_app.config["PYMK_SETTINGS"].api.auth))
