"""The first four stages (sources -> merge -> cheap filters -> rank) for a block of viewers at once.

The batch precompute's engine. Every stage runs over the whole block: each source's `propose`
(two-hop products with hub caps, block PageRank pushes, one global order for the popularity lists),
one merge by (viewer, candidate) key, the cheap filters as array masks, one feature matrix
(`FeatureContext.block_features`) and one scorer call. Each viewer's list is the one
`CandidatePipeline.ranked` gives it on request (same candidates, order, scores, proof and feature
rows; tested), because the per-viewer path runs the same block code with a block of one.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import orjson

from candidates.base import Proposals, empty_proposals, propose
from candidates.pipeline import CandidatePipeline
from candidates.ppr import PersonalizedPageRankSource
from candidates.precompute import compact_array, compact_rows
from candidates.types import Candidate, Recommendation
from graph.snapshot.csr import rank_in_group
from ranker.features import FEATURE_NAMES, SOURCE_NAMES, FeatureContext
from ranker.merge import merge_block
from ranker.serve import LazyRankedList, ModelRanker

log = logging.getLogger(__name__)


class NotBlockRankableError(ValueError):
    """The pipeline's ranker is not the learned ranker (its order is not computed by blocks)."""


@dataclass
class Block:
    """A block of viewers after sources -> merge -> cheap filters, with the features of every row.

    Rows are grouped by owner (the viewer's position in `users`) and sorted by candidate within it.
    `score[:, j]` is source j's score of the row (NaN: not proposed), `src_row[:, j]` its row in
    that source's proposals (-1: none)."""

    users: np.ndarray
    owner: np.ndarray
    cand: np.ndarray
    score: np.ndarray
    src_row: np.ndarray
    props: list[Proposals]
    names: list[str]
    x: np.ndarray
    t: float
    removed: Counter   # rows the cheap filters removed, by reason


def candidate_block(pipeline: CandidatePipeline, ctx: FeatureContext, users: np.ndarray, t: float,
                    given: dict[str, Proposals] | None = None) -> Block:
    """The first three stages and the ranking features for a block of viewers, at time t."""
    snap = pipeline.snap
    users = np.asarray(users, dtype=np.int64)
    push = _shared_push(pipeline, ctx, users, t)
    props = _proposals(pipeline, users, push, given or {})
    names = [s.name for s in pipeline.sources]
    # merge: one row per (viewer, candidate), per source its score and row; then the cheap filters
    m = merge_block(props, users, snap)
    owner, cand, score, src_row = m.owner, m.cand, m.score, m.src_row
    ranks = {name: m.rank[:, j] for j, name in enumerate(names)
             if name in SOURCE_NAMES and not np.isnan(score[:, j]).all()}
    x = (ctx.block_features(users, owner, cand, t, ranks, push) if cand.size
         else np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32))
    return Block(users, owner, cand, score, src_row, props, names, x, t, m.removed)


def merge_order(b: Block) -> np.ndarray:
    """The block's rows in the order the Candidate path merges them: by viewer, then by the first
    source (in the pipeline's order) that proposed the row, then by its place in that source's list.

    Row order carries no information when scoring, but a learning-to-rank objective reads it: LambdaRank
    breaks the ties of its first rounds (all scores equal) by position, so training rows go in this
    order (a source's own ranking), not by candidate index (arbitrary ids)."""
    proposed = b.src_row >= 0
    first = np.argmax(proposed, axis=1)
    return np.lexsort((b.src_row[np.arange(first.size), first], first, b.owner))


def ranked_order(b: Block, score: np.ndarray) -> np.ndarray:
    """The block's rows by viewer, then score (best first); equal scores in merge order (the sources' own
    ranking, as training saw them: `merge_order`), never by candidate index. Ids often follow sign-up
    order, and ties broken by them would favour old accounts and make a ranking depend on how ids were
    given out (a coarse model ties many rows: a few boosting rounds give a few dozen distinct scores)."""
    place = np.empty(b.cand.size, dtype=np.int64)
    place[merge_order(b)] = np.arange(b.cand.size)
    return np.lexsort((place, -score, b.owner))


def rank_one(ranker: ModelRanker, pipeline: CandidatePipeline, user: int, props: dict[str, Proposals],
             rec: Recommendation) -> BlockList:
    """One viewer's ranked list on request, from its sources' proposals: the batch job's stages."""
    b = candidate_block(pipeline, ranker.ctx, np.array([user]), ranker.clock(), props)
    rec.removed.update(b.removed)
    if not b.cand.size:
        return []
    outputs = ranker.scorer(b.x)
    return BlockList(b, outputs, ranked_order(b, outputs["score"]), pipeline.snap.id_strings)


