"""The learned ranker as a pipeline stage: features as of the snapshot's time, the artifact's scorer, sorted.

Features are computed at the snapshot's data time (the latest tie or event it holds): the graph a
snapshot describes cannot see anything later, and training computed each example's features as of
its own cut in the same way. A snapshot without any time falls back to the clock.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from candidates.types import Candidate
from graph.snapshot import data_time
from pymk.errors import ArtifactError
from ranker.features import FEATURE_NAMES, FeatureContext
from ranker.scorers import Scorer, load_scorer

log = logging.getLogger(__name__)


class ModelRanker:
    """Callable (viewer id, candidates) -> candidates ordered by the scorer's score."""

    def __init__(self, ctx: FeatureContext, scorer: Scorer, version: str | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.ctx = ctx
        self.scorer = scorer
        self.version = version
        at = data_time(ctx.snap)
        self.clock = clock or ((lambda: at) if at is not None else time.time)

    @classmethod
    def load(cls, ctx: FeatureContext, artifact: Path, embeddings_version: str | None = None) -> ModelRanker:
        """Load a ranker artifact; refuses one trained on other features or other embeddings."""
        manifest = json.loads((artifact / "manifest.json").read_text())
        if manifest.get("features") != list(FEATURE_NAMES):
            raise ArtifactError(f"ranker {artifact.name} was trained on features {manifest.get('features')}, "
                                f"this code computes {list(FEATURE_NAMES)}")
        wanted = manifest.get("embeddings_version")
        if wanted is not None and wanted != embeddings_version:
            raise ArtifactError(f"ranker {artifact.name} was trained with embeddings {wanted}, "
                                f"serving has {embeddings_version}")
        if wanted is None and ctx.emb is not None:
            log.warning("ranker %s was trained without embeddings: emb_sim is ignored", artifact.name)
            ctx = FeatureContext(ctx.snap)
        return cls(ctx, load_scorer(artifact, manifest), manifest.get("version"))

    def __call__(self, viewer_id: str, candidates: list[Candidate]) -> list[Candidate]:
        if not candidates:
            return []
        viewer = self.ctx.snap.index_of(viewer_id)
        t = self.clock()
        x = self.ctx.features(viewer, candidates, t)
        scores = {name: values.tolist() for name, values in self.scorer(x).items()}
        names = list(scores)
        # the exact feature vector each candidate was ranked with travels with it, for feature logging
        ranked = [Candidate(c.user_id, c.index, c.sources,
                            MappingProxyType({**c.scores, **dict(zip(names, vals, strict=True))}),
                            MappingProxyType({**c.proof, "ranker": {"t": t, "features": row}}))
                  for c, row, *vals in zip(candidates, x, *scores.values(), strict=True)]
        return sorted(ranked, key=lambda c: (-c.score("score"), c.index))
