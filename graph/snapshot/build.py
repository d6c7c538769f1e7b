"""Build snapshots straight from an edge list file or pairs, and views of one as of a time (the export
from the graph store is graph/snapshot/export.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from graph.coded_edges import read_coded_file
from graph.edge_reader import no_edge_read
from graph.readers import RejectCounter
from graph.snapshot.format import EVENT_CODE, Snapshot, empty_columns

log = logging.getLogger(__name__)
EPOCH_1980 = 315_532_800.0


def build_csr(n: int, src: np.ndarray, dst: np.ndarray, ts: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric CSR from an edge list: duplicates merged (earliest ts kept), self loops dropped.

    Returns (indptr int64 [n+1], indices int32 sorted within each row, since float64).
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    ts = np.full(src.shape, np.nan) if ts is None else tie_times(np.asarray(ts, dtype=np.float64))
    keep = src != dst
    a = np.concatenate([src[keep], dst[keep]])
    b = np.concatenate([dst[keep], src[keep]])
    t = np.concatenate([ts[keep], ts[keep]])
    key = a * n + b
    order = np.lexsort((t, key))  # by pair, then earliest time first (NaN sorts last)
    key, t = key[order], t[order]
    first = np.ones(key.shape, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, t = key[first], t[first]
    rows = key // n
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, (key % n).astype(np.int32), t


def unknown_times(ts: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Which of the known times in `ts` read as unknown, and why (None: none do).

    - One time before 1980 (a placeholder: 0, or SNAP's weight 1 read as a time) where every other known
      time is a date from 1980 on: no social graph's tie formed in 1970, so it stands for "before the data's
      clock" (links older than a crawl); as a time it would put the graph's first tie, and its age, at 1970.
    - One and the same time on every timed row (at least two): a constant column, such as SNAP's weight 1
      read as a time, says nothing of when ties formed; read as a time it would make every tie as new as
      the newest (the trending source's "new connections lately", the ranker's recency columns).
    A graph whose clock starts at 0 (relative seconds) keeps its times."""
    known = np.isfinite(ts)
    early = known & (ts < EPOCH_1980)
    dated = ts[known & ~early]
    if early.any() and dated.size and np.ptp(ts[early]) == 0:
        return early, (f"{int(early.sum())} ties at time {ts[early][0]:g} among times from "
                       f"{time.strftime('%Y-%m-%d', time.gmtime(dated.min()))} on")
    if known.sum() >= 2 and np.ptp(ts[known]) == 0:
        return known, f"all {int(known.sum())} timed ties at one time, {ts[known][0]:g}"
    return np.zeros(ts.shape, dtype=bool), None


def tie_times(ts: np.ndarray) -> np.ndarray:
    """`ts`, or a copy with the times `unknown_times` names as unknown (NaN), logged."""
    unknown, why = unknown_times(ts)
    if why is None:
        return ts
    log.warning("%s: read as ties of unknown time", why)
    out = ts.copy()
    out[unknown] = np.nan
    return out


def id_array(ids: Iterable[str]) -> np.ndarray:
    """Sorted unique ids: int64 when every id is a canonical integer, else unicode strings."""
    strs = np.unique(np.asarray(list(ids), dtype=str))
    try:
        ints = strs.astype(np.int64)
    except (ValueError, OverflowError):
        return strs
    if np.array_equal(ints.astype(str), strs):
        return np.sort(ints)
    return strs


def in_snapshot_order(ids: Iterable[str]) -> list[str]:
    """Ids in the order a snapshot holds them (`id_array`: by value when every one is a canonical integer,
    else as strings), so a proof names the same mutual friends first on every path."""
    return [str(x) for x in id_array(ids)]


