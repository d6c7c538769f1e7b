"""The learned ranker as a pipeline stage: features as of the snapshot's time, the artifact's scorer, sorted.

Features are computed at the snapshot's data time (the latest tie or event it holds): the graph a
snapshot describes cannot see anything later, and training computed each example's features as of
its own cut in the same way. A snapshot without any time falls back to the clock.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np

from candidates.pipeline import PER_SOURCE_K
from candidates.types import Candidate
from graph.snapshot import data_time
from pymk.errors import ArtifactError
from ranker.feature_names import feature_mismatch
from ranker.features import FeatureContext
from ranker.scorers import Scorer, load_scorer

log = logging.getLogger(__name__)


class ModelRanker:
    """Callable (viewer id, candidates in merge order) -> candidates ordered by the scorer's score (equal
    scores keep merge order, as `ranker.batch.ranked_order`)."""

    def __init__(self, ctx: FeatureContext, scorer: Scorer, version: str | None = None,
                 clock: Callable[[], float] | None = None, per_source_k: int = PER_SOURCE_K) -> None:
        self.ctx = ctx
        self.scorer = scorer
        self.version = version
        self.per_source_k = per_source_k   # what each source proposed in its training examples
        at = data_time(ctx.snap)
        self.clock = clock or ((lambda: at) if at is not None else time.time)

    @classmethod
    def load(cls, ctx: FeatureContext, artifact: Path, embeddings_version: str | None = None) -> ModelRanker:
        """Load a ranker artifact; refuses one trained on other features (names, or their version) or other
        embeddings."""
        manifest = json.loads((artifact / "manifest.json").read_text())
        mismatch = feature_mismatch(manifest)
        if mismatch:   # other columns, or the same names with other meanings (ranker/feature_names.py)
            raise ArtifactError(f"ranker {artifact.name} {mismatch}: retrain it (pymk ranker train)")
        wanted = manifest.get("embeddings_version")
        if wanted is not None and wanted != embeddings_version:
            raise ArtifactError(f"ranker {artifact.name} was trained with embeddings {wanted}, "
                                f"serving has {embeddings_version}")
        if wanted is None and ctx.emb is not None:
            log.warning("ranker %s was trained without embeddings: emb_sim is ignored", artifact.name)
            ctx = FeatureContext(ctx.snap)
        return cls(ctx, load_scorer(artifact, manifest), manifest.get("version"),
                   per_source_k=int(manifest.get("per_source_k", PER_SOURCE_K)))

    def __call__(self, viewer_id: str, candidates: list[Candidate]) -> Sequence[Candidate]:
        if not candidates:
            return []
        viewer = self.ctx.snap.index_of(viewer_id)
        t = self.clock()
        x = self.ctx.features(viewer, candidates, t)
        scores = self.scorer(x)
        order = np.argsort(-scores["score"], kind="stable")
        return RankedList(candidates, order, x, scores, t)

    def rank_proposals(self, pipeline, user: int, proposals: dict, rec) -> Sequence[Candidate]:
        """Merge, cheap filters and rank of one viewer's source proposals (as the batch job does)."""
        from ranker.batch import rank_one

        return rank_one(self, pipeline, user, proposals, rec)


class LazyRankedList(Sequence[Candidate]):
    """Candidates in ranked order, each built only when first read (a request reads just the head of
    its list); subclasses say how to make the Candidates at some positions."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._built: dict[int, Candidate] = {}

    def _make(self, positions: list[int]) -> list[Candidate]:
        raise NotImplementedError

    def _build(self, positions: list[int]) -> list[Candidate]:
        todo = [i for i in positions if i not in self._built]
        if todo:
            self._built.update(zip(todo, self._make(todo), strict=True))
        return [self._built[i] for i in positions]

    def __len__(self) -> int:
        return self._size

    def __iter__(self):
        return iter(self._build(list(range(self._size))))   # all at once

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._build(list(range(*i.indices(self._size))))
        if i < 0:
            i += self._size
        if not 0 <= i < self._size:
            raise IndexError(i)
        return self._build([i])[0]


class RankedList(LazyRankedList):
    """The ranked Candidates of a list, each carrying its scores and the exact feature vector it was
    ranked with (for feature logging)."""

    def __init__(self, candidates: list[Candidate], order: np.ndarray, x: np.ndarray,
                 scores: dict[str, np.ndarray], t: float) -> None:
        super().__init__(int(order.size))
        self._candidates, self._order, self._x, self._scores, self._t = candidates, order, x, scores, t

    def _make(self, positions: list[int]) -> list[Candidate]:
        out = []
        for r in self._order[positions].tolist():
            c = self._candidates[r]
            extra = {name: float(v[r]) for name, v in self._scores.items()}
            out.append(Candidate(c.user_id, c.index, c.sources, MappingProxyType({**c.scores, **extra}),
                                 MappingProxyType({**c.proof, "ranker": {"t": self._t, "features": self._x[r]}})))
        return out
