"""The learned ranker as a pipeline stage: features at `now`, calibrated P(send) * P(accept)^w, sorted."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch

from candidates.types import Candidate
from pymk.errors import ArtifactError
from ranker.calibration import Calibration
from ranker.features import FEATURE_NAMES, FeatureContext
from ranker.model import MultiTaskRanker

log = logging.getLogger(__name__)


class ModelRanker:
    """Callable (viewer id, candidates) -> candidates ordered by the combined score."""

    def __init__(self, ctx: FeatureContext, model: MultiTaskRanker, version: str | None = None,
                 clock: Callable[[], float] = time.time, calibration: Calibration | None = None) -> None:
        self.ctx = ctx
        self.model = model.eval()
        self.version = version
        self.clock = clock
        self.calibration = calibration or Calibration()

    @classmethod
    def load(cls, ctx: FeatureContext, artifact: Path) -> ModelRanker:
        manifest = json.loads((artifact / "manifest.json").read_text())
        if manifest.get("features") != list(FEATURE_NAMES):
            raise ArtifactError(f"ranker {artifact.name} was trained on features {manifest.get('features')}, "
                                f"this code computes {list(FEATURE_NAMES)}")
        cfg = manifest["config"]
        model = MultiTaskRanker(len(FEATURE_NAMES), cfg["hidden_channels"], cfg["num_layers"], cfg["dropout"],
                                cfg["linear"])
        model.load_state_dict(torch.load(artifact / "model.pt", map_location="cpu", weights_only=True))
        return cls(ctx, model, manifest.get("version"), calibration=Calibration.from_dict(manifest.get("calibration")))

    def __call__(self, viewer_id: str, candidates: list[Candidate]) -> list[Candidate]:
        if not candidates:
            return []
        viewer = self.ctx.snap.index_of(viewer_id)
        t = self.clock()
        x = self.ctx.pair_features(viewer, np.array([c.index for c in candidates]), t)
        with torch.no_grad():
            send, accept = self.model(torch.from_numpy(x))
        p_send, p_accept = self.calibration.probabilities(send.numpy().astype(np.float64),
                                                          accept.numpy().astype(np.float64))
        score = self.calibration.score(p_send, p_accept).tolist()
        # the exact feature vector each candidate was ranked with travels with it, for feature logging
        ranked = [Candidate(c.user_id, c.index, c.sources,
                            MappingProxyType({**c.scores, "p_send": s, "p_accept": a, "score": v}),
                            MappingProxyType({**c.proof, "ranker": {"t": t, "features": row}}))
                  for c, s, a, v, row in zip(candidates, p_send.tolist(), p_accept.tolist(), score, x,
                                             strict=True)]
        return sorted(ranked, key=lambda c: (-c.score("score"), c.index))
