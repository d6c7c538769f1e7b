"""Assemble the serving pipeline from the current artifacts (snapshot, embeddings, ranker).

One place for the API server and the jobs that must rank exactly as it does (precompute).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from candidates.ann import current_embeddings
from candidates.filters import SnapshotStateReader, StateReader
from candidates.newcomers import IndexRead, NewcomerConfig, newcomer_index
from candidates.pipeline import PER_SOURCE_K, CandidatePipeline, PipelineConfig
from candidates.recent_shown import RecentShownConfig, recent_impressions
from candidates.registry import REGISTRY
from graph.snapshot import load_snapshot
from graph.store import GraphStore
from pymk.artifacts import ArtifactStore, live_stores
from pymk.errors import ArtifactError
from pymk.settings import Settings
from ranker.rerank import RerankConfig, Reranker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assembled:
    pipeline: CandidatePipeline
    snapshot_version: str
    embeddings_version: str | None   # None: no embeddings published
    ranker_version: str | None       # None: heuristic order (no usable ranker)

    @property
    def versions(self) -> dict[str, str | None]:
        return {"snapshot_version": self.snapshot_version, "embeddings_version": self.embeddings_version,
                "ranker_version": self.ranker_version}


def assemble_pipeline(settings: Settings, state: StateReader | None = None,
                      stores: dict[str, ArtifactStore] | None = None) -> Assembled:
    """The pipeline over the current snapshot; ArtifactError when there is no loadable snapshot.
    Hard rules read `state` (the graph store when serving; the snapshot itself when None). `stores`: the
    artifact stores to read by name (pinned views, for a job's own versions); default the served ones."""
    stores = stores or live_stores(settings.artifact_dirs)
    snapshots = stores["snapshot"]
    snap_version = snapshots.current_version()
    if snap_version is None:
        raise ArtifactError(f"no snapshot published under {settings.snapshot_dir}")
    # memory-mapped, read-only: the worker processes of a server (and of the precompute job) share one
    # copy of the graph's arrays through the page cache instead of holding one each
    snap = load_snapshot(snapshots.current(), mmap=True)
    emb_version, emb, index = current_embeddings(stores["embeddings"], snap_version)
    sources = REGISTRY.build_all(snap, embeddings=emb, index=index)  # the ANN source only with embeddings
    ranker, ranker_version = _ranker(stores["ranker"], snap, emb, emb_version if emb is not None else None)
    pipeline = CandidatePipeline(snap, sources, state or SnapshotStateReader(snap),
                                 PipelineConfig(per_source_k=ranker.per_source_k if ranker else PER_SOURCE_K,
                                                concurrency=settings.api.threads), ranker=ranker,
                                 reranker=Reranker(snap, RerankConfig(explore_share=settings.api.explore_share)))
    return Assembled(pipeline, snap_version, emb_version, ranker_version)


def add_live_state(pipeline: CandidatePipeline, settings: Settings, store: GraphStore,
                   on_newcomer_read: Callable[[IndexRead], None] | None = None,
                   on_recent_read: Callable[[bool, int], None] | None = None) -> None:
    """What serving adds to a snapshot's pipeline, read from newer data: the index of the accounts written
    since (newcomer slots) and the impressions logged since (the seen penalty)."""
    api = settings.api
    pipeline.newcomers = newcomer_index(
        store, pipeline.snap, NewcomerConfig(api.newcomer_slots, api.newcomer_refresh_s, api.newcomer_full_read_s),
        on_newcomer_read)
    if api.seen_max_impressions > 0:
        pipeline.recent_shown = recent_impressions(settings.event_log_dir, pipeline.snap,
                                                   RecentShownConfig(api.seen_refresh_s, api.seen_max_impressions,
                                                                     api.seen_first_read_s),
                                                   on_recent_read)


def _ranker(rankers: ArtifactStore, snap, emb, emb_version: str | None):
    """The learned ranker over this snapshot's features (embedding similarity from the served
    embeddings), or None (heuristic order) if absent or trained with other features or embeddings."""
    version = rankers.current_version()
    if version is None:
        return None, None
    from ranker.features import FeatureContext
    from ranker.serve import ModelRanker

    try:
        return ModelRanker.load(FeatureContext(snap, emb), rankers.current(), emb_version), version
    except ArtifactError as exc:
        log.error("ranker %s not usable, ranking by heuristic: %s", version, exc)
        return None, None