def map_ids(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Internal indices of external `values` (all must be present in the sorted `ids`)."""
    values = values.astype(ids.dtype) if ids.dtype.kind == "i" else values.astype(str)
    idx = np.searchsorted(ids, values)
    idx = np.minimum(idx, len(ids) - 1)
    if len(values) and not np.array_equal(ids[idx], values):
        bad = values[ids[idx] != values][0]
        raise KeyError(f"id {bad!r} is not in the id map")
    return idx.astype(np.int32)


def empty_tables() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    i32, f64 = np.zeros(0, np.int32), np.zeros(0, np.float64)
    requests = {"src": i32, "dst": i32, "sent_at": f64, "status": np.zeros(0, np.int8), "responded_at": f64}
    blocks = {"src": i32, "dst": i32, "at": f64}
    events = {"type": np.zeros(0, np.int8), "src": i32, "dst": i32, "ts": f64, "position": np.zeros(0, np.int16)}
    return requests, blocks, events


def from_edge_list(path: Path, progress: bool = False) -> Snapshot:
    """A snapshot with structure only (no profiles or events), for offline evaluation."""
    start = time.perf_counter()
    rejects = RejectCounter()   # logs the first rows it refuses, then a count
    edges = read_coded_file(path, rejects.reject, progress).standing()   # a dynamic list: the ties left at its end
    bad = rejects.rejected
    if not len(edges):   # an empty snapshot made current would leave serving with no graph
        raise no_edge_read(path, rejects.errors[0] if bad else None)
    snap, _ = from_codes(edges.names, edges.src, edges.dst, edges.ts)
    snap.meta.update(source_file=str(path), rejected_rows=bad)
    log.info("built snapshot from %s in %.2fs (%d users, %d ties, %d bad rows)", path,
             time.perf_counter() - start, snap.num_users, snap.num_edges, bad)
    return snap


def from_pairs(src: list[str], dst: list[str], ts: list[float] | None = None) -> Snapshot:
    """A structure-only snapshot (no profiles, requests or events) from parallel id lists."""
    ids = id_array(list(src) + list(dst))
    s, d = map_ids(ids, np.asarray(src, dtype=str)), map_ids(ids, np.asarray(dst, dtype=str))
    return _structure_only(ids, s, d, ts)


def from_codes(names: list[str], src: np.ndarray, dst: np.ndarray, ts: np.ndarray | None = None
               ) -> tuple[Snapshot, np.ndarray]:
    """`from_pairs` of the ids `names[src]`, `names[dst]` (the same snapshot), with a string lookup an id
    instead of one a row; and each code's index in it (-1: a code in no pair given)."""
    present = np.zeros(len(names), bool)
    present[src] = present[dst] = True
    used = np.flatnonzero(present)
    used_names = [names[c] for c in used.tolist()]
    ids = id_array(used_names)
    index = np.full(len(names), -1, np.int64)
    index[used] = map_ids(ids, np.asarray(used_names, dtype=str))
    return _structure_only(ids, index[src], index[dst], ts), index


def _structure_only(ids: np.ndarray, src: np.ndarray, dst: np.ndarray, ts: ArrayLike | None) -> Snapshot:
    """The snapshot of ties between the indices `src` and `dst` into `ids`: no profiles, requests or events."""
    indptr, indices, since = build_csr(len(ids), src, dst, None if ts is None else np.asarray(ts, dtype=np.float64))
    numeric, categorical, vocab = empty_columns(len(ids))
    requests, blocks, events = empty_tables()
    return Snapshot(ids, indptr, indices, since, numeric, categorical, vocab,
                    np.zeros(len(ids), dtype=bool), requests, blocks, events, meta={})


def interaction_table(snap: Snapshot, src: list[str], dst: list[str], ts: np.ndarray) -> dict[str, np.ndarray]:
    """An event table of interactions (both users must be in the snapshot), in time order."""
    s, d = map_ids(snap.ids, np.asarray(src, dtype=str)), map_ids(snap.ids, np.asarray(dst, dtype=str))
    return interaction_events(s, d, ts)


def interaction_events(src: np.ndarray, dst: np.ndarray, ts: np.ndarray) -> dict[str, np.ndarray]:
    """An event table of interactions between the snapshot indices `src` and `dst`, in time order."""
    missing = np.flatnonzero((src < 0) | (dst < 0))
    if missing.size:
        raise KeyError(f"interaction {int(missing[0])} (of {src.size}) has a user the snapshot does not hold")
    order = np.argsort(ts, kind="stable")
    return {"type": np.full(order.size, EVENT_CODE["interaction"], np.int8), "src": src[order].astype(np.int32),
            "dst": dst[order].astype(np.int32), "ts": np.asarray(ts, dtype=np.float64)[order],
            "position": np.full(order.size, -1, np.int16)}


def restrict_ties(snap: Snapshot, keep: np.ndarray) -> Snapshot:
    """The same users (same ids, indices, profiles) with only the CSR entries where `keep` is True.

    `keep` must be symmetric (an entry and its reverse kept together); tables are shared, not copied.
    """
    rows = snap.entry_rows()[keep]
    indptr = np.zeros(snap.num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=snap.num_users), out=indptr[1:])
    return replace(snap, indptr=indptr, indices=snap.indices[keep], since=snap.since[keep], meta=dict(snap.meta),
                   _index=snap._index, _id_strings=snap._id_strings)


def as_of(snap: Snapshot, t: float) -> Snapshot:
    """The graph as it stood just before time t: ties formed at or after t, and later events, removed.

    Ties of unknown time (NaN) are kept (they are taken to be old). Requests and blocks are cut too.
    """
    past = restrict_ties(snap, ~(snap.since >= t))
    past.events = {k: v[snap.events["ts"] < t] for k, v in snap.events.items()}
    past._shown = None   # its impressions by viewer are its own (No leakage: none at or after t.)
    past.requests = {k: v[snap.requests["sent_at"] < t] for k, v in snap.requests.items()}
    past.blocks = {k: v[snap.blocks["at"] < t] for k, v in snap.blocks.items()}
    past.meta["as_of"] = float(t)
    return past


def data_time(snap: Snapshot) -> float | None:
    """The time just after everything the snapshot holds (ties, events, requests; one second after the
    latest, as counters work in whole seconds), or None when nothing is timed; for a graph cut by
    `as_of`, its cut time.

    Features are computed as of this time when serving: "before t" then covers the whole snapshot,
    and nothing later can be seen.
    """
    if "as_of" in snap.meta:
        return float(snap.meta["as_of"])
    parts = [a[np.isfinite(a)] for a in (snap.since, snap.events["ts"], snap.requests["sent_at"])]
    parts = [p for p in parts if p.size]
    return float(max(p.max() for p in parts)) + 1.0 if parts else None


def recent_window_start(since: np.ndarray, t: float, share: float) -> float:
    """Start of the window before t in which the last `share` of the ties formed before t formed.

    A window measured in the graph's own tempo (ties, not days), so it means the same on a graph
    that grows by the minute and on one that grows by the month. +inf when no tie has a time.
    """
    before = since[np.isfinite(since) & (since < t)]
    return float(np.quantile(before, 1.0 - share)) if before.size else np.inf
