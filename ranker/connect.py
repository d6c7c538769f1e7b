"""Learn to rank candidates by whether they connect, from the graph's history; choose the ranker on
the inner validation cut only.

Contenders, all on the same examples and features: the multi-task model's connect head (focal
loss), logistic regression, LightGBM LambdaRank (under a monotone prior, INCREASING), their
ensemble, reciprocal rank fusion of the sources, and each single heuristic feature (so a learned
ranker is served only when it beats them on validation). The ensemble is a weighted mean of the
learned contenders' standardized scores, its weights chosen on validation by ensemble selection
(Caruana et al., ICML 2004); a member it leaves out is not refitted.
The winner is refitted on training + validation examples with the number of epochs / boosting
rounds that validation chose (the newest period carries the most signal), then published.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from pymk.errors import TooLittleHistoryError
from pymk.metrics import group_ranking_metrics
from ranker.calibration import Calibration, fit_platt
from ranker.features import FEATURE_NAMES
from ranker.history import ConnectExamples
from ranker.samples import downsample, probe_groups
from ranker.scorers import EnsembleScorer, FeatureScorer, LightGBMScorer, RrfScorer, Scorer, TorchScorer, connect_logits
from ranker.train import RankerConfig, fit

log = logging.getLogger(__name__)
HEURISTICS = ("mutual", "car", "adamic_adar", "resource_allocation", "jaccard", "log_ppr", "log_ppr_per_degree",
              "log_deg_cand", "cand_new_ties_w1", "cand_new_ties_w5", "cand_new_ties_w20", "recent_mutual",
              "emb_sim", "paths3_norm")
K = 20
LGBM_PATIENCE = 40   # rounds without a better validation score before LightGBM stops
# What LightGBM's score may only rise with, all else equal: the proximity measures (triadic closure)
# and the candidate's recent activity. A prior, the same on every graph: without it the trees also
# fit the non-monotone wiggles of the inner cuts, which the next period need not repeat.
INCREASING = ("mutual", "log_mutual", "adamic_adar", "resource_allocation", "log_ppr", "recent_mutual",
              "viewer_side_strength", "cand_side_strength", "cand_new_ties_w1", "cand_new_ties_w5",
              "cand_new_ties_w20", "cand_new_ties_span10", "cand_interactions_w5", "log_paths3", "paths3_norm")


class NothingToLearnError(TooLittleHistoryError):
    """The graph's history holds no new tie among the candidates of any cut."""


@dataclass(frozen=True)
class ConnectConfig:
    mlp: RankerConfig = field(default_factory=lambda: RankerConfig(loss="focal", epochs=20, lr=3e-3,
                                                                   negatives_per_positive=20.0))
    logistic: RankerConfig = field(default_factory=lambda: RankerConfig(loss="bce", linear=True, epochs=20, lr=1e-2,
                                                                        negatives_per_positive=20.0))
    # The most trees LightGBM may grow, and so serve: the ranking budget (500 candidates in under 10 ms
    # p99, bench/ranker.py) holds the ensemble with 200 trees of 31 leaves and not with 400. Validation
    # stopped at 14-113 rounds on every graph measured (bench/RESULTS.md); reaching the cap is logged.
    lgbm_rounds: int = 200
    lgbm_leaves: int = 31
    lgbm_lr: float = 0.05
    lgbm_increasing: tuple[str, ...] = INCREASING
    kinds: tuple[str, ...] = ("mlp_focal", "logistic", "lgbm_lambdarank")
    ensemble_steps: int = 10
    refit: bool = True
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if not self.kinds or self.ensemble_steps < 1:
            raise ValueError(f"need at least one ranker kind and one ensemble step (kinds {self.kinds!r}, "
                             f"ensemble_steps {self.ensemble_steps})")
        unknown = sorted(set(self.lgbm_increasing) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"lgbm_increasing names features this code does not compute: {unknown}")


def evaluate_scores(ex: ConnectExamples, score: np.ndarray) -> dict[str, float]:
    # equal scores in row order: each viewer's rows come in merge order, as the served ranker breaks
    # its ties (ranker/batch.ranked_order), never by candidate index (ids may follow sign-up order)
    return group_ranking_metrics(ex.group, ex.relevant, ex.y, score, np.arange(ex.y.size), K)


