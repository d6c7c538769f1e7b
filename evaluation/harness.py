"""Offline evaluation: time-split an edge list, suggest from the past, score against the future.

Train on ties formed before T, suggest for users who form new ties after T, count a hit when a
suggested pair becomes a tie after T. The learned ranker is trained on the training period only
(inner cuts, inner validation; ranker/history.py, ranker/connect.py). Reports Recall@K, NDCG@K,
MRR and Hits@K for the learned `pipeline`, the same pipeline ranked by reciprocal rank fusion
(`rrf`), each source, the union of the sources' lists, and heuristic baselines (evaluation/baselines.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from candidates.filters import SnapshotStateReader
from candidates.pipeline import CandidatePipeline, PipelineConfig
from evaluation.baselines import neighbourhood_baselines, popularity_baselines
from evaluation.edgelist import read_source
from graph.snapshot import Snapshot, from_codes, interaction_events
from graph.splits import time_split_mask
from pymk.errors import EvaluationError
from pymk.metrics import KS, paired_ratio_interval, rank_metrics
from pymk.progress import progress_bar
from ranker.connect import ConnectConfig, NothingToLearnError, train_connect
from ranker.features import FeatureContext
from ranker.history import HistoryConfig, build_sources, history_examples
from ranker.scorers import RrfScorer
from ranker.serve import ModelRanker

log = logging.getLogger(__name__)


class FutureTies(Mapping[str, set[str]]):
    """User -> the users they tied with at or after the cut: the ties kept as codes into `names`, a user's set
    built when it is read. The evaluation reads the sets of a sample (up to a few thousand users); a set of
    strings for every test user cost ~2 s and a few hundred MB on a graph of millions of ties."""

    def __init__(self, names: list[str], src: np.ndarray, dst: np.ndarray) -> None:
        a, b = np.concatenate([src, dst]), np.concatenate([dst, src])   # both directions
        order = np.argsort(a, kind="stable")
        self._a, self._b, self._names = a[order], b[order], names
        self._code = {names[c]: c for c in np.unique(self._a).tolist()}

    def __getitem__(self, user: str) -> set[str]:
        code = self._code[user]
        lo, hi = np.searchsorted(self._a, [code, code + 1])
        return {self._names[c] for c in self._b[lo:hi].tolist()}

    def __iter__(self) -> Iterator[str]:
        return iter(self._code)

    def __len__(self) -> int:
        return len(self._code)


@dataclass(frozen=True)
class Split:
    train: Snapshot
    test: FutureTies                 # user -> users they first tied with at or after the cut
    cut: float | None
    train_ties: int
    test_ties: int
    test_ties_unseen_users: int    # future ties touching a user absent before the cut


def time_split(path: Path, train_share: float = 0.8, seed: int = 0) -> Split:
    """Cut at the `train_share` quantile of tie times (a seeded random holdout if there are none); `path`
    is an edge list or a snapshot directory."""
    edges = read_source(path)
    # No leakage: the snapshot sees only ties formed strictly before the cut, and only interactions
    # before it; every tie used as a label formed at or after it, so nothing a source reads comes
    # from the test period.
    train, cut = time_split_mask(edges.ts, train_share, seed)
    keep = np.flatnonzero(train)
    # a random holdout (no usable times) leaves the training graph untimed, not stamped with a constant
    snap, index = from_codes(edges.names, edges.src[keep], edges.dst[keep], edges.ts[keep] if cut is not None else None)
    if edges.said is not None and cut is not None:
        s_src, s_dst, s_ts = edges.said
        before = s_ts < cut
        snap.events = interaction_events(index[s_src[before]], index[s_dst[before]], s_ts[before])
    later = np.flatnonzero(~train)
    src, dst = edges.src[later], edges.dst[later]
    known = (index[src] >= 0) & (index[dst] >= 0)   # both users had a tie before the cut
    unseen = int((~known).sum())
    return Split(snap, FutureTies(edges.names, src[known], dst[known]), cut, int(train.sum()), int((~train).sum()),
                 unseen)


def evaluate(path: Path, users: int = 500, train_share: float = 0.8, seed: int = 0,
             sources: list[str] | None = None, with_ann: bool = False, progress: bool = True,
             history: HistoryConfig | None = None, connect: ConnectConfig | None = None) -> dict:
    """One seed: learn the ranker on the training period, then score it and every baseline on the test period."""
    if not 0 < train_share < 1:
        raise EvaluationError(f"train_share must be strictly between 0 and 1 (got {train_share})")
    if users < 1:
        raise EvaluationError(f"users must be at least 1 (got {users})")
    start = time.perf_counter()
    split = time_split(path, train_share, seed)
    if not split.test:   # before hours of training: nothing could be scored
        raise EvaluationError(
            f"{path}: no test users: none of the {split.test_ties} ties after the cut joins two users who had a "
            f"tie before it ({split.test_ties_unseen_users} touch a user new at the cut), so no suggestion made at "
            f"the cut can be scored")
    snap = split.train
    # the training graph is the graph as of the cut: features are computed at the cut, like serving at its snapshot
    snap.meta["as_of"] = split.cut if split.cut is not None else 0.0
    embed = None
    if with_ann:  # embeddings trained on a graph of the training period only, like every other source
        from gnn.train import TrainConfig, embed_graph

        embed = partial(embed_graph, cfg=TrainConfig(seed=seed), progress=progress)

    # the ranker learns from the training period only (its own inner cuts and validation)
    t0 = time.perf_counter()
    train_ex, val_ex = history_examples(snap, replace(history or HistoryConfig(), seed=seed), embed, sources,
                                        progress=progress)
    try:
        learned = train_connect(train_ex, val_ex, replace(connect or ConnectConfig(), seed=seed))
    except NothingToLearnError as exc:  # too little history: the pipeline ranks by fusion of the sources
        log.warning("%s: ranking by reciprocal rank fusion", exc)
        learned = {"scorer": RrfScorer(), "report": {"chosen": "rrf", "reason": str(exc)}}
    learn_seconds = time.perf_counter() - t0
    emb = embed(snap) if embed else None
    built = build_sources(snap, sources, emb)
    config = PipelineConfig(per_source_k=max(KS), source_budget_s=600.0)
    ranker = ModelRanker(FeatureContext(snap, emb), learned["scorer"])
    pipelines = {"pipeline": CandidatePipeline(snap, built, SnapshotStateReader(snap), config, ranker=ranker),
                 "rrf": CandidatePipeline(snap, built, SnapshotStateReader(snap), config)}
    baselines = {**neighbourhood_baselines(snap), **popularity_baselines(snap, split.cut)}
    rng = np.random.default_rng(seed)
    degree = snap.degree   # computed once: each `snap.degree` is a fresh np.diff over every user
    eligible = sorted(u for u in split.test if degree[snap.index_of(u)] > 0)
    sample = [eligible[i] for i in rng.permutation(len(eligible))[:users]]
    totals: dict[str, dict[str, float]] = {}
    timings: dict[str, float] = {}
    per_user: dict[str, dict[str, list[float]]] = {}   # for the ratio's interval (evaluate_seeds)

    def accumulate(name: str, values: dict[str, float]) -> None:
        for metric, value in values.items():
            totals.setdefault(name, {}).setdefault(metric, 0.0)
            totals[name][metric] += value

    def add(name: str, ranked: list[str], relevant: set[str], seconds: float) -> None:
        values = rank_metrics(ranked, relevant)
        accumulate(name, values)
        for metric in RATIO_METRICS:
            per_user.setdefault(name, {}).setdefault(metric, []).append(float(values[metric]))
        timings[name] = timings.get(name, 0.0) + seconds

    ids = snap.id_strings
    for u in progress_bar(sample, desc="evaluating users", enabled=progress):
        relevant, idx = split.test[u], snap.index_of(u)
        lists = {}
        for source in built:
            t0 = time.perf_counter()
            lists[source.name] = [c.user_id for c in source.generate(idx, max(KS))]
            add(source.name, lists[source.name], relevant, time.perf_counter() - t0)
        for name, pipeline in pipelines.items():
            t0 = time.perf_counter()
            add(name, [c.user_id for c in pipeline.recommend(u, max(KS)).candidates], relevant,
                time.perf_counter() - t0)
        unions = {"union": list(lists)}
        if "ann" in lists:  # what the embeddings add on top of the graph sources, on the same users
            unions["union_without_ann"] = [name for name in lists if name != "ann"]
        for union_name, members in unions.items():
            accumulate(union_name, {f"recall@{k}": union_coverage([lists[m][:k] for m in members], relevant)
                                    for k in KS})
        pool = set().union(*(set(ranked) for ranked in lists.values()))
        accumulate("pool_oracle", pool_oracle(pool, relevant))
        for name, rank in baselines.items():
            t0 = time.perf_counter()
            add(name, [ids[i] for i in rank(idx, max(KS)).tolist()], relevant, time.perf_counter() - t0)
    for pipeline in pipelines.values():
        pipeline.close()
    n = max(1, len(sample))
    metrics = {name: {m: round(v / n, 4) for m, v in ms.items()} for name, ms in totals.items()}
    report = {
        "dataset": str(path), "seed": seed, "cut": split.cut, "train_ties": split.train_ties,
        "test_ties": split.test_ties, "test_ties_with_unseen_users": split.test_ties_unseen_users,
        "train_users": snap.num_users, "evaluated_users": len(sample), "ks": list(KS), "metrics": metrics,
        "ms_per_user": {name: round(1000 * s / n, 3) for name, s in timings.items()},
        "ranker": {**learned["report"], "seconds": round(learn_seconds, 1)},
        "seconds": round(time.perf_counter() - start, 1),
        # each test user's values, in sample order: the ratio's interval (evaluate_seeds drops them)
        "per_user": {"users": sample, "rows": per_user},
    }
    report["best_single"] = best_single(metrics)
    return report


NOT_SINGLE = ("pipeline", "union", "union_without_ann", "pool_oracle")
RATIO_METRICS = ("recall@20", "ndcg@20")


def union_coverage(lists: list[list[str]], relevant: set[str]) -> float:
    """Share of `relevant` in the union of the lists (an unranked set)."""
    return len(set().union(*map(set, lists)) & relevant) / len(relevant)


def pool_oracle(pool: set[str], relevant: set[str], ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Recall@k and NDCG@k of the best possible ranking of `pool` (every source's full list, what the
    pipeline ranks): its relevant users first. The ceiling of any ranker of these candidates."""
    best = rank_metrics(sorted(pool & relevant), relevant, ks)
    return {m: float(v) for m, v in best.items() if m.startswith(("recall@", "ndcg@"))}


