"""Ranking latency: features + both heads for 500 candidates of one viewer, on a 100k-user world.

Baselines in the same run: the mutual-friends heuristic (networkx common_neighbors per candidate,
then a sort), as a speed ratio; and for the trees alone, LightGBM's own predictor against the
compiled pass the LightGBM scorer uses (checked equal on every viewer). Each viewer's candidates are
up to 4/5 two hops away and the rest anywhere, as the sources propose them; the LightGBM model is fitted
on other viewers' lists of the same kind (until 2026-12-07 it was fitted on random normal values, whose
splits the real columns pass predictably: it flattered the compiled pass, 2.4x against 1.0-2.0x on
trained models).

    python bench/ranker.py [--users 100000] [--candidates 500] [--viewers 300]
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import click
import lightgbm as lgb
import networkx as nx
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentiles, write_results
from candidates.types import Candidate
from ranker.calibration import Calibration
from ranker.connect import ConnectConfig
from ranker.features import FEATURE_NAMES, FeatureContext
from ranker.model import MultiTaskRanker
from ranker.scorers import EnsembleScorer, LightGBMScorer, TorchScorer
from ranker.serve import ModelRanker
from sim.world import WorldConfig, generate_world, world_snapshot

TYPICAL_ROUNDS = 120
CAP = ConnectConfig().lgbm_rounds   # the most rounds training grows: the worst case served
FORMER_CAP = 400                    # the cap until 2026-12-07, above the budget with the ensemble
FIT_VIEWERS = 200


def _candidate_indices(snap, viewer: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """k users for a viewer as the sources propose them: up to 4/5 two hops away (not friends), the rest
    anywhere."""
    friends = snap.neighbors(viewer)
    two = np.unique(np.concatenate([snap.neighbors(int(f)) for f in friends])) if friends.size else friends
    two = np.setdiff1d(two, np.append(friends, viewer))
    near = rng.choice(two, min(two.size, k * 4 // 5), replace=False)
    far = np.setdiff1d(rng.choice(snap.num_users, 2 * k, replace=False), np.concatenate([near, friends, [viewer]]))
    return np.concatenate([near, far[:k - near.size]])


def _noisy_labels(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1 for ~5% of rows, more likely with proximity and the candidate's recent activity."""
    cols = [FEATURE_NAMES.index(n) for n in ("log_mutual", "adamic_adar", "log_ppr", "cand_new_ties_w5")]
    z = x[:, cols].astype(np.float64)
    z = ((z - z.mean(0)) / (z.std(0) + 1e-9)).sum(1) + rng.normal(scale=2.0, size=len(x))
    return (z > np.quantile(z, 0.95)).astype(float)


