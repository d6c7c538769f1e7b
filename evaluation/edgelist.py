"""An edge list read for evaluation: each pair's first time, and every timed row as an interaction."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graph.readers import ByteCounter, EdgeRow, read_edges
from pymk.errors import InputFormatError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeList:
    """Undirected ties, each at the time its pair first appears (repeated pairs are one tie), and,
    where the file repeats pairs (a message graph), every timed row as an interaction."""

    src: list[str]
    dst: list[str]
    ts: np.ndarray
    said: tuple[list[str], list[str], np.ndarray] | None   # interactions: src, dst, ts


def read_ties(path: Path) -> EdgeList:
    """The file's ties; bad rows are logged with their line (the first few, then a count) and skipped,
    and a file without a single good row is an InputFormatError quoting the first bad one."""
    first: dict[tuple[str, str], float] = {}
    rows: list[tuple[str, str, float]] = []
    repeats = False
    bad, first_bad = 0, None
    for row in read_edges(ByteCounter(path)):
        if not isinstance(row, EdgeRow):
            bad += 1
            first_bad = first_bad or row
            if bad <= 5:
                log.warning("skipped %s", row)
            continue
        key = (row.src, row.dst) if row.src < row.dst else (row.dst, row.src)
        ts = np.nan if row.ts is None else row.ts
        repeats |= key in first
        if key not in first or ts < first[key]:
            first[key] = ts
        if row.ts is not None:
            rows.append((row.src, row.dst, row.ts))
    if bad:
        log.warning("%s: %d bad rows skipped", path, bad)
    if not first:
        raise InputFormatError(f"{path}: no edge could be read" + (f" (first bad row: {first_bad})" if bad else ""))
    ts = np.fromiter(first.values(), np.float64, len(first))
    if _zero_is_unknown(ts):   # e.g. links older than a crawl, stamped 0 among epoch times
        log.warning("%s: %d ties at time 0 among times from %s on: read as ties of unknown time", path,
                    int((ts == 0).sum()), time.strftime("%Y-%m-%d", time.gmtime(ts[ts > 0].min())))
        ts[ts == 0] = np.nan
        rows = [r for r in rows if r[2] != 0]
    said = None
    if repeats and rows:
        said = ([r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows], dtype=np.float64))
    return EdgeList([a for a, _ in first], [b for _, b in first], ts, said)


def _zero_is_unknown(ts: np.ndarray) -> bool:
    """Time 0 stands for "unknown" where every other time is a date from 1980 on (no social graph's tie
    formed in January 1970); a graph whose clock starts at 0 (relative seconds) keeps its zeros."""
    zero = ts == 0
    other = ts[np.isfinite(ts) & ~zero]
    return bool(zero.any() and other.size and other.min() >= 315_532_800)
