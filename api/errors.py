"""Every error leaves the API as JSON: {"error": {"code", "message", "field"?, "request_id"}}."""

from __future__ import annotations

import logging
import math
import re
import uuid

from flask import Flask, current_app, g, has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException

from pymk.errors import (
    EventLogUnavailableError,
    GraphStoreCircuitOpenError,
    GraphStoreTimeoutError,
    GraphStoreUnavailableError,
    UnknownUserError,
)

RETRY_AFTER_S = 5

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


# a caller's id (a load balancer's or a client's X-Request-ID) is kept when it is a plain token
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id() -> str | None:
    """This request's id (X-Request-ID on every response, in error bodies, the logs and the served log):
    the caller's when it is a plain token of up to 128 characters, else a new one; None outside a request."""
    if not has_request_context():
        return None
    if "request_id" not in g:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    return g.request_id


def error_body(code: str, message: str, field: str | None = None) -> dict:
    body: dict = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    rid = request_id()
    if rid is not None:
        body["request_id"] = rid
    return {"error": body}


def _retry_later(code: str, message: str, after_s: int = RETRY_AFTER_S):
    resp = jsonify(error_body(code, message))
    resp.headers["Retry-After"] = str(after_s)
    return resp, 503


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api(err: ApiError):
        return jsonify(error_body(err.code, err.message, err.field)), err.status

    @app.errorhandler(UnknownUserError)
    def _unknown(err: UnknownUserError):
        return jsonify(error_body("unknown_user", str(err), "user_id")), 404

    @app.errorhandler(GraphStoreUnavailableError)
    def _store_down(err: GraphStoreUnavailableError):
        # Suggestions are never served without the hard-rule check on fresh state (a block made a
        # second ago must count), so with the store down the honest answer is "try again shortly".
        log.warning("%s (request %s)", err, request_id())
        return _retry_later("graph_store_unavailable", "the graph store cannot be reached; retry shortly")

    @app.errorhandler(GraphStoreCircuitOpenError)
    def _store_held_back(err: GraphStoreCircuitOpenError):
        # not tried: the store was found unreachable moments ago (graph/breaker.py logs when and when it
        # answers again; one line per request here would flood the log at full traffic)
        current_app.extensions["pymk_metrics"].held_back.inc()
        return _retry_later("graph_store_unavailable", "the graph store cannot be reached; retry shortly",
                            max(1, math.ceil(err.wait_s)))

    @app.errorhandler(GraphStoreTimeoutError)
    def _store_slow(err: GraphStoreTimeoutError):
        # the server ended the query (a write is rolled back whole; every API write is idempotent)
        log.warning("%s (request %s)", err, request_id())
        return _retry_later("graph_store_timeout", f"the graph store did not answer within {err.limit_s:g} s; "
                                                   "retry shortly")

    @app.errorhandler(EventLogUnavailableError)
    def _log_down(err: EventLogUnavailableError):
        # the graph write before it is idempotent and identical events are one event: retrying is safe
        log.error("%s (request %s)", err, request_id())
        return _retry_later("event_log_unavailable", "the event log cannot be written; retry shortly")

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        resp = jsonify(error_body(err.name.lower().replace(" ", "_"), err.description or err.name))
        for name, value in err.get_headers():  # e.g. Allow on a 405, which HTTP requires
            if name.lower() != "content-type":
                resp.headers[name] = value
        return resp, err.code

    @app.errorhandler(Exception)
    def _crash(err: Exception):
        log.exception("unhandled error (request %s)", request_id())
        return jsonify(error_body("internal_error", "internal error; it has been logged with its request_id")), 500
