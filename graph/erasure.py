"""Erasure of deleted accounts from an event log: their records go, their entries in others' lists too.

Each segment is rewritten atomically (temp file, fsync, rename; its modification time kept, since
retention reads it). What a run erased is remembered beside the segments (`.erased.json`: the ids
and each segment's size and mtime once clean of them), so the nightly run reads only segments new or
changed since, plus every segment for accounts deleted since: a log of months is not parsed whole
every night once one account is deleted.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from graph.eventlog import EventLog, _log_errors, _write_all

log = logging.getLogger(__name__)
STATE = ".erased.json"   # not a segment (segments are *.jsonl)


@dataclass
class ErasureReport:
    lines: int = 0                     # records removed
    scrubbed: int = 0                  # records kept with the accounts cut from their candidate lists
    segments: int = 0                  # segments rewritten
    unread: int = 0                    # segments clean of these accounts since an earlier run: not read
    skipped: list[str] = field(default_factory=list)   # live segments too recent to rewrite now


def _scrub(line: bytes, ids: Collection[str]) -> bytes | None:
    """`line` without the accounts `ids`: None when the record names one as actor, target or viewer (the
    record goes); a served record with one among its candidates loses those entries (the viewer's record
    stays); otherwise `line` itself (an unreadable line is kept as it is)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(obj, dict):
        return line
    if any(str(obj.get(k)) in ids for k in ("src", "dst", "viewer") if k in obj):
        return None
    shown = obj.get("candidates")
    if isinstance(shown, list):
        kept = [c for c in shown if not (isinstance(c, dict) and str(c.get("user_id")) in ids)]
        if len(kept) < len(shown):
            return orjson.dumps({**obj, "candidates": kept}) + b"\n"
    return line


def _state(root: Path) -> tuple[set[str], dict[str, list[int]]]:
    """The ids an earlier run erased and the segments (name -> [size, mtime_ns]) it left clean of them."""
    path = root / STATE
    try:
        data = json.loads(path.read_text())
        return set(data["ids"]), {str(k): list(v) for k, v in data["clean"].items()}
    except FileNotFoundError:
        return set(), {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s: unreadable (%s); every segment is read again", path, exc)
        return set(), {}


def _fingerprint(seg: Path) -> list[int]:
    stat = seg.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _rewrite(seg: Path, ids: set[str], report: ErasureReport) -> None:
    stat = seg.stat()
    tmp = seg.with_name(f".{seg.name}.erase-{os.getpid()}")
    try:
        with _log_errors(tmp), open(seg, "rb") as src, open(tmp, "wb") as f:
            for line in src:
                out = _scrub(line, ids)
                report.lines += out is None
                report.scrubbed += out is not None and out is not line
                if out is not None:
                    _write_all(f, out)
            f.flush()
            os.fsync(f.fileno())
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        with _log_errors(seg):
            os.replace(tmp, seg)
    finally:
        tmp.unlink(missing_ok=True)
    report.segments += 1


def erase(event_log: EventLog, ids: Collection[str], settle_s: float = 3600.0) -> ErasureReport:
    """Rewrite every segment of `event_log` without the records naming any of `ids` (as `src`, `dst` or
    `viewer`) and without their entries in other viewers' served lists (`candidates`).

    A live segment written in the last `settle_s` may still be open for appending in an API process
    (a rename would cut those appends off), so it is left for the next run and counted as skipped.
    """
    wanted, report = set(ids), ErasureReport()
    if not wanted or not event_log.root.is_dir():
        return report
    done, clean = _state(event_log.root)
    since = wanted - done       # deleted since the last run: every segment is read for them
    now_clean: dict[str, list[int]] = {}
    for seg in event_log.segments():
        with _log_errors(seg):
            stat = seg.stat()
            if seg.name.startswith("live-") and time.time() - stat.st_mtime < settle_s:
                report.skipped.append(seg.name)
                continue
            check = since if clean.get(seg.name) == [stat.st_size, stat.st_mtime_ns] else wanted
            if not check:
                report.unread += 1
            else:
                with open(seg, "rb") as f:   # streamed: a segment may be a whole ingested file
                    if any(_scrub(line, check) is not line for line in f):
                        _rewrite(seg, check, report)
            now_clean[seg.name] = _fingerprint(seg)
    tmp = event_log.root / f"{STATE}.{os.getpid()}"
    with _log_errors(tmp):
        tmp.write_text(json.dumps({"ids": sorted(wanted), "clean": now_clean}))
        os.replace(tmp, event_log.root / STATE)
    log.info("%s: erased %d records of %d users and cut them from %d others' lists, in %d segments (%d read, "
             "%d clean since an earlier run, %d recent live segments left)", event_log.root, report.lines,
             len(wanted), report.scrubbed, report.segments, len(now_clean) - report.unread, report.unread,
             len(report.skipped))
    return report
