"""An edge list read for evaluation: each pair's first time, and every timed row as an interaction;
or the same read from a published snapshot (a graph already in Neo4j, exported)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from graph.coded_edges import named, read_coded_file
from graph.edge_reader import no_edge_read
from graph.readers import RowError
from graph.snapshot import Snapshot, load_snapshot, tie_times, unknown_times
from graph.snapshot.format import EVENT_CODE
from graph.timestamps import FINER, OUTSIDE_WINDOW, PLAUSIBLE_EPOCH_S, set_time_window, time_window
from pymk.artifacts import ArtifactStore
from pymk.errors import InputFormatError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeList:
    """Undirected ties, each at the time its pair first appears (repeated pairs are one tie), and,
    where the file repeats pairs (a message graph), every timed row as an interaction. Ids are codes
    into `names` (int64 arrays): a graph of tens of millions of rows is never a string a row."""

    names: list[str]
    src: np.ndarray
    dst: np.ndarray
    ts: np.ndarray
    said: tuple[np.ndarray, np.ndarray, np.ndarray] | None   # interactions: src, dst (codes), ts

    def named(self, codes: np.ndarray) -> list[str]:
        """The ids of `codes` (the same str objects, shared)."""
        return named(self.names, codes)


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
    bad = []

    def skip(row: RowError) -> None:
        bad.append(row)
        if len(bad) <= 5:
            log.warning("skipped %s", row)

    edges = read_coded_file(path, skip)
    if bad:
        log.warning("%s: %d bad rows skipped", path, len(bad))
    dynamic = edges.removed is not None
    if dynamic:   # the graph at a cut must not know which of its ties end after it
        log.warning("%s: %d rows of a dynamic list remove a tie; the evaluation reads each tie from its first "
                    "addition and never ends one", path, int(edges.removed.sum()))
        edges = edges.additions()
    if not len(edges):
        raise no_edge_read(path, bad[0] if bad else None)
    s, d, t = edges.src, edges.dst, edges.ts
    lo, hi, first, raw = first_ties(edges.names, s, d, t)
    ts = tie_times(raw)   # the snapshot reads them so too (graph/snapshot/build.py)
    said = None
    timed = ~np.isnan(t) & ~unknown_times(t)[0]   # interactions at an unknown time have none to count in
    # pairs repeat (a message graph): every timed row is an interaction; in a dynamic list, a tie added again
    if first.size < t.size and timed.any() and not dynamic:
        said = (s[timed], d[timed], t[timed])
    return EdgeList(edges.names, lo, hi, ts, said)


def first_ties(names: list[str], s: np.ndarray, d: np.ndarray, t: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each undirected pair of the rows `s`-`d` (codes into `names`) once, in order of first appearance, the
    lower id (as strings compare) first: (low codes, high codes, first rows, time). A pair's time is its
    earliest row's, or NaN (unknown) where its first row has none."""
    rank = np.empty(len(names), np.int64)
    rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    swap = rank[s] > rank[d]
    lo, hi = np.where(swap, d, s), np.where(swap, s, d)
    _, first, pair = np.unique(lo << 32 | hi, return_index=True, return_inverse=True)
    earliest = np.full(first.size, np.inf)
    np.minimum.at(earliest, pair, np.where(np.isnan(t), np.inf, t))
    order = np.argsort(first, kind="stable")
    first = first[order]
    return lo[first], hi[first], first, np.where(np.isnan(t[first]), np.nan, earliest[order])


def snapshot_dir(path: Path) -> Path:
    """A snapshot version directory: `path` itself, or the version a snapshots root's CURRENT names."""
    store = ArtifactStore(path)
    return store.current() if store.current_version() is not None else path


def snapshot_ties(snap: Snapshot) -> EdgeList:
    """A snapshot's friendships, each at its `since` (NaN where unknown), and its interaction events
    (messages and other contacts; impressions and requests are not ties' evidence); codes are its indices."""
    src, dst, since = snap.ties()
    ev = snap.events
    said = None
    rows = np.flatnonzero(ev["type"] == EVENT_CODE["interaction"])
    if rows.size:
        said = (ev["src"][rows].astype(np.int64), ev["dst"][rows].astype(np.int64),
                np.asarray(ev["ts"][rows], dtype=np.float64))
    return EdgeList(snap.id_strings, np.asarray(src, np.int64), np.asarray(dst, np.int64),
                    np.array(since, dtype=np.float64), said)


def read_source(path: Path) -> EdgeList:
    """An edge-list file's ties, or a snapshot directory's (a version, or a snapshots root)."""
    if path.is_dir():
        return snapshot_ties(load_snapshot(snapshot_dir(path)))
    return read_ties(path)
