"""Erasure of deleted accounts from an event log: their records go, their entries in others' lists too.

Each segment is rewritten atomically (temp file, fsync, rename; its modification time kept, since
retention reads it). What a run erased is remembered beside the segments (`.erased.json`: the ids
and each segment's size and mtime once clean of them), so the nightly run reads only segments new or
changed since, plus every segment for accounts deleted since. Up to BYTE_SEARCH_MAX ids are looked
for as bytes (each id as the log's writers spell it in JSON, one regular expression over the mapped
file), and only the lines where one appears are parsed; the rest of a segment is copied as it is
(bench/erasure.py).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import mmap
import os
import re
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson

from graph.eventlog import EventLog, _log_errors, _write_all
from pymk.errors import EventLogUnavailableError

log = logging.getLogger(__name__)
STATE = ".erased.json"   # not a segment (segments are *.jsonl)
LOCK = ".erase.lock"
# Up to this many ids, a segment is searched for them as bytes before it is parsed (an alternation of
# literals: ~17x faster than parsing with 30 ids, ~2.4x with 1,000; past that, parsing wins).
BYTE_SEARCH_MAX = 512


@dataclass
class ErasureReport:
    lines: int = 0                     # records removed
    scrubbed: int = 0                  # records kept with the accounts cut from their candidate lists
    segments: int = 0                  # segments rewritten
    unread: int = 0                    # segments clean of these accounts since an earlier run: not read
    parsed: int = 0                    # segments parsed record by record (the others: searched as bytes)
    skipped: list[str] = field(default_factory=list)   # live segments too recent to rewrite now


def accounts(ids: Mapping[str, float] | Collection[str]) -> dict[str, float]:
    """Deleted accounts as id -> until when records under the id are theirs (GraphStore.deletions); plain
    ids: every record (inf)."""
    return {str(k): float(v) for k, v in ids.items()} if isinstance(ids, Mapping) else dict.fromkeys(ids, math.inf)


def theirs(ids: Mapping[str, float], who: object, ts: object) -> bool:
    """Whether a record naming `who` at time `ts` belongs to a deleted account of `ids`: every record of an
    id not created again; of one created again, those before its deletion (or with no readable time:
    erasure errs on the side of erasing)."""
    until = ids.get(str(who))
    if until is None:
        return False
    return until == math.inf or not (isinstance(ts, int | float) and not isinstance(ts, bool) and ts >= until)


def _scrub(line: bytes, ids: Mapping[str, float]) -> bytes | None:
    """`line` without the deleted accounts `ids` (see `theirs`): None when the record names one as actor,
    target or viewer (the record goes); a served record with one among its candidates loses those entries
    (the viewer's record stays); otherwise `line` itself (an unreadable line is kept as it is)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(obj, dict):
        return line
    ts = obj.get("ts")
    if any(theirs(ids, obj.get(k), ts) for k in ("src", "dst", "viewer") if k in obj):
        return None
    shown = obj.get("candidates")
    if isinstance(shown, list):
        kept = [c for c in shown if not (isinstance(c, dict) and theirs(ids, c.get("user_id"), ts))]
        if len(kept) < len(shown):
            return orjson.dumps({**obj, "candidates": kept}) + b"\n"
    return line


def spelling(ids: Collection[str]) -> re.Pattern[bytes]:
    """Every way the logs' writers spell one of `ids` as a JSON string (json.dumps escapes non-ASCII,
    orjson does not), as one pattern."""
    spelled = {orjson.dumps(i) for i in ids} | {json.dumps(i).encode() for i in ids}
    return re.compile(b"|".join(re.escape(s) for s in sorted(spelled)))


def lines_with(f: BinaryIO, pattern: re.Pattern[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """The lines of the open file `f` holding a match of `pattern`, each once, as (start, end, bytes),
    searched in the mapped file (no line without a match is read into Python)."""
    if os.fstat(f.fileno()).st_size == 0:
        return
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        end = 0
        for found in pattern.finditer(m):
            if found.start() < end:   # in a line already given
                continue
            start = m.rfind(b"\n", 0, found.start()) + 1
            end = m.find(b"\n", found.end())
            end = len(m) if end < 0 else end + 1
            yield start, end, m[start:end]


def _edits(f: BinaryIO, ids: Mapping[str, float], pattern: re.Pattern[bytes] | None
           ) -> list[tuple[int, int, bytes | None]]:
    """The records of the open segment `f` that change, as (start, end, replacement or None) byte ranges.
    With a `pattern`, only the lines holding a spelling of one of `ids` are parsed; without one, every
    line is (streamed: a segment may be a whole ingested file)."""
    if pattern is not None:
        return [(start, end, out) for start, end, line in lines_with(f, pattern)
                if (out := _scrub(line, ids)) is not line]
    edits: list[tuple[int, int, bytes | None]] = []
    pos = 0
    for line in f:
        out = _scrub(line, ids)
        if out is not line:
            edits.append((pos, pos + len(line), out))
        pos += len(line)
    return edits


def _copy(src: BinaryIO, dst: BinaryIO, n: int) -> None:
    while n > 0:
        chunk = src.read(min(n, 1 << 20))
        if not chunk:
            return
        _write_all(dst, chunk)
        n -= len(chunk)


def _state(root: Path) -> tuple[dict[str, float], dict[str, list[int]]]:
    """The accounts an earlier run erased (id -> until, as `accounts`) and the segments (name -> [size,
    mtime_ns]) it left clean of them."""
    path = root / STATE
    try:
        data = json.loads(path.read_text())
        done = data["ids"]   # a list before 2026-12-06 (every record of each)
        done = accounts({k: math.inf if v is None else v for k, v in done.items()} if isinstance(done, dict)
                        else done)
        return done, {str(k): list(v) for k, v in data["clean"].items()}
    except FileNotFoundError:
        return {}, {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s: unreadable (%s); every segment is read again", path, exc)
        return {}, {}


def _fingerprint(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns]


def _rewrite(seg: Path, src: BinaryIO, edits: list[tuple[int, int, bytes | None]], report: ErasureReport) -> bool:
    """`seg` (open as `src`) with `edits` applied, atomically (temp file, fsync, rename), its modification
    time kept. False, and `seg` left as it is, if another writer replaced it meanwhile (re-ingesting its
    file): the edits were found in the version `src` holds."""
    stat = os.fstat(src.fileno())
    tmp = seg.with_name(f".{seg.name}.erase-{os.getpid()}")
    try:
        with _log_errors(tmp), open(tmp, "wb") as f:
            src.seek(0)
            pos = 0
            for start, end, out in edits:
                _copy(src, f, start - pos)
                src.seek(end)
                pos = end
                if out is not None:
                    _write_all(f, out)
            _copy(src, f, stat.st_size - pos)
            f.flush()
            os.fsync(f.fileno())
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        with _log_errors(seg):
            now = seg.stat()
            if (now.st_ino, *_fingerprint(now)) != (stat.st_ino, *_fingerprint(stat)):
                log.warning("%s: replaced while being erased; left for the next run", seg)
                return False
            os.replace(tmp, seg)
    finally:
        tmp.unlink(missing_ok=True)
    report.lines += sum(out is None for _, _, out in edits)
    report.scrubbed += sum(out is not None for _, _, out in edits)
    report.segments += 1
    return True


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """One erasure of a log at a time (a manual run and the nightly refresh may overlap): the second waits."""
    with _log_errors(root / LOCK), open(root / LOCK, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def erase(event_log: EventLog, ids: Mapping[str, float] | Collection[str], settle_s: float = 3600.0
          ) -> ErasureReport:
    """Rewrite every segment of `event_log` without the records naming a deleted account of `ids` (as
    `src`, `dst` or `viewer`) and without their entries in other viewers' served lists (`candidates`).
    `ids` maps each id to until when its records are the deleted account's (GraphStore.deletions: all
    of them, or those before the deletion where the id is a new account's since); plain ids: all.

    A live segment written in the last `settle_s` may still be open for appending in an API process
    (a rename would cut those appends off), so it is left for the next run and counted as skipped.
    """
    wanted, report = accounts(ids), ErasureReport()
    if not wanted or not event_log.root.is_dir():
        return report
    with _exclusive(event_log.root):
        done, clean = _state(event_log.root)
        # deleted (or created again, or deleted again) since the last run: every segment is read for them
        since = {i: until for i, until in wanted.items() if done.get(i) != until}
        now_clean: dict[str, list[int]] = {}
        by_since = spelling(since) if 0 < len(since) <= BYTE_SEARCH_MAX else None
        by_all = spelling(wanted) if len(wanted) <= BYTE_SEARCH_MAX else None
        for seg in event_log.segments():
            try:
                with _log_errors(seg), open(seg, "rb") as src:
                    stat = os.fstat(src.fileno())
                    if seg.name.startswith("live-") and time.time() - stat.st_mtime < settle_s:
                        report.skipped.append(seg.name)
                        continue
                    known = clean.get(seg.name) == _fingerprint(stat)
                    check, pattern = (since, by_since) if known else (wanted, by_all)
                    edits = []
                    if not check:
                        report.unread += 1
                    else:
                        report.parsed += pattern is None
                        edits = _edits(src, check, pattern)
                        if edits and not _rewrite(seg, src, edits, report):
                            continue
                    # the version read (a file put in its place meanwhile will not match it), or the one written
                    now_clean[seg.name] = _fingerprint(seg.stat() if edits else stat)
            except EventLogUnavailableError as exc:
                if not isinstance(exc.__cause__, FileNotFoundError):
                    raise
                log.info("%s: gone while being erased (expired or replaced); nothing to erase there", seg)
        tmp = event_log.root / f"{STATE}.{os.getpid()}"
        with _log_errors(tmp):
            tmp.write_text(json.dumps({"ids": {i: None if until == math.inf else until   # JSON has no inf
                                               for i, until in sorted(wanted.items())}, "clean": now_clean}))
            os.replace(tmp, event_log.root / STATE)
    log.info("%s: erased %d records of %d users and cut them from %d others' lists, in %d segments (%d read, "
             "%d parsed; %d clean since an earlier run; %d recent live segments left)", event_log.root,
             report.lines, len(wanted), report.scrubbed, report.segments, len(now_clean) - report.unread,
             report.parsed, report.unread, len(report.skipped))
    return report
