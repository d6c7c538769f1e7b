"""The columns of an edge list's lines: a header's names, the field separator."""

from __future__ import annotations

import csv
import re

SRC_NAMES = {"src", "source", "from", "u", "src_id", "source_id", "sender", "user1", "node1", "id1", "follower"}
DST_NAMES = {"dst", "target", "to", "v", "dst_id", "target_id", "destination", "receiver", "recipient", "user2",
             "node2", "id2", "followee", "tgt", "dest"}
TS_NAMES = {"ts", "t", "time", "timestamp", "since", "created_at", "date", "datetime", "epoch", "unixtime", "unixts"}
# a header word that names the column whatever follows it: SOURCE_SUBREDDIT, from_user_id, Timestamp (UTC)
SRC_FIRST_WORDS = {"src", "source", "from", "sender"}
DST_FIRST_WORDS = {"dst", "target", "to", "destination", "receiver", "recipient", "tgt", "dest"}
TS_WORDS = {"ts", "time", "timestamp", "date", "datetime", "epoch", "unixtime", "unixts"}


def _column_words(name: str) -> list[str]:
    """A column name's words, camelCase split too: `FromNodeId` -> from, node, id."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name.strip().strip("\"'"))
    return [w for w in re.split(r"[^0-9a-z]+", spaced.lower()) if w]


def header_columns(tokens: list[str]) -> tuple[int, int, int | None] | None:
    """Column positions of src, dst and ts if `tokens` is a header line, else None. A name matches
    exactly (`src`, `user1`, `created_at`) or by its first word (`SOURCE_SUBREDDIT`, `from_id`); a time
    column by any of its words (`TIMESTAMP`, `event_time`, `Date (UTC)`)."""
    words = [_column_words(t) for t in tokens]
    by_words = looks_like_header(tokens)   # a first row with a number in it is data: `src_1 dst_2 1500`
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


def looks_like_header(tokens: list[str]) -> bool:
    """No field is a number: a header, or a first row of names (told apart by whether it reads as a tie)."""
    def number(t: str) -> bool:
        try:
            float(t)
        except ValueError:
            return False
        return True
    return len(tokens) >= 2 and not any(number(t) for t in tokens)


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CLOCK = re.compile(r"\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?", re.IGNORECASE)


def split_fields(line: str, keep_empty: bool) -> list[str]:
    """A line's fields: tab-separated if it has a tab (fields may hold spaces and commas, as a TSV's
    date-times do), else comma-separated if it has a comma, else whitespace-separated. Fields may be
    quoted as CSV quotes them ("a","b"); a whitespace-separated date followed by a clock time is one
    field (`u v 2004-04-15 10:22:33`)."""
    sep = "\t" if "\t" in line else "," if "," in line else None
    if sep is None:
        fields = line.split()
        if '"' in line:
            fields = next(csv.reader([" ".join(fields)], delimiter=" "))
        for i in range(len(fields) - 2, -1, -1) if ":" in line else ():
            if _DATE.fullmatch(fields[i]) and _CLOCK.fullmatch(fields[i + 1]):
                fields[i:i + 2] = [f"{fields[i]} {fields[i + 1]}"]
        return fields
    fields = next(csv.reader([line], delimiter=sep)) if '"' in line else line.split(sep)
    fields = [f.strip() for f in fields]
    return fields if keep_empty else [f for f in fields if f]


_DECLARED: list[tuple[str, ...] | None] = [None]


def set_declared_columns(fields: tuple[str, ...] | None) -> None:
    """Read every edge list without a header line by these fields from now on (Settings.edge_columns,
    PYMK_EDGE_COLUMNS: `src`, `dst`, `ts` and fields not read, by position; None: each file says)."""
    _DECLARED[0] = fields


def declared_columns() -> tuple[tuple[int, int, int | None], int] | None:
    """The declared fields as (src, dst, ts) positions and how many there are, or None."""
    fields = _DECLARED[0]
    if fields is None:
        return None
    return (fields.index("src"), fields.index("dst"), fields.index("ts") if "ts" in fields else None), len(fields)
