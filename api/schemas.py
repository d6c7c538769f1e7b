"""Request bodies, validated with pydantic; a failure becomes a 400 naming the field at fault."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    def record(self) -> UserRecord:
        return UserRecord(**self.model_dump())


class FriendshipIn(_Strict):
    a: str = Id
    b: str = Id
    since: float | str | None = None

    @field_validator("since")
    @classmethod
    def _ts(cls, v: float | str | None) -> float | None:
        return None if v is None else parse_timestamp(str(v))


class BlockIn(_Strict):
    src: str = Id
    dst: str = Id
    at: float | str | None = None

    @field_validator("at")
    @classmethod
    def _ts(cls, v: float | str | None) -> float | None:
        return None if v is None else parse_timestamp(str(v))
