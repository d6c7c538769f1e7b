"""Train the multi-task ranker on the event log and write a versioned model artifact."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from pymk.artifacts import ArtifactStore
from ranker.calibration import Calibration, choose_accept_weight, fit_platt
from ranker.data import Examples, build_examples, downsample_negatives, time_periods
from ranker.features import FEATURE_NAMES, FeatureContext
from ranker.losses import balanced_bce, focal_loss
from ranker.metrics import head_report, ndcg_at_k
from ranker.model import MultiTaskRanker

log = logging.getLogger(__name__)


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
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")


def _loss(cfg: RankerConfig, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if cfg.loss == "focal":
        return focal_loss(logits, y, cfg.alpha, cfg.gamma)
    if cfg.loss == "balanced":
        return balanced_bce(logits, y)
    if cfg.loss == "bce":
        return focal_loss(logits, y, None, 0.0)
    raise ValueError(f"loss must be focal, balanced or bce (got {cfg.loss!r})")


@torch.no_grad()
def predict_logits(model: MultiTaskRanker, x: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    s, a = model(torch.from_numpy(x).to(device))
    return s.cpu().numpy().astype(np.float64), a.cpu().numpy().astype(np.float64)


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


def fit(cfg: RankerConfig, imp: Examples, snd: Examples) -> MultiTaskRanker:
    """Alternate batches of impressions (send head) and sends (accept head) through one trunk."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = MultiTaskRanker(imp.x.shape[1], cfg.hidden_channels, cfg.num_layers, cfg.dropout, cfg.linear).to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    xi, yi = torch.from_numpy(imp.x).to(cfg.device), torch.from_numpy(imp.y).to(cfg.device)
    xs, ys = torch.from_numpy(snd.x).to(cfg.device), torch.from_numpy(snd.y).to(cfg.device)
    steps = max(1, imp.y.size // cfg.batch_size)
    for _ in range(cfg.epochs):
        model.train()
        perm_i = rng.permutation(imp.y.size)
        for step in range(steps):
            bi = torch.from_numpy(perm_i[step * cfg.batch_size:(step + 1) * cfg.batch_size]).to(cfg.device)
            bs = torch.from_numpy(rng.integers(0, snd.y.size, min(cfg.batch_size, snd.y.size))).to(cfg.device)
            send_logits, _ = model(xi[bi])
            _, accept_logits = model(xs[bs])
            loss = _loss(cfg, send_logits, yi[bi]) + _loss(cfg, accept_logits, ys[bs])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def train_ranker(ctx: FeatureContext, configs: dict[str, RankerConfig], progress: bool = False) -> dict:
    """Build examples once, train every config, report each on the test period."""
    start = time.perf_counter()
    imp, snd = build_examples(ctx, progress=progress)
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
    results, models, calibrations = {}, {}, {}
    for name, cfg in configs.items():
        model = fit(cfg, train_imp, train_snd)
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
            "calibration": cal.to_dict(),
            "val_ndcg@10_by_accept_weight": {str(w): round(v, 4) for w, v in val_ndcg.items()},
            "config": asdict(cfg),
        }
        models[name], calibrations[name] = model, cal
    mutual = test_imp.x[:, FEATURE_NAMES.index("mutual")]
    results["mutual_friends_heuristic"] = {
        "ndcg@10_connections": round(ndcg_at_k(test_imp.group, connected, mutual), 4)}
    report = {"periods": {"train_until": t1, "test_from": t2}, "train_rows": int(train_imp.y.size),
              "train_send_rows": int(train_snd.y.size), "test_rows": int(test_imp.y.size),
              "features": list(FEATURE_NAMES), "results": results, "seconds": round(time.perf_counter() - start, 1)}
    return {"report": report, "models": models, "calibrations": calibrations}


def _connected(imp: Examples, snd: Examples) -> np.ndarray:
    """Relevance of an impression: the viewer sent to that candidate and the candidate accepted."""
    acc_pairs = {(int(v), int(c)) for v, c, y in zip(snd.viewer, snd.cand, snd.y, strict=True) if y > 0}
    return np.array([(int(v), int(c)) in acc_pairs for v, c in zip(imp.viewer, imp.cand, strict=True)],
                    dtype=np.float64) * (imp.y > 0)


def publish(model: MultiTaskRanker, cfg: RankerConfig, report: dict, store: ArtifactStore, snapshot_version: str | None,
            calibration: Calibration | None = None) -> str:
    staging = store.staging_dir()
    torch.save(model.state_dict(), staging / "model.pt")
    path = store.publish(staging, {"kind": "ranker", "snapshot_version": snapshot_version, "features":
                                   list(FEATURE_NAMES), "config": asdict(cfg), "report": report,
                                   "calibration": (calibration or Calibration()).to_dict()})
    return path.name
