"""The evaluation harness's figures: Recall@K of every row, and the learned ranker's learning curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def recall_plot(report: dict, stem: str, path: Path) -> Path:
    """Recall@K against K for every source, baseline and the pipeline (one seed, or the mean of seeds)."""
    curves = report.get("metrics") or {n: {m: v[0] for m, v in ms.items()} for n, ms in report["summary"].items()}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, metrics in curves.items():
        style = ":" if name == "pool_oracle" else "-" if name in ("pipeline", "rrf", "union") else "--"
        ax.plot(report["ks"], [metrics[f"recall@{k}"] for k in report["ks"]], style, marker="o", label=name,
                linewidth=2.5 if name == "pipeline" else 1.0)
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    seeds = f", mean of seeds {report['seeds']}" if "seeds" in report else ""
    ax.set_title(f"{stem}: {report['evaluated_users']} users{seeds}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves_plot(curves: dict[str, dict], title: str, path: Path) -> Path:
    """One panel per learned contender: its objective on a probe of the training examples and on the
    inner validation period, after each epoch (or boosting round); the best validation step marked."""
    kinds = [k for k, c in curves.items() if c.get("validation")]
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(4.2 * max(1, len(kinds)), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=False):
        c = curves[kind]
        ax.plot(c["steps"], c["train"], "-o", markersize=3, label="training probe")
        ax.plot(c["steps"], c["validation"], "-o", markersize=3, label="validation")
        best = c["steps"][max(range(len(c["validation"])), key=c["validation"].__getitem__)]
        ax.axvline(best, color="grey", linestyle=":", linewidth=1)
        ax.set_title(kind, fontsize=10)
        ax.set_xlabel(c["step"])
        ax.set_ylabel(c["metric"], fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
