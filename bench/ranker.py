"""Ranking latency: features + both heads for 500 candidates of one viewer, on a 100k-user world.

Baselines in the same run: the mutual-friends heuristic (networkx common_neighbors per candidate,
then a sort), as a speed ratio; and for the trees alone, LightGBM's own predictor against the
compiled pass the LightGBM scorer uses (checked equal on every viewer).

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
from ranker.features import FEATURE_NAMES, FeatureContext
from ranker.model import MultiTaskRanker
from ranker.scorers import EnsembleScorer, LightGBMScorer, TorchScorer
from ranker.serve import ModelRanker
from sim.world import WorldConfig, generate_world, world_snapshot

TYPICAL_ROUNDS = 120


@click.command()
@click.option("--users", default=100_000, show_default=True)
@click.option("--candidates", default=500, show_default=True)
@click.option("--viewers", default=300, show_default=True)
def main(users: int, candidates: int, viewers: int) -> None:
    torch.set_num_threads(1)  # as in serving (api/app.py)
    snap = world_snapshot(generate_world(WorldConfig(num_users=users, seed=5)))
    ctx = FeatureContext(snap)
    ranker = ModelRanker(ctx, TorchScorer(MultiTaskRanker(len(FEATURE_NAMES)), Calibration()), clock=lambda: 2e9)
    # a LightGBM ranker of the size validation picks (up to 400 rounds of 31 leaves), on random labels
    rng = np.random.default_rng(1)
    x_fit = rng.normal(size=(20_000, len(FEATURE_NAMES))).astype(np.float32)
    booster = lgb.train({"objective": "lambdarank", "num_leaves": 31, "verbosity": -1, "min_data_in_leaf": 20},
                        lgb.Dataset(x_fit, (rng.random(20_000) < 0.05).astype(float), group=[100] * 200),
                        num_boost_round=400)
    gbdt = ModelRanker(ctx, LightGBMScorer(booster), clock=lambda: 2e9)
    # the ensemble contender: connect head + logistic regression + the LightGBM model
    members = [TorchScorer(MultiTaskRanker(len(FEATURE_NAMES)), Calibration()),
               TorchScorer(MultiTaskRanker(len(FEATURE_NAMES), linear=True), Calibration()), LightGBMScorer(booster)]
    ensemble = ModelRanker(ctx, EnsembleScorer(members, [0.0] * 3, [1.0] * 3), clock=lambda: 2e9)
    # the same ensemble with the LightGBM model at the largest size validation picked on the held graphs
    # (14-113 rounds; bench/RESULTS.md): 400 rounds is the cap, the worst case
    typical = lgb.Booster(model_str=booster.model_to_string(num_iteration=TYPICAL_ROUNDS))
    ensemble_typical = ModelRanker(ctx, EnsembleScorer([*members[:2], LightGBMScorer(typical)], [0.0] * 3,
                                                       [1.0] * 3), clock=lambda: 2e9)
    rng = np.random.default_rng(0)
    who = rng.choice(np.flatnonzero(snap.degree > 0), viewers, replace=False)
    batches = [[Candidate.of(snap.external_id(int(c)), int(c), "x", 0.0)
                for c in rng.choice(users, candidates, replace=False)] for _ in who]
    gc.collect()
    gc.freeze()   # as serving does once a snapshot is loaded (api/services.py)
    for v, cands in zip(who[:10], batches[:10], strict=True):  # warm-up
        ranker(snap.external_id(int(v)), cands)
        gbdt(snap.external_id(int(v)), cands)
        ensemble(snap.external_id(int(v)), cands)
        ensemble_typical(snap.external_id(int(v)), cands)
    lat, feat_lat, gbdt_lat, ens_lat, typ_lat = [], [], [], [], []
    for v, cands in zip(who, batches, strict=True):
        t = time.perf_counter()
        ranker.ctx.features(int(v), cands, 2e9)
        feat_lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        ranker(snap.external_id(int(v)), cands)
        lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        gbdt(snap.external_id(int(v)), cands)
        gbdt_lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        ensemble(snap.external_id(int(v)), cands)
        ens_lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        ensemble_typical(snap.external_id(int(v)), cands)
        typ_lat.append(time.perf_counter() - t)
    # the trees alone on one viewer's matrix: LightGBM's own predictor (the baseline) against the
    # compiled pass the LightGBM scorer uses (ranker/forest.py; the same scores bit for bit)
    mats = [ctx.features(int(v), cands, 2e9) for v, cands in zip(who[:100], batches[:100], strict=True)]
    lgb_lat, forest_lat = [], []
    for x in mats:
        t = time.perf_counter()
        want = booster.predict(x, num_threads=1)
        lgb_lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = gbdt.scorer.forest.score(x)
        forest_lat.append(time.perf_counter() - t)
        assert np.array_equal(got, want)
    # and on the batch job's scale: the same 100 viewers' rows as one matrix (50,000 rows), best of 3
    stacked = np.concatenate(mats)
    block = {"rows": int(stacked.shape[0])}
    for name, fn in (("lightgbm_predict_ms", lambda: booster.predict(stacked, num_threads=1)),
                     ("compiled_ms", lambda: gbdt.scorer.forest.score(stacked))):
        block[name] = round(1e3 * min(_timed(fn) for _ in range(3)), 1)
    g = nx.Graph()
    g.add_edges_from((i, int(j)) for i in range(min(users, 100_000)) for j in snap.neighbors(i) if i < j)
    base = []
    for v, cands in zip(who[:100], batches[:100], strict=True):
        t = time.perf_counter()
        sorted(cands, key=lambda c, v=int(v): -len(list(nx.common_neighbors(g, v, c.index))) if c.index in g else 0)
        base.append(time.perf_counter() - t)
    r = {"users": users, "candidates_per_viewer": candidates, "features": len(FEATURE_NAMES),
         "rank_total": percentiles(lat),
         "rank_total_lightgbm_400_rounds": percentiles(gbdt_lat), "rank_total_ensemble": percentiles(ens_lat),
         f"rank_total_ensemble_{TYPICAL_ROUNDS}_rounds": percentiles(typ_lat),
         "features_only": percentiles(feat_lat),
         "trees_only_compiled": percentiles(forest_lat), "trees_only_lightgbm_predict": percentiles(lgb_lat),
         "trees_only_one_block": block, "baseline_networkx_mutual_sort": percentiles(base)}
    r["speedup_vs_networkx_p50"] = round(r["baseline_networkx_mutual_sort"]["p50_ms"] / r["rank_total"]["p50_ms"], 1)
    r["trees_speedup_vs_lightgbm_predict_p50"] = round(r["trees_only_lightgbm_predict"]["p50_ms"]
                                                       / r["trees_only_compiled"]["p50_ms"], 1)
    write_results("ranker", r)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