@click.command()
@click.option("--users", default=100_000, show_default=True)
@click.option("--candidates", default=500, show_default=True)
@click.option("--viewers", default=300, show_default=True)
def main(users: int, candidates: int, viewers: int) -> None:
    torch.set_num_threads(1)  # as in serving (api/app.py)
    snap = world_snapshot(generate_world(WorldConfig(num_users=users, seed=5)))
    ctx = FeatureContext(snap)
    ranker = ModelRanker(ctx, TorchScorer(MultiTaskRanker(len(FEATURE_NAMES)), Calibration()), clock=lambda: 2e9)
    rng = np.random.default_rng(0)
    who = rng.choice(np.flatnonzero(snap.degree > 0), viewers + FIT_VIEWERS, replace=False)
    batches = [[Candidate.of(snap.external_id(int(c)), int(c), "x", 0.0)
                for c in _candidate_indices(snap, int(v), candidates, rng)] for v in who]
    # a LightGBM ranker at the former cap (400 rounds of 31 leaves, pymk's settings),
    # fitted on these candidates' own feature values (other viewers' lists; a noisy rule of proximity and
    # activity as labels), so that its splits cut the values it will be scored on as a trained model's do
    fit_x = np.concatenate([ctx.features(int(v), c, 2e9) for v, c in
                            zip(who[viewers:], batches[viewers:], strict=True)])
    booster = lgb.train({"objective": "lambdarank", "num_leaves": 31, "min_data_in_leaf": 50, "learning_rate": 0.05,
                         "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "seed": 1,
                         "verbosity": -1},
                        lgb.Dataset(fit_x, _noisy_labels(fit_x, rng), group=[candidates] * FIT_VIEWERS),
                        num_boost_round=400)
    who, batches = who[:viewers], batches[:viewers]
    gbdt = ModelRanker(ctx, LightGBMScorer(booster), clock=lambda: 2e9)
    heads = [TorchScorer(MultiTaskRanker(len(FEATURE_NAMES)), Calibration()),
             TorchScorer(MultiTaskRanker(len(FEATURE_NAMES), linear=True), Calibration())]

    def ensemble_of(rounds: int) -> ModelRanker:
        """The ensemble contender: connect head + logistic regression + the LightGBM model's first rounds."""
        trees = lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))
        return ModelRanker(ctx, EnsembleScorer([*heads, LightGBMScorer(trees)], [0.0] * 3, [1.0] * 3),
                           clock=lambda: 2e9)

    # each ranker timed under its results key, all of them on each viewer in turn; the ensemble at the
    # former cap, at training's cap (the worst case served now), and at about the largest size validation
    # picked on the held graphs (14-113 rounds; bench/RESULTS.md)
    rankers = {"rank_total": ranker, f"rank_total_lightgbm_{FORMER_CAP}_rounds": gbdt,
               f"rank_total_ensemble_{FORMER_CAP}_rounds": ensemble_of(FORMER_CAP),
               f"rank_total_ensemble_{CAP}_rounds_the_cap": ensemble_of(CAP),
               f"rank_total_ensemble_{TYPICAL_ROUNDS}_rounds": ensemble_of(TYPICAL_ROUNDS)}
    gc.collect()
    gc.freeze()   # as serving does once a snapshot is loaded (api/services.py)
    for v, cands in zip(who[:10], batches[:10], strict=True):  # warm-up
        for rank in rankers.values():
            rank(snap.external_id(int(v)), cands)
    feat_lat: list[float] = []
    lat: dict[str, list[float]] = {key: [] for key in rankers}
    for v, cands in zip(who, batches, strict=True):
        t = time.perf_counter()
        ranker.ctx.features(int(v), cands, 2e9)
        feat_lat.append(time.perf_counter() - t)
        for key, rank in rankers.items():
            t = time.perf_counter()
            rank(snap.external_id(int(v)), cands)
            lat[key].append(time.perf_counter() - t)
    # the trees alone on one viewer's matrix: LightGBM's own predictor (the baseline) against the
    # compiled pass the LightGBM scorer uses (ranker/forest.py; the same scores bit for bit)
    mats = [ctx.features(int(v), cands, 2e9) for v, cands in zip(who[:100], batches[:100], strict=True)]
    forest = getattr(gbdt.scorer, "forest", None) or _LightGBMPredict(booster)   # code before the compiled pass
    lgb_lat, forest_lat = [], []
    for x in mats:
        t = time.perf_counter()
        want = booster.predict(x, num_threads=1)
        lgb_lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = forest.score(x)
        forest_lat.append(time.perf_counter() - t)
        assert np.array_equal(got, want)
    # and on the batch job's scale: the same 100 viewers' rows as one matrix (50,000 rows), best of 3
    stacked = np.concatenate(mats)
    block = {"rows": int(stacked.shape[0])}
    for name, fn in (("lightgbm_predict_ms", lambda: booster.predict(stacked, num_threads=1)),
                     ("compiled_ms", lambda: forest.score(stacked))):
        block[name] = round(1e3 * min(_timed(fn) for _ in range(3)), 1)
    g = nx.Graph()
    g.add_edges_from((i, int(j)) for i in range(min(users, 100_000)) for j in snap.neighbors(i) if i < j)
    base = []
    for v, cands in zip(who[:100], batches[:100], strict=True):
        t = time.perf_counter()
        sorted(cands, key=lambda c, v=int(v): -len(list(nx.common_neighbors(g, v, c.index))) if c.index in g else 0)
        base.append(time.perf_counter() - t)
    r = {"users": users, "candidates_per_viewer": candidates, "features": len(FEATURE_NAMES),
         **{key: percentiles(values) for key, values in lat.items()},
         "features_only": percentiles(feat_lat),
         "trees_only_compiled": percentiles(forest_lat), "trees_only_lightgbm_predict": percentiles(lgb_lat),
         "trees_only_one_block": block, "baseline_networkx_mutual_sort": percentiles(base)}
    r["speedup_vs_networkx_p50"] = round(r["baseline_networkx_mutual_sort"]["p50_ms"] / r["rank_total"]["p50_ms"], 1)
    r["trees_speedup_vs_lightgbm_predict_p50"] = round(r["trees_only_lightgbm_predict"]["p50_ms"]
                                                       / r["trees_only_compiled"]["p50_ms"], 1)
    write_results("ranker", r)


class _LightGBMPredict:
    def __init__(self, booster) -> None:
        self.booster = booster

    def score(self, x: np.ndarray) -> np.ndarray:
        return self.booster.predict(x, num_threads=1)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
