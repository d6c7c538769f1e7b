"""The learned pipeline against every baseline on several graphs: `pymk eval` over seeds, one table.

For each graph: the ranker is trained on the training period only (inner cuts, inner validation),
then the learned `pipeline` and every single source and baseline are scored on the test period;
mean ± sd over seeds. Writes bench/out/eval_<graph>.json and .png, and prints the cross-graph table.

    python bench/eval_graphs.py [--seeds 3] [--users 1000] [--graphs sim,CollegeMsg.txt,...]

`sim` is a simulator world's friendships with their formation times (5,000 users, seed 7: not the
demo's world), written to bench/out/sim-eval/edges.txt.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT, write_results
from evaluation.harness import evaluate_seeds, write_report
from pymk.settings import REPO_ROOT
from ranker.history import HistoryConfig
from sim.export import SampleSpec, write_sample
from sim.world import WorldConfig

DATASETS = REPO_ROOT.parent / "shared" / "datasets"


def graph_path(name: str) -> Path:
    if name != "sim":
        return DATASETS / name
    out = OUT / "sim-eval"
    if not (out / "edges.txt").exists():
        write_sample(SampleSpec(WorldConfig(num_users=5_000, seed=7), log_days=1), out)
    return out / "edges.txt"


@click.command()
@click.option("--graphs", default="sim,CollegeMsg.txt,soc-sign-bitcoinalpha.csv,facebook_combined.txt",
              show_default=True)
@click.option("--seeds", default=3, show_default=True)
@click.option("--users", default=1000, show_default=True)
@click.option("--viewers-per-cut", default=800, show_default=True)
def main(graphs: str, seeds: int, users: int, viewers_per_cut: int) -> None:
    rows = []
    for name in graphs.split(","):
        start = time.perf_counter()
        report = evaluate_seeds(graph_path(name), tuple(range(seeds)), users=users, progress=False,
                                history=HistoryConfig(viewers_per_cut=viewers_per_cut))
        report["graph"] = name.split(".")[0]
        write_report(report, OUT)
        r = report["pipeline_vs_best_single"]
        rows.append({"graph": report["graph"], **{m: r[m] for m in r},
                     "pipeline": {m: report["summary"]["pipeline"][m] for m in ("recall@20", "ndcg@20")},
                     "union_recall@20": report["summary"]["union"]["recall@20"],
                     "pool_oracle": report["summary"].get("pool_oracle"),
                     "chosen": report["chosen_rankers"],
                     "ranker_train_s": [run["ranker"].get("seconds") for run in report["runs"]],
                     "seconds": round(time.perf_counter() - start, 1)})
        print(f"{name}: " + " ".join(f"{m} x{r[m]['ratio']:.4f} (95% CI {r[m]['ratio_95ci']})" for m in r), flush=True)
    write_results("eval_graphs", {"seeds": seeds, "users": users, "viewers_per_cut": viewers_per_cut,
                                  "graphs": rows})


if __name__ == "__main__":
    main()
