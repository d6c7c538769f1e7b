"""The in-memory snapshot and its on-disk form (one .npy per array + manifest.json)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graph.records import CATEGORICAL_FIELDS, EVENT_TYPES, REQUEST_STATUSES
from pymk.artifacts import ArtifactStore
from pymk.errors import ArtifactError, UnknownUserError

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
NUMERIC_COLUMNS = ("created_at", "lat", "lon")
EVENT_CODE = {name: i for i, name in enumerate(EVENT_TYPES)}
STATUS_CODE = {name: i for i, name in enumerate(REQUEST_STATUSES)}


@dataclass
class Snapshot:
    """The graph at one moment, as arrays indexed by internal user index 0..n-1.

    `indptr`/`indices` are a symmetric CSR adjacency (int64/int32, sorted neighbours, no self
    loops); `since[k]` is the time the tie `indices[k]` was formed (NaN when unknown).
    """

    ids: np.ndarray                       # external ids (int64 or str), sorted
    indptr: np.ndarray
    indices: np.ndarray
    since: np.ndarray
    numeric: dict[str, np.ndarray]        # created_at, lat, lon (float64, NaN = missing)
    categorical: dict[str, np.ndarray]    # code per user (int32, -1 = missing)
    vocab: dict[str, list[str]]
    opted_out: np.ndarray                 # bool: opted out or deactivated (never suggested)
    requests: dict[str, np.ndarray]       # src, dst, sent_at, status, responded_at
    blocks: dict[str, np.ndarray]         # src, dst, at
    events: dict[str, np.ndarray]         # type, src, dst, ts, position
    meta: dict[str, Any] = field(default_factory=dict)
    _index: dict[str, int] | None = field(default=None, repr=False)
    _id_strings: list[str] | None = field(default=None, repr=False)
    _id_hash: np.ndarray | None = field(default=None, repr=False)
    _shown: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def num_users(self) -> int:
        return int(self.ids.shape[0])

    @property
    def num_edges(self) -> int:
        """Undirected friendships (each stored twice in the CSR)."""
        return int(self.indices.shape[0] // 2)

    @property
    def degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def neighbors(self, i: int) -> np.ndarray:
        return self.indices[self.indptr[i]:self.indptr[i + 1]]

    def entry_rows(self) -> np.ndarray:
        """The row (user) of every CSR entry, aligned with `indices` and `since`."""
        return np.repeat(np.arange(self.num_users, dtype=np.int64), self.degree)

    def new_ties_since(self, start: float) -> np.ndarray:
        """Per user, how many of its ties formed at or after `start` (float64; unknown times never count)."""
        return np.bincount(self.entry_rows(), weights=(self.since >= start).astype(np.float64),
                           minlength=self.num_users)

    def ties(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each friendship once, as (src, dst, since) arrays with src < dst (int64, int64, float64)."""
        rows = self.entry_rows()
        upper = rows < self.indices
        return rows[upper], self.indices[upper].astype(np.int64), self.since[upper]

    def impressions_by_viewer(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every impression as (viewer, shown user, whole second), sorted by viewer then time: what the
        ranker's "times shown" feature and the re-rank's seen penalty read. Saved with the snapshot, so the
        API's workers share one memory-mapped copy instead of sorting their own (~32 bytes an impression
        each). A view of the snapshot with other events (a past cut) gets its own: a cached triple counts
        only while it holds as many impressions as the events do, which for a time prefix of them means
        the same ones."""
        imp = self.events["type"] == EVENT_CODE["impression"]
        if self._shown is not None and self._shown[0].size == int(imp.sum()):
            return self._shown
        ts, src = self.events["ts"][imp], self.events["src"][imp]
        order = np.lexsort((ts, src))
        self._shown = (src[order].astype(np.int64), self.events["dst"][imp][order].astype(np.int64),
                       np.floor(ts[order]))
        return self._shown

    @property
    def id_strings(self) -> list[str]:
        """External ids as Python strings, built once (the serving path converts many per request)."""
        if self._id_strings is None:
            self._id_strings = [str(x) for x in self.ids.tolist()]
        return self._id_strings

    @property
    def id_hash(self) -> np.ndarray:
        """Each user's id hash (graph/tiebreak.py: the order of equal friends-of-friends scores, as the graph
        store's Cypher path orders them), built once: a few vectorised passes over the ids, not a hash a request."""
        if self._id_hash is None:
            from graph.tiebreak import id_hashes

            self._id_hash = id_hashes(self.ids)
        return self._id_hash

    def build_index(self) -> dict[str, int]:
        """External id -> index (built on first use; servers build it up front)."""
        if self._index is None:
            self._index = {x: i for i, x in enumerate(self.id_strings)}
        return self._index

    def index_of(self, user_id: str | int) -> int:
        if self._index is None:
            self.build_index()
        try:
            return self._index[str(user_id)]
        except KeyError:
            raise UnknownUserError(str(user_id)) from None

    def has_user(self, user_id: str | int) -> bool:
        try:
            self.index_of(user_id)
        except UnknownUserError:
            return False
        return True

    def external_id(self, i: int) -> str:
        return self.id_strings[i]


