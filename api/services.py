"""What the API serves from: the graph store, the current snapshot and its pipeline, the event log.

The snapshot (and the pipeline built on it) is hot-swapped when the refresh job publishes a new
version: requests hold a reference to the pipeline they started with, so a swap never fails one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from candidates.filters import FilterContext, StoreStateReader, apply_rules
from candidates.pipeline import CandidatePipeline, Recommendation
from candidates.registry import REGISTRY
from candidates.types import Candidate
from graph.eventlog import EventLog
from graph.snapshot import load_snapshot
from graph.store import GraphStore
from pymk.artifacts import ArtifactStore
from pymk.errors import ArtifactError, UnknownUserError
from pymk.settings import Settings
from ranker.rerank import RerankConfig, Reranker

log = logging.getLogger(__name__)


def _as_list(features) -> list[float] | None:
    return None if features is None else [float(v) for v in features]


@dataclass(frozen=True)
class Served:
    pipeline: CandidatePipeline | None
    snapshot_version: str | None
    embeddings_version: str | None = None
    ranker_version: str | None = None

    @property
    def versions(self) -> tuple[str | None, str | None, str | None]:
        return self.snapshot_version, self.embeddings_version, self.ranker_version


class Services:
    def __init__(self, settings: Settings, store: GraphStore) -> None:
        self.settings = settings
        self.store = store
        self.events = EventLog(settings.event_log_dir)
        self.served_log = EventLog(settings.data_dir / "served")
        self.snapshots = ArtifactStore(settings.snapshot_dir)
        self.embeddings = ArtifactStore(settings.embeddings_dir)
        self.rankers = ArtifactStore(settings.ranker_dir)
        self.state = StoreStateReader(store)
        self._served = Served(None, None)
        self._lock = threading.Lock()
        self._checked = 0.0
        self.reload(force=True)

    @property
    def served(self) -> Served:
        return self._served

    def reload(self, force: bool = False) -> bool:
        """Load the current snapshot (and embeddings made from it) if either changed; True if swapped."""
        now = time.monotonic()
        if not force and now - self._checked < self.settings.api.reload_check_s:
            return False
        self._checked = now
        wanted = (self.snapshots.current_version(), self.embeddings.current_version(), self.rankers.current_version())
        if wanted[0] is None or wanted == self._served.versions:
            return False
        with self._lock:
            if wanted == self._served.versions:
                return False
            try:
                snap = load_snapshot(self.snapshots.current())
            except ArtifactError as exc:
                log.error("cannot load snapshot %s, still serving %s: %s", wanted[0],
                          self._served.snapshot_version, exc)
                return False
            sources = REGISTRY.build_all(snap)
            emb_version = self._ann_source(snap, wanted, sources)
            ranker = self._ranker(snap, wanted[2])
            pipeline = CandidatePipeline(snap, sources, self.state, ranker=ranker, reranker=Reranker(
                snap, RerankConfig(explore_share=self.settings.api.explore_share)))
            old, self._served = self._served, Served(pipeline, wanted[0], emb_version,
                                                     wanted[2] if ranker is not None else None)
            if old.pipeline is not None:
                old.pipeline.close()
            log.info("serving snapshot %s (%d users), embeddings %s, ranker %s", wanted[0], snap.num_users,
                     emb_version, self._served.ranker_version)
            return True

    def _ranker(self, snap, version: str | None):
        """The learned ranker over this snapshot's features, or None (heuristic order) if absent/unusable."""
        if version is None:
            return None
        from ranker.features import FeatureContext
        from ranker.serve import ModelRanker

        try:
            return ModelRanker.load(FeatureContext(snap), self.rankers.current())
        except ArtifactError as exc:
            log.error("ranker %s not usable, ranking by heuristic: %s", version, exc)
            return None

    def _ann_source(self, snap, wanted: tuple[str | None, str | None], sources: list) -> str | None:
        """Add the ANN source when the current embeddings were computed from this snapshot."""
        if wanted[1] is None:
            return None
        from candidates.ann import EmbeddingAnnSource

        path = self.embeddings.current()
        made_from = self.embeddings.manifest(path).get("snapshot_version")
        if made_from != wanted[0]:
            log.warning("embeddings %s were made from snapshot %s, not %s: serving without ANN",
                        wanted[1], made_from, wanted[0])
            return wanted[1]
        sources.append(EmbeddingAnnSource.load(snap, path))
        return wanted[1]

    def suggestions(self, user_id: str, k: int) -> Recommendation:
        """Suggestions for a known user; users newer than the snapshot get fresh graph-store FoF."""
        self.reload()
        served = self._served
        if served.pipeline is not None and served.pipeline.snap.has_user(user_id):
            rec = served.pipeline.recommend(user_id, k)
        elif self.store.get_user(user_id) is None:
            raise UnknownUserError(user_id)
        else:
            rec = self._fresh_fallback(user_id, k)
        self.log_served(rec, served)
        return rec

    def log_served(self, rec: Recommendation, served: Served) -> None:
        """One record per response with every candidate's scores and ranking features (feature
        logging: training can use exactly what serving saw, so there is no skew)."""
        self.served_log.append_records([{
            "ts": time.time(), "viewer": rec.viewer, "snapshot": served.snapshot_version,
            "ranker": served.ranker_version, "embeddings": served.embeddings_version,
            "candidates": [{"user_id": c.user_id, "position": i, "sources": list(c.sources),
                            "scores": dict(c.scores), "features": _as_list(c.proof.get("ranker", {}).get("features")),
                            "features_at": c.proof.get("ranker", {}).get("t")}
                           for i, c in enumerate(rec.candidates)],
        }])

    def _fresh_fallback(self, user_id: str, k: int) -> Recommendation:
        rows = self.store.friends_of_friends(user_id, limit=k * 3, max_friend_degree=5000)
        cands = [Candidate.of(r.candidate, -1, "fof", r.mutual_count,
                              {"mutual_count": r.mutual_count, "adamic_adar": r.adamic_adar,
                               "mutual_ids": list(r.mutual_ids[:20])}) for r in rows]
        rec = Recommendation(viewer=user_id, candidates=[])
        ctx = FilterContext(user_id, *self.state.rules(user_id, [c.user_id for c in cands]))
        rec.candidates = apply_rules(cands, ctx, rec.removed).kept[:k]
        rec.skipped_sources["snapshot"] = "user is newer than the served snapshot"
        return rec
