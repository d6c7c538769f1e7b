"""Request bodies, validated with pydantic; a failure becomes a 400 naming the field at fault."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from graph.records import MAX_ID_LENGTH, UserRecord, id_problem
from graph.timestamps import parse_timestamp


def _id(value: str) -> str:
    if problem := id_problem(value):
        raise ValueError(problem)
    return value


Id = Annotated[str, AfterValidator(_id), Field(min_length=1, max_length=MAX_ID_LENGTH)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# epoch seconds or ISO 8601, read the same way as in the ingestion formats
Timestamp = Annotated[float | None, BeforeValidator(lambda v: None if v is None else parse_timestamp(str(v)))]


class UserIn(_Strict):
    id: Id
    created_at: Timestamp = None
    school: str | None = Field(default=None, max_length=256)
    employer: str | None = Field(default=None, max_length=256)
    city: str | None = Field(default=None, max_length=256)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    age_group: str | None = Field(default=None, max_length=32)
    language: str | None = Field(default=None, max_length=32)
    opted_out: bool | None = None
    deactivated: bool | None = None

    def record(self) -> UserRecord:
        return UserRecord(**self.model_dump())


class FriendshipIn(_Strict):
    a: Id
    b: Id
    since: Timestamp = None


class BlockIn(_Strict):
    src: Id
    dst: Id
    at: Timestamp = None


# ---- responses (described in the OpenAPI document; the fuzz test checks every response against them) ----
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuggestionOut(_Out):
    user_id: str
    position: int = Field(ge=0)
    sources: list[str]
    score: float
    exploration: bool | None = None
    p_send: float | None = Field(default=None, ge=0, le=1)
    p_accept: float | None = Field(default=None, ge=0, le=1)
    p_connect: float | None = Field(default=None, ge=0, le=1)
    reasons: list[str] | None = None
    proof: dict[str, Any] | None = None


class SuggestionsOut(_Out):
    user_id: str
    request_id: str = Field(description="this response's id (also X-Request-ID): put it on the impression and "
                                        "feedback events of these suggestions to join them to the served log")
    bucket: str
    suggestions: list[SuggestionOut]
    skipped_sources: dict[str, str]
    snapshot_version: str | None
    embeddings_version: str | None
    ranker_version: str | None


class AcceptedOut(_Out):
    accepted: int = Field(ge=1)


class UserOut(_Out):
    user_id: str


class DeletedOut(_Out):
    user_id: str
    deleted: bool


class FriendshipOut(_Out):
    a: str
    b: str


class UnfriendOut(_Out):
    a: str
    b: str
    removed: bool


class BlockOut(_Out):
    src: str
    dst: str


class StatusOut(_Out):
    status: str
    snapshot_version: str | None = None


class ErrorDetail(_Out):
    code: str
    message: str
    field: str | None = None
    request_id: str | None = None


class ErrorOut(_Out):
    error: ErrorDetail
