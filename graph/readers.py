"""Streaming readers for the input formats of DESIGN.md: user CSVs and JSONL events (edge lists: graph/edge_reader.py).

Each yields parsed rows or `RowError`s (file and line), never holding the file in memory, and
reports how many bytes it has consumed so callers can show progress.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from graph.records import CATEGORICAL_FIELDS, Event, UserRecord, id_problem
from graph.textfile import ByteCounter
from graph.timestamps import parse_timestamp
from pymk.errors import InputFormatError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowError:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


MAX_LOGGED_REJECTS = 50
@dataclass(kw_only=True)
class RejectCounter:
    """Base of load reports: every refused row kept (file:line) for the report, the first few logged."""

    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)

    def reject(self, error: RowError) -> None:
        self.rejected += 1
        self.errors.append(error)
        if self.rejected <= MAX_LOGGED_REJECTS:
            log.warning("rejected %s", error)
        elif self.rejected == MAX_LOGGED_REJECTS + 1:
            log.warning("more rejected rows (latest in %s); see the report for all of them", error.path)


def _parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "y", "t"):
        return True
    if low in ("0", "false", "no", "n", "f", ""):
        return False
    raise ValueError(f"bad boolean {raw!r}")


def _parse_float(raw: str, name: str, lo: float, hi: float) -> float | None:
    if raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"bad {name} {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} {value} outside [{lo}, {hi}]")
    return value


def _user_from_row(row: dict[str, str]) -> UserRecord:
    uid = (row.get("id") or "").strip()
    if not uid:
        raise ValueError("empty id")
    if problem := id_problem(uid):
        raise ValueError(problem)
    fields: dict[str, object] = {name: (row.get(name) or "").strip() or None for name in CATEGORICAL_FIELDS}
    created = (row.get("created_at") or "").strip()
    fields["created_at"] = parse_timestamp(created) if created else None
    fields["lat"] = _parse_float(row.get("lat") or "", "lat", -90.0, 90.0)
    fields["lon"] = _parse_float(row.get("lon") or "", "lon", -180.0, 180.0)
    if (fields["lat"] is None) != (fields["lon"] is None):
        raise ValueError("lat and lon must be given together")
    for flag in ("opted_out", "deactivated"):
        value = row.get(flag)
        fields[flag] = None if value is None or value.strip() == "" else _parse_bool(value)
    return UserRecord(id=uid, **fields)  # type: ignore[arg-type]


def _nonblank(source: ByteCounter) -> Iterator[tuple[int, str | RowError]]:
    """Non-blank lines, with undecodable ones turned into RowErrors."""
    for number, text in source.lines():
        if text is None:
            yield number, RowError(str(source.path), number, "line is not valid UTF-8")
        elif text.strip():
            yield number, text


def read_users(source: ByteCounter, ids_only: bool = False) -> Iterator[UserRecord | RowError]:
    """CSV with a header containing `id` and optional profile columns (unknown ones are ignored). With
    `ids_only` (deletions) the other columns are not read, and any non-empty id is taken: an account with an
    id written before ids were checked can still be deleted."""
    path = str(source.path)
    header: list[str] | None = None
    for number, text in _nonblank(source):
        if isinstance(text, RowError):
            yield text
            continue
        values = next(csv.reader(io.StringIO(text)))
        if header is None:
            header = [h.strip().lower() for h in values]
            if "id" not in header:
                raise InputFormatError(f"{path}:{number}: users CSV header needs an 'id' column (got {values})")
            continue
        if len(values) != len(header):
            yield RowError(path, number, f"expected {len(header)} fields, got {len(values)}")
            continue
        row = dict(zip(header, values, strict=True))
        if ids_only:
            uid = row["id"].strip()
            yield UserRecord(id=uid) if uid else RowError(path, number, "empty id")
            continue
        try:
            yield _user_from_row(row)
        except ValueError as exc:
            yield RowError(path, number, str(exc))


def read_events(source: ByteCounter) -> Iterator[tuple[int, Event] | RowError]:
    """JSONL, one event per line: {"type", "src", "dst", "ts", ...}. Extra keys are kept."""
    from graph.event_schema import parse_event  # the event model needs this module's timestamp parser

    path = str(source.path)
    for number, text in _nonblank(source):
        if isinstance(text, RowError):
            yield text
            continue
        try:
            yield number, parse_event(json.loads(text))
        except (ValueError, TypeError) as exc:
            yield RowError(path, number, str(exc))