def _objective(m: dict[str, float]) -> float:
    return m[f"recall@{K}"] + m[f"ndcg@{K}"]


def _moments(score: np.ndarray) -> tuple[float, float]:
    """A member's mean and spread over rows (1 where it is constant): what the ensemble standardizes by."""
    return float(score.mean()), float(score.std()) or 1.0


def select_ensemble(val: ConnectExamples, scores: dict[str, np.ndarray], steps: int = 10) -> dict[str, float]:
    """Ensemble selection (Caruana et al., ICML 2004): starting from nothing, add (with replacement) the
    member whose addition most raises validation Recall@K + NDCG@K, `steps` times; the weights (how
    often each was added / size) of the best prefix, the shortest among equals. Members are
    standardized by `_moments`, as in the served ensemble; ties between members go to the first named.
    A member that only adds noise is not added, and one that is best alone by a wide margin is the whole
    ensemble."""
    names = list(scores)
    z = {}
    for k, v in scores.items():
        mu, sd = _moments(v)
        z[k] = (v - mu) / sd
    total, counts = np.zeros(val.y.size), dict.fromkeys(names, 0)
    best_value, best = -np.inf, {}
    for size in range(1, steps + 1):
        gains = [_objective(evaluate_scores(val, (total + z[k]) / size)) for k in names]
        pick = names[int(np.argmax(gains))]
        total += z[pick]
        counts[pick] += 1
        if max(gains) > best_value:
            best_value, best = max(gains), {k: c / size for k, c in counts.items()}
    return best


def _fit_torch(cfg: RankerConfig, train: ConnectExamples, val: ConnectExamples | None, rng: np.random.Generator,
               epochs: int | None = None) -> tuple[TorchScorer, int, dict]:
    x, y = downsample(train, cfg.negatives_per_positive, rng)
    history: list[float] = []
    probe = probe_groups(train) if val is not None else train
    on_train: list[float] = []

    def validate(model) -> float:
        on_train.append(round(_objective(evaluate_scores(probe, connect_logits(model, probe.x))), 4))
        history.append(_objective(evaluate_scores(val, connect_logits(model, val.x))))
        return history[-1]

    model = fit(replace(cfg, epochs=epochs or cfg.epochs), conn=(x, y), validate=validate if val else None)
    best_epoch = int(np.argmax(history)) + 1 if history else (epochs or cfg.epochs)
    cal_ex = val if val is not None else train
    cal = Calibration(connect=fit_platt(connect_logits(model, cal_ex.x), cal_ex.y))
    curve = {"metric": f"recall@{K} + ndcg@{K}", "step": "epoch", "steps": list(range(1, len(history) + 1)),
             "train": on_train, "validation": [round(v, 4) for v in history]}
    return TorchScorer(model, cal, mode="connect"), best_epoch, curve


def _fit_lgbm(cfg: ConnectConfig, train: ConnectExamples, val: ConnectExamples | None,
              rounds: int | None = None) -> tuple[LightGBMScorer, int, dict]:
    import lightgbm as lgb

    params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [K], "learning_rate": cfg.lgbm_lr,
              "num_leaves": cfg.lgbm_leaves, "min_data_in_leaf": 50, "feature_fraction": 0.8,
              "bagging_fraction": 0.8, "bagging_freq": 1, "lambdarank_truncation_level": 2 * K, "seed": cfg.seed,
              "monotone_constraints": [int(f in cfg.lgbm_increasing) for f in FEATURE_NAMES],
              "monotone_constraints_method": "basic",
              "deterministic": True, "force_row_wise": True, "num_threads": cfg.threads, "verbosity": -1}
    data = lgb.Dataset(train.x, train.y, group=np.bincount(train.group), feature_name=list(FEATURE_NAMES),
                       free_raw_data=False)
    if val is None:
        booster = lgb.train(params, data, num_boost_round=rounds or cfg.lgbm_rounds)
        return LightGBMScorer(booster, threads=cfg.threads), rounds or cfg.lgbm_rounds, {}
    valid = lgb.Dataset(val.x, val.y, group=np.bincount(val.group), reference=data)

    def objective(preds: np.ndarray, _: object) -> tuple[str, float, bool]:
        return f"recall@{K}+ndcg@{K}", _objective(evaluate_scores(val, preds)), True

    # Stopped on the objective every contender is chosen by (LightGBM's own NDCG@K scores a group
    # without positives as 1 and ignores recall). keep_training_booster: the rounds past the best stay
    # for the learning curve (predictions and the saved model use the best iteration).
    booster = lgb.train({**params, "metric": "None"}, data, num_boost_round=cfg.lgbm_rounds, valid_sets=[valid],
                        feval=objective, callbacks=[lgb.early_stopping(LGBM_PATIENCE, verbose=False)],
                        keep_training_booster=True)
    best = booster.best_iteration or cfg.lgbm_rounds
    if best > cfg.lgbm_rounds - LGBM_PATIENCE:   # early stopping had not waited its rounds out: cut by the cap
        log.warning("LightGBM's best round on validation is %d, within %d of its cap of %d rounds "
                    "(ConnectConfig.lgbm_rounds, the ranking latency budget): more rounds might have helped",
                    best, LGBM_PATIENCE, cfg.lgbm_rounds)
    return LightGBMScorer(booster, threads=cfg.threads), best, _boosting_curve(booster, probe_groups(train), val,
                                                                            threads=cfg.threads)


