"""Personalized PageRank push per viewer: the compiled push (candidates/push.py) against the
vectorized numpy rounds it replaced (the test oracle, tests/test_ppr_push.py) and networkx's
personalized PageRank, on a simulator world. Reports single-viewer latency (the serving path),
block throughput (the precompute and training path) and whether both pushes agree bit for bit.

    python bench/ppr_push.py [--users 100000] [--avg-degree 50] [--samples 500]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.candidates import latencies, world_snapshot
from bench.common import percentiles, write_results
from candidates.ppr import forward_push_block
from tests.test_ppr_push import rounds_reference

ALPHA, EPS = 0.15, 1e-4


@click.command()
@click.option("--users", default=100_000, show_default=True)
@click.option("--avg-degree", default=50.0, show_default=True)
@click.option("--samples", default=500, show_default=True)
@click.option("--block", default=1000, show_default=True, help="Viewers pushed in one call (precompute).")
@click.option("--nx-samples", default=5, show_default=True, help="Viewers for networkx (seconds each).")
def main(users: int, avg_degree: float, samples: int, block: int, nx_samples: int) -> None:
    snap, _ = world_snapshot(users, avg_degree)
    g = (snap.indptr, snap.indices, snap.degree)
    rng = np.random.default_rng(0)
    viewers = rng.choice(np.flatnonzero(snap.degree > 0), samples, replace=False)
    forward_push_block(*g, viewers[:2], ALPHA, EPS)   # compiled code loaded (or compiled) first
    r: dict = {"graph": {"users": snap.num_users, "directed_edges": int(snap.indices.size)}, "eps": EPS}
    r["compiled_one_viewer"] = percentiles(latencies(lambda u: forward_push_block(*g, [u], ALPHA, EPS), viewers))
    r["baseline_numpy_rounds_one_viewer"] = percentiles(
        latencies(lambda u: rounds_reference(*g, [u], ALPHA, EPS, 200), viewers))
    r["speedup_one_viewer_p50"] = round(r["baseline_numpy_rounds_one_viewer"]["p50_ms"]
                                        / r["compiled_one_viewer"]["p50_ms"], 1)
    many = rng.choice(np.flatnonzero(snap.degree > 0), block, replace=False)
    for key, fn in (("compiled", forward_push_block), ("baseline_numpy_rounds", rounds_reference)):
        t = time.perf_counter()
        out = fn(*g, many, ALPHA, EPS, 200)
        r[f"{key}_block_viewers_per_s"] = round(block / (time.perf_counter() - t), 1)
        r.setdefault("_outputs", []).append(out)
    a, b = r.pop("_outputs")
    r["bit_identical"] = all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    graph = nx.Graph()
    graph.add_edges_from(zip(snap.entry_rows().tolist(), snap.indices.tolist(), strict=True))
    r["baseline_networkx_pagerank_one_viewer"] = percentiles(latencies(
        lambda u: nx.pagerank(graph, alpha=1 - ALPHA, personalization={u: 1.0}, tol=1e-6), viewers[:nx_samples]))
    r["speedup_vs_networkx_p50"] = round(r["baseline_networkx_pagerank_one_viewer"]["p50_ms"]
                                         / r["compiled_one_viewer"]["p50_ms"], 1)
    print(r)
    write_results("ppr_push", r)


if __name__ == "__main__":
    main()