def best_single(metrics: dict[str, dict[str, float]], k: int = 20) -> dict:
    """The best single source or baseline by Recall@k and by NDCG@k, and the pipeline's ratio to each."""
    singles = [name for name in metrics if name not in NOT_SINGLE and f"ndcg@{k}" in metrics[name]]
    out = {}
    for metric in (f"recall@{k}", f"ndcg@{k}"):
        best = max(singles, key=lambda name: metrics[name][metric])
        value = metrics[best][metric]
        out[metric] = {"name": best, "value": value,
                       "pipeline": metrics["pipeline"][metric],
                       # not rounded: 1.0996 must not read as a 1.10 target met
                       "ratio": metrics["pipeline"][metric] / value if value else None}
    return out


def evaluate_seeds(path: Path, seeds: tuple[int, ...] = (0, 1, 2), **kwargs) -> dict:
    """evaluate() for each seed; mean and sd of every metric, and of the pipeline's ratio to the best single."""
    if not seeds:
        raise EvaluationError("no seeds to run (got an empty tuple)")
    runs = [evaluate(path, seed=s, **kwargs) for s in seeds]
    names = sorted(set.intersection(*(set(r["metrics"]) for r in runs)))
    summary: dict[str, dict[str, list[float]]] = {}
    for name in names:
        for metric in runs[0]["metrics"][name]:
            vals = [r["metrics"][name][metric] for r in runs]
            summary.setdefault(name, {})[metric] = [round(float(np.mean(vals)), 4), round(float(np.std(vals)), 4)]
    means = best_single({name: {m: v[0] for m, v in ms.items()} for name, ms in summary.items()})
    ratios = {metric: {"best_single": b["name"], "best_single_mean": b["value"], "pipeline_mean": b["pipeline"],
                       "ratio": b["ratio"], "ratio_95ci": ratio_interval(runs, b["name"], metric)}
              for metric, b in means.items()}
    for r in runs:
        r.pop("per_user", None)
    return {"dataset": str(path), "seeds": list(seeds), "ks": runs[0]["ks"], "summary": summary,
            "pipeline_vs_best_single": ratios, "chosen_rankers": [r["ranker"]["chosen"] for r in runs],
            "evaluated_users": runs[0]["evaluated_users"], "runs": runs,
            "seconds": round(sum(r["seconds"] for r in runs), 1)}


