"""Append-only event log: JSONL segments on disk, read back in bulk as columns.

Why files and not Neo4j nodes: impressions outnumber every other record by orders of magnitude,
are written on every suggestion response and are only ever read in bulk (snapshot, training).
The state that serving filters must see at once (requests, blocks, dismissals) is also written to
Neo4j by the store; the log keeps the full history.

A file ingested from disk becomes one segment named after the file's content hash, written to a
temporary name and renamed, so re-ingesting the same file (even after a crash) never duplicates.
Live writers (the API) append to a segment of their own per process and hour.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import orjson

from graph.records import Event
from graph.timestamps import time_window
from pymk.errors import EventLogUnavailableError

if TYPE_CHECKING:
    from graph.erasure import ErasureReport

log = logging.getLogger(__name__)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def event_to_json(ev: Event) -> str:
    obj: dict[str, object] = {"type": ev.type, "src": ev.src, "dst": ev.dst, "ts": ev.ts}
    if ev.position is not None:
        obj["position"] = ev.position
    obj.update(ev.extra)
    return json.dumps(obj, separators=(",", ":"))


@contextmanager
def _log_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise EventLogUnavailableError(path, exc) from exc


def _write_all(f: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[f.write(view):]


class EventLog:
    """A directory of JSONL segments."""

    def __init__(self, root: Path, retention_s: float = 0.0) -> None:
        """`retention_s` > 0: live segments (any process's) last written longer ago than this are
        deleted whenever this process starts a new live segment. For logs nothing reads back as data
        (the served log); the event log keeps everything."""
        self.root = root
        self.retention_s = retention_s
        self._lock = threading.Lock()
        self._live: tuple[str, BinaryIO] | None = None  # this process's open live segment (unbuffered)

    def close(self) -> None:
        """Close this process's live segment, if open; a later append opens it again."""
        with self._lock:
            if self._live is not None:
                self._live[1].close()
                self._live = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def segments(self) -> list[Path]:
        return sorted(self.root.glob("*.jsonl")) if self.root.is_dir() else []

    @contextmanager
    def segment_writer(self, name: str) -> Iterator[Callable[[Iterable[Event]], None]]:
        """Stream a whole segment to a temp file, renamed into place only if the block succeeds.

        A segment of the same name is replaced, which is what makes re-ingestion idempotent. A write
        that fails (a full disk) raises EventLogUnavailableError and leaves no file behind.
        """
        final = self.root / f"{name}.jsonl"
        tmp = self.root / f".{name}.jsonl.tmp-{os.getpid()}"

        def write(events: Iterable[Event]) -> None:
            with _log_errors(tmp):
                f.writelines(event_to_json(ev) + "\n" for ev in events)

        try:
            with _log_errors(tmp):
                self.root.mkdir(parents=True, exist_ok=True)
                f = open(tmp, "w")  # noqa: SIM115 (closed below, quietly if the block failed)
            done = False
            try:
                yield write
                with _log_errors(tmp):
                    f.flush()
                    os.fsync(f.fileno())
                done = True
            finally:
                if done:
                    f.close()
                else:
                    with suppress(OSError):  # its buffer cannot be written either
                        f.close()
            with _log_errors(final):
                os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def write_segment(self, name: str, events: Iterable[Event]) -> Path:
        """Write a whole segment atomically."""
        with self.segment_writer(name) as write:
            write(events)
        return self.root / f"{name}.jsonl"

    def append(self, events: Iterable[Event]) -> int:
        """Append live events to this process's current segment (one write per call). Refuses, before
        writing anything, a batch holding a timestamp outside the accepted window (ValueError)."""
        events = list(events)
        window = time_window()
        for ev in events:
            window.check(ev.ts, ev.ts)
        return self._append_lines("".join(event_to_json(ev) + "\n" for ev in events))

    def append_records(self, records: Iterable[dict]) -> int:
        """Append arbitrary JSON records (e.g. served responses) the same way."""
        return self._append_lines("".join(orjson.dumps(r).decode() + "\n" for r in records))

    def _append_lines(self, lines: str) -> int:
        """Append whole lines to this process's live segment, or nothing: a write that fails midway (a
        full disk) is cut back off the file, so no torn line swallows the next record, and raised as
        EventLogUnavailableError."""
        if not lines:
            return 0
        name = f"live-{time.strftime('%Y%m%d%H', time.gmtime())}-{socket.gethostname()}-{os.getpid()}.jsonl"
        with self._lock, _log_errors(self.root / name):
            if self._live is None or self._live[0] != name:  # a new hour or a forked process: next segment
                if self._live is not None:
                    self._live[1].close()
                    self._live = None
                self.root.mkdir(parents=True, exist_ok=True)
                self._live = (name, open(self.root / name, "ab", buffering=0))  # noqa: SIM115 (kept open)
                if self.retention_s > 0:
                    self.expire()
            f = self._live[1]
            start = os.fstat(f.fileno()).st_size
            try:
                _write_all(f, lines.encode())  # unbuffered: readers see the records once this returns
            except OSError:
                try:
                    os.ftruncate(f.fileno(), start)
                except OSError:
                    log.exception("%s: could not cut a failed write back off", self.root / name)
                raise
        return lines.count("\n")

    def expire(self, now: float | None = None) -> list[Path]:
        """Delete the live segments last written more than `retention_s` ago; the deleted paths."""
        cutoff = (time.time() if now is None else now) - self.retention_s
        gone = []
        for seg in self.root.glob("live-*.jsonl"):
            try:
                if seg.stat().st_mtime < cutoff:
                    seg.unlink()
                    gone.append(seg)
            except FileNotFoundError:  # another worker expired it first
                continue
            except OSError as exc:  # retention trouble never costs the record being written
                log.warning("%s: cannot expire: %s", seg, exc)
        if gone:
            log.info("%s: deleted %d live segments older than %.0f h", self.root, len(gone), self.retention_s / 3600)
        return gone

    def erase(self, ids: Mapping[str, float] | Collection[str], settle_s: float = 3600.0) -> ErasureReport:
        """Every record of a deleted account out of this log (graph/erasure.py)."""
        from graph.erasure import erase

        return erase(self, ids, settle_s)

    def read_records(self) -> Iterator[dict]:
        """Every JSON record in every segment, as dicts."""
        for seg in self.segments():
            with open(seg) as f:
                yield from (json.loads(line) for line in f if line.strip())

    def read(self) -> Iterator[Event]:
        """Every event in every segment, in segment order (unordered by time across segments)."""
        for seg in self.segments():
            yield from read_segment_events(seg)


def read_segment_events(path: Path) -> Iterator[Event]:
    """One segment's events, a line at a time; an unreadable line is skipped with a warning naming it."""
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError(f"a JSON {type(obj).__name__}, not an object")
                yield Event(obj.pop("type"), str(obj.pop("src")), str(obj.pop("dst")),
                            float(obj.pop("ts")), obj.pop("position", None), obj)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s:%d: skipping unreadable event log line (%s)", path, number, exc)
