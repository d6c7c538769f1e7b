"""The learned pipeline on graphs grown by known mechanisms, against the best blend of those mechanisms.

Each graph grows from a sparse random start: a user drawn by a heavy-tailed activity starts each new tie,
either closing a triangle (a random friend's random friend; `closure` of the ties) or reaching a user drawn
by popularity: by degree (`pa`) or by new ties among the last 1,500 (`recency`, `mixed`). `pymk eval`'s
harness (one seed) scores the pipeline and every baseline; the bound is the best blend of the mechanisms'
own scores, resource allocation / the viewer's degree (the chance a closure reaches the candidate) plus a
weight times a popularity (degree, or new ties in the last 1, 5 or 20% of the training ties), its weight
chosen on the test period itself, for the same test users: what no ranker at the cut can beat by much.

    python bench/growth_regimes.py [--users 3000] [--ties 30000] [--seed 0]

Writes bench/out/growth_<mode>.txt (the graphs) and bench/out/growth_regimes.json.
"""

from __future__ import annotations

import random
import sys
import time
from collections import deque
from pathlib import Path

import click
import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT, write_results
from evaluation.harness import best_single, evaluate, time_split
from pymk.metrics import rank_metrics

MODES = {"pa": (0.2, "degree"), "recency": (0.2, "recent"), "mixed": (0.5, "recent")}   # closure share, popularity
RECENT = 1_500
WEIGHTS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def grow(mode: str, users: int, ties: int, seed: int) -> list[tuple[int, int, int]]:
    """`ties` ties (a, b, time) grown by `mode`'s mechanisms."""
    closure_share, popularity = MODES[mode]
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    adj: list[set[int]] = [set() for _ in range(users)]
    degree, recent_count, recent = np.zeros(users), np.zeros(users), deque()
    activity = np.array([rng.paretovariate(1.5) for _ in range(users)])
    activity /= activity.sum()
    out: list[tuple[int, int, int]] = []

    def add(u: int, v: int) -> None:
        adj[u].add(v)
        adj[v].add(u)
        degree[[u, v]] += 1
        out.append((u, v, 1_500_000_000 + 60 * len(out)))
        recent.append(v)
        recent_count[v] += 1
        if len(recent) > RECENT:
            recent_count[recent.popleft()] -= 1

    for u in range(users):
        v = rng.randrange(users)
        if v != u and v not in adj[u]:
            add(u, v)
    while len(out) < ties:
        u = int(nprng.choice(users, p=activity))
        v = None
        if rng.random() < closure_share and adj[u]:
            f = rng.choice(sorted(adj[u]))
            reachable = [w for w in sorted(adj[f]) if w != u and w not in adj[u]]
            v = rng.choice(reachable) if reachable else None
        if v is None:
            weight = degree + 1 if popularity == "degree" else recent_count + 0.1
            v = int(nprng.choice(users, p=weight / weight.sum()))
            if v == u or v in adj[u]:
                continue
        add(u, v)
    return out


def blend_bound(path: Path, seed: int, sample: list[str]) -> dict:
    """The best Recall@20 and NDCG@20 of closure + weight * popularity over the weights and popularities."""
    split = time_split(path, 0.8, seed)   # the harness's own split: the same training graph and test ties
    snap, test = split.train, split.test
    n = snap.num_users
    adj = sp.csr_matrix((np.ones(snap.indices.size), snap.indices, snap.indptr), shape=(n, n))
    deg = np.asarray(adj.sum(1)).ravel()
    step = adj.multiply(1 / np.maximum(deg, 1)[:, None]).tocsr()   # a random friend's random friend
    src, dst, since = snap.ties()
    order = np.argsort(since, kind="stable")
    pops = {"degree": deg}
    for share in (0.01, 0.05, 0.2):
        last = order[-max(1, int(share * order.size)):]
        pops[f"new ties, last {share:.0%}"] = np.bincount(np.concatenate([src[last], dst[last]]), minlength=n)
    rows = [snap.index_of(u) for u in sample]
    closure = {i: np.asarray((adj[i] @ step).todense()).ravel() / max(deg[i], 1) for i in rows}
    best = {"recall@20": (0.0, None), "ndcg@20": (0.0, None)}
    for name, pop in pops.items():
        pop = pop / max(pop.sum(), 1)
        for w in WEIGHTS:
            total = dict.fromkeys(best, 0.0)
            for u, i in zip(sample, rows, strict=True):
                score = closure[i] + w * pop
                score[i] = score[adj[i].indices] = -1.0
                top = np.argsort(-score, kind="stable")[:20]
                got = rank_metrics([snap.id_strings[j] for j in top.tolist()], test[u])
                for m in total:
                    total[m] += got[m] / len(sample)
            for m, value in total.items():
                if value > best[m][0]:
                    best[m] = (round(value, 4), f"{name}, weight {w}")
    return {m: {"value": v, "blend": how} for m, (v, how) in best.items()}


@click.command()
@click.option("--users", default=3_000, show_default=True)
@click.option("--ties", default=30_000, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--test-users", default=500, show_default=True)
def main(users: int, ties: int, seed: int, test_users: int) -> None:
    rows = []
    OUT.mkdir(parents=True, exist_ok=True)
    for mode in MODES:
        start = time.perf_counter()
        path = OUT / f"growth_{mode}.txt"
        path.write_text("".join(f"{a} {b} {t}\n" for a, b, t in grow(mode, users, ties, seed)))
        report = evaluate(path, users=test_users, seed=seed, progress=False)
        metrics, single = report["metrics"], best_single(report["metrics"])   # its bases are nonzero here
        bound = blend_bound(path, seed, report["per_user"]["users"])
        row = {"mode": mode, "closure_share": MODES[mode][0], "popularity": MODES[mode][1],
               "chosen": report["ranker"]["chosen"], "seconds": round(time.perf_counter() - start, 1)}
        for m in ("recall@20", "ndcg@20"):
            base = single[m]["value"]
            row[m] = {"pipeline": metrics["pipeline"][m], "best_single": base, "best_single_name": single[m]["name"],
                      "pipeline_ratio": round(single[m]["ratio"], 4), "bound": bound[m]["value"],
                      "bound_blend": bound[m]["blend"], "bound_ratio": round(bound[m]["value"] / base, 4)}
        rows.append(row)
        print(f"{mode}: " + "; ".join(f"{m} pipeline {row[m]['pipeline_ratio']}x, bound {row[m]['bound_ratio']}x "
                                      f"of {row[m]['best_single_name']}" for m in ("recall@20", "ndcg@20")),
              flush=True)
    write_results("growth_regimes", {"users": users, "ties": ties, "seed": seed, "test_users": test_users,
                                     "regimes": rows})


if __name__ == "__main__":
    main()
