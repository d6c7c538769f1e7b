"""An edge list read into numbered ids: each id a code (its place in `names`), the rows as typed arrays.

What `pymk eval` and the snapshot of an edge list read: neither needs a string a row. 8M rows kept as tuples of
strings took ~2.4 GB, ~1 GB this way (bench/RESULTS.md), and the snapshot is built from the codes with one
string lookup an id, not one a row (graph/snapshot/build.from_codes). Ids written as canonical decimal integers
(SNAP's and KONECT's lists) are parsed a block at once and numbered by one sort at the end, not looked up in a
dict of strings a row.
"""

from __future__ import annotations

import re
from array import array
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import numpy as np

from graph.edge_reader import EdgeBlock, EdgeRow, read_edge_blocks
from graph.readers import ByteCounter, RowError
from pymk.progress import progress_bar

PROGRESS_ROWS = 100_000   # rows read one by one between two calls of `progress`
# an id that is the decimal form of a non-negative int64 and of no other: "7", not "07", "+7" or "7.0"
_INTEGER = r"(?:0|[1-9][0-9]{0,17})"
_ONE_INTEGER = re.compile(_INTEGER)
_INTEGER_LINES = re.compile(rf"{_INTEGER}(?:\n{_INTEGER})*")


@dataclass(frozen=True)
class CodedEdges:
    """The good rows of an edge list, in file order: ids as codes into `names`, times in seconds (NaN unknown)."""

    names: list[str]
    src: np.ndarray   # int64
    dst: np.ndarray   # int64
    ts: np.ndarray    # float64
    removed: np.ndarray | None = None   # bool: the rows that remove their tie (a KONECT dynamic list); None: none

    def __len__(self) -> int:
        return int(self.src.size)

    def additions(self) -> CodedEdges:
        """The rows that add a tie, every removal left out: the ties as they formed, none ever ended."""
        return self if self.removed is None else self._rows(~self.removed)

    def standing(self) -> CodedEdges:
        """The rows of the ties that stand after every row, in file order: a tie's rows after its last removal
        (a tie removed and not added again is gone), no removal row."""
        return self if self.removed is None else self._rows(standing_rows(self.src, self.dst, self.removed))

    def _rows(self, keep: np.ndarray) -> CodedEdges:
        return CodedEdges(self.names, self.src[keep], self.dst[keep], self.ts[keep])