def _boosting_curve(booster, probe: ConnectExamples, val: ConnectExamples, points: int = 12, threads: int = 2
                    ) -> dict:
    """Recall@K + NDCG@K on the training probe and on validation after 1 ... all rounds grown (the
    rounds past the best are those early stopping waited through)."""
    grown = booster.current_iteration()
    steps = sorted({int(r) for r in np.linspace(1, grown, min(points, grown))})

    def along(ex: ConnectExamples) -> list[float]:
        # each step adds the scores of the trees since the last one: every tree is read once
        raw, done, out = np.zeros(ex.y.size), 0, []
        for r in steps:
            raw += booster.predict(ex.x, start_iteration=done, num_iteration=r - done, raw_score=True,
                                   num_threads=threads)
            done = r
            out.append(round(_objective(evaluate_scores(ex, raw)), 4))
        return out

    return {"metric": f"recall@{K} + ndcg@{K}", "step": "round", "steps": steps,
            "train": along(probe), "validation": along(val)}


def _fit(kind: str, cfg: ConnectConfig, train: ConnectExamples, val: ConnectExamples | None, rng, size=None):
    if kind == "mlp_focal":
        return _fit_torch(replace(cfg.mlp, seed=cfg.seed), train, val, rng, size)
    if kind == "logistic":
        return _fit_torch(replace(cfg.logistic, seed=cfg.seed), train, val, rng, size)
    if kind == "lgbm_lambdarank":
        return _fit_lgbm(cfg, train, val, size)
    raise ValueError(f"unknown ranker kind {kind!r}")


def _ensemble(members: list[Scorer], x: np.ndarray, weights: list[float], scores: list[np.ndarray] | None = None
              ) -> EnsembleScorer:
    """Weighted mean of the members' scores, each standardized by its mean and spread over `x` (no labels
    used); `scores`: the members' scores of `x` where already computed."""
    scores = scores if scores is not None else [m(x)["score"] for m in members]
    moments = [_moments(v) for v in scores]
    return EnsembleScorer(members, [mu for mu, _ in moments], [sd for _, sd in moments], weights=list(weights))


def permutation_importance(scorer: Scorer, val: ConnectExamples, rng: np.random.Generator, top: int = 15
                           ) -> dict[str, float]:
    """How much Recall@K + NDCG@K on validation drops when one feature is shuffled across rows (largest first)."""
    base = _objective(evaluate_scores(val, scorer(val.x)["score"]))
    drops = {}
    for j, name in enumerate(FEATURE_NAMES):
        if np.all(val.x[:, j] == val.x[0, j]):
            continue  # constant on this graph: nothing to lose
        x = val.x.copy()
        x[:, j] = x[rng.permutation(x.shape[0]), j]
        drops[name] = round(base - _objective(evaluate_scores(val, scorer(x)["score"])), 4)
    return dict(sorted(drops.items(), key=lambda kv: -kv[1])[:top])


