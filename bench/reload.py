"""Requests while an API worker loads a newly released set (api/services.py `reload`).

A simulator world of `--users` users behind an in-memory graph store (the rule reads cost no I/O here, so
what is measured is the worker itself), `--threads` request threads in a closed loop over random viewers
with a friend, and after a few seconds a new snapshot published. Two ways of loading it, in the same run:
- `background` (this code): the request that notices the new pointers starts a load in a thread and every
  request goes on with the pipeline it has until the swap;
- `inline` (the code before, as the baseline): the request that notices loads the set itself, and any
  request that checks again while it loads (after `reload_check_s`) waits for the same load.
For each: the load's seconds, and the requests answered during the load, their p50 / p99 / max.

    python bench/reload.py [--users 100000] [--threads 2] [--check-s 5]
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentiles, write_results  # noqa: E402


def _inline_reload(self, force: bool = False) -> bool:
    """The reload before the background load: the noticing request loads the set itself."""
    wanted = self._changed(force)
    return wanted is not None and self._load(wanted)


def _trial(mode: str, snap, store, data: Path, threads: int, check_s: float, seed: int) -> dict:
    from api import close_app, create_app
    from api.services import Services
    from graph.snapshot import save_snapshot
    from pymk.artifacts import ArtifactStore
    from pymk.settings import Settings

    settings = Settings.from_env({"PYMK_DATA_DIR": str(data), "PYMK_EXPLORE_SHARE": "0", "PYMK_SERVED_LOG": "off",
                                  "PYMK_API_RATE_LIMIT": "0"})
    settings = dataclasses.replace(settings, api=dataclasses.replace(settings.api, reload_check_s=check_s))
    snapshots = ArtifactStore(settings.snapshot_dir)
    save_snapshot(snap, snapshots, source="bench")
    original = Services.reload
    if mode == "inline":
        Services.reload = _inline_reload
    app = create_app(settings, store=store)
    svc = app.extensions["pymk"]
    client = app.test_client()
    viewers = np.flatnonzero(snap.degree > 0)
    rng = np.random.default_rng(seed)
    stop, times = threading.Event(), []

    def loop(r: np.random.Generator) -> None:
        while not stop.is_set():
            user = snap.external_id(int(r.choice(viewers)))
            t = time.perf_counter()
            resp = client.get(f"/v1/users/{user}/suggestions")
            times.append((t, time.perf_counter() - t, resp.headers.get("X-Pymk-Snapshot-Version")))

    workers = [threading.Thread(target=loop, args=(np.random.default_rng(rng.integers(1 << 31)),))
               for _ in range(threads)]
    try:
        for w in workers:
            w.start()
        time.sleep(3.0)
        old = svc.served.snapshot_version
        new = save_snapshot(snap, snapshots, source="bench").name
        svc._checked = -1e9   # the next request's check is due
        start = time.perf_counter()
        while svc.served.snapshot_version != new:
            time.sleep(0.005)
        swapped = time.perf_counter()
        time.sleep(2.0)
    finally:
        stop.set()
        for w in workers:
            w.join()
        Services.reload = original
        close_app(app)
    during = [dt for t, dt, _ in times if start <= t + dt and t <= swapped]
    return {"mode": mode, "load_s": round(swapped - start, 3), "old": old, "requests_during_load": len(during),
            "during_load": percentiles(during) if during else None,
            "max_ms": round(max(during) * 1e3, 1) if during else None,
            "before": percentiles([dt for t, dt, _ in times if t + dt < start])}


@click.command()
@click.option("--users", default=100_000, show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--check-s", default=5.0, show_default=True, help="reload_check_s")
@click.option("--seed", default=0, show_default=True)
def main(users: int, threads: int, check_s: float, seed: int) -> None:
    import tempfile

    from graph.memory_store import MemoryGraphStore
    from graph.records import Friendship
    from sim.world import WorldConfig, generate_world, world_snapshot

    snap = world_snapshot(generate_world(WorldConfig(num_users=users, seed=seed)))
    store = MemoryGraphStore()
    ids = snap.id_strings
    src = np.repeat(np.arange(snap.num_users), np.diff(snap.indptr))
    pairs = src < snap.indices
    store.add_friendships([Friendship(ids[a], ids[b], 1.0)
                           for a, b in zip(src[pairs], snap.indices[pairs], strict=True)])
    results = []
    for mode in ("inline", "background", "inline", "background"):
        with tempfile.TemporaryDirectory() as tmp:
            res = _trial(mode, snap, store, Path(tmp), threads, check_s, seed)
        results.append(res)
        print(f"{mode:<10} load {res['load_s']:.2f} s; {res['requests_during_load']} requests during it: "
              f"{res['during_load']}, max {res['max_ms']} ms (before: {res['before']})", flush=True)
    write_results("reload", {"users": users, "threads": threads, "check_s": check_s,
                             "trials": results})


if __name__ == "__main__":
    main()
