"""Request bodies, validated with pydantic; a failure becomes a 400 naming the field at fault."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from graph.readers import parse_timestamp
from graph.records import UserRecord

Id = Field(min_length=1, max_length=256)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserIn(_Strict):
    id: str = Id
    created_at: float | None = None
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


# epoch seconds or ISO 8601, read the same way as in the ingestion formats
Timestamp = Annotated[float | None, BeforeValidator(lambda v: None if v is None else parse_timestamp(str(v)))]


class FriendshipIn(_Strict):
    a: str = Id
    b: str = Id
    since: Timestamp = None


class BlockIn(_Strict):
    src: str = Id
    dst: str = Id
    at: Timestamp = None