SHOWN_ARRAYS = ("shown_viewer", "shown_user", "shown_sec")   # Snapshot.impressions_by_viewer, saved


def _arrays(snap: Snapshot) -> dict[str, np.ndarray]:
    out = {"ids": snap.ids, "indptr": snap.indptr, "indices": snap.indices, "since": snap.since,
           "opted_out": snap.opted_out}
    out.update({f"num_{k}": v for k, v in snap.numeric.items()})
    out.update({f"cat_{k}": v for k, v in snap.categorical.items()})
    for table in ("requests", "blocks", "events"):
        out.update({f"{table}_{k}": v for k, v in getattr(snap, table).items()})
    out.update(zip(SHOWN_ARRAYS, snap.impressions_by_viewer(), strict=True))
    return out


def save_snapshot(snap: Snapshot, store: ArtifactStore, source: str) -> Path:
    """Write `snap` as a new version under `store` and make it current."""
    start = time.perf_counter()
    staging = store.staging_dir()
    arrays = _arrays(snap)
    for name, arr in arrays.items():
        np.save(staging / f"{name}.npy", arr, allow_pickle=False)
    (staging / "vocab.json").write_text(json.dumps(snap.vocab))
    manifest = {
        "kind": "snapshot", "format": FORMAT_VERSION, "source": source,
        "num_users": snap.num_users, "num_friendships": snap.num_edges,
        "num_requests": int(snap.requests["src"].shape[0]), "num_blocks": int(snap.blocks["src"].shape[0]),
        "num_events": int(snap.events["src"].shape[0]),
        "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()},
        **snap.meta,
    }
    path = store.publish(staging, manifest)
    log.info("snapshot %s written in %.2fs (%d users, %d friendships)", path.name,
             time.perf_counter() - start, snap.num_users, snap.num_edges)
    return path


def load_snapshot(path: Path, mmap: bool = False) -> Snapshot:
    """Load a snapshot directory; checks every array against the manifest."""
    start = time.perf_counter()
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} is not a snapshot (no manifest.json)") from None
    if manifest.get("kind") != "snapshot" or manifest.get("format") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: unsupported snapshot kind/format "
                            f"{manifest.get('kind')!r}/{manifest.get('format')!r}")
    arrays: dict[str, np.ndarray] = {}
    for name, spec in manifest["arrays"].items():
        arr = np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
        if list(arr.shape) != spec["shape"] or str(arr.dtype) != spec["dtype"]:
            raise ArtifactError(f"{path}/{name}.npy is {arr.dtype}{list(arr.shape)}, manifest says {spec}")
        # a mapped array as a plain ndarray view of the mapping: np.memmap's Python-level view hooks
        # cost ~2 us on every slice, and the hot paths slice these arrays dozens of times a request
        arrays[name] = np.asarray(arr)

    def group(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    snap = Snapshot(
        ids=arrays["ids"], indptr=arrays["indptr"], indices=arrays["indices"], since=arrays["since"],
        numeric=group("num_"), categorical=group("cat_"), vocab=json.loads((path / "vocab.json").read_text()),
        opted_out=arrays["opted_out"], requests=group("requests_"), blocks=group("blocks_"),
        events=group("events_"), meta={"version": manifest.get("version"), "source": manifest.get("source"),
                                        # snapshots not read from a store: when they were published
                                        "accounts_read_at": manifest.get("accounts_read_at",
                                                                         manifest.get("published_at"))},
    )
    if all(name in arrays for name in SHOWN_ARRAYS):   # snapshots before 2026-12-06 compute them on first use
        snap._shown = tuple(arrays[name] for name in SHOWN_ARRAYS)
    log.info("snapshot %s loaded in %.3fs", path.name, time.perf_counter() - start)
    return snap


def empty_columns(n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, list[str]]]:
    """Numeric (NaN), categorical (-1) columns and vocabularies for `n` users without profiles."""
    numeric = {k: np.full(n, np.nan) for k in NUMERIC_COLUMNS}
    categorical = {k: np.full(n, -1, dtype=np.int32) for k in CATEGORICAL_FIELDS}
    return numeric, categorical, {k: [] for k in CATEGORICAL_FIELDS}
