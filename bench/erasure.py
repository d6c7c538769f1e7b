"""Nightly erasure of deleted accounts from an event log of many days.

A log of `--days` daily segments of `--events` impressions each, with `--deleted` accounts already
erased by an earlier night; tonight brings one new day and `--new` more deletions. Timed: tonight's
erasure as built (it remembers what earlier nights erased, reads only the new segment for every
account, and searches the old segments' bytes for tonight's few ids, parsing only the lines that spell
one and copying the rest as it is), against the
named baseline in the same run, on an identical copy of the log: every segment parsed record by record
for every deleted account (what `pymk events erase` did before 2026-12-05's twenty-fourth session).
Then a night with no new deletion. Both leave the same bytes (checked).

    PYTHONPATH=. .venv/bin/python bench/erasure.py [--days 30] [--events 200000] [--deleted 1000] [--new 20]
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import graph.erasure
from bench.common import write_results
from graph.eventlog import EventLog
from graph.records import Event


def _write_day(log: EventLog, day: int, events: int, users: int, rng: np.random.Generator) -> None:
    src, dst = rng.integers(0, users, events), rng.integers(0, users, events)
    ts = 1.7e9 + day * 86400 + np.sort(rng.uniform(0, 86400, events))
    log.write_segment(f"file-day{day:04d}", (Event("impression", str(s), str(d), float(t), int(i % 20))
                                             for i, (s, d, t) in enumerate(zip(src, dst, ts, strict=True))))


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--events", type=int, default=200_000, help="impressions per daily segment")
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--deleted", type=int, default=1000, help="accounts erased on earlier nights")
    ap.add_argument("--new", type=int, default=20, help="accounts deleted since the last night")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix="pymk-erasure-"))
    try:
        ours, base = EventLog(root / "ours"), EventLog(root / "baseline")
        start = time.perf_counter()
        for day in range(args.days):
            _write_day(ours, day, args.events, args.users, rng)
        print(f"wrote {args.days} segments of {args.events:,} events in {time.perf_counter() - start:.1f}s")
        ids = [str(x) for x in rng.choice(args.users, args.deleted + args.new, replace=False)]
        earlier, tonight = set(ids[:args.deleted]), set(ids)
        first_s, first = _timed(lambda: ours.erase(earlier, settle_s=0))     # the earlier nights
        _write_day(ours, args.days, args.events, args.users, rng)          # today's segment
        shutil.copytree(ours.root, base.root)
        (base.root / graph.erasure.STATE).unlink()                         # the baseline remembers nothing
        ours_s, got = _timed(lambda: ours.erase(tonight, settle_s=0))
        limit = graph.erasure.BYTE_SEARCH_MAX
        graph.erasure.BYTE_SEARCH_MAX = -1                                  # and parses every record
        try:
            base_s, want = _timed(lambda: base.erase(tonight, settle_s=0))
        finally:
            graph.erasure.BYTE_SEARCH_MAX = limit
        same = all(filecmp.cmp(a, b, shallow=False) for a, b in zip(ours.segments(), base.segments(), strict=True))
        assert same and (got.lines, got.segments) == (want.lines, want.segments), (got, want)
        quiet_s, quiet = _timed(lambda: ours.erase(tonight, settle_s=0))
        size_mb = sum(p.stat().st_size for p in ours.segments()) / 1e6
        results = {
            "segments": args.days + 1, "events": (args.days + 1) * args.events, "log_mb": round(size_mb, 1),
            "deleted_before": args.deleted, "deleted_tonight": args.new,
            "first_night_s": round(first_s, 2), "first_night_records": first.lines,
            "tonight_s": round(ours_s, 2), "tonight_segments_parsed_whole": got.parsed,
            "tonight_segments_rewritten": got.segments, "tonight_records": got.lines,
            "baseline_parse_all_s": round(base_s, 2), "speedup_vs_baseline": round(base_s / ours_s, 1),
            "quiet_night_s": round(quiet_s, 3), "quiet_night_unread_segments": quiet.unread,
            "same_bytes_as_baseline": same,
        }
        write_results("erasure", results)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
