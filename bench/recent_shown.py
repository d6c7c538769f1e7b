"""What counting the impressions logged since the snapshot costs an API worker (candidates/recent_shown.py).

A structure-only world of `--users` users and a snapshot whose impressions end at a time t; the event log
then holds `--impressions` impressions dated after t (and a send for every tenth), in 4 live segments as
4 workers write them. Measured in one process:
- the first read (a worker starting, or a new snapshot swapped in, late in the day): seconds, impressions
  a second, the private memory it holds; run before the worker serves, and here also in a background thread
  with requests going on (which is why it is not: they share the interpreter's lock with it);
- a later read of what 10 s of traffic added (`--rate` impressions a second);
- the seen penalty's counts per request (`CandidatePipeline.times_seen`), p50/p99, against the baseline of
  the same pipeline without them (the snapshot's counts only: the code before).

    python bench/recent_shown.py [--users 100000] [--impressions 2000000] [--rate 200]
"""

from __future__ import annotations

import itertools
import shutil
import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import OUT, percentiles, write_results  # noqa: E402


def _private_mb() -> float:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:])
    return int(fields["Anonymous"].split()[0]) / 1024


def _write(root: Path, users: int, start: float, n: int, rng, parts: int = 4, tag: str = "") -> None:
    """n impressions after `start` (a send every tenth line) spread over `parts` live segments."""
    from graph.eventlog import event_to_json
    from graph.records import Event

    src, dst = rng.integers(0, users, n), rng.integers(0, users, n)
    ts = start + np.sort(rng.random(n)) * 3600.0
    root.mkdir(parents=True, exist_ok=True)
    for p in range(parts):
        with open(root / f"live-2026120612-bench-{p}{tag}.jsonl", "a") as f:
            f.writelines(event_to_json(Event("send" if i % 10 == 9 else "impression", f"u{src[i]}", f"u{dst[i]}",
                                             float(ts[i]), position=int(i % 20))) + "\n"
                         for i in range(p, n, parts))


def _latencies(pipe, viewers, until=None) -> list[float]:
    out = []
    for v in viewers:
        t = time.perf_counter()
        pipe.times_seen(v)
        out.append(time.perf_counter() - t)
        if until is not None and until():
            break
    return out


@click.command()
@click.option("--users", default=100_000, show_default=True)
@click.option("--impressions", default=2_000_000, show_default=True)
@click.option("--rate", default=200, show_default=True, help="impressions a second in the steady state")
def main(users: int, impressions: int, rate: int) -> None:
    from candidates.filters import SnapshotStateReader
    from candidates.pipeline import CandidatePipeline
    from candidates.recent_shown import RecentImpressions, RecentShownConfig, recent_impressions
    from graph.snapshot.build import from_pairs
    from graph.snapshot.format import EVENT_CODE

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, users, 10 * users), rng.integers(0, users, 10 * users)
    snap = from_pairs([f"u{x}" for x in a], [f"u{x}" for x in b])
    snap.build_index()
    n, held = snap.num_users, 1_000_000
    snap.events = {"type": np.full(held, EVENT_CODE["impression"], np.int8),
                   "src": rng.integers(0, n, held).astype(np.int32), "dst": rng.integers(0, n, held).astype(np.int32),
                   "ts": np.sort(1.7e9 + rng.random(held) * 14 * 86_400.0), "position": np.zeros(held, np.int16)}
    after = float(snap.events["ts"].max())
    root = OUT / "recent-shown"
    shutil.rmtree(root, ignore_errors=True)
    total = impressions + impressions // 9   # every tenth line a send
    _write(root, users, after, total, rng)
    size_mb = sum(p.stat().st_size for p in root.glob("*.jsonl")) / 2**20
    viewers = rng.integers(0, n, 3000)

    base = CandidatePipeline(snap, [], SnapshotStateReader(snap))
    base.times_seen(0)
    r: dict = {"users": users, "impressions_logged": impressions, "log_mb": round(size_mb, 1),
               "baseline_snapshot_only": percentiles(_latencies(base, viewers.tolist()))}

    # the first read as serving runs it (before the worker serves)
    pipe = CandidatePipeline(snap, [], SnapshotStateReader(snap))
    before, start = _private_mb(), time.perf_counter()
    recent = pipe.recent_shown = recent_impressions(root, snap, RecentShownConfig(refresh_s=3600))
    seconds = time.perf_counter() - start
    assert recent.after == after and recent.size == impressions, recent.size
    r["first_read"] = {"seconds": round(seconds, 2), "impressions_per_s": round(recent.size / seconds),
                       "private_mb": round(_private_mb() - before, 1),
                       "held_mb": round(sum(a.nbytes for run in recent._held.runs for a in run) / 2**20, 1)}
    # the same read in a background thread, requests going on meanwhile (not what serving does)
    other = RecentImpressions(root, snap, after, RecentShownConfig(refresh_s=3600))
    side = CandidatePipeline(snap, [], SnapshotStateReader(snap))
    side.recent_shown = other
    other.refresh()
    during = _latencies(side, itertools.cycle(viewers.tolist()), until=lambda: not other.reading.is_alive())
    other.reading.join()
    r["first_read_in_a_thread"] = {"requests_meanwhile": len(during), "times_seen_meanwhile": percentiles(during)}
    side.close()
    r["with_recent"] = percentiles(_latencies(pipe, viewers.tolist()))
    r["p99_ratio_to_baseline"] = round(r["with_recent"]["p99_ms"] / r["baseline_snapshot_only"]["p99_ms"], 2)

    # the steady state: 10 s of traffic, then one read of it
    _write(root, users, after + 7200.0, rate * 10 + rate * 10 // 9, rng, tag="")
    start = time.perf_counter()
    recent.refresh(force=True)
    r["read_of_10s_traffic"] = {"impressions": recent.size - impressions,
                                "ms": round((time.perf_counter() - start) * 1000, 2), "runs": len(recent._held.runs)}
    write_results("recent_shown", r)
    base.close()
    pipe.close()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
