"""Held-out link prediction: GraphSAGE vs the pure-id model and random vectors.

Protocol (per dataset and seed): the newest 10% of ties (a seeded random 10% where ties have no
usable times) are the test ties and are removed from the graph; every model trains on the
remaining "past" graph, which train_link_model splits again for its own validation (early
stopping and the kept epoch); the embeddings it returns read only the past graph. Test ties are
then scored against as many uniform random pairs: AUC and Hits@50. Mean and spread over seeds.

Variants: GraphSAGE over profile features + ids, GraphSAGE over ids only, GraphSAGE with
SAGEConv's root weight ("mean" aggregator, the old default), the shallow pure-id model (learned id
vectors, no message passing) and random vectors.

    python bench/gnn_quality.py [--seeds 3] [--epochs 120] [--datasets sim,facebook_combined.txt]
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_results
from gnn.features import build_features
from gnn.train import TrainConfig, train_link_model
from graph.snapshot import Snapshot, build_csr, from_edge_list
from graph.splits import time_split_mask
from pymk.metrics import auc_and_hits
from sim.world import WorldConfig, generate_world, world_snapshot

DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
VARIANTS = {
    "graphsage_features_ids": {},
    "graphsage_ids_only": {"use_features": False},
    "graphsage_mean_aggregator_ids_only": {"use_features": False, "aggregator": "mean"},
    "shallow_pure_id": {"use_features": False, "use_gnn": False},
}


def holdout(snap: Snapshot, share: float, seed: int) -> tuple[Snapshot, np.ndarray, np.ndarray]:
    """The snapshot without its newest `share` of ties (random if untimed), and those ties."""
    src, dst, since = snap.ties()
    past, _ = time_split_mask(since, 1 - share, seed)  # the same split train_link_model makes
    indptr, indices, kept_since = build_csr(snap.num_users, src[past], dst[past], since[past])
    return dataclasses.replace(snap, indptr=indptr, indices=indices, since=kept_since), src[~past], dst[~past]


def score(emb: np.ndarray, src: np.ndarray, dst: np.ndarray, seed: int) -> dict[str, float]:
    neg = np.random.default_rng(10_000 + seed).integers(0, emb.shape[0], (2, src.size))
    pos_s = (emb[src] * emb[dst]).sum(1)
    neg_s = (emb[neg[0]] * emb[neg[1]]).sum(1)
    return auc_and_hits(pos_s, neg_s)


def compare(snap: Snapshot, epochs: int, seeds: int, overrides: dict, variants: dict | None = None,
            patience: int = 10) -> dict:
    """Every variant (and random vectors) on the same held-out ties, per seed; mean and sd."""
    variants = VARIANTS if variants is None else variants
    per: dict[str, list[dict]] = {name: [] for name in [*variants, "random"]}
    for seed in range(seeds):
        past, t_src, t_dst = holdout(snap, 0.1, seed)
        feats = build_features(past)
        for name, kw in variants.items():
            cfg = TrainConfig(**{"epochs": epochs, "patience": patience, "seed": seed, **overrides, **kw})
            _, emb, m = train_link_model(past, feats, cfg)
            per[name].append({**score(emb, t_src, t_dst, seed), "val_hits@50": m["val_hits@50"],
                              "best_epoch": m["best_epoch"]})
        rand = np.random.default_rng(seed).normal(size=(snap.num_users, 64))
        per["random"].append(score(rand, t_src, t_dst, seed))
    out = {}
    for name, runs in per.items():
        out[name] = {f"{k}_{stat}": round(float(fn([r[k] for r in runs])), 4)
                     for k in ("auc", "hits@50") for stat, fn in (("mean", np.mean), ("sd", np.std))}
        out[name]["runs"] = runs
    return out


@click.command()
@click.option("--epochs", default=120, show_default=True, help="Budget; early stopping on validation Hits@50.")
@click.option("--patience", default=10, show_default=True)
@click.option("--seeds", default=3, show_default=True)
@click.option("--datasets", default="sim,facebook_combined.txt,CollegeMsg.txt", show_default=True)
@click.option("--config", "config_json", default="{}", help="TrainConfig overrides as JSON, for every variant.")
@click.option("--name", default="gnn_quality", show_default=True)
def main(epochs: int, patience: int, seeds: int, datasets: str, config_json: str, name: str) -> None:
    overrides = json.loads(config_json)
    results = {"protocol": "newest (or random) 10% of ties held out; mean/sd over seeds", "seeds": seeds,
               "epochs": epochs, "patience": patience, "overrides": overrides, "datasets": {}}
    for ds in datasets.split(","):
        if ds == "sim":
            label, snap = "sim_world_5000", world_snapshot(generate_world(WorldConfig(num_users=5000, seed=1)))
        elif (DATASETS / ds).exists():
            label, snap = ds.removesuffix(".txt"), from_edge_list(DATASETS / ds)
        else:
            continue
        results["datasets"][label] = compare(snap, epochs, seeds, overrides, patience=patience)
        print(label, {k: (v["hits@50_mean"], v["auc_mean"]) for k, v in results["datasets"][label].items()},
              flush=True)
    write_results(name, results)


if __name__ == "__main__":
    main()
