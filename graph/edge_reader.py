"""The edge-list reader: SNAP's, KONECT's, MatrixMarket's and CSV layouts, a row or a block of rows at a time.

Each bad line is a `RowError` (file and line); the columns come from a header line, SNAP's last comment line,
the file's format line, or their positions (docs/ingestion.md).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from graph.edge_blocks import layout, parse_block
from graph.edge_columns import declared_columns, header_columns, looks_like_header, split_fields
from graph.readers import RowError
from graph.records import id_problem
from graph.textfile import CHUNK_BYTES, ByteCounter, chunk_lines
from graph.timestamps import NULL_TIMES, PLAUSIBLE_EPOCH_S, parse_timestamp, time_window
from pymk.errors import InputFormatError

log = logging.getLogger(__name__)

# KONECT's first line: the graph's kind and its edges' weights (its lines are `FROM TO [WEIGHT [TIME]]`)
_KONECT_FORMAT = re.compile(r"%\s*(sym|asym|bip)\s+(unweighted|positive|posweighted|signed|multisigned|weighted|"
                            r"multiweighted|dynamic|multiposweighted)\b", re.IGNORECASE)


# KONECT's dynamic lists: the third field is +1 where the tie is added, -1 where it is removed
_WEIGHT = 2

# what a bad time of a file read by position adds: the field may be no time at all
_BY_POSITION = " (fields read by position as 'src dst ts' or 'src dst weight ts'; PYMK_EDGE_COLUMNS names them)"


@dataclass(frozen=True)
class EdgeRow:
    line: int
    src: str
    dst: str
    ts: float | None
    removed: bool = False   # a KONECT dynamic list's removal of the tie (weight -1), not a tie


def no_edge_read(path: object, first_bad: RowError | None) -> InputFormatError:
    """The error for an edge list without one readable edge, quoting its first bad row if it had one."""
    return InputFormatError(f"{path}: no edge could be read" + (f" (first bad row: {first_bad})" if first_bad else ""))


@dataclass(frozen=True)
class EdgeBlock:
    """Consecutive edge rows parsed at once (lines `first_line` on, none of them bad): the ids as written,
    the times in seconds (None: the lines have no time column)."""

    first_line: int
    src: list[str]
    dst: list[str]
    ts: np.ndarray | None
    removed: np.ndarray | None = None   # bool: the rows of a dynamic list that remove their tie

    def __len__(self) -> int:
        return len(self.src)

    @property
    def times(self) -> np.ndarray:
        """The times in seconds, NaN (unknown) for every row of lines without a time column."""
        return np.full(len(self.src), np.nan) if self.ts is None else self.ts

    def rows(self) -> Iterator[EdgeRow]:
        times = repeat(None) if self.ts is None else self.ts.tolist()
        removed = repeat(False) if self.removed is None else self.removed.tolist()
        for i, (src, dst, ts, gone) in enumerate(zip(self.src, self.dst, times, removed, strict=False)):
            yield EdgeRow(self.first_line + i, src, dst, ts, gone)


def read_edges(source: ByteCounter, chunk_bytes: int | None = CHUNK_BYTES) -> Iterator[EdgeRow | RowError]:
    """SNAP-style `src dst [ts]` or `src dst weight ts` (whitespace or commas, `#` or `%` comments; the
    weight is not read, but for the sign of a KONECT dynamic list's: `EdgeRow.removed`), or CSV with a header
    naming the columns, or SNAP's last comment line before the first tie when it names every field of that tie.
    `chunk_bytes`: as `read_edge_blocks`."""
    for item in read_edge_blocks(source, chunk_bytes):
        if item.__class__ is EdgeBlock:
            yield from item.rows()
        else:
            yield item


def read_edge_blocks(source: ByteCounter, chunk_bytes: int | None = CHUNK_BYTES
                     ) -> Iterator[EdgeBlock | EdgeRow | RowError]:
    """What `read_edges` reads, with runs of plain lines as `EdgeBlock`s (graph/edge_blocks.py): the same
    rows and errors in the same order. The file is read in chunks of about `chunk_bytes`; the first one line
    by line (a header, a node count), each later one as a block where it can be. None: every line alone."""
    lines = _EdgeLines(str(source.path))
    if chunk_bytes is None:
        for number, text in source.lines():
            if (out := lines.read(number, text)) is not None:
                yield out
        return
    for number, chunk in source.chunks(chunk_bytes):
        block = lines.block(number, chunk)
        if block is not None:
            yield block
            continue
        for at, text in chunk_lines(number, chunk):
            if (out := lines.read(at, text)) is not None:
                yield out


class _EdgeLines:
    """The edge-list reader's state (the header's columns, if any) and its rules for one line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.columns: tuple[int, int, int | None] = (0, 1, 2)
        self.header: tuple[int, int, int | None] | None = None
        # the columns named by the last comment line before the first tie, and how many it names: SNAP's
        # `# FromNodeId\tToNodeId\tSign` (soc-sign-epinions, soc-sign-Slashdot: a sign, not a time)
        self.commented: tuple[tuple[int, int, int | None], int] | None = None
        self.declared = declared_columns()   # PYMK_EDGE_COLUMNS: the fields of a file without a header line
        self.weighted = False   # KONECT's `% sym weighted` or a MatrixMarket file: `src dst weight [ts]`, no time in 3
        self.dynamic = False   # KONECT's `% asym dynamic`: the weight's sign adds (+) or removes (-) the tie
        self.size_line = False   # a MatrixMarket file's first line after its comments: rows, columns, entries
        self.first = True
        self.window = time_window()
        self.latest = time.time() + self.window.max_future_s

    def block(self, number: int, chunk: bytes) -> EdgeBlock | None:
        """The chunk's lines as one block, or None when they must be read one by one."""
        if self.first or not chunk.endswith(b"\n"):
            return None
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            return None
        head = text[:text.find("\n")].strip()
        width = len(split_fields(head, keep_empty=self.header is not None)) if head else 0
        form = layout(self.columns, self.header is not None, width, _WEIGHT if self.dynamic else None)
        parsed = parse_block(text, form, self.window, self.latest) if form is not None else None
        return None if parsed is None else EdgeBlock(number, *parsed)

    def read(self, number: int, text: str | None) -> EdgeRow | RowError | None:
        """Line `number`'s tie, its error, or None (blank, a comment, the header)."""
        path, hint = self.path, ""   # on a first line of names only: why it may be a header the reader did not map

        def bad(message: str) -> RowError:
            return RowError(path, number, message + hint)

        if text is None:
            return RowError(path, number, "line is not valid UTF-8")
        stripped = text.strip()
        if not stripped or stripped[0] in "#%":
            if self.first and stripped:
                named = split_fields(stripped.lstrip("#%").strip(), keep_empty=False)
                columns = header_columns(named)
                self.commented = (columns, len(named)) if columns is not None else None
                matrix_market = stripped.lower().startswith("%%matrixmarket")   # its third field is a value
                konect = _KONECT_FORMAT.match(stripped)
                if konect is not None and konect.group(1).lower() == "bip":
                    raise InputFormatError(
                        f"{path}:{number}: {stripped!r} marks a KONECT bipartite list: its two columns number two "
                        "kinds of node (users and groups, items, ...) from 1 each, so reading it as ties between "
                        "people would make one person of user 7 and group 7")
                self.weighted = self.weighted or matrix_market or konect is not None
                self.dynamic = self.dynamic or (konect is not None and konect.group(2).lower() == "dynamic")
                self.size_line = self.size_line or matrix_market
            return None
        tokens = split_fields(stripped, keep_empty=self.header is not None)
        if self.size_line:
            self.size_line = False
            log.info("%s:%d: %s read as a MatrixMarket size line", path, number, stripped)
            return None
        if self.first:
            self.first = False
            hint = self._first_tie(number, tokens)
            if hint is None:
                return None
        src_i, dst_i, ts_i = self.columns
        if len(tokens) <= max(src_i, dst_i):
            return bad(f"expected at least 2 fields 'src dst [ts]', got {stripped!r}")
        if self.header is None and len(tokens) > 4:  # a CSV with a header may carry more columns; headerless not
            return bad(f"expected 'src dst [weight] [ts]', got {len(tokens)} fields in {stripped!r}")
        if self.header is None:   # 'src dst ts', or 'src dst weight ts' as SNAP's signed and KONECT's timed lists
            ts_i = 3 if len(tokens) == 4 else 2
        ts: float | None = None
        if ts_i is not None and ts_i < len(tokens) and tokens[ts_i].lower() not in NULL_TIMES:
            try:
                ts = float(tokens[ts_i]) * self.window.unit_s  # fast path; ISO strings and bad values the long way
                if not self.window.earliest <= ts <= self.latest:
                    raise ValueError
            except ValueError:
                try:
                    ts = parse_timestamp(tokens[ts_i])
                except ValueError as exc:
                    return bad(str(exc) + (_BY_POSITION if self.header is None else ""))
        src, dst = tokens[src_i], tokens[dst_i]
        if not src or not dst:
            return bad(f"empty src or dst in {stripped!r}")
        if problem := id_problem(src) or id_problem(dst):
            return bad(problem)
        if src == dst:
            return bad(f"self-loop {src!r} -> {dst!r}")
        if self.dynamic:
            sign = _sign(tokens[_WEIGHT]) if len(tokens) > _WEIGHT else None
            if sign is None:
                return bad(f"a dynamic list's row is 'src dst weight [ts]', its weight +1 (tie added) or -1 (tie "
                           f"removed); got {stripped!r}")
            return EdgeRow(number, src, dst, ts, removed=sign < 0)
        return EdgeRow(number, src, dst, ts)

    def _first_tie(self, number: int, tokens: list[str]) -> str | None:
        """The columns, from the first line after the comments: None when that line is no tie (a header, a
        node count), else the hint its errors carry."""
        path = self.path
        self.header = header_columns(tokens)
        if self.header is not None:
            self.columns = self.header
            return None
        if len(tokens) == 1 and tokens[0].isdigit():
            log.info("%s:%d: single number %s read as a node-count header", path, number, tokens[0])
            return None
        named = self.commented
        columns = (self.declared[0] if self.declared is not None
                   else named[0] if named is not None and named[1] == len(tokens)   # as many fields as it names
                   else (0, 1, None) if self.weighted and len(tokens) == 3
                   # SNAP's Higgs activity, `userA userB timestamp interaction`; `src dst ts weight`
                   else (0, 1, 2) if len(tokens) == 4 and _a_date(tokens[2]) and not _a_date(tokens[3])
                   else None)
        if columns is not None:
            self.header = self.columns = columns
            ts_i = columns[2]
            log.info("%s: columns as %s: source %d, target %d, %s", path,
                     "PYMK_EDGE_COLUMNS names them" if self.declared else "its comments or first tie name them",
                     self.columns[0] + 1, self.columns[1] + 1,
                     f"time {ts_i + 1}" if ts_i is not None else "no time (ties of unknown time)")
        if looks_like_header(tokens):   # read as a tie if it is one; if not, say why it may be a header
            return ("; if this is a header, it names no source and target column (named e.g. "
                    "src/source*/from*, dst/target*/to*, ts/*time*/*date*)")
        return ""


def _sign(token: str) -> int | None:
    """-1 or +1 as the number `token` is below or above zero; None for zero or no number."""
    try:
        value = float(token)
    except ValueError:
        return None
    return -1 if value < 0 else 1 if value > 0 else None


def _a_date(token: str) -> bool:
    """Whether `token` reads as a time after 1973: a date, not a weight or a count read as seconds."""
    try:
        return parse_timestamp(token) >= PLAUSIBLE_EPOCH_S
    except ValueError:
        return False
