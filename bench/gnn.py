"""GraphSAGE and FAISS benchmark: training time per epoch, inference time, index build and query.

Simulator worlds of 100k and 1M users (profiles included). 100k trains full batch over a sparse
adjacency; 1M trains in mini-batches from our CSR neighbour sampler. FAISS: HNSW query p99 and
recall@10 measured against exact inner-product search (IndexFlatIP) on the same embeddings.

    python bench/gnn.py [--sizes 100000,1000000] [--avg-degree 20]
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import peak_rss_mb, percentiles, write_results
from candidates.ann import build_index
from gnn.features import build_features
from gnn.train import TrainConfig, embed_all, sparse_adjacency, split_edges, train_link_model
from sim.world import WorldConfig, generate_world, world_snapshot


def faiss_figures(emb: np.ndarray, queries: int = 500, k: int = 10) -> dict:
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    exact = build_index(emb, exact_max=emb.shape[0])  # force IndexFlatIP: the oracle
    exact_build = time.perf_counter() - t
    t = time.perf_counter()
    hnsw = build_index(emb, exact_max=0)
    hnsw_build = time.perf_counter() - t
    q = rng.choice(emb.shape[0], queries, replace=False)
    lat_exact, lat_hnsw, recall = [], [], []
    for i in q.tolist():
        t = time.perf_counter()
        _, truth = exact.search(emb[i:i + 1], k)
        lat_exact.append(time.perf_counter() - t)
        t = time.perf_counter()
        _, got = hnsw.search(emb[i:i + 1], k)
        lat_hnsw.append(time.perf_counter() - t)
        recall.append(len(set(truth[0].tolist()) & set(got[0].tolist())) / k)
    return {"exact_build_s": round(exact_build, 2), "hnsw_build_s": round(hnsw_build, 1),
            "exact_query": percentiles(lat_exact), "hnsw_query": percentiles(lat_hnsw),
            f"hnsw_recall@{k}_vs_exact": round(float(np.mean(recall)), 4)}


@click.command()
@click.option("--sizes", default="100000,1000000", show_default=True)
@click.option("--avg-degree", default=20.0, show_default=True)
@click.option("--epochs", default=2, show_default=True)
@click.option("--name", default="gnn", show_default=True, help="Results file name under bench/out.")
def main(sizes: str, avg_degree: float, epochs: int, name: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    runs = []
    for n in map(int, sizes.split(",")):
        snap = world_snapshot(generate_world(WorldConfig(num_users=n, avg_degree=avg_degree, seed=2)))
        feats = build_features(snap)
        cfg = TrainConfig(epochs=epochs, patience=epochs, positives_per_epoch=50_000)
        _, emb, metrics = train_link_model(snap, feats, cfg)
        split = split_edges(snap, cfg.val_share)
        adj = sparse_adjacency(n, split.train_src, split.train_dst, "cpu")
        from gnn.model import LinkEncoder

        model = LinkEncoder(feats.buckets, feats.numeric.shape[1], n)
        t = time.perf_counter()
        embed_all(model, feats, adj)
        infer = time.perf_counter() - t
        run = {"users": n, "friendships": snap.num_edges, "mode": "full batch" if metrics["full_batch"] else
               "mini-batch (CSR sampler)", "seconds_per_epoch": round(metrics["seconds_per_epoch"], 2),
               "inference_all_users_s": round(infer, 2), "val_auc_after_epochs": round(metrics["val_auc"], 4),
               "epochs": metrics["epochs_run"], "faiss": faiss_figures(emb), "peak_rss_mb": round(peak_rss_mb())}
        print(run, flush=True)
        runs.append(run)
    write_results(name, {"runs": runs, "note": "seconds_per_epoch includes the full-graph validation pass"})


if __name__ == "__main__":
    main()
