"""Closed-loop A/B in the simulator: pymk's ranked pipeline vs the mutual-friends heuristic vs a
send-only ranker, on connections formed per 1000 impressions (with 95% bootstrap intervals).

The ranker is trained on the world's logged baseline period (random friends-of-friends), then all
three policies serve disjoint user buckets of the same world for `--days` simulated days.

    python bench/closed_loop.py [--users 4000] [--days 5]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT, write_results
from graph.eventlog import EventLog
from graph.ingest import ingest_edges, ingest_events, ingest_users
from graph.memory_store import MemoryGraphStore
from graph.snapshot import from_store
from ranker.features import FeatureContext
from ranker.train import RankerConfig, train_ranker
from sim.abtest import compare, difference, format_report
from sim.behaviour import WorldState
from sim.export import SampleSpec, write_sample
from sim.policies import MutualFriendsPolicy
from sim.pymk_policy import PymkPolicy
from sim.world import WorldConfig, generate_world


@click.command()
@click.option("--users", default=4000, show_default=True)
@click.option("--days", default=5, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--suffix", default="", help="Results go to bench/out/closed_loop<SUFFIX>.json.")
def main(users: int, days: int, seed: int, suffix: str) -> None:
    cfg = WorldConfig(num_users=users, seed=seed)
    out = OUT / f"closed-loop-{users}"
    write_sample(SampleSpec(cfg, log_days=14), out)
    store, log = MemoryGraphStore(), EventLog(out / "log")
    shutil.rmtree(out / "log", ignore_errors=True)
    ingest_users(store, out / "users.csv", progress=False)
    ingest_edges(store, out / "edges.txt", progress=False)
    ingest_events(store, out / "events.jsonl", log, progress=False)
    trained = train_ranker(FeatureContext(from_store(store, log)), {"focal": RankerConfig()})
    model, cal = trained["models"]["focal"], trained["calibrations"]["focal"]
    world = generate_world(cfg)  # the same world, from the end of its history
    state = WorldState(world)
    arms = {"mutual_friends": MutualFriendsPolicy(state, seed=seed),
            "pymk_ranked": PymkPolicy(state, model, calibration=cal),
            "pymk_send_only": PymkPolicy(state, model, send_only=True, calibration=cal)}
    results = compare(state, arms, days, world.end_ts, seed=seed, progress=True)
    print(format_report(results))
    by_name = {r.name: r for r in results}
    diffs = {f"{a} - {b}": [round(x, 2) for x in difference(by_name[a], by_name[b])]
             for a, b in (("pymk_ranked", "pymk_send_only"), ("pymk_ranked", "mutual_friends"))}
    print(diffs)
    write_results(f"closed_loop{suffix}", {"users": users, "days": days, "accept_weight": cal.accept_weight,
                                           "connections_per_1000_differences": diffs, "arms": [
        {"name": r.name, "viewers": r.viewers, "impressions": r.impressions, "sends": r.sends, "accepts": r.accepts,
         "estimates": r.estimates, "intervals": r.intervals} for r in results]})


if __name__ == "__main__":
    main()
