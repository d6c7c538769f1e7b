"""The snapshot export's read of the event log: the columnar read (graph/eventcols.py) against the former
event-at-a-time read (tests/events_reference.py, the baseline), and the windowed read of a long log.

Writes a log of `--days` daily segments of `--per-day` events among `--users` users (90% impressions, 2%
exact repeats, as retried client writes make), then times, each arm in its own process (for its peak
memory): the baseline over every event, the columnar read over every event, and the columnar read of the
last `--window` days, first with no segment cache and then with the cache a previous night left.

    python bench/events_export.py [--days 30] [--per-day 200000] [--users 100000] [--window 7]
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import shutil
import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import OUT, write_results  # noqa: E402
from graph.eventlog import EventLog  # noqa: E402
from graph.records import Event  # noqa: E402

TYPES = np.array(["impression", "send", "accept", "interaction", "dismiss"])


def _write_log(root: Path, days: int, per_day: int, users: int) -> int:
    log = EventLog(root)
    rng = np.random.default_rng(0)
    total = 0
    for d in range(days):
        kind = rng.choice(TYPES, per_day, p=[0.9, 0.04, 0.02, 0.03, 0.01])
        src, dst = rng.integers(0, users, per_day), rng.integers(0, users, per_day)
        ts = 1.7e9 + d * 86_400.0 + np.sort(rng.random(per_day)) * 86_400.0
        repeat = rng.random(per_day) < 0.02   # a retried write: the previous event again
        idx = np.where(repeat, np.maximum(np.arange(per_day) - 1, 0), np.arange(per_day))
        with log.segment_writer(f"day-{d:04d}") as write:
            write(Event(str(kind[i]), f"u{src[i]}", f"u{dst[i]}", float(ts[i]),
                        int(i % 20) if kind[i] == "impression" else None) for i in idx)
        total += per_day
    return total


def _arm(name: str, root: str, users: int, window: float, out) -> None:
    from graph.eventcols import read_columns
    from graph.snapshot.export import _event_table
    from tests.events_reference import event_table_reference

    ids = np.array([f"u{i}" for i in range(users)])
    log = EventLog(Path(root))
    start = time.perf_counter()
    if name == "baseline":
        table = event_table_reference(ids, log.read())
    else:
        table = _event_table(ids, read_columns(log, window if name.startswith("window") else 0.0))
    seconds = time.perf_counter() - start
    out.put({"seconds": round(seconds, 2), "events_kept": int(table["src"].size),
             "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})


def _run(name: str, root: Path, users: int, window: float) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_arm, args=(name, str(root), users, window, out))
    proc.start()
    result = out.get()
    proc.join()
    print(name, result, flush=True)
    return result


@click.command()
@click.option("--days", default=30, show_default=True)
@click.option("--per-day", default=200_000, show_default=True)
@click.option("--users", default=100_000, show_default=True)
@click.option("--window", default=7.0, show_default=True, help="PYMK_EVENT_HISTORY_DAYS of the windowed arms.")
def main(days: int, per_day: int, users: int, window: float) -> None:
    root = OUT / "events-export"
    shutil.rmtree(root, ignore_errors=True)
    t = time.perf_counter()
    total = _write_log(root, days, per_day, users)
    r: dict = {"days": days, "events": total, "users": users, "window_days": window,
               "log_mb": round(sum(p.stat().st_size for p in root.glob("*.jsonl")) / 1e6),
               "write_s": round(time.perf_counter() - t, 1)}
    r["baseline_all"] = _run("baseline", root, users, window)
    r["columnar_all"] = _run("columnar", root, users, window)   # leaves the segment cache behind
    cache = root / ".segments.json"
    cache.unlink(missing_ok=True)
    r["window_no_cache"] = _run("window", root, users, window)
    r["window_cached"] = _run("window", root, users, window)
    assert r["baseline_all"]["events_kept"] == r["columnar_all"]["events_kept"]
    r["speedup_all"] = round(r["baseline_all"]["seconds"] / r["columnar_all"]["seconds"], 1)
    r["speedup_window_cached"] = round(r["baseline_all"]["seconds"] / r["window_cached"]["seconds"], 1)
    write_results("events_export", r)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
