"""Offline evaluation: time-split an edge list, suggest from the past, score against the future.

Train on ties formed before T, suggest for users who form new ties after T, count a hit when a
suggested pair becomes a tie after T. Reports Recall@K, NDCG@K, MRR and Hits@K per source, for
the merged pipeline, for the union of the sources' lists, and for networkx heuristics as baselines.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
from tqdm import tqdm

from candidates.filters import SnapshotStateReader
from candidates.pipeline import CandidatePipeline, PipelineConfig
from candidates.registry import REGISTRY
from graph.readers import ByteCounter, EdgeRow, read_edges
from graph.snapshot import Snapshot, from_pairs
from graph.splits import time_split_mask

log = logging.getLogger(__name__)
KS = (1, 5, 10, 20, 50, 100)


@dataclass(frozen=True)
class Split:
    train: Snapshot
    test: dict[str, set[str]]      # user -> users they first tied with at or after the cut
    cut: float | None
    train_ties: int
    test_ties: int
    test_ties_unseen_users: int    # future ties touching a user absent before the cut


def first_ties(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Undirected ties, each at the time its pair first appears (repeated pairs are one tie)."""
    first: dict[tuple[str, str], float] = {}
    for row in read_edges(ByteCounter(path)):
        if not isinstance(row, EdgeRow):
            continue
        key = (row.src, row.dst) if row.src < row.dst else (row.dst, row.src)
        ts = np.nan if row.ts is None else row.ts
        if key not in first or ts < first[key]:
            first[key] = ts
    return [a for a, _ in first], [b for _, b in first], np.fromiter(first.values(), np.float64, len(first))


def time_split(path: Path, train_share: float = 0.8, seed: int = 0) -> Split:
    """Cut at the `train_share` quantile of tie times (a seeded random holdout if there are none)."""
    src, dst, ts = first_ties(path)
    # No leakage: the snapshot sees only ties formed strictly before the cut; every tie used as a
    # label formed at or after it, so nothing a source reads comes from the test period.
    train, cut = time_split_mask(ts, train_share, seed)
    keep = np.flatnonzero(train)
    snap = from_pairs([src[i] for i in keep], [dst[i] for i in keep])
    test: dict[str, set[str]] = {}
    unseen = 0
    for s, d, is_train in zip(src, dst, train, strict=True):
        if is_train:
            continue
        if not (snap.has_user(s) and snap.has_user(d)):
            unseen += 1
            continue
        test.setdefault(s, set()).add(d)
        test.setdefault(d, set()).add(s)
    return Split(snap, test, cut, int(train.sum()), int((~train).sum()), unseen)


def rank_metrics(ranked: list[str], relevant: set[str]) -> dict[str, float]:
    hits = np.array([u in relevant for u in ranked[: max(KS)]], dtype=bool)
    out: dict[str, float] = {}
    first = np.flatnonzero(hits)
    out["mrr"] = 1.0 / (first[0] + 1) if first.size else 0.0
    gains = hits / np.log2(np.arange(2, hits.size + 2))
    for k in KS:
        out[f"recall@{k}"] = hits[:k].sum() / len(relevant)
        out[f"hits@{k}"] = float(hits[:k].any())
        ideal = (1.0 / np.log2(np.arange(2, min(k, len(relevant)) + 2))).sum()
        out[f"ndcg@{k}"] = gains[:k].sum() / ideal
    return out


def _networkx_baselines(g: nx.Graph) -> dict[str, Callable[[str], list[str]]]:
    def scored(fn: Callable) -> Callable[[str], list[str]]:
        def rank(u: str) -> list[str]:
            cands = {w for f in g[u] for w in g[f]} - set(g[u]) - {u}
            scores = sorted(((s, v) for _, v, s in fn(g, [(u, v) for v in cands])), key=lambda x: (-x[0], x[1]))
            return [v for _, v in scores[: max(KS)]]
        return rank

    return {"nx_adamic_adar": scored(nx.adamic_adar_index), "nx_jaccard": scored(nx.jaccard_coefficient),
            "nx_pref_attachment": scored(nx.preferential_attachment)}


