"""What the API serves from: the graph store, the current snapshot and its pipeline, the event log.

The snapshot (and the pipeline built on it) is hot-swapped when the refresh job publishes a new
version: requests hold a reference to the pipeline they started with, so a swap never fails one.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from candidates.filters import StoreStateReader
from candidates.fresh import fresh_fof
from candidates.newcomers import IndexRead
from candidates.pipeline import CandidatePipeline, Recommendation
from graph.eventlog import EventLog
from graph.store import GraphStore
from pymk.artifacts import ArtifactStore
from pymk.assemble import add_live_state, assemble_pipeline
from pymk.errors import (
    AccountReplacedError,
    ArtifactError,
    EventLogUnavailableError,
    FriendsChangedError,
)
from pymk.settings import Settings

log = logging.getLogger(__name__)
SETTLE_S = 0.5   # how long after a pointer moved a background load reads them all


def _as_list(features) -> list[float] | None:
    return None if features is None else np.asarray(features, dtype=np.float64).tolist()


@dataclass(frozen=True)
class Served:
    pipeline: CandidatePipeline | None
    snapshot_version: str | None
    embeddings_version: str | None = None
    ranker_version: str | None = None
    precomputed_version: str | None = None
    published_at: tuple[tuple[str, float], ...] = ()   # (artifact, Unix time its version was published)


class Services:
    def __init__(self, settings: Settings, store: GraphStore,
                 on_newcomer_read: Callable[[IndexRead], None] | None = None,
                 on_recent_read: Callable[[bool, int], None] | None = None, owns_store: bool = False) -> None:
        self.settings = settings
        self.store = store
        self.owns_store = owns_store   # opened for this app (create_app): closed with it
        self.on_newcomer_read = on_newcomer_read   # told of every read of the newcomer index (metrics)
        self.on_recent_read = on_recent_read       # ... and of the impressions since the snapshot (ok, held)
        self.events = EventLog(settings.event_log_dir)
        self.served_log = EventLog(settings.served_log_dir, retention_s=settings.api.served_log_retention_h * 3600)
        self.snapshots = ArtifactStore(settings.snapshot_dir)
        self.embeddings = ArtifactStore(settings.embeddings_dir)
        self.rankers = ArtifactStore(settings.ranker_dir)
        self.precomputed = ArtifactStore(settings.candidates_dir)
        self.state = StoreStateReader(store)
        self._served = Served(None, None)
        self._pointers: tuple[str | None, ...] = ()  # artifact pointers the served pipeline was built from
        self._lock = threading.Lock()        # starting a background load
        self._load_lock = threading.Lock()   # one load at a time
        self._loading: threading.Thread | None = None
        self._closed = False
        self._checked = 0.0
        self.served_log_failures = 0
        self._served_log_warned = -math.inf
        self._ensure_schema()
        self.reload(force=True)

    def close(self) -> None:
        """Stop the served pipeline's source threads, close the logs' open segments, and the graph store
        when this app opened it (create_app). For a process that stops serving: nothing is served after."""
        self._closed = True
        loading = self._loading
        if loading is not None:   # a background load: it closes what it built, once it sees the flag
            loading.join(timeout=30)
        if self._served.pipeline is not None:
            self._served.pipeline.close()
        self.events.close()
        self.served_log.close()
        if self.owns_store:
            self.store.close()

    def _ensure_schema(self) -> None:
        """The indexes serving reads by (idempotent: a no-op once made), so code upgraded without an ingestion
        run does not read by a missing one; credentials that may not change the schema get a warning."""
        try:
            self.store.ensure_schema()
        except Exception as exc:   # the API serves without it; the reads it speeds up still work, slower
            log.warning("could not check the graph store's indexes and constraints (%s); run `pymk neo4j "
                        "schema` with credentials allowed to change the schema", exc)

    @property
    def served(self) -> Served:
        return self._served

    def reload(self, force: bool = False) -> bool:
        """Swap in the current artifacts if any pointer changed: at most every `reload_check_s`, or now with
        `force`. A load while something is served runs in a background thread, so requests go on with the
        pipeline they have (loaded inline, the request that noticed waited the whole load, 1.5-1.7 s at 100k
        users, and so did every request checking again while a load ran past `reload_check_s`;
        bench/reload.py); `force`, or nothing served yet, loads in this thread. True if this call swapped."""
        wanted = self._changed(force)
        if wanted is None:
            return False
        if force or self._served.pipeline is None:
            return self._load(wanted)
        with self._lock:
            if self._loading is None or not self._loading.is_alive():
                self._loading = threading.Thread(target=self._settled_load, name="pymk-reload", daemon=True)
                self._loading.start()
        return False

    def _changed(self, force: bool) -> tuple[str | None, ...] | None:
        """The artifact pointers, when a check is due (every `reload_check_s`, or `force`) and one has moved
        from what is served; None otherwise."""
        now = time.monotonic()
        if not force and now - self._checked < self.settings.api.reload_check_s:
            return None
        self._checked = now
        wanted = self._pointers_now()
        return None if wanted[0] is None or wanted == self._pointers else wanted

    def _pointers_now(self) -> tuple[str | None, ...]:
        return (self.snapshots.current_version(), self.embeddings.current_version(), self.rankers.current_version(),
                self.precomputed.current_version())

    def _settled_load(self) -> None:
        """A background load of the pointers as they stand a moment after the change was seen: a release
        writes its pointers one after another (pymk/refresh.py), and a check between two of them would
        otherwise load a mixed set, served until the next check."""
        time.sleep(SETTLE_S)
        wanted = self._pointers_now()
        if wanted[0] is not None:
            self._load(wanted)

    def _load(self, wanted: tuple[str | None, ...]) -> bool:
        with self._load_lock:
            if wanted == self._pointers or self._closed:
                return False
            # the versions just read, not the pointers again: a set released meanwhile is the next check's
            stores = {name: store.pinned(version) for (name, store), version in zip(
                (("snapshot", self.snapshots), ("embeddings", self.embeddings), ("ranker", self.rankers),
                 ("candidates", self.precomputed)), wanted, strict=True)}
            try:
                built = assemble_pipeline(self.settings, self.state, stores)
            except ArtifactError as exc:
                log.error("cannot load snapshot %s, still serving %s: %s", wanted[0],
                          self._served.snapshot_version, exc)
                return False
            except Exception:   # a background load has no caller to raise to
                log.exception("loading snapshot %s failed, still serving %s", wanted[0], self._served.snapshot_version)
                return False
            pipeline = built.pipeline
            pipeline.precomputed = self._precomputed(stores["candidates"], pipeline.snap, built.versions)
            add_live_state(pipeline, self.settings, self.store, self.on_newcomer_read, self.on_recent_read)
            try:
                pipeline.warm()
            except Exception:   # the requests will show the same failure; loading goes on
                log.exception("warming up snapshot %s failed", wanted[0])
            pipeline.snap.build_index()   # before the swap: no request builds it
            if self._closed:   # the app closed while this loaded
                pipeline.close()
                return False
            precomputed = pipeline.precomputed.version if pipeline.precomputed else None
            old, self._served = self._served, Served(
                pipeline, built.snapshot_version, built.embeddings_version, built.ranker_version, precomputed,
                self._published_at(built.snapshot_version, built.embeddings_version, built.ranker_version,
                                    precomputed))
            self._pointers = wanted
            # The old pipeline is not closed here: a request that picked it up just before the swap may
            # still be running its sources. Its thread pool ends when the last such request lets go of it.
            del old
            # The snapshot's id index and the models are millions of long-lived objects; moving them out
            # of the collector's reach keeps full collections (pauses of tens of ms) off the request path.
            gc.collect()
            gc.freeze()
            log.info("serving snapshot %s (%d users), embeddings %s, ranker %s, precomputed lists %s",
                     built.snapshot_version, pipeline.snap.num_users, built.embeddings_version,
                     built.ranker_version, self._served.precomputed_version)
            return True

    def _published_at(self, *versions: str | None) -> tuple[tuple[str, float], ...]:
        """When each served version was published, for the age an operator alerts on (a nightly refresh
        that stopped shows as a snapshot growing old)."""
        out = []
        for (name, root), version in zip(self.settings.artifact_dirs.items(), versions, strict=True):
            if version is not None:
                try:
                    out.append((name, float(ArtifactStore(root).manifest(root / version)["published_at"])))
                except (ArtifactError, KeyError, TypeError, ValueError):   # pruned meanwhile, or an old manifest
                    log.warning("no publication time for %s %s", name, version)
        return tuple(out)

    @staticmethod
    def _precomputed(lists: ArtifactStore, snap, versions: dict[str, str | None]):
        """The current precomputed lists if they were made with exactly what is being served."""
        from candidates.precompute import PrecomputedCandidates

        if lists.current_version() is None:
            return None
        path = lists.current()
        made = lists.manifest(path)
        made_with = {k: made.get(k) for k in versions}
        if made_with != versions:
            log.warning("precomputed lists %s were made with %s, serving %s: ranking every request online",
                        path.name, made_with, versions)
            return None
        try:
            return PrecomputedCandidates(path, snap)
        except ArtifactError as exc:
            log.error("precomputed lists %s not usable, ranking online: %s", path.name, exc)
            return None

    def suggestions(self, user_id: str, k: int, request_id: str | None = None) -> Recommendation:
        """Suggestions for a known user; users newer than the snapshot get fresh graph-store FoF.
        `request_id` goes into the served-log record (events that carry it join that record exactly)."""
        self.reload()
        served = self._served
        if served.pipeline is not None and served.pipeline.snap.has_user(user_id):
            try:
                rec = served.pipeline.recommend(user_id, k)
            except AccountReplacedError:   # a new account under a former one's id: as a user new since the snapshot
                rec = self._fresh_fallback(user_id, k, served)
            except FriendsChangedError:    # few friends in the snapshot, new ones since (a new account's next days)
                rec = self._fresh_fallback(user_id, k, served, "the viewer had fewer than "
                                           f"{served.pipeline.config.fresh_below_friends} friends in the served "
                                           "snapshot and has made new ones since")
        else:   # an id the store does not hold either: UnknownUserError from the fresh path's first read
            rec = self._fresh_fallback(user_id, k, served)
        self.log_served(rec, served, request_id)
        return rec

    def log_served(self, rec: Recommendation, served: Served, request_id: str | None = None) -> None:
        """One record per response (`served_log`): the candidates, their sources and scores, and with
        "features" every candidate's ranking features (feature logging: training can use exactly what
        serving saw, so there is no skew)."""
        mode = self.settings.api.served_log
        if mode == "off":
            return
        candidates = [{"user_id": c.user_id, "position": i, "sources": list(c.sources), "scores": dict(c.scores)}
                      for i, c in enumerate(rec.candidates)]
        if mode == "features":
            for row, c in zip(candidates, rec.candidates, strict=True):
                ranker = c.proof.get("ranker", {})
                row.update(features=_as_list(ranker.get("features")), features_at=ranker.get("t"))
        try:
            self.served_log.append_records([{
                "ts": time.time(), "request_id": request_id, "viewer": rec.viewer, "snapshot": served.snapshot_version,
                "ranker": served.ranker_version, "embeddings": served.embeddings_version,
                "precomputed": rec.precomputed, "candidates": candidates,
            }])
        except Exception as exc:  # a record lost, never the response: a full disk, or a record it cannot write
            self.served_log_failures += 1
            if time.monotonic() - self._served_log_warned > 60:
                self._served_log_warned = time.monotonic()
                full = isinstance(exc, EventLogUnavailableError)   # else a fault: logged with its traceback
                log.log(logging.WARNING if full else logging.ERROR, "served log: %s (%d responses unlogged so far)",
                        exc, self.served_log_failures, exc_info=None if full else exc)

    def _fresh_fallback(self, user_id: str, k: int, served: Served,
                        why: str = "user is newer than the served snapshot") -> Recommendation:
        pipeline = served.pipeline
        seen, failed = None, None
        try:
            seen = pipeline.seen_by_id(user_id) if pipeline else None
        except Exception as exc:   # the list goes without the seen penalty, as a failed re-rank leaves it
            log.error("impressions of %r unreadable: its list goes without the seen penalty", user_id, exc_info=exc)
            failed = exc
        rec = fresh_fof(self.store, user_id, k, snap=pipeline.snap if pipeline else None,
                        sources=pipeline.sources if pipeline else (), seen=seen,
                        seen_decay=pipeline.seen_decay if pipeline else 1.0)
        rec.skip("snapshot", why)
        if failed is not None:
            rec.failed("rerank", failed)
        return rec