def train_connect(train: ConnectExamples, val: ConnectExamples, cfg: ConnectConfig | None = None) -> dict:
    """Fit every contender, score each on validation, refit the best; returns scorer, choice and report."""
    cfg = cfg or ConnectConfig()
    if not (train.y.sum() and val.y.sum()):
        raise NothingToLearnError(f"no positive examples to learn from (train {int(train.y.sum())}, "
                         f"validation {int(val.y.sum())}): is the graph's history long enough?")
    rng = np.random.default_rng(cfg.seed)
    results: dict[str, dict] = {}
    fitted: dict[str, tuple[Scorer, int | None]] = {}
    curves: dict[str, dict] = {}
    on_val: dict[str, np.ndarray] = {}   # the learned contenders' scores of the validation rows
    for kind in cfg.kinds:
        start = time.perf_counter()
        scorer, size, curves[kind] = _fit(kind, cfg, train, val, rng)
        on_val[kind] = scorer(val.x)["score"]
        results[kind] = {**evaluate_scores(val, on_val[kind]), "size": size,
                         "seconds": round(time.perf_counter() - start, 1)}
        fitted[kind] = (scorer, size)
    weights = select_ensemble(val, {k: on_val[k] for k in cfg.kinds}, cfg.ensemble_steps)
    learned = [k for k in cfg.kinds if weights.get(k, 0.0) > 0]   # the ensemble's members
    if len(learned) > 1:
        ensemble = _ensemble([fitted[k][0] for k in learned], val.x, [weights[k] for k in learned],
                             [on_val[k] for k in learned])
        fitted["ensemble"] = (ensemble, None)
        on_val["ensemble"] = ensemble.combine([on_val[k] for k in learned])
        results["ensemble"] = evaluate_scores(val, on_val["ensemble"])
    fitted["rrf"] = (RrfScorer(), None)
    results["rrf"] = evaluate_scores(val, fitted["rrf"][0](val.x)["score"])
    for name in HEURISTICS:
        if val.y.size and np.ptp(val.x[:, FEATURE_NAMES.index(name)]) == 0:
            continue   # one value for every row (emb_sim without embeddings): it would rank by the tie order
        scorer = FeatureScorer(name)
        fitted[f"feature:{name}"] = (scorer, None)
        results[f"feature:{name}"] = evaluate_scores(val, scorer(val.x)["score"])
    best = max(results, key=lambda k: (round(_objective(results[k]), 6), k in (*cfg.kinds, "ensemble")))
    selection = {"best_on_validation": best, "ensemble_weights": {k: round(w, 4) for k, w in weights.items()}}
    scorer, size = fitted[best]
    # on at most 400 validation viewers: a report, not a choice (it had cost a third of ego-Facebook's training)
    importance = permutation_importance(scorer, probe_groups(val), np.random.default_rng(cfg.seed))
    refitted = False
    if cfg.refit and best in (*cfg.kinds, "ensemble"):
        both = ConnectExamples.concat([train, val])
        if best == "ensemble":
            scorer = _ensemble([_fit(k, cfg, both, None, rng, fitted[k][1])[0] for k in learned], both.x,
                               [weights[k] for k in learned])
        else:
            scorer = _fit(best, cfg, both, None, rng, size)[0]
        refitted = True
    report = {"chosen": best, "selection": selection, "refitted_on_train_and_validation": refitted,
              "validation": results,
              "train_rows": int(train.y.size), "train_positives": int(train.y.sum()),
              "validation_rows": int(val.y.size), "validation_positives": int(val.y.sum()),
              "permutation_importance": importance, "learning_curves": curves, "config": asdict(cfg)}
    if isinstance(scorer, LightGBMScorer):
        gain = scorer.booster.feature_importance("gain")
        report["feature_importance_gain"] = {n: round(float(g), 2) for n, g in
                                             sorted(zip(FEATURE_NAMES, gain, strict=True), key=lambda p: -p[1])}
    log.info("ranker chosen on validation: %s (R@%d %.4f, NDCG@%d %.4f)", best, K, results[best][f"recall@{K}"],
             K, results[best][f"ndcg@{K}"])
    return {"scorer": scorer, "chosen": best, "report": report,
            "config": cfg.mlp if best == "mlp_focal" else cfg.logistic if best == "logistic" else None}

