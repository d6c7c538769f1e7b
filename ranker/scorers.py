"""What turns a feature matrix into ranking scores, and how each kind is saved and loaded.

Serving combines the heads as the model artifact says (`mode`):
- `connect`: the connect head, P(tie forms | candidate), learned from the graph's history. Used
  when there is no impression log, or when it ranks better than the send/accept product on the
  validation period.
- `send_accept`: calibrated P(send) * P(accept)^w from the impression-log heads (the send and
  accept heads never see the per-source columns, which an impression log does not record).
Other kinds chosen on the inner validation: a LightGBM LambdaRank model, the mean of the learned
models' standardized scores (ensemble), reciprocal rank fusion of the sources, or one feature (a
heuristic such as Adamic-Adar) when nothing learned beat it.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from candidates.fusion import RRF_K
from pymk.errors import ArtifactError
from ranker.calibration import Calibration, sigmoid
from ranker.feature_names import FEATURE_NAMES, SOURCE_COLUMNS, SOURCE_NAMES
from ranker.forest import Forest, UnsupportedModelError
from ranker.model import MultiTaskRanker

log = logging.getLogger(__name__)
_CHUNKED_ROWS = 20_000   # below this, one call on the calling thread


class Scorer(Protocol):
    kind: str

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Named scores per row; "score" is what the list is sorted by."""
        ...

    def save(self, directory: Path) -> dict: ...


def without_sources(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[:, SOURCE_COLUMNS] = 0.0
    return out


INFER_ROWS = 512


@torch.inference_mode()
def _heads(model: MultiTaskRanker, x: np.ndarray, device: str) -> list[np.ndarray]:
    """The three heads' logits, in fixed-size chunks of INFER_ROWS rows (the last one zero-padded).

    A row's result then never depends on how many rows it was scored with: matrix kernels pick their
    blocking by the row count, and the last bits of a score with it, so a user's list ranked in a
    precompute block would otherwise not be bit-identical to the same list ranked on request.
    """
    if model.training:   # a module walk per call otherwise: ~0.1 ms on the serving path
        model.eval()
    out: list[list[np.ndarray]] = [[], [], []]
    for start in range(0, x.shape[0], INFER_ROWS):
        part = x[start:start + INFER_ROWS]
        chunk = np.zeros((INFER_ROWS, x.shape[1]), dtype=np.float32)
        chunk[:part.shape[0]] = part
        for head, logits in zip(out, model(torch.from_numpy(chunk).to(device)), strict=True):
            head.append(logits[:part.shape[0]].cpu().numpy().astype(np.float64))
    return [np.concatenate(h) if h else np.zeros(0) for h in out]


def predict_logits(model: MultiTaskRanker, x: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Send and accept logits (the heads see no per-source columns, as in training)."""
    s, a, _ = _heads(model, without_sources(x), device)
    return s, a


def connect_logits(model: MultiTaskRanker, x: np.ndarray, device: str = "cpu") -> np.ndarray:
    return _heads(model, x, device)[2]


@dataclass
class TorchScorer:
    model: MultiTaskRanker
    calibration: Calibration
    mode: str = "connect"   # connect | send_accept
    kind: str = "torch"

    def __post_init__(self) -> None:
        if self.mode not in ("connect", "send_accept"):
            raise ArtifactError(f"unknown torch scoring mode {self.mode!r}")
        self.model.eval()

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """One pass of the model: the connect head in `connect` mode (the send and accept heads are
        untrained without an impression log, so they are not reported), else send and accept."""
        if self.mode == "connect":
            a, b = self.calibration.connect
            p_connect = sigmoid(a * connect_logits(self.model, x) + b)
            return {"p_connect": p_connect, "score": p_connect}
        p_send, p_accept = self.calibration.probabilities(*predict_logits(self.model, x))
        return {"p_send": p_send, "p_accept": p_accept, "score": self.calibration.score(p_send, p_accept)}

    def save(self, directory: Path) -> dict:
        torch.save(self.model.state_dict(), directory / "model.pt")
        m = self.model
        shape = {"hidden_channels": m.hidden_channels, "num_layers": m.num_layers, "dropout": m.dropout,
                 "linear": m.linear}
        return {"mode": self.mode, "calibration": self.calibration.to_dict(), "model": shape}


@dataclass
class LightGBMScorer:
    """A LightGBM booster's scores, computed by the compiled pass of ranker/forest.py (LightGBM's own
    predictor, bit for bit, 1.0-2.0x as fast on trained models); a model that pass cannot read keeps
    LightGBM's predictor. One thread by default (serving scores one viewer's list per request thread);
    training scores its large validation matrices in `threads` row chunks (rows are independent)."""

    booster: object            # lightgbm.Booster
    kind: str = "lightgbm"
    threads: int = 1
    forest: Forest | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self.forest = Forest.from_booster(self.booster)
        except UnsupportedModelError as exc:
            log.info("LightGBM model scored by LightGBM's own predictor: %s", exc)

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.forest is None:
            return {"score": np.asarray(self.booster.predict(x, num_threads=self.threads), dtype=np.float64)}
        if self.threads <= 1 or x.shape[0] < _CHUNKED_ROWS:
            return {"score": self.forest.score(x)}
        with ThreadPoolExecutor(self.threads) as pool:   # the compiled pass releases the GIL
            parts = list(pool.map(self.forest.score, np.array_split(x, self.threads)))
        return {"score": np.concatenate(parts)}

    def save(self, directory: Path) -> dict:
        self.booster.save_model(str(directory / "model.txt"))
        return {}


@dataclass
class FeatureScorer:
    """One feature as the score (equal scores keep the rows' merge order when ranked)."""

    feature: str
    kind: str = "feature"

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"score": x[:, FEATURE_NAMES.index(self.feature)].astype(np.float64)}

    def save(self, directory: Path) -> dict:
        return {"feature": self.feature}


