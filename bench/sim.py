"""Simulator benchmark: world generation time and peak memory at 100k and 1M users.

Each size runs in a fresh child process so its peak memory is its own. Baseline in the same run:
networkx's `powerlaw_cluster_graph` (Holme-Kim, triadic closure + preferential attachment, a
per-edge Python loop) at 100k users with the same number of edges, as a speed ratio.

    python bench/sim.py [--sizes 100000,1000000] [--avg-degree 100]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_results  # noqa: E402

CHILD = """
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from sim.world import WorldConfig, generate_world
n, deg = int(sys.argv[1]), float(sys.argv[2])
t = time.perf_counter()
w = generate_world(WorldConfig(num_users=n, avg_degree=deg, seed=1))
s = time.perf_counter() - t
d = np.bincount(np.concatenate([w.src, w.dst]), minlength=n)
print(json.dumps({{"users": n, "friendships": int(len(w.src)), "seconds": round(s, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "mean_degree": round(float(d.mean()), 1), "max_degree": int(d.max()),
                  "cold_start_share": round(float(w.cold_start.mean()), 4)}}))
"""

NX_CHILD = """
import json, sys, time
import networkx as nx
n, m = int(sys.argv[1]), int(sys.argv[2])
t = time.perf_counter()
g = nx.powerlaw_cluster_graph(n, m, 0.5, seed=1)
print(json.dumps({"seconds": round(time.perf_counter() - t, 1), "edges": g.number_of_edges()}))
"""


def _child(code: str, *args: object) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--sizes", default="100000,1000000", show_default=True)
@click.option("--avg-degree", default=100.0, show_default=True,
              help="Target before duplicate ties are merged; the realized mean degree is about 0.73 of it.")
@click.option("--baseline/--no-baseline", default=True, show_default=True)
@click.option("--name", default="sim", show_default=True, help="Results file name under bench/out.")
def main(sizes: str, avg_degree: float, baseline: bool, name: str) -> None:
    runs = [_child(CHILD.format(root=str(ROOT)), int(n), avg_degree) for n in sizes.split(",")]
    for r in runs:
        print(r, flush=True)
    result: dict = {"avg_degree_target": avg_degree, "runs": runs}
    if baseline:
        small = runs[0]
        start = time.perf_counter()
        nx_run = _child(NX_CHILD, small["users"], max(1, round(small["friendships"] / small["users"])))
        nx_run["wall_s"] = round(time.perf_counter() - start, 1)
        result.update(baseline_networkx_powerlaw_cluster_graph=nx_run,
                      speedup_vs_networkx_at_smallest=round(nx_run["seconds"] / max(small["seconds"], 0.1), 1))
    write_results(name, result)


if __name__ == "__main__":
    main()
