"""Build snapshots: from the graph store (+ event log), or straight from an edge list file."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from graph.eventlog import EventLog
from graph.readers import ByteCounter, EdgeRow, RejectCounter, no_edge_read, read_edges
from graph.records import CATEGORICAL_FIELDS, UserRecord
from graph.snapshot.format import EVENT_CODE, STATUS_CODE, Snapshot, empty_columns
from graph.store import GraphStore
from pymk.progress import progress_bar

log = logging.getLogger(__name__)
EPOCH_1980 = 315_532_800.0


def build_csr(n: int, src: np.ndarray, dst: np.ndarray, ts: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric CSR from an edge list: duplicates merged (earliest ts kept), self loops dropped.

    Returns (indptr int64 [n+1], indices int32 sorted within each row, since float64).
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    ts = np.full(src.shape, np.nan) if ts is None else unknown_zero_times(np.asarray(ts, dtype=np.float64))
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


def unknown_zero_times(ts: np.ndarray) -> np.ndarray:
    """`ts`, or a copy with time 0 as unknown (NaN) where every other known time is a date from 1980 on:
    no social graph's tie formed in January 1970, so a 0 there stands for "before the data's clock" (links
    older than a crawl), and as a time it would put the graph's first tie, and its age, at 1970. A
    graph whose clock starts at 0 (relative seconds) keeps its zeros."""
    zero = ts == 0
    other = ts[np.isfinite(ts) & ~zero]
    if not (zero.any() and other.size and other.min() >= EPOCH_1980):
        return ts
    log.warning("%d ties at time 0 among times from %s on: read as ties of unknown time", int(zero.sum()),
                time.strftime("%Y-%m-%d", time.gmtime(other.min())))
    out = ts.copy()
    out[zero] = np.nan
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
    source = ByteCounter(path)
    src: list[str] = []
    dst: list[str] = []
    ts: list[float] = []
    rejects = RejectCounter()   # logs the first rows it refuses, then a count
    with progress_bar(total=source.size, unit="B", unit_scale=True, enabled=progress, desc=path.name) as bar:
        for row in read_edges(source):
            if isinstance(row, EdgeRow):
                src.append(row.src)
                dst.append(row.dst)
                ts.append(np.nan if row.ts is None else row.ts)
            else:
                rejects.reject(row)
            if len(src) % 100_000 == 0:
                bar.update(source.bytes_read - bar.n)
        bar.update(source.bytes_read - bar.n)
    bad = rejects.rejected
    if not src:   # an empty snapshot made current would leave serving with no graph
        raise no_edge_read(path, rejects.errors[0] if bad else None)
    snap = from_pairs(src, dst, ts)
    snap.meta.update(source_file=str(path), rejected_rows=bad)
    log.info("built snapshot from %s in %.2fs (%d users, %d ties, %d bad rows)", path,
             time.perf_counter() - start, snap.num_users, snap.num_edges, bad)
    return snap


def from_pairs(src: list[str], dst: list[str], ts: list[float] | None = None) -> Snapshot:
    """A structure-only snapshot (no profiles, requests or events) from parallel id lists."""
    ids = id_array(list(src) + list(dst))
    s, d = map_ids(ids, np.asarray(src, dtype=str)), map_ids(ids, np.asarray(dst, dtype=str))
    indptr, indices, since = build_csr(len(ids), s, d, None if ts is None else np.asarray(ts, dtype=np.float64))
    numeric, categorical, vocab = empty_columns(len(ids))
    requests, blocks, events = empty_tables()
    return Snapshot(ids, indptr, indices, since, numeric, categorical, vocab,
                    np.zeros(len(ids), dtype=bool), requests, blocks, events, meta={})


def interaction_table(snap: Snapshot, src: list[str], dst: list[str], ts: np.ndarray) -> dict[str, np.ndarray]:
    """An event table of interactions (both users must be in the snapshot), in time order."""
    order = np.argsort(ts, kind="stable")
    s, d = map_ids(snap.ids, np.asarray(src, dtype=str)), map_ids(snap.ids, np.asarray(dst, dtype=str))
    return {"type": np.full(order.size, EVENT_CODE["interaction"], np.int8), "src": s[order], "dst": d[order],
            "ts": np.asarray(ts, dtype=np.float64)[order], "position": np.full(order.size, -1, np.int16)}


def _profile_columns(ids: np.ndarray, users: list[UserRecord]) -> tuple[dict, dict, dict, np.ndarray]:
    n = len(ids)
    numeric, categorical, vocab = empty_columns(n)
    opted = np.zeros(n, dtype=bool)
    order = map_ids(ids, np.asarray([u.id for u in users])) if users else np.zeros(0, np.int32)
    for col in ("created_at", "lat", "lon"):
        numeric[col][order] = [np.nan if getattr(u, col) is None else float(getattr(u, col)) for u in users]
    for col in CATEGORICAL_FIELDS:
        values = [getattr(u, col) for u in users]
        vocab[col] = sorted({v for v in values if v is not None})
        lookup = {v: i for i, v in enumerate(vocab[col])}
        categorical[col][order] = [lookup.get(v, -1) if v is not None else -1 for v in values]
    opted[order] = [not u.suggestable for u in users]  # opted out or deactivated: never suggested
    return numeric, categorical, vocab, opted


def _event_table(ids: np.ndarray, events) -> dict[str, np.ndarray]:
    """The snapshot's event columns from the log's (`events`, an Arrow table: graph/eventcols.py): events of
    known types between users the snapshot holds, identical ones (type, users, time, position) once, in time
    order (ties in log order)."""
    import pyarrow as pa  # here: the API's processes load snapshots, never export them
    import pyarrow.compute as pc

    n_in = events.num_rows
    code = pc.index_in(events["type"], value_set=pa.array(list(EVENT_CODE), pa.string()))
    names = pa.array([str(x) for x in ids.tolist()], pa.string())   # ids may be held as numbers
    src, dst = (pc.index_in(events[c], value_set=names) for c in ("src", "dst"))
    keep = pc.and_(pc.and_(pc.is_valid(code), pc.is_valid(src)), pc.is_valid(dst)).to_numpy(zero_copy_only=False)
    unknown_types = int(pc.sum(pc.is_null(code)).as_py() or 0)
    if unknown_types:
        log.warning("event log: skipping %d events of unknown types", unknown_types)

    def kept(col) -> np.ndarray:
        return col.to_numpy(zero_copy_only=False)[keep]

    t, ty, a, b = kept(events["ts"]), kept(code).astype(np.int8), kept(src).astype(np.int32), kept(dst).astype(np.int32)
    pos = kept(pc.fill_null(events["position"], -1)).astype(np.int16)
    # by time, then the rest of the identity, then log order: a repeat follows its first occurrence
    order = np.lexsort((np.arange(t.size), pos, b, a, ty, t))
    t, ty, a, b, pos = t[order], ty[order], a[order], b[order], pos[order]
    first = np.ones(t.size, dtype=bool)
    first[1:] = (t[1:] != t[:-1]) | (ty[1:] != ty[:-1]) | (a[1:] != a[:-1]) | (b[1:] != b[:-1]) | (pos[1:] != pos[:-1])
    # time order, ties in log order (as the export always kept them)
    again = np.lexsort((order[first], t[first]))
    log.debug("event log: %d events read, %d kept", n_in, int(first.sum()))
    return {"type": ty[first][again], "src": a[first][again], "dst": b[first][again], "ts": t[first][again].copy(),
            "position": pos[first][again]}


def _newest(table) -> float | None:
    """The newest event time of a table from the event log (None: no events)."""
    import pyarrow.compute as pc

    return pc.max(table["ts"]).as_py() if table.num_rows else None


def _former_accounts_out(events: dict[str, np.ndarray], index: dict[str, int], deletions: dict[str, float]
                         ) -> dict[str, np.ndarray]:
    """The events without those of deleted accounts whose ids are new accounts' now: an event naming such an
    id before its deletion is the former account's (the nightly erasure takes it out of the log; one still
    in a live segment it left for later is not read as the new account's history)."""
    until = np.full(len(index), -np.inf)
    for user, at in deletions.items():
        if np.isfinite(at) and user in index:
            until[index[user]] = at
    if not np.isfinite(until).any():
        return events
    keep = (events["ts"] >= until[events["src"]]) & (events["ts"] >= until[events["dst"]])
    return {k: v[keep] for k, v in events.items()}


