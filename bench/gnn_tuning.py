"""Training-config study behind the issue-5 note: GraphSAGE (ids only) vs the shallow pure-id model on
ego-Facebook (random holdout; its tie "times" cannot split), under the same configs for both.

Hits@50 and AUC against uniform random negatives, as in bench/gnn_quality.py.

    python bench/gnn_tuning.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_results
from bench.gnn_quality import DATASETS
from gnn.features import build_features
from gnn.train import TrainConfig, train_link_model
from graph.snapshot import from_edge_list

CONFIGS = {
    "default (dropout 0.1, 10% hard negatives, 40 epochs)": {},
    "select by AUC instead of Hits@50": {"select_by": "auc"},
    "no hard negatives": {"hard_negative_share": 0.0},
    "30% hard negatives": {"hard_negative_share": 0.3},
    "dropout 0.6, no hard negatives, 40 epochs": {"dropout": 0.6, "hard_negative_share": 0.0},
    "dropout 0.6, no hard negatives, 150 epochs": {"dropout": 0.6, "hard_negative_share": 0.0, "epochs": 150,
                                                   "patience": 20},
    "dropout 0.6, 2% hard negatives, 80 epochs": {"dropout": 0.6, "hard_negative_share": 0.02, "epochs": 80,
                                                  "patience": 10},
}
MODELS = {"graphsage_ids_only": {"use_features": False}, "shallow_pure_id": {"use_features": False, "use_gnn": False}}


def main() -> None:
    snap = from_edge_list(DATASETS / "facebook_combined.txt")
    feats = build_features(snap)
    rows = []
    for cname, extra in CONFIGS.items():
        row = {"config": cname}
        for mname, kw in MODELS.items():
            cfg = TrainConfig(**{"epochs": 40, "patience": 6, "seed": 0, **kw, **extra})
            _, _, m = train_link_model(snap, feats, cfg)
            row[mname] = {"auc": round(m["val_auc"], 4), "hits@50": round(m["val_hits@50"], 4),
                          "best_epoch": m["best_epoch"]}
        print(row, flush=True)
        rows.append(row)
    write_results("gnn_tuning", {"dataset": "facebook_combined", "rows": rows})


if __name__ == "__main__":
    main()