def evaluate(path: Path, users: int = 500, train_share: float = 0.8, seed: int = 0,
             sources: list[str] | None = None, with_ann: bool = False, progress: bool = True) -> dict:
    start = time.perf_counter()
    split = time_split(path, train_share, seed)
    snap = split.train
    built = REGISTRY.build_all(snap, sources)
    gnn_metrics = None
    if with_ann:  # embeddings trained on the training graph only, like every other source
        from candidates.ann import EmbeddingAnnSource
        from gnn.features import build_features
        from gnn.train import TrainConfig, train_link_model

        _, emb, gnn_metrics = train_link_model(snap, build_features(snap), TrainConfig(seed=seed), progress=progress)
        built.append(EmbeddingAnnSource(snap, emb))
    pipeline = CandidatePipeline(snap, built, SnapshotStateReader(snap),
                                 PipelineConfig(per_source_k=max(KS), source_budget_s=30.0))
    g = nx.Graph()
    g.add_edges_from((snap.external_id(i), snap.external_id(int(j)))
                     for i in range(snap.num_users) for j in snap.neighbors(i) if i < j)
    baselines = _networkx_baselines(g)
    rng = np.random.default_rng(seed)
    eligible = sorted(u for u in split.test if snap.degree[snap.index_of(u)] > 0)
    sample = [eligible[i] for i in rng.permutation(len(eligible))[:users]]
    totals: dict[str, dict[str, float]] = {}
    timings: dict[str, float] = {}

    def add(name: str, ranked: list[str], relevant: set[str], seconds: float) -> None:
        for metric, value in rank_metrics(ranked, relevant).items():
            totals.setdefault(name, {}).setdefault(metric, 0.0)
            totals[name][metric] += value
        timings[name] = timings.get(name, 0.0) + seconds

    for u in tqdm(sample, desc="evaluating users", disable=not progress):
        relevant, idx = split.test[u], snap.index_of(u)
        lists = {}
        for source in built:
            t0 = time.perf_counter()
            lists[source.name] = [c.user_id for c in source.generate(idx, max(KS))]
            add(source.name, lists[source.name], relevant, time.perf_counter() - t0)
        t0 = time.perf_counter()
        add("pipeline", [c.user_id for c in pipeline.recommend(u, max(KS)).candidates], relevant,
            time.perf_counter() - t0)
        unions = {"union": list(lists)}
        if "ann" in lists:  # what the embeddings add on top of the graph sources, on the same users
            unions["union_without_ann"] = [name for name in lists if name != "ann"]
        for union_name, members in unions.items():
            for k in KS:  # coverage of the union of the sources' top k (an unranked set)
                union = set().union(*(set(lists[m][:k]) for m in members))
                totals.setdefault(union_name, {}).setdefault(f"recall@{k}", 0.0)
                totals[union_name][f"recall@{k}"] += len(union & relevant) / len(relevant)
        for name, rank in baselines.items():
            t0 = time.perf_counter()
            add(name, rank(u), relevant, time.perf_counter() - t0)
    pipeline.close()
    n = max(1, len(sample))
    report = {
        "dataset": str(path), "cut": split.cut, "train_ties": split.train_ties, "test_ties": split.test_ties,
        "test_ties_with_unseen_users": split.test_ties_unseen_users, "train_users": snap.num_users,
        "evaluated_users": len(sample), "ks": list(KS),
        "metrics": {name: {m: round(v / n, 4) for m, v in ms.items()} for name, ms in totals.items()},
        "ms_per_user": {name: round(1000 * s / n, 3) for name, s in timings.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    if gnn_metrics is not None:
        report["gnn"] = {k: v for k, v in gnn_metrics.items() if k != "config"}
    return report


def write_report(report: dict, out: Path) -> tuple[Path, Path]:
    """JSON report plus a PNG of Recall@K against K for every source and baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    stem = Path(report["dataset"]).stem
    json_path, png_path = out / f"eval_{stem}.json", out / f"eval_{stem}.png"
    json_path.write_text(json.dumps(report, indent=2))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, metrics in report["metrics"].items():
        style = "--" if name.startswith("nx_") else "-"
        ax.plot(report["ks"], [metrics[f"recall@{k}"] for k in report["ks"]], style, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_title(f"{stem}: {report['evaluated_users']} users, cut at the {report['train_ties']}th tie")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return json_path, png_path
