"""Training-config study on ego-Facebook: GraphSAGE with the GCN aggregator (default), GraphSAGE
with SAGEConv's root weight ("mean" aggregator) and the shallow pure-id model, all over ids only,
under the same configs. Same held-out protocol as bench/gnn_quality.py (test Hits@50 and AUC,
mean over seeds).

    python bench/gnn_tuning.py [--seeds 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_results
from bench.gnn_quality import DATASETS, compare
from graph.snapshot import from_edge_list

CONFIGS = {
    "default (2 layers, dropout 0.1, 10% hard negatives)": {},
    "no hard negatives": {"hard_negative_share": 0.0},
    "no hard negatives, patience 25": {"hard_negative_share": 0.0, "patience": 25},
    "30% hard negatives": {"hard_negative_share": 0.3},
    "dropout 0.6": {"dropout": 0.6},
    "1 layer": {"num_layers": 1},
    "3 layers": {"num_layers": 3},
    "hidden 128": {"hidden_channels": 128, "out_channels": 128},
    "select by AUC": {"select_by": "auc"},
}
MODELS = {"graphsage_gcn": {"use_features": False},
          "graphsage_mean": {"use_features": False, "aggregator": "mean"},
          "shallow_pure_id": {"use_features": False, "use_gnn": False}}


@click.command()
@click.option("--seeds", default=2, show_default=True)
@click.option("--epochs", default=120, show_default=True)
def main(seeds: int, epochs: int) -> None:
    snap = from_edge_list(DATASETS / "facebook_combined.txt")
    rows = []
    for cname, extra in CONFIGS.items():
        res = compare(snap, epochs, seeds, extra, MODELS)
        row = {"config": cname, **{m: {"auc": res[m]["auc_mean"], "hits@50": res[m]["hits@50_mean"],
                                       "hits@50_sd": res[m]["hits@50_sd"]} for m in MODELS}}
        print(row, flush=True)
        rows.append(row)
    write_results("gnn_tuning", {"dataset": "facebook_combined", "seeds": seeds, "epochs": epochs, "rows": rows})


if __name__ == "__main__":
    main()
