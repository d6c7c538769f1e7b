"""Many plain edge-list lines parsed at once: the fast path of `graph.edge_reader.read_edges`.

A block is taken only when every one of its lines is one the line-by-line reader would read to the same
tie: printable ASCII ids without quotes, commas or colons, separated all by spaces, by tabs or by commas,
a numeric time inside the accepted window, no self-loop. Any other block (a comment, a bad row, an ISO date,
an id of another alphabet) returns None and is read line by line, so its rows and errors are those of the
general reader, in file order. SNAP's and KONECT's lists are parsed 2.5-6x faster this way (bench/RESULTS.md).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from graph.records import MAX_ID_LENGTH
from graph.timestamps import TimeWindow

# printable ASCII but the space, '"' (a CSV quote), ',' (a separator) and ':' (a clock time's, which the line
# reader may join to the date before it); a line's first character is not '#' or '%' (a comment)
_CHAR = r"[\x21\x23-\x2b\x2d-\x39\x3b-\x7e]"
_ID = rf"{_CHAR}{{1,{MAX_ID_LENGTH}}}+"
_ANY = rf"{_CHAR}++"
_NUMBER = r"\d++(?:\.\d++)?+"
_SIGNED = rf"[+-]?+{_NUMBER}"   # a dynamic list's weight: +1 adds the tie, -1 removes it
# between two fields, as the line reader splits a line: spaces only (no tab in the line), a tab or a comma
# with spaces around it (they are stripped; two tabs or commas would make an empty field, kept under a header)
_SEPARATORS = (" ++", r" *+\t *+", r" *+, *+")


@dataclass(frozen=True)
class Layout:
    """Where a block's fields are: `width` fields a line, the ids at `src` and `dst`, the time at `ts`, a
    dynamic list's signed weight at `weight`."""

    width: int
    src: int
    dst: int
    ts: int | None
    weight: int | None = None


def layout(columns: tuple[int, int, int | None], header: bool, width: int, weight: int | None = None
           ) -> Layout | None:
    """The layout of lines of `width` fields under a header's `columns` (or none), if the line reader would
    read such a line as a tie: a headerless line has 2-4 fields, its time the last of 3 or 4. `weight`: the
    field of a dynamic list's signed weight, which every line must have."""
    src, dst, ts = columns
    if width <= max(src, dst) or (not header and width > 4) or (weight is not None and width <= weight):
        return None
    if not header:
        ts = 3 if width == 4 else 2
    return Layout(width, src, dst, ts if ts is not None and ts < width else None, weight)


@lru_cache(maxsize=64)
def _pattern(form: Layout) -> re.Pattern[str]:
    fields = [_ID if i in (form.src, form.dst) else _NUMBER if i == form.ts else _SIGNED if i == form.weight
              else _ANY for i in range(form.width)]
    fields[0] = rf"(?![#%]){fields[0]}"   # not a comment
    lines = "|".join(sep.join(fields) for sep in _SEPARATORS)
    return re.compile(rf"(?:[ \t\r]*+(?:{lines})[ \t\r]*+\n)*+", re.ASCII)


def parse_block(text: str, form: Layout, window: TimeWindow, latest: float
                ) -> tuple[list[str], list[str], np.ndarray | None, np.ndarray | None] | None:
    """(sources, targets, times in seconds or None, which rows remove their tie or None) of every line of `text`
    (whole lines, each ending in a line break), or None when any line must go the long way."""
    if _pattern(form).fullmatch(text) is None:
        return None
    tokens = text.replace(",", " ").split() if "," in text else text.split()
    src, dst = tokens[form.src::form.width], tokens[form.dst::form.width]
    if any(map(operator.eq, src, dst)):   # a self-loop: the line reader says which
        return None
    removed = None
    if form.weight is not None:
        signs = np.sign(np.fromiter(map(float, tokens[form.weight::form.width]), np.float64, len(src)))
        if not signs.all():   # a weight of 0 adds nothing and removes nothing: the line reader says which
            return None
        removed = signs < 0
    if form.ts is None:
        return src, dst, None, removed
    raw = tokens[form.ts::form.width]
    ts = np.fromiter(map(float, raw), np.float64, len(raw)) * window.unit_s   # as the line reader's float()
    if not ((ts >= window.earliest) & (ts <= latest)).all():
        return None
    return src, dst, ts, removed
