"""Applying request, block and dismissal events to Neo4j: this code against another checkout's.

A simulated world (`pymk sim generate`) gives the users, ties and feedback events; every pass loads
them under a fresh id prefix into one throw-away Neo4j (so each pass starts from the same state) and
times only `apply_events` over the world's sends, answers, blocks and dismissals, in batches as
`pymk ingest events` sends them. With `--baseline-src DIR` the passes alternate between this code
and DIR's (each in its own process, importing that tree's store and Cypher), against the same server:
the baseline of the comparison, named by its commit in the results.

    PYTHONPATH=. .venv/bin/python bench/request_events.py [--users 5000] [--passes 3] [--baseline-src /tmp/base]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WARMUP_PASSES = 2
STATE_EVENTS = ("send", "accept", "decline", "block", "unblock", "dismiss")


def _one_pass(world: Path, prefix: str, batch: int) -> dict:
    """Load the world under `prefix` and time its state events (runs in the tree on PYTHONPATH)."""
    from graph.connect import open_store  # the tree under test: the worker's PYTHONPATH, not ROOT
    from graph.records import Event, Friendship, UserRecord
    from pymk.settings import Settings

    p = lambda x: f"{prefix}{x}"  # noqa: E731
    with open(world / "edges.txt") as f:
        next(f)   # the header
        ties = [Friendship(p(a), p(b), float(ts)) for a, b, ts in (line.split()[:3] for line in f)]
    with open(world / "events.jsonl") as f:
        rows = [json.loads(line) for line in f]
    events = [Event(r["type"], p(r["src"]), p(r["dst"]), float(r["ts"])) for r in rows if r["type"] in STATE_EVENTS]
    ids = sorted({u for t in ties for u in (t.a, t.b)} | {u for e in events for u in (e.src, e.dst)})
    store = open_store(Settings.from_env())
    try:
        store.ensure_schema()
        store.upsert_users([UserRecord(id=u) for u in ids])
        store.add_friendships(ties)
        seconds = []
        for i in range(0, len(events), batch):
            t0 = time.perf_counter()
            store.apply_events(events[i:i + batch])
            seconds.append(time.perf_counter() - t0)
        pending = sum(1 for b in store.iter_requests() for r in b if r.src.startswith(prefix) and r.status == "pending")
    finally:
        store.close()
    return {"events": len(events), "seconds": round(sum(seconds), 3), "pending_after": pending,
            "us_per_event": round(sum(seconds) / len(events) * 1e6, 1),
            "batch_seconds": [round(x, 3) for x in seconds]}


@click.command()
@click.option("--users", default=5000, show_default=True, help="users of the simulated world")
@click.option("--passes", default=8, show_default=True,
              help=f"timed passes of each tree (the first {WARMUP_PASSES} are warm-up)")
@click.option("--batch", default=10_000, show_default=True, help="events per apply_events call")
@click.option("--port", default=7694, show_default=True)
@click.option("--baseline-src", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="another checkout whose store and Cypher are the comparison's baseline")
@click.option("--worker", nargs=2, type=str, default=None, hidden=True)
def main(users: int, passes: int, batch: int, port: int, baseline_src: Path | None,
         worker: tuple[str, str] | None) -> None:
    if worker:   # one pass in a subprocess whose PYTHONPATH is the tree under test
        print(json.dumps(_one_pass(Path(worker[0]), worker[1], batch)))
        return
    sys.path.insert(0, str(ROOT))
    from bench.common import commit_of, fresh_neo4j, sim_world, write_results

    world = sim_world(f"request-events-world-{users}", users, days=7)
    trees = {"this": ROOT, **({"baseline": baseline_src.resolve()} if baseline_src else {})}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    with fresh_neo4j("request-events-neo4j", port) as settings:
        env = {**os.environ, "PYMK_DATA_DIR": str(settings.data_dir), "PYMK_NEO4J_PORT": str(port)}
        for k in range(passes):
            for name, tree in trees.items():   # alternating, so a warming server favours neither
                out = subprocess.run([sys.executable, str(ROOT / "bench" / "request_events.py"), "--batch", str(batch),
                                      "--worker", str(world), f"{name}{k}:"], env={**env, "PYTHONPATH": str(tree)},
                                     cwd=tree, check=True, capture_output=True, text=True)
                runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"pass {k} {name}: {runs[name][-1]['seconds']} s", file=sys.stderr)
    results: dict = {"users": users, "batch": batch, "passes": passes,
                     "trees": {name: f"{tree} ({commit_of(tree)})" for name, tree in trees.items()}, "runs": runs}
    if baseline_src:   # the first passes pay the server's query planning and JIT warm-up; compare the rest
        warm = {name: sorted(r["seconds"] for r in rs[WARMUP_PASSES:]) for name, rs in runs.items()}
        if all(warm.values()):
            results["warm_ratio_this_vs_baseline"] = {
                "median": round(float(np.median(warm["this"]) / np.median(warm["baseline"])), 3),
                "min": round(warm["this"][0] / warm["baseline"][0], 3)}
    write_results("request_events", results)


if __name__ == "__main__":
    main()
