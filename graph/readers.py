"""Streaming readers for the input formats of DESIGN.md: edge lists, user CSVs, JSONL events.

Each yields parsed rows or `RowError`s (file and line), never holding the file in memory, and
reports how many bytes it has consumed so callers can show progress.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from graph.records import CATEGORICAL_FIELDS, Event, UserRecord
from graph.textfile import ByteCounter
from pymk.errors import InputFormatError

log = logging.getLogger(__name__)

SRC_NAMES = {"src", "source", "from", "u", "src_id", "source_id", "sender", "user1", "node1", "id1", "follower"}
DST_NAMES = {"dst", "target", "to", "v", "dst_id", "target_id", "destination", "receiver", "recipient", "user2",
             "node2", "id2", "followee"}
TS_NAMES = {"ts", "time", "timestamp", "since", "created_at", "date", "datetime", "epoch", "unixtime"}
# a header word that names the column whatever follows it: SOURCE_SUBREDDIT, from_user_id, Timestamp (UTC)
SRC_FIRST_WORDS = {"src", "source", "from", "sender"}
DST_FIRST_WORDS = {"dst", "target", "to", "destination", "receiver", "recipient"}
TS_WORDS = {"ts", "time", "timestamp", "date", "datetime", "epoch", "unixtime"}
NULL_TIMES = {"", "\\n", "null", "none", "na", "n/a"}   # a time column's "unknown" (SQL's \N): the tie, no time


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


@dataclass(frozen=True)
class EdgeRow:
    line: int
    src: str
    dst: str
    ts: float | None


@dataclass(frozen=True)
class TimeWindow:
    """The timestamps accepted anywhere (files, the API, the event log): none before `earliest`
    (default 1970-01-01), none more than `max_future_s` ahead of the clock (default a day)."""

    earliest: float = 0.0
    max_future_s: float = 86_400.0

    def check(self, ts: float, raw: object) -> float:
        latest = time.time() + self.max_future_s
        if not self.earliest <= ts <= latest:
            hint = (" (milliseconds? times are read as seconds since 1970)"
                    if ts >= 1e11 and self.earliest <= ts / 1000 <= latest else "")
            raise ValueError(f"timestamp {raw!r} is outside the accepted window [{self.earliest:.0f}, now + "
                             f"{self.max_future_s:.0f} s]{hint}")
        return ts


_WINDOW = [TimeWindow()]


def set_time_window(window: TimeWindow) -> None:
    """Use `window` for every timestamp read from now on (the CLI and the API set it from Settings)."""
    _WINDOW[0] = window


def time_window() -> TimeWindow:
    return _WINDOW[0]


def parse_timestamp(raw: str) -> float:
    """Epoch seconds from a number or an ISO 8601 string inside the accepted window; ValueError
    quoting `raw` otherwise."""
    text = raw.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"bad timestamp {raw!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return _WINDOW[0].check(dt.timestamp(), raw)
    if not math.isfinite(value):
        raise ValueError(f"bad timestamp {raw!r}")
    return _WINDOW[0].check(value, raw)


def _column_words(name: str) -> list[str]:
    return [w for w in re.split(r"[^0-9a-z]+", name.strip().strip("\"'").lower()) if w]


def _header_columns(tokens: list[str]) -> tuple[int, int, int | None] | None:
    """Column positions of src, dst and ts if `tokens` is a header line, else None. A name matches
    exactly (`src`, `user1`, `created_at`) or by its first word (`SOURCE_SUBREDDIT`, `from_id`); a time
    column by any of its words (`TIMESTAMP`, `event_time`, `Date (UTC)`)."""
    words = [_column_words(t) for t in tokens]
    by_words = _looks_like_header(tokens)   # a first row with a number in it is data: `src_1 dst_2 1500`
    joined = ["_".join(w) for w in words]

    def find(names: set[str], first_words: set[str], any_words: set[str] = frozenset()) -> int | None:
        exact = next((i for i, name in enumerate(joined) if name in names), None)
        if exact is not None or not by_words:
            return exact
        return next((i for i, w in enumerate(words)
                     if w and (w[0] in first_words or any(x in any_words for x in w))), None)

    src = find(SRC_NAMES, SRC_FIRST_WORDS)
    dst = find(DST_NAMES, DST_FIRST_WORDS)
    if src is None or dst is None or src == dst:
        return None
    ts = find(TS_NAMES, set(), TS_WORDS)
    return src, dst, (None if ts in (src, dst) else ts)


def _looks_like_header(tokens: list[str]) -> bool:
    """No field is a number: a header, or a first row of names (only told apart when the row is bad)."""
    def number(t: str) -> bool:
        try:
            float(t)
        except ValueError:
            return False
        return True
    return len(tokens) >= 2 and not any(number(t) for t in tokens)


def read_edges(source: ByteCounter) -> Iterator[EdgeRow | RowError]:
    """SNAP-style `src dst [ts]` or `src dst weight ts` (whitespace or commas, `#` or `%` comments; the
    weight is not read), or CSV with a header naming the columns."""
    path = str(source.path)
    columns: tuple[int, int, int | None] = (0, 1, 2)
    header = None
    first = True
    window = _WINDOW[0]
    latest = time.time() + window.max_future_s
    for number, text in source.lines():
        if text is None:
            yield RowError(path, number, "line is not valid UTF-8")
            continue
        stripped = text.strip()
        if not stripped or stripped[0] in "#%":
            continue
        tokens = _fields(stripped, keep_empty=header is not None)
        if first:
            first = False
            header = _header_columns(tokens)
            if header is not None:
                columns = header
                continue
            if len(tokens) == 1 and tokens[0].isdigit():
                log.info("%s:%d: single number %s read as a node-count header", path, number, tokens[0])
                continue
            if _looks_like_header(tokens) and not _valid_headerless(tokens):
                yield RowError(path, number, f"a header that names no source and target column: {stripped!r} "
                                             f"(named e.g. src/source*/from*, dst/target*/to*, ts/*time*/*date*)")
                continue
        src_i, dst_i, ts_i = columns
        if len(tokens) <= max(src_i, dst_i):
            yield RowError(path, number, f"expected at least 2 fields 'src dst [ts]', got {stripped!r}")
            continue
        if header is None and len(tokens) > 4:  # a CSV with a header may carry more columns; headerless lines not
            yield RowError(path, number, f"expected 'src dst [weight] [ts]', got {len(tokens)} fields in {stripped!r}")
            continue
        if header is None:   # 'src dst ts', or 'src dst weight ts' as SNAP's signed and KONECT's timed lists
            ts_i = 3 if len(tokens) == 4 else 2
        ts: float | None = None
        if ts_i is not None and ts_i < len(tokens) and tokens[ts_i].lower() not in NULL_TIMES:
            try:
                ts = float(tokens[ts_i])  # fast path; ISO strings and bad values go the long way
                if not window.earliest <= ts <= latest:
                    raise ValueError
            except ValueError:
                try:
                    ts = parse_timestamp(tokens[ts_i])
                except ValueError as exc:
                    yield RowError(path, number, str(exc))
                    continue
        src, dst = tokens[src_i], tokens[dst_i]
        if not src or not dst:
            yield RowError(path, number, f"empty src or dst in {stripped!r}")
            continue
        if src == dst:
            yield RowError(path, number, f"self-loop {src!r} -> {dst!r}")
            continue
        yield EdgeRow(number, src, dst, ts)


def _valid_headerless(tokens: list[str]) -> bool:
    """Whether `tokens` read as a headerless `src dst [weight] [ts]` row."""
    if len(tokens) > 4:
        return False
    if len(tokens) < 3 or tokens[-1].lower() in NULL_TIMES:
        return True
    try:
        parse_timestamp(tokens[-1])
    except ValueError:
        return False
    return True


def _fields(line: str, keep_empty: bool) -> list[str]:
    """A line's fields: tab-separated if it has a tab (fields may hold spaces and commas, as a TSV's
    date-times do), else comma-separated if it has a comma, else whitespace-separated."""
    if "\t" in line:
        fields = [f.strip() for f in line.split("\t")]
    elif "," in line:
        fields = [f.strip() for f in line.split(",")]
    else:
        return line.split()
    return fields if keep_empty else [f for f in fields if f]


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


def read_users(source: ByteCounter) -> Iterator[UserRecord | RowError]:
    """CSV with a header containing `id` and optional profile columns (unknown ones are ignored)."""
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
        try:
            yield _user_from_row(dict(zip(header, values, strict=True)))
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
