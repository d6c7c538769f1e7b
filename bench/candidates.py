"""Candidate source latency: FoF and PPR per viewer on a large graph, against networkx.

The big graph (default 1M users, 25M friendships = 50M directed CSR entries) is a simulator world,
kept as a snapshot under bench/out so reruns skip generation. networkx cannot hold that graph in
this machine's memory in reasonable time, so the speed ratio is measured on a 100k-user world:
our FoF (mutual counts + Adamic-Adar + ranking) vs `networkx.adamic_adar_index` over the same
users' two-hop pairs (scoring only).

    python bench/candidates.py [--users 1000000] [--avg-degree 50] [--samples 1000]
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

from bench.common import OUT, percentiles, write_results
from candidates.fof import FriendsOfFriendsSource
from candidates.ppr import PersonalizedPageRankSource
from graph.snapshot import Snapshot, from_pairs, load_snapshot, save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.errors import ArtifactError
from sim.world import WorldConfig, generate_world


def world_snapshot(users: int, avg_degree: float) -> tuple[Snapshot, float]:
    store = ArtifactStore(OUT / f"bench-cand-{users}-{int(avg_degree)}")
    try:
        return load_snapshot(store.current()), 0.0
    except ArtifactError:
        pass
    start = time.perf_counter()
    w = generate_world(WorldConfig(num_users=users, avg_degree=avg_degree, seed=3))
    snap = from_pairs(w.src.astype(str), w.dst.astype(str))
    save_snapshot(snap, store, source=f"sim world {users} users")
    return snap, time.perf_counter() - start


def latencies(fn, users: np.ndarray) -> list[float]:
    out = []
    for u in users.tolist():
        t = time.perf_counter()
        fn(u)
        out.append(time.perf_counter() - t)
    return out


def big_graph(users: int, avg_degree: float, samples: int, rng: np.random.Generator) -> dict:
    snap, gen_s = world_snapshot(users, avg_degree)
    viewers = rng.choice(np.flatnonzero(snap.degree > 0), samples, replace=False)
    fof = FriendsOfFriendsSource(snap)
    ppr = PersonalizedPageRankSource(snap)
    latencies(lambda u: fof.generate(u, 100), viewers[:20])  # warm-up
    return {"graph": {"users": snap.num_users, "directed_edges": int(snap.indices.size), "generate_s": round(gen_s, 1)},
            "fof_top100": percentiles(latencies(lambda u: fof.generate(u, 100), viewers)),
            "ppr_top100": percentiles(latencies(lambda u: ppr.generate(u, 100), viewers))}


@click.command()
@click.option("--users", default=1_000_000, show_default=True)
@click.option("--avg-degree", default=50.0, show_default=True)
@click.option("--samples", default=1000, show_default=True)
def main(users: int, avg_degree: float, samples: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    rng = np.random.default_rng(0)
    r: dict = {}
    r.update(big_graph(users, avg_degree, samples, rng))

    small, _ = world_snapshot(100_000, avg_degree)
    g = nx.Graph()
    g.add_edges_from((i, int(j)) for i in range(small.num_users) for j in small.neighbors(i) if i < j)
    sv = rng.choice(np.flatnonzero(small.degree > 0), min(samples, 300), replace=False)
    small_fof = FriendsOfFriendsSource(small)
    ours = latencies(lambda u: small_fof.generate(u, 100), sv)

    def nx_aa(u: int) -> None:
        cands = {w for f in g[u] for w in g[f]} - set(g[u]) - {u}
        sorted(nx.adamic_adar_index(g, [(u, v) for v in cands]), key=lambda t: -t[2])[:100]

    theirs = latencies(nx_aa, sv)
    r["ratio_graph"] = {"users": small.num_users, "directed_edges": int(small.indices.size)}
    r["fof_top100_100k"] = percentiles(ours)
    r["baseline_networkx_adamic_adar_100k"] = percentiles(theirs)
    r["fof_speedup_vs_networkx_p50"] = round(r["baseline_networkx_adamic_adar_100k"]["p50_ms"]
                                             / r["fof_top100_100k"]["p50_ms"], 1)
    write_results("candidates", r)


if __name__ == "__main__":
    main()