@dataclass
class RrfScorer:
    """Reciprocal rank fusion of the sources' own ranks (from the per-source rank columns)."""

    kind: str = "rrf"

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        score = np.zeros(x.shape[0])
        for name in SOURCE_NAMES:
            inv = x[:, FEATURE_NAMES.index(f"inv_rank_{name}")].astype(np.float64)
            rank = np.divide(1.0, inv, out=np.full_like(inv, np.inf), where=inv > 0) - 1.0
            score += np.where(inv > 0, 1.0 / (RRF_K + rank + 1.0), 0.0)
        return {"score": score}

    def save(self, directory: Path) -> dict:
        return {}


@dataclass
class EnsembleScorer:
    """The (weighted) mean of several scorers' standardized scores (means and spreads measured on validation)."""

    members: list[Scorer]
    mean: list[float]
    std: list[float]
    kind: str = "ensemble"
    weights: list[float] | None = None   # None: equal weights

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"score": self.combine([m(x)["score"] for m in self.members])}

    def combine(self, scores: list[np.ndarray]) -> np.ndarray:
        """The ensemble's score from its members' scores of the same rows."""
        parts = [(v - mu) / sd for v, mu, sd in zip(scores, self.mean, self.std, strict=True)]
        if self.weights is None:
            return np.mean(parts, axis=0)
        return np.sum([w * p for w, p in zip(self.weights, parts, strict=True)], axis=0)

    def save(self, directory: Path) -> dict:
        specs = []
        for i, member in enumerate(self.members):
            (directory / f"member{i}").mkdir()
            specs.append({"kind": member.kind, **member.save(directory / f"member{i}")})
        return {"members": specs, "mean": self.mean, "std": self.std, "weights": self.weights}


def load_scorer(artifact: Path, manifest: dict) -> Scorer:
    """The scorer an artifact holds (its manifest's `scorer` section says which kind)."""
    return _load(artifact, manifest.get("scorer") or {}, artifact.name)


def _load(directory: Path, spec: dict, name: str) -> Scorer:
    kind = spec.get("kind")
    if kind == "ensemble":
        return EnsembleScorer([_load(directory / f"member{i}", m, name) for i, m in enumerate(spec["members"])],
                              list(spec["mean"]), list(spec["std"]), weights=spec.get("weights"))
    artifact = directory
    if kind == "torch":
        shape = spec.get("model") or {}
        try:
            model = MultiTaskRanker(len(FEATURE_NAMES), **shape)
        except TypeError as exc:
            raise ArtifactError(f"ranker {name}: bad model shape {shape}: {exc}") from exc
        try:
            model.load_state_dict(torch.load(artifact / "model.pt", map_location="cpu", weights_only=True))
        except (RuntimeError, FileNotFoundError) as exc:
            raise ArtifactError(f"ranker {name}: cannot load model.pt: {exc}") from exc
        return TorchScorer(model, Calibration.from_dict(spec.get("calibration")), spec.get("mode", "connect"))
    if kind == "lightgbm":
        import lightgbm

        return LightGBMScorer(lightgbm.Booster(model_file=str(artifact / "model.txt")))
    if kind == "feature":
        if spec.get("feature") not in FEATURE_NAMES:
            raise ArtifactError(f"ranker {name}: unknown feature {spec.get('feature')!r}")
        return FeatureScorer(spec["feature"])
    if kind == "rrf":
        return RrfScorer()
    raise ArtifactError(f"ranker {name}: unknown scorer kind {kind!r} in {json.dumps(spec)[:200]}")
