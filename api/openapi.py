"""OpenAPI 3 description of the API (request schemas come from the pydantic models)."""

from __future__ import annotations

from api.schemas import BlockIn, FriendshipIn, UserIn
from graph.records import EVENT_TYPES

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}}
EVENT = {"type": "object", "required": ["type", "src", "dst", "ts"], "properties": {
    "type": {"type": "string", "enum": list(EVENT_TYPES)},
    "src": {"type": "string", "minLength": 1}, "dst": {"type": "string", "minLength": 1},
    "ts": {"oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]},
    "position": {"type": "integer", "minimum": 0}}}


def _err(*codes: int) -> dict:
    return {str(c): {"description": "error", "content": {"application/json": {"schema": ERROR}}} for c in codes}


def _write(model_schema: dict, ok: int) -> dict:
    return {
        "security": [{"apiKey": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": model_schema}}},
        "responses": {str(ok): {"description": "written"}, **_err(400, 401, 404, 413, 429, 503)},
    }


def spec() -> dict:
    return {
        "openapi": "3.0.3",
        "info": {"title": "pymk", "version": "1", "description": "People you may know: suggestions and feedback"},
        "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
        "paths": {
            "/v1/users/{user_id}/suggestions": {"get": {
                "parameters": [
                    {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    {"name": "explain", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
                ],
                "responses": {"200": {"description": "ranked suggestions with reasons"}, **_err(400, 404, 429, 503)},
            }},
            "/v1/events": {"post": _write({"oneOf": [EVENT, {"type": "array", "items": EVENT,
                                                             "minItems": 1, "maxItems": 1000}]}, 202)},
            "/v1/users": {"post": _write(UserIn.model_json_schema(), 201)},
            "/v1/friendships": {"post": _write(FriendshipIn.model_json_schema(), 201)},
            "/v1/blocks": {"post": _write(BlockIn.model_json_schema(), 201)},
            "/healthz": {"get": {"responses": {"200": {"description": "process is up"}}}},
            "/readyz": {"get": {"responses": {"200": {"description": "ready"}, **_err(503)}}},
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus metrics"}}}},
        },
    }
