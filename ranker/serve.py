"""The learned ranker as a pipeline stage: features at `now`, P(send) * P(accept), sorted."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from candidates.types import Candidate
from pymk.errors import ArtifactError
from ranker.features import FEATURE_NAMES, FeatureContext
from ranker.model import MultiTaskRanker, combined_score

log = logging.getLogger(__name__)


class ModelRanker:
    """Callable (viewer id, candidates) -> candidates ordered by the combined score."""

    def __init__(self, ctx: FeatureContext, model: MultiTaskRanker, version: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.model = model.eval()
        self.version = version
        self.clock = clock

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
        return cls(ctx, model, manifest.get("version"))

    @torch.no_grad()
    def scores(self, viewer: int, candidates: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(self.ctx.pair_features(viewer, candidates, t))
        send, accept = self.model(x)
        return torch.sigmoid(send).numpy(), torch.sigmoid(accept).numpy()

    def __call__(self, viewer_id: str, candidates: list[Candidate]) -> list[Candidate]:
        if not candidates:
            return []
        viewer = self.ctx.snap.index_of(viewer_id)
        p_send, p_accept = self.scores(viewer, np.array([c.index for c in candidates]), self.clock())
        score = combined_score(torch.from_numpy(p_send), torch.from_numpy(p_accept)).numpy()
        ranked = [c.with_scores(p_send=s, p_accept=a, score=v)
                  for c, s, a, v in zip(candidates, p_send.tolist(), p_accept.tolist(), score.tolist(), strict=True)]
        return sorted(ranked, key=lambda c: (-c.score("score"), c.index))
