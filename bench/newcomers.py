"""The newcomer stage (candidates/newcomers.py): what it costs a request and its index's read of Neo4j.

A simulated world goes into a throw-away Neo4j and a snapshot; then accounts sign up (dated now, as the
API dates them) and befriend 1 to 3 users of the world each. Each viewer's list is timed through
`CandidatePipeline.recommend` (the hard rules on Neo4j) with the newcomer index and without it (the
baseline of the same run, the pipeline before 2026-12-06), both in turn for each viewer (which goes
first alternating), over viewers of two kinds: any user the snapshot serves (3 friends or more there),
and those of them who are friends of the newcomers' friends (who get a newcomer and pay its rules read).
The index's own reads of Neo4j are timed by bench/newcomer_reads.py.

    PYTHONPATH=. .venv/bin/python bench/newcomers.py [--users 5000] [--new-users 300] [--viewers 300]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import compare_lists, world_in_neo4j, write_results  # noqa: E402
from candidates.filters import StoreStateReader  # noqa: E402
from candidates.newcomers import SOURCE, NewcomerConfig, NewcomerIndex  # noqa: E402
from candidates.pipeline import CandidatePipeline  # noqa: E402
from candidates.registry import REGISTRY  # noqa: E402
from graph.records import Friendship, UserRecord  # noqa: E402


def _sign_up(store, profiles: list, names: list[str], rng: np.random.Generator) -> None:
    now = time.time()
    store.upsert_users([UserRecord(id=u) for u in names], created_at_default=now)
    store.add_friendships([Friendship(u, profiles[int(x)].id, now) for i, u in enumerate(names)
                           for x in rng.choice(len(profiles), 1 + i % 3, replace=False)])


@click.command()
@click.option("--users", default=5000, show_default=True, help="users of the simulated world")
@click.option("--new-users", default=300, show_default=True, help="accounts that sign up after the snapshot")
@click.option("--viewers", default=300, show_default=True, help="viewers timed of each kind")
@click.option("--limit", default=20, show_default=True)
@click.option("--port", default=7696, show_default=True)
def main(users: int, new_users: int, viewers: int, limit: int, port: int) -> None:
    rng = np.random.default_rng(0)
    with world_in_neo4j("newcomers-neo4j", users, port, for_requests=True) as (store, profiles, snap):
        pipeline = CandidatePipeline(snap, REGISTRY.build_all(snap), StoreStateReader(store))
        new = [f"new-{i}" for i in range(new_users)]
        _sign_up(store, profiles, new, rng)
        index = NewcomerIndex(store, snap.meta["accounts_read_at"], NewcomerConfig(refresh_s=3600))
        index.refresh()
        # viewers the snapshot serves (those with fewer friends there who made new ones are served off it)
        served = {snap.external_id(int(i)) for i in
                  np.flatnonzero(snap.degree >= pipeline.config.fresh_below_friends)}
        near = sorted({v for u in new for f in store.friends(u) for v in store.friends(f)} & served)
        anyone = sorted(served)
        any_viewer = [anyone[int(i)] for i in rng.choice(len(anyone), viewers, replace=False)]
        near_viewer = [near[int(i)] for i in rng.choice(len(near), min(viewers, len(near)), replace=False)]
        out = compare_lists(pipeline, {"newcomers_friends_of_friends": near_viewer, "any_viewer": any_viewer},
                            {"with_newcomers": lambda: setattr(pipeline, "newcomers", index),
                             "baseline_without": lambda: setattr(pipeline, "newcomers", None)},
                            limit, SOURCE, SOURCE)
        pipeline.close()
    write_results("newcomers", {
        "users": users, "new_users": new_users, "limit": limit, "friends_each": "1, 2 or 3 (a third each)",
        "slots": list(NewcomerConfig().slots), **out})


if __name__ == "__main__":
    main()
