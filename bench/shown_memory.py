"""Private memory an API worker spends on the impression log: the impressions by viewer saved with the
snapshot and memory-mapped (shared by every worker), against the same arrays sorted in each worker (the
baseline: snapshots saved before 2026-12-06, and the code before).

A structure-only world of `--users` users with `--impressions` impressions; each arm loads the snapshot as
the API does (memory-mapped) in its own process and builds the ranker's feature context and reads the seen
penalty's arrays, then reports its growth in anonymous memory (smaps_rollup: what no other worker can
share; the mapped snapshot's pages are the page cache's) and the time that took.

    python bench/shown_memory.py [--users 100000] [--impressions 5000000]
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import OUT, write_results  # noqa: E402


def _private_mb() -> float:
    """Anonymous memory (heap: what no other process can share); the snapshot's mapped file pages are the
    page cache's, shared by every worker that maps them."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:])
    return int(fields["Anonymous"].split()[0]) / 1024


def _arm(path: str, out) -> None:
    from graph.snapshot import load_snapshot
    from ranker.features import FeatureContext

    snap = load_snapshot(Path(path), mmap=True)
    before, start = _private_mb(), time.perf_counter()
    ctx = FeatureContext(snap)
    viewer, shown, sec = snap.impressions_by_viewer()
    touched = float(ctx.imp_sec.sum() + viewer.sum() + shown.sum() + sec.sum())   # every page read, as requests do
    out.put({"seconds": round(time.perf_counter() - start, 2), "private_mb": round(_private_mb() - before, 1),
             "checksum": touched})


def _run(path: Path) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_arm, args=(str(path), q))
    proc.start()
    r = q.get()
    proc.join()
    return r


@click.command()
@click.option("--users", default=100_000, show_default=True)
@click.option("--impressions", default=5_000_000, show_default=True)
def main(users: int, impressions: int) -> None:
    from graph.snapshot import save_snapshot
    from graph.snapshot.build import from_pairs
    from graph.snapshot.format import EVENT_CODE, SHOWN_ARRAYS
    from pymk.artifacts import ArtifactStore

    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, users, 10 * users), rng.integers(0, users, 10 * users)
    snap = from_pairs([f"u{x}" for x in src], [f"u{x}" for x in dst])
    n = snap.num_users
    snap.events = {"type": np.full(impressions, EVENT_CODE["impression"], np.int8),
                   "src": rng.integers(0, n, impressions).astype(np.int32),
                   "dst": rng.integers(0, n, impressions).astype(np.int32),
                   "ts": np.sort(1.7e9 + rng.random(impressions) * 30 * 86_400.0),
                   "position": rng.integers(0, 20, impressions).astype(np.int16)}
    root = OUT / "shown-memory"
    shutil.rmtree(root, ignore_errors=True)
    path = save_snapshot(snap, ArtifactStore(root), source="bench")
    r: dict = {"users": users, "impressions": impressions, "shared": _run(path)}
    for name in SHOWN_ARRAYS:   # as a snapshot saved before the arrays were: each worker sorts its own
        (path / f"{name}.npy").unlink()
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["arrays"] = {k: v for k, v in manifest["arrays"].items() if k not in SHOWN_ARRAYS}
    (path / "manifest.json").write_text(json.dumps(manifest))
    r["baseline_per_worker"] = _run(path)
    assert r["shared"]["checksum"] == r["baseline_per_worker"]["checksum"]
    r["private_bytes_per_impression"] = {k: round(r[k]["private_mb"] * 2**20 / impressions, 1)
                                         for k in ("shared", "baseline_per_worker")}
    write_results("shown_memory", r)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
