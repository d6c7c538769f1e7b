"""Every error leaves the API as JSON: {"error": {"code", "message", "field"?}}."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from pymk.errors import UnknownUserError

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_body(code: str, message: str, field: str | None = None) -> dict:
    body: dict = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return {"error": body}


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api(err: ApiError):
        return jsonify(error_body(err.code, err.message, err.field)), err.status

    @app.errorhandler(UnknownUserError)
    def _unknown(err: UnknownUserError):
        return jsonify(error_body("unknown_user", str(err), "user_id")), 404

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        return jsonify(error_body(err.name.lower().replace(" ", "_"), err.description or err.name)), err.code

    @app.errorhandler(Exception)
    def _crash(err: Exception):
        log.exception("unhandled error")
        return jsonify(error_body("internal_error", "internal error; it has been logged")), 500
