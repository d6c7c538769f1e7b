"""The event log read in bulk as columns, for snapshots: fast, and bounded to a recent window.

Each segment is parsed by Arrow's JSON reader (C++, several times faster than a line at a time); a segment
it refuses (a line the writer would not have written: a number for an id, a torn line) is read line by line
like `EventLog.read`, with a warning per unreadable line. Every segment's time range is cached in
`<log>/.segments.json` (keyed by the file's size and modification time, so a segment rewritten by erasure
or still being appended to is read again), which lets a windowed read skip whole segments unopened: the
nightly export reads the last `days` of events, not every event ever logged.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from graph.eventlog import EventLog, read_segment_events

log = logging.getLogger(__name__)

SCHEMA = pa.schema([("type", pa.string()), ("src", pa.string()), ("dst", pa.string()), ("ts", pa.float64()),
                    ("position", pa.int64())])
STATS_FILE = ".segments.json"
_PARSE = pj.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")


def _by_lines(path: Path) -> pa.Table:
    """The slow path: the segment's events as `EventLog.read` reads them (ids as text, times as numbers)."""
    cols: dict[str, list] = {name: [] for name in SCHEMA.names}
    for ev in read_segment_events(path):
        position = ev.position if type(ev.position) is int else None
        for name, value in zip(SCHEMA.names, (ev.type, ev.src, ev.dst, ev.ts, position), strict=True):
            cols[name].append(value)
    return pa.table(cols, schema=SCHEMA)


def read_segment(path: Path) -> pa.Table:
    """One segment's events as columns (type, src, dst, ts, position; position null when absent)."""
    try:
        return pj.read_json(path, parse_options=_PARSE).select(SCHEMA.names)
    except pa.ArrowInvalid:
        return _by_lines(path)


def _load_stats(root: Path) -> dict[str, list]:
    try:
        stats = json.loads((root / STATS_FILE).read_text())
        return stats if isinstance(stats, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_stats(root: Path, stats: dict[str, list]) -> None:
    tmp = root / f"{STATS_FILE}.tmp-{os.getpid()}"
    try:
        tmp.write_text(json.dumps(stats))
        os.replace(tmp, root / STATS_FILE)
    except OSError as exc:   # a cache: the next read parses those segments again
        log.warning("cannot write %s: %s", root / STATS_FILE, exc)


def _cached_range(stats: dict[str, list], seg: Path, st: os.stat_result) -> tuple[float, float] | None:
    """The segment's (earliest, latest) event time from the cache, if the cache describes the file as it is."""
    cached = stats.get(seg.name)
    if isinstance(cached, list) and len(cached) == 4 and cached[:2] == [st.st_size, st.st_mtime_ns]:
        return float(cached[2]), float(cached[3])
    return None


def segment_ranges(event_log: EventLog, tables: dict[Path, pa.Table] | None = None,
                   window_s: float = 0.0) -> dict[Path, tuple[float, float]]:
    """Each segment's (earliest, latest) event time, from the cache where it is current, else read; the
    cache is rewritten when anything changed. The tables read are left in `tables` for the caller, except
    (`window_s` > 0) those wholly older than `window_s` before the newest event seen so far, which no
    windowed read needs: a first run over a long log holds the window's segments, not every one."""
    stats, fresh = _load_stats(event_log.root), {}
    ranges: dict[Path, tuple[float, float]] = {}
    newest = float("-inf")
    for seg in event_log.segments():
        try:
            st = seg.stat()
        except FileNotFoundError:   # expired or erased meanwhile
            continue
        cached = _cached_range(stats, seg, st)
        if cached is not None:
            ranges[seg] = cached
        else:
            table = read_segment(seg)
            mm = pc.min_max(table["ts"])
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            ranges[seg] = (float("inf") if lo is None else lo, float("-inf") if hi is None else hi)
            if tables is not None:
                tables[seg] = table
        fresh[seg.name] = [st.st_size, st.st_mtime_ns, *ranges[seg]]
        newest = max(newest, ranges[seg][1])
        if tables and window_s > 0:   # what the window has already left behind goes
            for old in [p for p in tables if ranges[p][1] < newest - window_s]:
                del tables[old]
    if fresh != stats:
        _save_stats(event_log.root, fresh)
    return ranges


def read_columns(event_log: EventLog, days: float = 0.0) -> pa.Table:
    """Every event of the log as one table in segment order; with `days` > 0 only those within `days` of
    the newest event's time (the log's own clock, so a replayed or simulated log reads the same)."""
    tables: dict[Path, pa.Table] = {}
    ranges = segment_ranges(event_log, tables, days * 86_400.0)
    newest = max((hi for _, hi in ranges.values()), default=float("-inf"))
    since = newest - days * 86_400.0 if days > 0 else float("-inf")
    parts, skipped = [], 0
    for seg, (_, hi) in ranges.items():
        if hi < since:
            skipped += 1
            continue
        table = tables[seg] if seg in tables else read_segment(seg)
        parts.append(table.filter(pc.greater_equal(table["ts"], since)) if days > 0 else table)
    if skipped:
        log.info("%s: %d of %d segments hold nothing within %g days of the newest event; not read",
                 event_log.root, skipped, len(ranges), days)
    return pa.concat_tables(parts) if parts else SCHEMA.empty_table()


def expire(event_log: EventLog, older_than: float, settle_s: float = 3600.0) -> list[Path]:
    """Delete the segments whose every event is older than `older_than` (Unix time); a segment written to in
    the last `settle_s` is left (a worker may still be appending to it). The deleted paths."""
    gone = []
    now = time.time()
    for seg, (_, hi) in segment_ranges(event_log).items():
        try:
            if hi < older_than and now - seg.stat().st_mtime >= settle_s:
                seg.unlink()
                gone.append(seg)
        except FileNotFoundError:
            continue
    if gone:
        log.info("%s: deleted %d segments whose events are all older than %s", event_log.root, len(gone),
                 time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(older_than)))
    return gone


def summary(event_log: EventLog) -> dict:
    """What an operator asks of the log, from the files and the range cache alone (nothing parsed): its
    segments and bytes, and the earliest and latest event of the segments the cache knows (`unindexed`:
    the segments the next export will read for the first time)."""
    stats = _load_stats(event_log.root)
    out: dict = {"segments": 0, "bytes": 0, "unindexed": 0, "earliest": None, "latest": None}
    for seg in event_log.segments():
        try:
            st = seg.stat()
        except FileNotFoundError:
            continue
        out["segments"] += 1
        out["bytes"] += st.st_size
        cached = _cached_range(stats, seg, st)
        if cached is None:
            out["unindexed"] += 1
            continue
        lo, hi = cached
        if lo <= hi:   # an empty segment has no events to bound
            out["earliest"] = lo if out["earliest"] is None else min(out["earliest"], lo)
            out["latest"] = hi if out["latest"] is None else max(out["latest"], hi)
    return out