def from_store(store: GraphStore, event_log: EventLog | None = None, progress: bool = False,
               event_days: float = 0.0) -> Snapshot:
    """Export the whole graph from the store (streamed in batches) plus the event log (with `event_days` > 0,
    only its events within that many days of the newest one, and of the requests the pending ones and
    those sent or answered within that window)."""
    start = time.perf_counter()
    # before the first account is read: an account deleted from now on may be in this snapshot as it was,
    # so serving treats an id deleted since then and created again as a new account (graph/store.py)
    accounts_read_at = time.time()
    users: list[UserRecord] = []
    for batch in progress_bar(store.iter_users(), desc="users", unit=" batch", enabled=progress):
        users.extend(batch)
    ids = id_array(u.id for u in users)
    index = {str(x): i for i, x in enumerate(ids.tolist())}
    numeric, categorical, vocab, opted = _profile_columns(ids, users)
    del users
    src_parts, dst_parts, ts_parts = [], [], []
    for batch in progress_bar(store.iter_friendships(), desc="friendships", unit=" batch", enabled=progress):
        src_parts.append(np.fromiter((index[f.a] for f in batch), np.int32, len(batch)))
        dst_parts.append(np.fromiter((index[f.b] for f in batch), np.int32, len(batch)))
        ts_parts.append(np.fromiter((np.nan if f.since is None else f.since for f in batch), np.float64, len(batch)))
    def cat(parts, dt):
        return (np.concatenate(parts) if parts else np.zeros(0, dt))
    indptr, indices, since = build_csr(len(ids), cat(src_parts, np.int32), cat(dst_parts, np.int32),
                                       cat(ts_parts, np.float64))
    from graph.eventcols import SCHEMA, read_columns

    # the event window bounds the requests too (pending ones always come): the API reads the rules from the
    # store, so the snapshot's requests serve offline state and history, and need not hold every one ever made
    table = read_columns(event_log, event_days) if event_log is not None else SCHEMA.empty_table()
    newest = _newest(table)
    requests_since = newest - event_days * 86_400.0 if event_days > 0 and newest is not None else None
    reqs = [r for batch in store.iter_requests(since=requests_since) for r in batch]
    requests = {
        "src": np.array([index[r.src] for r in reqs], np.int32),
        "dst": np.array([index[r.dst] for r in reqs], np.int32),
        "sent_at": np.array([r.sent_at for r in reqs], np.float64),
        "status": np.array([STATUS_CODE[r.status] for r in reqs], np.int8),
        "responded_at": np.array([np.nan if r.responded_at is None else r.responded_at for r in reqs], np.float64),
    }
    blk = [b for batch in store.iter_blocks() for b in batch]
    blocks = {"src": np.array([index[b[0]] for b in blk], np.int32),
              "dst": np.array([index[b[1]] for b in blk], np.int32),
              "at": np.array([b[2] for b in blk], np.float64)}
    events = _former_accounts_out(_event_table(ids, table), index, store.deletions())
    log.info("exported snapshot from %s in %.2fs (%d users, %d ties, %d events)", store.server_info(),
             time.perf_counter() - start, len(ids), len(indices) // 2, len(events["src"]))
    return Snapshot(ids, indptr, indices, since, numeric, categorical, vocab, opted, requests, blocks, events,
                    meta={"source_store": store.server_info(), "accounts_read_at": accounts_read_at})


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