def row_parts(b: Block, outputs: dict[str, np.ndarray], rows: np.ndarray, compact_scores: bool = False
              ) -> list[tuple[list[str], dict, dict]]:
    """(sources, scores, proof) of the given rows of a block: each source builds the proof of the rows
    it proposed in one call. `compact_scores`: scores and proofs as `compact` rounds them (for stored lists)."""
    values = compact_array if compact_scores else np.asarray
    src_row = b.src_row[rows]
    proofs = []
    for j, p in enumerate(b.props):
        mine = src_row[:, j]
        mine = mine[mine >= 0]
        got = p.proof(mine)
        proofs.append(dict(zip(mine.tolist(), compact_rows(got) if compact_scores else got, strict=True)))
    # a row's sources as a bit mask; the (source position, name) pairs of each mask worked out once
    masks = ((src_row >= 0) << np.arange(len(b.names))).sum(axis=1).tolist()
    present = {m: [(j, b.names[j]) for j in range(len(b.names)) if m >> j & 1] for m in set(masks)}
    extra = [(name, values(v[rows]).tolist()) for name, v in outputs.items()]
    out = []
    for i, (m, score, at) in enumerate(zip(masks, values(b.score[rows]).tolist(), src_row.tolist(), strict=True)):
        scores = {name: score[j] for j, name in present[m]}
        for name, v in extra:
            scores[name] = v[i]
        proof = {name: pf for j, name in present[m] if (pf := proofs[j][at[j]]) is not None}
        out.append(([name for _, name in present[m]], scores, proof))
    return out


class BlockList(LazyRankedList):
    """A block's rows in ranked order as Candidates (sources, scores, proof, the ranker's feature row)."""

    def __init__(self, block: Block, outputs: dict[str, np.ndarray], order: np.ndarray, ids: list[str]) -> None:
        super().__init__(int(order.size))
        self.block, self.outputs, self.order, self.ids = block, outputs, order, ids

    def _make(self, positions: list[int]) -> list[Candidate]:
        b, rows = self.block, self.order[positions]
        out = []
        for r, (sources, scores, proof) in zip(rows.tolist(), row_parts(b, self.outputs, rows), strict=True):
            c = int(b.cand[r])
            out.append(Candidate(self.ids[c], c, tuple(sources), MappingProxyType(scores),
                                 MappingProxyType({**proof, "ranker": {"t": b.t, "features": b.x[r]}})))
        return out


def _shared_push(pipeline: CandidatePipeline, ctx: FeatureContext, users: np.ndarray, t: float):
    """The viewers' PageRank pushes, once for the PPR source and the features when both would make
    the same one (same graph, same parameters); else None."""
    for source in pipeline.sources:
        if (isinstance(source, PersonalizedPageRankSource) and ctx.graph_at(t).g is source.snap
                and (source.alpha, source.eps) == (ctx.ppr_alpha, ctx.ppr_eps)):
            return source.push(users)
    return None


def _proposals(pipeline: CandidatePipeline, users: np.ndarray, push, given: dict[str, Proposals]
               ) -> list[Proposals]:
    out = []
    k = pipeline.config.per_source_k
    for source in pipeline.sources:
        try:
            if source.name in given:
                out.append(given[source.name])
            elif push is not None and isinstance(source, PersonalizedPageRankSource):
                out.append(source.propose(users, k, push))
            else:
                out.append(propose(source, users, k))
        except Exception:  # as on request: a broken source degrades the lists, never fails them
            log.exception("source %s failed for a block of %d users", source.name, users.size)
            out.append(empty_proposals())
    return out


class BlockRanker:
    """Callable users -> [(user, lists.bin blob, feature rows)] for a pipeline with a ModelRanker."""

    def __init__(self, pipeline: CandidatePipeline, keep: int = 60) -> None:
        if not isinstance(pipeline.ranker, ModelRanker):
            how = getattr(pipeline.ranker, "__name__", type(pipeline.ranker).__name__)   # rrf_rank: no ranker served
            raise NotBlockRankableError(f"the pipeline ranks with {how}, not a learned ranker")
        self.pipeline = pipeline
        self.ranker: ModelRanker = pipeline.ranker
        self.keep = keep
        # what every block reads, built once here (before worker processes fork and share it)
        self.ranker.ctx.graph_at(self.ranker.clock())
        _ = pipeline.snap.id_strings

    def __call__(self, users: np.ndarray, given: dict[str, Proposals] | None = None
                 ) -> list[tuple[int, bytes, np.ndarray]]:
        """Each user's ranked list; `given`: proposals of some sources computed elsewhere (by Spark),
        used in place of running those sources here."""
        b = candidate_block(self.pipeline, self.ranker.ctx, users, self.ranker.clock(), given)
        if not b.cand.size:
            return [(int(u), orjson.dumps([]), b.x) for u in b.users.tolist()]
        outputs = self.ranker.scorer(b.x)
        order = ranked_order(b, outputs["score"])
        order = order[rank_in_group(b.owner[order]) < self.keep]
        return self._lists(b, outputs, order)

    @staticmethod
    def _lists(b: Block, outputs: dict[str, np.ndarray], order: np.ndarray) -> list[tuple[int, bytes, np.ndarray]]:
        """Each user's lists.bin rows and feature rows, from the kept rows (`order`: grouped by owner,
        best first)."""
        per_user: list[list] = [[] for _ in range(b.users.size)]
        feats: list[list[int]] = [[] for _ in range(b.users.size)]
        for r, (sources, scores, proof) in zip(order.tolist(), row_parts(b, outputs, order, True), strict=True):
            o = int(b.owner[r])
            per_user[o].append([int(b.cand[r]), sources, scores, proof, len(feats[o]), b.t])
            feats[o].append(r)
        return [(int(u), orjson.dumps(per_user[i]), b.x[feats[i]]) for i, u in enumerate(b.users.tolist())]
