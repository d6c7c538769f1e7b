"""OpenAPI 3 description of the API, generated from the pydantic models that validate the requests
and describe the responses (tests/api/test_fuzz.py checks every response against it)."""

from __future__ import annotations

from pydantic import BaseModel

from api.schemas import (
    AcceptedOut,
    BlockIn,
    BlockOut,
    DeletedOut,
    ErrorOut,
    FriendshipIn,
    FriendshipOut,
    StatusOut,
    SuggestionsOut,
    UnfriendOut,
    UserIn,
    UserOut,
)
from graph.event_schema import EventIn

REF = "#/components/schemas/{model}"


def spec(auth: str = "writes") -> dict:
    """The description; `auth` (PYMK_API_AUTH) says whether reads need the key too."""
    components: dict[str, dict] = {}

    def schema(model: type[BaseModel]) -> dict:
        """The model's JSON schema; nested models go to components and are referenced."""
        out = model.model_json_schema(ref_template=REF)
        components.update(out.pop("$defs", {}))
        return out

    def body(model: type[BaseModel], description: str) -> dict:
        return {"description": description, "content": {"application/json": {"schema": schema(model)}}}

    def errors(*codes: int) -> dict:
        return {str(c): body(ErrorOut, "error") for c in codes}

    def write(request: dict, ok: int, response: type[BaseModel]) -> dict:
        return {"security": [{"apiKey": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
                "responses": {str(ok): body(response, "written"), **errors(400, 401, 404, 413, 429, 503)}}

    def remove(names: list[str], response: type[BaseModel], description: str, where: str = "path") -> dict:
        return {"delete": {"security": [{"apiKey": []}],
                           "parameters": [{"name": n, "in": where, "required": True, "schema": {"type": "string"}}
                                          for n in names],
                           "responses": {"200": body(response, description), **errors(400, 401, 404, 429, 503)}}}

    event = schema(EventIn)  # the model every event is validated with (files and API alike)
    paths = {
        "/v1/users/{user_id}/suggestions": {"get": {
            "description": "Ranked suggestions. A user newer than the served snapshot (signed up since) gets "
                           "friends of friends from the graph store fused with cold start from their profile "
                           "and popular people, under the same hard rules; `skipped_sources.snapshot` says so. "
                           "So is a user with fewer than 3 friends in the snapshot who has made new ones since. "
                           "Accounts added to the graph since the snapshot that the viewer's friends have "
                           "befriended take fixed slots of the list (PYMK_NEWCOMER_SLOTS, 3 and 8 by default): "
                           "their source is `newcomers` and their score is their number of mutual friends.",
            "parameters": [
                {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "explain", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
            ],
            "responses": {"200": body(SuggestionsOut, "ranked suggestions with reasons"),
                          **errors(400, *((401,) if auth == "all" else ()), 404, 429, 503)},
            **({"security": [{"apiKey": []}]} if auth == "all" else {}),
        }},
        "/v1/events": {"post": write({"oneOf": [event, {"type": "array", "items": event, "minItems": 1,
                                                         "maxItems": 1000}]}, 202, AcceptedOut)},
        "/v1/users": {"post": write(schema(UserIn), 201, UserOut)},
        "/v1/users/{user_id}": remove(["user_id"], DeletedOut, "deleted: never suggested nor served again"),
        "/v1/friendships": {"post": write(schema(FriendshipIn), 201, FriendshipOut),
                            # the form for ids that hold '/' (a path cannot tell where the first one ends)
                            **remove(["a", "b"], UnfriendOut, "the tie is gone (removed: whether there was one)",
                                     where="query")},
        "/v1/friendships/{a}/{b}": remove(["a", "b"], UnfriendOut, "the tie is gone (removed: whether there was one)"),
        "/v1/blocks": {"post": write(schema(BlockIn), 201, BlockOut)},
        "/healthz": {"get": {"responses": {"200": body(StatusOut, "process is up")}}},
        "/readyz": {"get": {"responses": {"200": body(StatusOut, "ready"), **errors(503)}}},
        "/metrics": {"get": {"responses": {"200": {"description": "Prometheus metrics",
                                                    "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "pymk", "version": "1",
                 "description": "People you may know: suggestions and feedback. A user id in a path is "
                                "percent-encoded; one that holds '/' is served as sent (`/v1/users/a/b/suggestions` "
                                "is user 'a/b')"},
        "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
                       "schemas": components},
        "paths": paths,
    }
