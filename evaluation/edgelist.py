"""An edge list read for evaluation: each pair's first time, and every timed row as an interaction;
or the same read from a published snapshot (a graph already in Neo4j, exported)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from graph.readers import ByteCounter, EdgeRow, no_edge_read, read_edges
from graph.snapshot import Snapshot, load_snapshot, unknown_zero_times
from graph.snapshot.format import EVENT_CODE
from graph.timestamps import FINER, OUTSIDE_WINDOW, PLAUSIBLE_EPOCH_S, set_time_window, time_window
from pymk.artifacts import ArtifactStore
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
    and a file without a single good row is an InputFormatError quoting the first bad one.

    A file none of whose times reads as seconds since 1970 (numbers past the clock) is read again in
    milliseconds, microseconds, then nanoseconds, and kept in the first unit whose times are
    plausible epoch times, with a warning: an offline evaluation of a downloaded graph should not
    need the unit said (PYMK_TIME_UNIT still says it, and ingestion into the live graph requires it).
    """
    try:
        return _read_ties(path)
    except InputFormatError as exc:
        window = time_window()
        if window.unit_s != 1.0 or OUTSIDE_WINDOW not in str(exc):
            raise
        for name, (setting, per_s) in FINER.items():
            set_time_window(replace(window, unit_s=1.0 / per_s))
            try:
                edges = _read_ties(path)
            except InputFormatError:
                continue
            finally:
                set_time_window(window)
            timed = edges.ts[np.isfinite(edges.ts)]
            if timed.size and np.median(timed) >= PLAUSIBLE_EPOCH_S:
                log.warning("%s: its times are not seconds since 1970; read them as %s (PYMK_TIME_UNIT=%s says "
                            "so without this guess)", path, name, setting)
                return edges
        raise


def _read_ties(path: Path) -> EdgeList:
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
        raise no_edge_read(path, first_bad)
    raw = np.fromiter(first.values(), np.float64, len(first))
    ts = unknown_zero_times(raw)   # the snapshot reads them so too (graph/snapshot/build.py)
    if ts is not raw:   # interactions at an unknown time have none to count in
        rows = [r for r in rows if r[2] != 0]
    said = None
    if repeats and rows:
        said = ([r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows], dtype=np.float64))
    return EdgeList([a for a, _ in first], [b for _, b in first], ts, said)


def snapshot_dir(path: Path) -> Path:
    """A snapshot version directory: `path` itself, or the version a snapshots root's CURRENT names."""
    store = ArtifactStore(path)
    return store.current() if store.current_version() is not None else path


def snapshot_ties(snap: Snapshot) -> EdgeList:
    """A snapshot's friendships, each at its `since` (NaN where unknown), and its interaction events
    (messages and other contacts; impressions and requests are not ties' evidence)."""
    ids = snap.id_strings
    src, dst, since = snap.ties()
    ev = snap.events
    said = None
    rows = np.flatnonzero(ev["type"] == EVENT_CODE["interaction"])
    if rows.size:
        said = ([ids[i] for i in ev["src"][rows].tolist()], [ids[i] for i in ev["dst"][rows].tolist()],
                np.asarray(ev["ts"][rows], dtype=np.float64))
    return EdgeList([ids[i] for i in src.tolist()], [ids[i] for i in dst.tolist()],
                    np.array(since, dtype=np.float64), said)


def read_source(path: Path) -> EdgeList:
    """An edge-list file's ties, or a snapshot directory's (a version, or a snapshots root)."""
    if path.is_dir():
        return snapshot_ties(load_snapshot(snapshot_dir(path)))
    return read_ties(path)
