"""Held-out link prediction (time split where ties have times): GraphSAGE vs baselines.

Variants: GraphSAGE over profile features + ids, GraphSAGE over ids only, shallow id embeddings
(no message passing: the pure-id model), and random vectors. Validation AUC and Hits@50 against
uniform random negatives, on a simulator world and on public SNAP graphs.

    python bench/gnn_quality.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_results
from gnn.features import build_features
from gnn.train import TrainConfig, auc_and_hits, split_edges, train_link_model
from graph.snapshot import from_edge_list
from sim.world import WorldConfig, generate_world, world_snapshot

DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
VARIANTS = {
    "graphsage_features_ids": {},
    "graphsage_ids_only": {"use_features": False},
    "shallow_ids_pure_id": {"use_features": False, "use_gnn": False},
}


def compare(snap, epochs: int) -> dict:
    feats = build_features(snap)
    out = {}
    for name, kw in VARIANTS.items():
        _, _, m = train_link_model(snap, feats, TrainConfig(epochs=epochs, patience=6, seed=0, **kw))
        out[name] = {"auc": round(m["val_auc"], 4), "hits@50": round(m["val_hits@50"], 4), "epochs": m["epochs_run"]}
    split = split_edges(snap, TrainConfig().val_share)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(snap.num_users, 64))
    neg = rng.integers(0, snap.num_users, (2, split.val_src.size))
    rand = auc_and_hits((z[split.val_src] * z[split.val_dst]).sum(1), (z[neg[0]] * z[neg[1]]).sum(1))
    out["random"] = {"auc": round(rand["auc"], 4), "hits@50": round(rand["hits@50"], 4)}
    return out


@click.command()
@click.option("--epochs", default=40, show_default=True)
def main(epochs: int) -> None:
    r = {"sim_world_5000": compare(world_snapshot(generate_world(WorldConfig(num_users=5000, seed=1))), epochs)}
    print(r, flush=True)
    for name in ("facebook_combined.txt", "CollegeMsg.txt"):
        if (DATASETS / name).exists():
            r[name] = compare(from_edge_list(DATASETS / name), epochs)
            print(name, r[name], flush=True)
    write_results("gnn_quality", r)


if __name__ == "__main__":
    main()
