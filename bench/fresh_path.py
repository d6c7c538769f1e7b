"""Suggestions for users newer than the served snapshot (signed up since): the API's fresh path.

A simulated world (`pymk sim generate`: users with school, employer and city, ties, events) goes into a
throw-away Neo4j and a snapshot; then new accounts sign up (profiles drawn from the world's, 0, 1 or 2
friends each) and each one's list is timed through `candidates.fresh.fresh_fof` as the API calls it: with
the snapshot's cold-start and popularity sources fused in, against the baseline of the same run, the
store's friends of friends alone (what the path served before 2026-12-06: nothing for an account
without friends). Printed: p50 / p99 ms and how many of the new accounts got a non-empty list.

    PYTHONPATH=. .venv/bin/python bench/fresh_path.py [--users 5000] [--new-users 300]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentiles, world_in_neo4j, write_results  # noqa: E402
from candidates.fresh import fresh_fof  # noqa: E402
from candidates.registry import REGISTRY  # noqa: E402
from graph.records import Friendship, UserRecord  # noqa: E402


def _timed(fn, n: int) -> tuple[dict, list]:
    seconds, out = [], []
    for i in range(n):
        t0 = time.perf_counter()
        out.append(fn(i))
        seconds.append(time.perf_counter() - t0)
    return percentiles(seconds), out


@click.command()
@click.option("--users", default=5000, show_default=True, help="users of the simulated world")
@click.option("--new-users", default=300, show_default=True, help="accounts that sign up after the snapshot")
@click.option("--limit", default=20, show_default=True)
@click.option("--port", default=7695, show_default=True)
def main(users: int, new_users: int, limit: int, port: int) -> None:
    rng = np.random.default_rng(0)
    with world_in_neo4j("fresh-path-neo4j", users, port) as (store, profiles, snap):
        sources = REGISTRY.build_all(snap)
        new = [f"new-{i}" for i in range(new_users)]
        drawn = rng.choice(len(profiles), new_users)
        store.upsert_users([UserRecord(id=u, school=profiles[j].school, employer=profiles[j].employer,
                                       city=profiles[j].city, lat=profiles[j].lat, lon=profiles[j].lon)
                            for u, j in zip(new, drawn.tolist(), strict=True)])
        store.add_friendships([Friendship(u, profiles[int(x)].id, time.time()) for i, u in enumerate(new)
                               for x in rng.choice(len(profiles), i % 3)])   # 0, 1 or 2 friends
        for u in new[:20]:   # warm the server's query plans and the driver's pool
            fresh_fof(store, u, limit, snap=snap, sources=sources)
        as_served = lambda i: fresh_fof(store, new[i], limit, snap=snap, sources=sources).candidates  # noqa: E731
        fused, fused_lists = _timed(as_served, new_users)
        fof, fof_lists = _timed(lambda i: fresh_fof(store, new[i], limit).candidates, new_users)
    write_results("fresh_path", {
        "users": users, "new_users": new_users, "limit": limit, "friends_each": "0, 1 or 2 (a third each)",
        "fused_ms": fused, "baseline_fof_only_ms": fof,
        "non_empty_lists": {"fused": sum(bool(x) for x in fused_lists), "fof_only": sum(bool(x) for x in fof_lists)},
        "mean_list_length": {"fused": round(float(np.mean([len(x) for x in fused_lists])), 1),
                             "fof_only": round(float(np.mean([len(x) for x in fof_lists])), 1)},
        "p50_ratio_fused_vs_fof_only": round(fused["p50_ms"] / fof["p50_ms"], 2)})


if __name__ == "__main__":
    main()
