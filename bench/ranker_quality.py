"""Ranker quality on the simulator's logs: focal vs balanced cross-entropy vs logistic regression.

Per head: AUC, PR-AUC, normalized entropy and calibration (ECE) on the last time period; and
NDCG@10 of connections formed (sent and accepted) for the combined score, the send head alone and
the mutual-friends heuristic. No Neo4j: the sample goes through the in-memory store.

    python bench/ranker_quality.py [--users 4000] [--days 14]
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
from sim.export import SampleSpec, write_sample
from sim.world import WorldConfig


@click.command()
@click.option("--users", default=4000, show_default=True)
@click.option("--days", default=14, show_default=True)
def main(users: int, days: int) -> None:
    out = OUT / f"ranker-sample-{users}-{days}"
    manifest = write_sample(SampleSpec(WorldConfig(num_users=users, seed=1), log_days=days), out)
    store, log = MemoryGraphStore(), EventLog(out / "log")
    shutil.rmtree(out / "log", ignore_errors=True)
    ingest_users(store, out / "users.csv", progress=False)
    ingest_edges(store, out / "edges.txt", progress=False)
    ingest_events(store, out / "events.jsonl", log, progress=False)
    ctx = FeatureContext(from_store(store, log))
    configs = {"focal (a=0.25, g=2)": RankerConfig(), "balanced_ce": RankerConfig(loss="balanced"),
               "logistic_regression": RankerConfig(loss="bce", linear=True)}
    report = train_ranker(ctx, configs)["report"]
    for res in report["results"].values():
        res.pop("config", None)
    write_results("ranker_quality", {"sample": manifest["event_counts"], **report})


if __name__ == "__main__":
    main()
