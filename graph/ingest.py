"""Batched, idempotent ingestion of edge lists, user CSVs and JSONL events into the graph store.

Good rows load in batches of `batch_size`, each one transaction (all or nothing, retried on
transient errors); bad rows are reported with file and line and do not stop the run. Every write
is a MERGE, so running the same file twice, or again after a crash, changes nothing more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import TypeVar

from graph.edge_reader import EdgeRow, read_edges
from graph.eventlog import EventLog, file_digest
from graph.readers import ByteCounter, RejectCounter, RowError, read_events, read_users
from graph.records import Event, Friendship, UserRecord
from graph.store import GraphStore
from pymk.progress import progress_bar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class IngestReport(RejectCounter):
    path: str
    kind: str
    rows_read: int = 0
    loaded: int = 0
    seconds: float = 0.0
    detail: str = ""   # what a kind adds to the summary (deletions: how many accounts went now)

    @property
    def rows_per_second(self) -> float:
        return self.loaded / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (f"{self.kind} {self.path}: {self.rows_read} rows read, {self.loaded} loaded, "
                f"{self.rejected} rejected in {self.seconds:.1f}s ({self.rows_per_second:,.0f} rows/s)"
                + (f"; {self.detail}" if self.detail else ""))


def _run(
    kind: str,
    source: ByteCounter,
    rows: Iterator[T | RowError],
    flush: Callable[[list[T]], list[RowError]],
    batch_size: int,
    progress: bool,
) -> IngestReport:
    """Parse rows and write batches, one batch in flight while the next is parsed.

    Batches are written strictly in file order (one writer), so a later row never overtakes an
    earlier one; a failed batch stops the run with everything before it committed.
    """
    report = IngestReport(str(source.path), kind)
    start = time.perf_counter()
    batch: list[T] = []
    bar = progress_bar(total=source.size, unit="B", unit_scale=True, desc=f"{kind} {source.path.name}",
                       enabled=progress, mininterval=0.5)
    in_flight: Future[list[RowError]] | None = None
    in_flight_size = 0

    def settle() -> None:
        nonlocal in_flight
        if in_flight is None:
            return
        rejected = in_flight.result()
        in_flight = None
        for err in rejected:
            report.reject(err)
        report.loaded += in_flight_size - len(rejected)
        bar.update(source.bytes_read - bar.n)

    def submit(pool: ThreadPoolExecutor) -> None:
        nonlocal in_flight, in_flight_size, batch
        settle()
        in_flight, in_flight_size = pool.submit(flush, batch), len(batch)
        batch = []

    with bar, ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ingest-{kind}") as pool:
        for row in rows:
            report.rows_read += 1
            if isinstance(row, RowError):
                report.reject(row)
                continue
            batch.append(row)
            if len(batch) >= batch_size:
                submit(pool)
        if batch:
            submit(pool)
        settle()
        bar.update(source.bytes_read - bar.n)
    report.seconds = time.perf_counter() - start
    log.info("%s", report.summary())
    return report


def ingest_edges(store: GraphStore, path: Path, batch_size: int = 10_000, progress: bool = True,
                 interactions: EventLog | None = None) -> IngestReport:
    """Load an edge list as friendships (missing users are created; `since` keeps the earliest ts). A KONECT
    dynamic list's removals (weight -1) end their ties, in file order, each in a transaction of its own.

    `interactions`: an event log to copy every timed row into as an "interaction" event (for an edge
    list that repeats pairs, such as messages: how often two users talk is a ranking feature), as one
    segment named after the file's content, so re-ingesting the file never duplicates.
    """
    source = ByteCounter(path)
    with ExitStack() as stack:
        write_log = (stack.enter_context(interactions.segment_writer(f"interactions-{file_digest(path)}"))
                     if interactions is not None else None)

        removals = [0, 0]   # a dynamic list's removal rows, and the ties they ended

        def flush(batch: list[EdgeRow]) -> list[RowError]:
            for removal, run in groupby(batch, attrgetter("removed")):   # a dynamic list's rows in order
                rows = list(run)
                if removal:
                    removals[0] += len(rows)
                    removals[1] += sum(store.remove_friendship(r.src, r.dst) for r in rows)
                    continue
                store.add_friendships([Friendship(r.src, r.dst, r.ts) for r in rows])
                if write_log is not None:
                    write_log([Event("interaction", r.src, r.dst, r.ts) for r in rows if r.ts is not None])
            return []

        report = _run("edges", source, read_edges(source), flush, batch_size, progress)
    if removals[0]:
        report.detail = f"{removals[0]} rows removed a tie, {removals[1]} ties ended"
    return report


def ingest_users(store: GraphStore, path: Path, batch_size: int = 10_000, progress: bool = True) -> IngestReport:
    """Load a users CSV (id + profile columns); re-loading updates the given fields in place."""
    source = ByteCounter(path)

    def flush(batch: list[UserRecord]) -> list[RowError]:
        # rows for one id fold into one, each given field of a later row winning: what upserting them
        # one by one does (a blank field keeps the stored value), so batch boundaries change nothing
        merged: dict[str, UserRecord] = {}
        for u in batch:
            merged[u.id] = merged[u.id].updated(u) if u.id in merged else u
        store.upsert_users(list(merged.values()))
        return []

    return _run("users", source, read_users(source), flush, batch_size, progress)


def ingest_deletions(store: GraphStore, path: Path, batch_size: int = 10_000, progress: bool = True
                      ) -> IngestReport:
    """Delete the accounts a CSV with an `id` column names (other columns are ignored). Each leaves a
    tombstone, so it is never suggested nor served again; ids already gone are no error (re-runnable)."""
    source = ByteCounter(path)
    deleted = [0]

    def flush(batch: list[UserRecord]) -> list[RowError]:
        deleted[0] += store.delete_users([u.id for u in batch])
        return []

    report = _run("deletions", source, read_users(source, ids_only=True), flush, batch_size, progress)
    report.detail = f"{deleted[0]} accounts deleted now, {report.loaded - deleted[0]} already gone or unknown"
    return report


def ingest_events(
    store: GraphStore, path: Path, event_log: EventLog | None, batch_size: int = 10_000, progress: bool = True,
) -> IngestReport:
    """Apply JSONL events to the graph and copy them into the event log as one segment.

    Events naming users the graph does not have are rejected with their line.
    """
    source = ByteCounter(path)
    with ExitStack() as stack:
        write_log = (stack.enter_context(event_log.segment_writer(f"file-{file_digest(path)}"))
                     if event_log is not None else None)

        def flush(batch: list[tuple[int, Event]]) -> list[RowError]:
            known = store.existing_users({u for _, ev in batch for u in (ev.src, ev.dst)})
            good: list[Event] = []
            bad: list[RowError] = []
            for number, ev in batch:
                missing = [u for u in (ev.src, ev.dst) if u not in known]
                if missing:
                    bad.append(RowError(str(path), number, f"unknown user {missing[0]!r}"))
                else:
                    good.append(ev)
            store.apply_events(good)
            if write_log is not None:
                write_log(good)
            return bad

        return _run("events", source, read_events(source), flush, batch_size, progress)
