"""The one definition of a feedback event as accepted anywhere: JSONL files, the API, the event log.

A pydantic model, so the API's OpenAPI description is generated from exactly what is accepted.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from graph.records import EVENT_TYPES, Event, id_problem
from graph.timestamps import parse_timestamp


def _user_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise ValueError(f"must be a non-empty string or integer (got {value!r})")
    if problem := id_problem(str(value)):
        raise ValueError(problem)
    return str(value)


def _timestamp(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be epoch seconds or ISO 8601 (got {value!r})")
    return parse_timestamp(str(value))


UserId = Annotated[str, BeforeValidator(_user_id, json_schema_input_type=str | int), Field(min_length=1)]
Timestamp = Annotated[float, BeforeValidator(_timestamp, json_schema_input_type=float | str)]


class EventIn(BaseModel):
    """{"type", "src", "dst", "ts", "position"?, ...}: extra keys are kept with the event."""

    model_config = ConfigDict(extra="allow")

    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    src: UserId
    dst: UserId
    ts: Timestamp = Field(description="epoch seconds or ISO 8601, inside the accepted time window")
    position: int | None = Field(default=None, ge=0, strict=True)

    @model_validator(mode="after")
    def _two_users(self) -> EventIn:
        if self.src == self.dst:
            raise ValueError(f"'src' and 'dst' are the same user {self.src!r}")
        return self

    def record(self) -> Event:
        return Event(self.type, self.src, self.dst, self.ts, self.position, dict(self.model_extra or {}))


def parse_event(obj: object) -> Event:
    """Validate one event object; ValueError naming the field at fault."""
    if not isinstance(obj, dict):
        raise ValueError(f"event must be a JSON object, got {type(obj).__name__}")
    try:
        return EventIn.model_validate(obj).record()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"field {field!r}: {message}" if field else message) from None