def ratio_interval(runs: list[dict], best: str, metric: str) -> list[float] | None:
    """95% paired bootstrap interval of the pipeline's ratio to `best` over the test users (a user tested
    by several seeds is one draw; the best single row is taken as chosen): how far the users that
    happened to be tested could move the ratio."""
    try:
        rows = [r["per_user"]["rows"] for r in runs]
        ours, theirs = [x["pipeline"][metric] for x in rows], [x[best][metric] for x in rows]
    except KeyError:   # a row or metric without per-user values
        return None
    lo, hi = paired_ratio_interval(ours, theirs, [r["per_user"]["users"] for r in runs])
    return [round(lo, 4), round(hi, 4)] if np.isfinite([lo, hi]).all() else None   # no baseline above 0


def write_report(report: dict, out: Path) -> tuple[Path, Path]:
    """The JSON report, a PNG of Recall@K against K for every row, and (when the ranker was learned) a
    PNG of its contenders' learning curves; returns the JSON and the Recall@K plot."""
    from evaluation.plots import learning_curves_plot, recall_plot

    out.mkdir(parents=True, exist_ok=True)
    stem = report.get("graph") or Path(report["dataset"]).stem
    json_path = out / f"eval_{stem}.json"
    json_path.write_text(json.dumps(report, indent=2))
    png_path = recall_plot(report, stem, out / f"eval_{stem}.png")
    first = (report.get("runs") or [report])[0]
    curves = first.get("ranker", {}).get("learning_curves")
    if curves:
        learning_curves_plot(curves, f"{stem}, seed {first.get('seed', 0)}", out / f"eval_{stem}_learning.png")
    return json_path, png_path
