"""Ingestion and snapshot benchmark: Neo4j bulk ingestion rate, idempotent re-run, snapshot times.

Baselines in the same run: one transaction per edge (naive ingestion) and networkx.read_edgelist
(loading the same graph into memory), reported as speed ratios. The same files also go through the
offline initial load (`pymk initial-load`: neo4j-admin import into an empty database), timed from
reading the files to a started server with its schema, and checked to give the same counts.

    python bench/ingest.py [--users 100000] [--edges 2000000]
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click
import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT, fresh_neo4j, peak_rss_mb, timed, write_results
from graph.bulkload import initial_load
from graph.connect import open_store
from graph.edge_reader import EdgeRow, read_edges
from graph.ingest import ingest_edges, ingest_users
from graph.readers import ByteCounter
from graph.records import Friendship
from graph.snapshot import from_edge_list, from_store, load_snapshot, save_snapshot
from pymk.artifacts import ArtifactStore


def generate(users: int, edges: int, seed: int = 7) -> tuple[Path, Path]:
    """Users CSV and a timestamped edge list with a heavy-tailed degree distribution."""
    rng = np.random.default_rng(seed)
    OUT.mkdir(parents=True, exist_ok=True)
    upath, epath = OUT / f"users_{users}.csv", OUT / f"edges_{users}_{edges}.txt"
    weight = rng.pareto(2.5, users) + 1.0
    p = weight / weight.sum()
    src = rng.choice(users, int(edges * 1.05), p=p)
    dst = rng.choice(users, int(edges * 1.05), p=p)
    keep = src != dst
    src, dst = src[keep][:edges], dst[keep][:edges]
    ts = np.sort(rng.integers(1_500_000_000, 1_700_000_000, len(src)))
    np.savetxt(epath, np.column_stack([src, dst, ts]), fmt="%d", header="src dst ts", comments="")
    cities = np.array(["oslo", "rome", "lima", "pune", "kyiv", "baku"])
    with open(upath, "w") as f:
        f.write("id,city,created_at\n")
        f.writelines(f"{i},{cities[i % 6]},{1_400_000_000 + i}\n" for i in range(users))
    return upath, epath


@click.command()
@click.option("--users", default=100_000, show_default=True)
@click.option("--edges", default=2_000_000, show_default=True)
@click.option("--batch-size", default=20_000, show_default=True)
@click.option("--port", default=7699, show_default=True)
def main(users: int, edges: int, batch_size: int, port: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    r: dict = {"users": users, "edges_in_file": edges, "batch_size": batch_size}
    with timed(r, "generate_s"):
        upath, epath = generate(users, edges)
    with fresh_neo4j("bench-ingest", port) as settings:
        store = open_store(settings)
        store.ensure_schema()
        r["server"] = store.server_info()
        rep = ingest_users(store, upath, batch_size, progress=True)
        r["users_rows_per_s"] = round(rep.rows_per_second)
        rep = ingest_edges(store, epath, batch_size, progress=True)
        counts = store.counts()
        r.update(edges_rows=rep.rows_read, edges_ingest_s=round(rep.seconds, 2),
                 edges_rows_per_s=round(rep.rows_per_second), friendships=counts.friendships,
                 ingest_peak_rss_mb=round(peak_rss_mb()))
        rep2 = ingest_edges(store, epath, batch_size, progress=False)
        r["rerun_rows_per_s"] = round(rep2.rows_per_second)
        r["rerun_counts_unchanged"] = store.counts() == counts
        # baseline: one transaction per edge, on a sample
        rows = zip(range(3000), read_edges(ByteCounter(epath)), strict=False)
        sample = [row for _, row in rows if isinstance(row, EdgeRow)]
        start = time.perf_counter()
        for row in sample:
            store.add_friendships([Friendship(row.src, row.dst, row.ts)])
        naive = len(sample) / (time.perf_counter() - start)
        r["baseline_one_tx_per_edge_rows_per_s"] = round(naive)
        r["speedup_vs_one_tx_per_edge"] = round(rep.rows_per_second / naive, 1)
        with timed(r, "snapshot_export_s"):
            snap = from_store(store, progress=True)
        store.close()
    with fresh_neo4j("bench-initial", port - 2, start=False) as settings:
        rep3 = initial_load(settings.neo4j, [upath], [epath], progress=True)
        store = open_store(settings)
        r.update(initial_load_s=round(rep3.seconds, 2), initial_load_importer_s=round(rep3.import_seconds, 2),
                 initial_load_rows_per_s=round(rep3.rows_per_second),
                 initial_load_counts_match_merge=store.counts() == counts,
                 initial_load_vs_merge_ratio=round(rep3.rows_per_second / rep.rows_per_second, 1))
        with timed(r, "snapshot_export_after_initial_load_s"):
            from_store(store, progress=False)
        store.close()
    arts = ArtifactStore(OUT / "bench-snapshots")
    with timed(r, "snapshot_save_s"):
        path = save_snapshot(snap, arts, source="bench")
    loads = []
    for _ in range(3):
        start = time.perf_counter()
        back = load_snapshot(path)
        loads.append(time.perf_counter() - start)
    r["snapshot_load_s"] = round(min(loads), 3)
    r["snapshot_edges"] = back.num_edges
    with timed(r, "snapshot_from_edge_list_s"):
        from_edge_list(epath)
    with timed(r, "baseline_networkx_read_edgelist_s"), open(epath, "rb") as f:
        next(f)  # header line
        nx.read_edgelist(f, data=False)
    r["load_speedup_vs_networkx"] = round(r["baseline_networkx_read_edgelist_s"] / r["snapshot_load_s"], 1)
    write_results("ingest", r)


if __name__ == "__main__":
    main()
