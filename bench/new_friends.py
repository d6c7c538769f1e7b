"""Friends of new friends in the fresh-tie slots (candidates/new_friends.py): what the stage costs a request.

A simulated world goes into a throw-away Neo4j and a snapshot; then viewers befriend 1 to 3 users of the
world each (ties made since the snapshot). Each viewer's list is timed through `CandidatePipeline.recommend`
(the hard rules on Neo4j, the newcomer index on) with the stage and without it (the baseline of the same
run: `PipelineConfig(new_friends=False)`, the pipeline before 2026-12-06), both in turn for each viewer
(which goes first alternating), over viewers of two kinds: any user the snapshot serves (no new friend:
the stage finds none), and those who made new friends (the stage proposes their friends and reads their
rules).

    PYTHONPATH=. .venv/bin/python bench/new_friends.py [--users 5000] [--viewers 300]
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import compare_lists, world_in_neo4j, write_results  # noqa: E402
from candidates.filters import StoreStateReader  # noqa: E402
from candidates.new_friends import SOURCE  # noqa: E402
from candidates.newcomers import SOURCE as NEWCOMERS  # noqa: E402
from candidates.newcomers import NewcomerConfig, NewcomerIndex  # noqa: E402
from candidates.pipeline import CandidatePipeline  # noqa: E402
from candidates.registry import REGISTRY  # noqa: E402
from graph.records import Friendship  # noqa: E402


@click.command()
@click.option("--users", default=5000, show_default=True, help="users of the simulated world")
@click.option("--viewers", default=300, show_default=True, help="viewers timed of each kind")
@click.option("--limit", default=20, show_default=True)
@click.option("--port", default=7697, show_default=True)
def main(users: int, viewers: int, limit: int, port: int) -> None:
    rng = np.random.default_rng(0)
    with world_in_neo4j("new-friends-neo4j", users, port, for_requests=True) as (store, _, snap):
        pipeline = CandidatePipeline(snap, REGISTRY.build_all(snap), StoreStateReader(store))
        served = np.flatnonzero(snap.degree >= pipeline.config.fresh_below_friends)
        picked = rng.choice(served, 2 * viewers, replace=False)
        connecting, anyone = picked[:viewers], picked[viewers:]
        now = time.time()
        ties = [Friendship(snap.external_id(int(v)), snap.external_id(int(f)), now)
                for i, v in enumerate(connecting.tolist())
                for f in rng.choice(snap.num_users, 1 + i % 3, replace=False).tolist()
                if f != v and f not in set(snap.neighbors(v).tolist())]
        store.add_friendships(ties)
        pipeline.newcomers = NewcomerIndex(store, snap.meta["accounts_read_at"], NewcomerConfig(refresh_s=3600))
        on, off = pipeline.config, replace(pipeline.config, new_friends=False)
        out = compare_lists(pipeline, {"made_new_friends": [snap.external_id(int(v)) for v in connecting],
                                       "any_viewer": [snap.external_id(int(v)) for v in anyone]},
                            {"with_stage": lambda: setattr(pipeline, "config", on),
                             "baseline_without": lambda: setattr(pipeline, "config", off)},
                            limit, SOURCE, NEWCOMERS)
        pipeline.close()
    write_results("new_friends", {"users": users, "limit": limit, "new_friends_each": "1, 2 or 3 (a third each)",
                                  **out})


if __name__ == "__main__":
    main()
