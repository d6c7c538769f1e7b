"""An edge list read for evaluation: each pair's first time, and every timed row as an interaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graph.readers import ByteCounter, EdgeRow, read_edges
from graph.snapshot import unknown_zero_times
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
    raw = np.fromiter(first.values(), np.float64, len(first))
    ts = unknown_zero_times(raw)   # the snapshot reads them so too (graph/snapshot/build.py)
    if ts is not raw:   # interactions at an unknown time have none to count in
        rows = [r for r in rows if r[2] != 0]
    said = None
    if repeats and rows:
        said = ([r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows], dtype=np.float64))
    return EdgeList([a for a, _ in first], [b for _, b in first], ts, said)

