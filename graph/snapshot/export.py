"""Export a snapshot from the graph store (streamed in batches) plus the event log."""

from __future__ import annotations

import logging
import time

import numpy as np

from graph.eventlog import EventLog
from graph.records import CATEGORICAL_FIELDS, UserRecord, id_problem
from graph.snapshot.build import build_csr, id_array, map_ids
from graph.snapshot.format import EVENT_CODE, STATUS_CODE, Snapshot, empty_columns
from graph.store import GraphStore
from pymk.progress import progress_bar

log = logging.getLogger(__name__)


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
    # ids written before they were checked (graph/records.py id_problem) would break the id array: left out
    refused = {u.id for u in users if id_problem(u.id)}
    if refused:
        log.warning("%d users left out of the snapshot, with their ties, requests and blocks: ids no snapshot can "
                    "hold (%s)", len(refused), id_problem(min(refused)))
        users = [u for u in users if u.id not in refused]
    ids = id_array(u.id for u in users)
    index = {str(x): i for i, x in enumerate(ids.tolist())}
    numeric, categorical, vocab, opted = _profile_columns(ids, users)
    del users
    src_parts, dst_parts, ts_parts = [], [], []
    for batch in progress_bar(store.iter_friendships(), desc="friendships", unit=" batch", enabled=progress):
        batch = [f for f in batch if f.a not in refused and f.b not in refused] if refused else batch
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
    reqs = [r for batch in store.iter_requests(since=requests_since) for r in batch
            if not refused or not {r.src, r.dst} & refused]
    requests = {
        "src": np.array([index[r.src] for r in reqs], np.int32),
        "dst": np.array([index[r.dst] for r in reqs], np.int32),
        "sent_at": np.array([r.sent_at for r in reqs], np.float64),
        "status": np.array([STATUS_CODE[r.status] for r in reqs], np.int8),
        "responded_at": np.array([np.nan if r.responded_at is None else r.responded_at for r in reqs], np.float64),
    }
    blk = [b for batch in store.iter_blocks() for b in batch if not refused or not {b[0], b[1]} & refused]
    blocks = {"src": np.array([index[b[0]] for b in blk], np.int32),
              "dst": np.array([index[b[1]] for b in blk], np.int32),
              "at": np.array([b[2] for b in blk], np.float64)}
    events = _event_table(ids, table)
    if events["ts"].size:   # in time order: an account deleted before the oldest event names none of them
        events = _former_accounts_out(events, index, store.deletions(since=float(events["ts"][0])))
    log.info("exported snapshot from %s in %.2fs (%d users, %d ties, %d events)", store.server_info(),
             time.perf_counter() - start, len(ids), len(indices) // 2, len(events["src"]))
    return Snapshot(ids, indptr, indices, since, numeric, categorical, vocab, opted, requests, blocks, events,
                    meta={"source_store": store.server_info(), "accounts_read_at": accounts_read_at})
