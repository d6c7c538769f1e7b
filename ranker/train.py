"""Train the multi-task ranker on the event log and write a versioned model artifact."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from candidates.pipeline import PER_SOURCE_K
from pymk.artifacts import ArtifactStore
from pymk.metrics import head_report, ndcg_at_k
from ranker.calibration import Calibration, choose_accept_weight, fit_platt
from ranker.data import Examples, build_examples, downsample_negatives, time_periods
from ranker.feature_names import FEATURE_VERSION
from ranker.features import FEATURE_NAMES, FeatureContext
from ranker.losses import balanced_bce, focal_loss
from ranker.model import MultiTaskRanker
from ranker.scorers import Scorer, TorchScorer, predict_logits

log = logging.getLogger(__name__)
HEURISTIC = "mutual_friends_heuristic"   # the one-line baseline a learned ranker must beat to be published
HEURISTIC_FEATURE = "mutual"             # its score: the mutual-friend count (published in a losing model's place)


@dataclass(frozen=True)
class RankerConfig:
    loss: str = "focal"            # focal | balanced | bce
    alpha: float | None = 0.25
    gamma: float = 2.0
    linear: bool = False           # logistic regression baseline
    hidden_channels: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    lr: float = 3e-3
    epochs: int = 8
    batch_size: int = 1024
    negatives_per_positive: float = 10.0
    seed: int = 0
    device: str = "cpu"            # the models are small: a GPU only adds transfer time


def _loss(cfg: RankerConfig, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if cfg.loss == "focal":
        return focal_loss(logits, y, cfg.alpha, cfg.gamma)
    if cfg.loss == "balanced":
        return balanced_bce(logits, y)
    if cfg.loss == "bce":
        return focal_loss(logits, y, None, 0.0)
    raise ValueError(f"loss must be focal, balanced or bce (got {cfg.loss!r})")


def predict(model: MultiTaskRanker, x: np.ndarray, device: str = "cpu",
            calibration: Calibration | None = None) -> tuple[np.ndarray, np.ndarray]:
    """P(send), P(accept) for rows of x (raw sigmoid outputs unless a calibration is given)."""
    return (calibration or Calibration()).probabilities(*predict_logits(model, x, device))


def calibrate(model: MultiTaskRanker, imp: Examples, snd: Examples, connected: np.ndarray, device: str = "cpu"
              ) -> tuple[Calibration, dict[float, float]]:
    """Platt-scale both heads on a held-out period, then pick the accept exponent on it."""
    send_logits, _ = predict_logits(model, imp.x, device)
    _, accept_logits = predict_logits(model, snd.x, device)
    base = Calibration(fit_platt(send_logits, imp.y), fit_platt(accept_logits, snd.y))
    p_send, p_accept = predict(model, imp.x, device, base)
    return choose_accept_weight(imp.group, connected, p_send, p_accept, base)


Task = tuple[int, np.ndarray, np.ndarray]   # (head: 0 send, 1 accept, 2 connect), x, y


def constant_columns(xs: list[np.ndarray]) -> list[int]:
    """The columns holding one value in every row of every matrix (`MultiTaskRanker.freeze_inputs`)."""
    lo = np.min([x.min(axis=0) for x in xs], axis=0)
    hi = np.max([x.max(axis=0) for x in xs], axis=0)
    return np.flatnonzero(lo == hi).tolist()


def fit(cfg: RankerConfig, imp: Examples | None = None, snd: Examples | None = None,
        conn: tuple[np.ndarray, np.ndarray] | None = None,
        validate: Callable[[MultiTaskRanker], float] | None = None, patience: int = 3) -> MultiTaskRanker:
    """Train the heads that have data through one trunk: each step takes a batch of every task.

    With `validate`, the epoch with the best validation score is kept (stopping after `patience`
    epochs without improvement).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    tasks: list[Task] = [(h, x, y) for h, x, y in ((0, *_xy(imp)), (1, *_xy(snd)), (2, *(conn or (None, None))))
                         if x is not None and y.size]
    if not tasks:
        raise ValueError("nothing to train on: no impressions, sends or connect examples")
    width = tasks[0][1].shape[1]
    model = MultiTaskRanker(width, hidden_channels=cfg.hidden_channels, num_layers=cfg.num_layers,
                            dropout=cfg.dropout, linear=cfg.linear).to(cfg.device)
    model.freeze_inputs(constant_columns([x for _, x, _ in tasks]))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    data = [(h, torch.from_numpy(x).to(cfg.device), torch.from_numpy(y).to(cfg.device)) for h, x, y in tasks]
    steps = max(1, tasks[0][2].size // cfg.batch_size)
    best, best_state, since_best = -np.inf, None, 0
    for _ in range(cfg.epochs):
        model.train()
        perm = rng.permutation(tasks[0][2].size)
        for step in range(steps):
            loss = torch.zeros((), device=cfg.device)
            for i, (head, x, y) in enumerate(data):
                idx = (perm[step * cfg.batch_size:(step + 1) * cfg.batch_size] if i == 0
                       else rng.integers(0, y.numel(), min(cfg.batch_size, y.numel())))
                b = torch.from_numpy(idx).to(cfg.device)
                loss = loss + _loss(cfg, model(x[b])[head], y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if validate is not None:
            score = validate(model)
            if score > best:
                best, since_best = score, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
                if since_best >= patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


def _xy(ex: Examples | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    return (None, None) if ex is None else (ex.x, ex.y)


def train_ranker(ctx: FeatureContext, configs: dict[str, RankerConfig], progress: bool = False,
                 connect: tuple[np.ndarray, np.ndarray] | None = None, max_rows: int = 0) -> dict:
    """Build examples once, train every config, report each on the test period.

    `connect` (features, labels from the graph's history, ranker/history.py) trains the connect
    head alongside the send and accept heads through the shared trunk. `max_rows` > 0: at most that many
    impression (and send) examples, as whole (viewer, day) groups drawn at random.
    """
    start = time.perf_counter()
    imp, snd = build_examples(ctx, progress=progress, max_rows=max_rows)
    t1, t2 = time_periods(imp.ts)
    # Time split: train on the earliest period, calibrate and select on the next, report on the last. Features
    # are as of each example's group start, labels come after it: no period sees a later one.
    split = {name: (lambda e, lo=lo, hi=hi: e.subset((e.ts >= lo) & (e.ts < hi)))
             for name, lo, hi in (("train", -np.inf, t1), ("val", t1, t2), ("test", t2, np.inf))}
    rng = np.random.default_rng(0)
    train_imp = downsample_negatives(split["train"](imp), configs[next(iter(configs))].negatives_per_positive, rng)
    train_snd = split["train"](snd)
    val_imp, val_snd = split["val"](imp), split["val"](snd)
    test_imp, test_snd = split["test"](imp), split["test"](snd)
    val_connected, connected = _connected(val_imp, snd), _connected(test_imp, snd)
    results, models, calibrations, scorers = {}, {}, {}, {}
    for name, cfg in configs.items():
        model = fit(cfg, train_imp, train_snd, connect)
        cal, val_ndcg = calibrate(model, val_imp, val_snd, val_connected, cfg.device)
        p_send, p_acc_imp = predict(model, test_imp.x, cfg.device, cal)  # both heads on the shown pairs
        _, p_acc = predict(model, test_snd.x, cfg.device, cal)
        raw_send, _ = predict(model, test_imp.x, cfg.device)
        _, raw_acc = predict(model, test_snd.x, cfg.device)
        results[name] = {
            "send_head": head_report(test_imp.y, p_send), "accept_head": head_report(test_snd.y, p_acc),
            "send_head_uncalibrated": head_report(test_imp.y, raw_send),
            "accept_head_uncalibrated": head_report(test_snd.y, raw_acc),
            "ndcg@10_connections": round(ndcg_at_k(test_imp.group, connected, cal.score(p_send, p_acc_imp)), 4),
            "ndcg@10_connections_send_only": round(ndcg_at_k(test_imp.group, connected, p_send), 4),
            "val_ndcg@10_connections": round(val_ndcg[cal.accept_weight], 4),
            "calibration": cal.to_dict(),
            "val_ndcg@10_by_accept_weight": {str(w): round(v, 4) for w, v in val_ndcg.items()},
            "config": asdict(cfg),
        }
        models[name], calibrations[name] = model, cal
        scorers[name] = TorchScorer(model, cal, mode="send_accept")
    mutual = FEATURE_NAMES.index(HEURISTIC_FEATURE)
    results[HEURISTIC] = {
        "ndcg@10_connections": round(ndcg_at_k(test_imp.group, connected, test_imp.x[:, mutual]), 4),
        "val_ndcg@10_connections": round(ndcg_at_k(val_imp.group, val_connected, val_imp.x[:, mutual]), 4)}
    report = {"periods": {"train_until": t1, "test_from": t2}, "train_rows": int(train_imp.y.size),
              "train_send_rows": int(train_snd.y.size), "test_rows": int(test_imp.y.size),
              "features": list(FEATURE_NAMES), "results": results, "seconds": round(time.perf_counter() - start, 1)}
    return {"report": report, "models": models, "calibrations": calibrations, "scorers": scorers}


def _connected(imp: Examples, snd: Examples) -> np.ndarray:
    """Relevance of an impression: the viewer sent to that candidate and the candidate accepted."""
    acc_pairs = {(int(v), int(c)) for v, c, y in zip(snd.viewer, snd.cand, snd.y, strict=True) if y > 0}
    return np.array([(int(v), int(c)) in acc_pairs for v, c in zip(imp.viewer, imp.cand, strict=True)],
                    dtype=np.float64) * (imp.y > 0)


def guarded(results: dict, name: str) -> tuple[bool, str]:
    """Whether model `name` beat the mutual-friends heuristic on the validation period (never the test
    period, which only reports), and the figures that decided it."""
    model, heuristic = results[name]["val_ndcg@10_connections"], results[HEURISTIC]["val_ndcg@10_connections"]
    won = model > heuristic
    return won, (f"{name} {'beat' if won else 'did not beat'} the mutual-friends heuristic on validation "
                 f"(NDCG@10 of connections {model:.4f} against {heuristic:.4f})")


def publish(scorer: Scorer, cfg: RankerConfig | None, report: dict, store: ArtifactStore,
            snapshot_version: str | None, embeddings_version: str | None = None,
            per_source_k: int = PER_SOURCE_K) -> str:
    """Write the scorer and its manifest (features and their version, embeddings version, the candidates per
    source its examples were built with, report) as a new current version."""
    staging = store.staging_dir()
    spec = {"kind": scorer.kind, **scorer.save(staging)}
    path = store.publish(staging, {"kind": "ranker", "snapshot_version": snapshot_version,
                                   "embeddings_version": embeddings_version, "features": list(FEATURE_NAMES),
                                   "feature_version": FEATURE_VERSION, "per_source_k": per_source_k,
                                   "config": asdict(cfg) if cfg is not None else None, "scorer": spec,
                                   "report": report})
    return path.name