def standing_rows(src: np.ndarray, dst: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Which rows add a tie that no later row (in order) removes: ids `src`-`dst` as codes, a pair either way
    round; `removed`, the rows that remove their pair's tie."""
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    _, pair = np.unique(lo << 32 | hi, return_inverse=True)
    last_removal = np.full(int(pair.max(initial=-1)) + 1, -1, np.int64)
    np.maximum.at(last_removal, pair[removed], np.flatnonzero(removed))
    return ~removed & (np.arange(src.size) > last_removal[pair])


def named(names: list[str], codes: np.ndarray) -> list[str]:
    """The ids of `codes` (the same str objects, shared)."""
    return [names[c] for c in codes.tolist()]


def read_coded_edges(source: ByteCounter, on_bad: Callable[[RowError], None],
                     progress: Callable[[], None] | None = None) -> CodedEdges:
    """Every good row of `source` (graph/edge_reader.read_edge_blocks: the same rows, in order); each bad one is
    handed to `on_bad`. `progress` is called after each block and every `PROGRESS_ROWS` rows read alone."""
    ids = _Numbering()
    when = array("d")
    removals = array("q")   # the rows that remove a tie (graph/edge_reader.EdgeRow.removed)
    alone = 0
    for row in read_edge_blocks(source):
        if row.__class__ is EdgeBlock:
            if row.removed is not None:
                removals.extend((np.flatnonzero(row.removed) + len(when)).tolist())
            ids.add_block(row.src, row.dst)
            when.frombytes(row.times.tobytes())
            if progress is not None:
                progress()
        elif row.__class__ is EdgeRow:
            if row.removed:
                removals.append(len(when))
            ids.add(row.src, row.dst)
            when.append(np.nan if row.ts is None else row.ts)
            alone += 1
            if progress is not None and alone % PROGRESS_ROWS == 0:
                progress()
        else:
            on_bad(row)
    if progress is not None:
        progress()
    names, src, dst = ids.finish()
    removed = None
    if removals:
        removed = np.zeros(src.size, bool)
        removed[np.frombuffer(removals, np.int64)] = True
    return CodedEdges(names, src, dst, np.frombuffer(when, np.float64), removed)


def read_coded_file(path: Path, on_bad: Callable[[RowError], None], progress: bool = False,
                    desc: str | None = None) -> CodedEdges:
    """`read_coded_edges` of the file at `path`, with a bar of the bytes read when `progress`."""
    source = ByteCounter(path)
    with progress_bar(total=source.size, unit="B", unit_scale=True, desc=desc or path.name, enabled=progress,
                      mininterval=0.5) as bar:
        return read_coded_edges(source, on_bad, lambda: bar.update(source.bytes_read - bar.n))


def _integers(text: str, n: int) -> np.ndarray:
    """The `n` integers of `text`, one a line (checked by `_INTEGER_LINES`): parsed in C, ~5x `int` an id."""
    values = np.fromstring(text, dtype=np.int64, sep="\n")
    if values.size != n:
        raise ValueError(f"read {values.size} integers of {n} in a block of ids starting {text[:40]!r}")
    return values


class _Numbering:
    """The rows' ids as codes. While every id is a canonical integer, the rows keep the integers themselves
    (a block parsed at once) and `finish` numbers them by one sort; from the first other id on, every id is
    numbered through a dict of strings, those read so far included."""

    def __init__(self) -> None:
        self.src, self.dst = array("q"), array("q")
        self.code: defaultdict[str, int] | None = None   # None: the rows hold integer ids, not codes

    def add_block(self, src: list[str], dst: list[str]) -> None:
        if self.code is None:
            src_text, dst_text = "\n".join(src), "\n".join(dst)
            if _INTEGER_LINES.fullmatch(src_text) and _INTEGER_LINES.fullmatch(dst_text):
                self.src.frombytes(_integers(src_text, len(src)).tobytes())
                self.dst.frombytes(_integers(dst_text, len(dst)).tobytes())
                return
        code = self._strings()   # a new id is numbered on its first lookup (the dict's default), all in C
        self.src.extend(map(code.__getitem__, src))
        self.dst.extend(map(code.__getitem__, dst))

    def add(self, src: str, dst: str) -> None:
        if self.code is None and _ONE_INTEGER.fullmatch(src) and _ONE_INTEGER.fullmatch(dst):
            self.src.append(int(src))
            self.dst.append(int(dst))
            return
        code = self._strings()
        self.src.append(code[src])
        self.dst.append(code[dst])

    def _strings(self) -> defaultdict[str, int]:
        """The dict of codes, made on the first id that is not a canonical integer from the integers so far; an id
        it lacks gets the next code when first looked up (codes in first-seen order: only names[code] matters)."""
        if self.code is None:
            s, d = np.array(self.src, np.int64), np.array(self.dst, np.int64)
            values = np.unique(np.concatenate([s, d]))
            self.src = array("q", np.searchsorted(values, s).tobytes())
            self.dst = array("q", np.searchsorted(values, d).tobytes())
            self.code = defaultdict(count(values.size).__next__, ((str(v), i) for i, v in enumerate(values.tolist())))
        return self.code

    def finish(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The ids (each code's place) and the rows' codes."""
        s, d = np.frombuffer(self.src, np.int64), np.frombuffer(self.dst, np.int64)
        if self.code is not None:
            return list(self.code), s, d
        values, codes = np.unique(np.concatenate([s, d]), return_inverse=True)
        return [str(v) for v in values.tolist()], codes[:s.size], codes[s.size:]
