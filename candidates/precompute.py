"""Ranked candidate lists computed ahead of time, served with fresh online filtering.

Like the offline PYMK pipelines of large networks, a job runs the first four stages (sources ->
merge -> cheap filters -> rank) for the users who are likely to ask (recently active ones, or
everyone), keeps the top `keep` of each, and publishes them as an artifact tied to the snapshot,
embeddings and ranker versions it was made with. Serving uses a user's list only while exactly
those versions are served; the online stages (hard rules on fresh graph state, re-rank, truncate)
always run per request, so a block or a new friendship still counts at once. Users without a list
are ranked on request. Lists are ranked as of the job's time, as the snapshot is a past state.

Two engines give the same lists (tested): `online` runs the pipeline's own `ranked` per user;
`block` (the default when the ranker can rank blocks) runs each stage over a block of users at once
(sparse two-hop products, block PageRank pushes, one feature matrix and one model call per block),
in worker processes when `workers` > 1; memory is bounded by the block size.

Layout: offsets.npy (int64, num_users + 1; no list = empty range), lists.bin (per user, UTF-8
JSON rows [index, sources, scores, proof without ranker features, feature row in the user's
block or -1, t]), feature_offsets.npy (int64, num_users + 1: where each user's rows start in
features.npy), features.npy (float32 ranker feature rows), manifest.json.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import orjson

from candidates.types import Candidate, Recommendation
from graph.snapshot import Snapshot
from graph.snapshot.format import EVENT_CODE
from pymk.artifacts import ArtifactStore
from pymk.errors import ArtifactError
from pymk.progress import progress_bar

log = logging.getLogger(__name__)
FORMAT_VERSION = 2
# ranks a block of users: per user (user, lists.bin blob, its ranker feature rows)
BlockRanker = Callable[[np.ndarray], list[tuple[int, bytes, np.ndarray]]]


def active_users(snap: Snapshot, days: float) -> np.ndarray:
    """Users who acted or were shown suggestions in the snapshot's last `days` of events."""
    ev = snap.events
    if ev["ts"].size == 0:
        return np.zeros(0, np.int64)
    recent = ev["ts"] >= ev["ts"].max() - days * 86_400.0
    acted = ev["src"][recent]
    shown = ev["dst"][recent & (ev["type"] != EVENT_CODE["impression"])]
    return np.unique(np.concatenate([acted, shown])).astype(np.int64)


def compact(x):
    """Floats to 7 significant digits (stored lists are ~2x smaller; ranker features stay exact)."""
    t = type(x)   # exact types first (the stored rows' dicts, lists, floats, ids); subclasses below
    if t is dict:
        return {k: float(f"{v:.7g}") if type(v) is float else v if type(v) is str or type(v) is int else compact(v)
                for k, v in x.items()}
    if t is float:
        return float(f"{x:.7g}")
    if t is list or t is tuple:
        return [v if type(v) is str or type(v) is int else compact(v) for v in x]  # (long lists are of ids)
    if isinstance(x, float):
        return float(f"{x:.7g}")
    if isinstance(x, dict):
        return {k: compact(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [compact(v) for v in x]
    return x


def compact_array(a: np.ndarray) -> np.ndarray:
    """`compact` of every float of `a` (float64), vectorized, bit for bit: the value rounded to 7
    significant digits as a decimal, read back as the nearest float. Where the scaled value lies too
    close to a rounding boundary for float arithmetic to decide (or is out of range), the float's
    own decimal digits decide, as in `compact`."""
    shape = np.shape(a)
    a = np.asarray(a, dtype=np.float64).ravel()
    out = a.copy()
    with np.errstate(all="ignore"):
        mag = np.abs(a)
        k = 6 - np.floor(np.log10(mag))
        ok = np.isfinite(k) & (np.abs(k) <= 22)
        k = np.where(ok, k, 0.0)
        scale = 10.0 ** np.abs(k)   # exact for |k| <= 22
        scaled = np.where(k >= 0, mag * scale, mag / scale)
        n = np.rint(scaled)
        # the digits are decided when the scaled value has 7 digits and is off a half by more than its error
        ok &= (scaled >= 1e6) & (n < 1e7) & (np.abs(scaled - np.floor(scaled) - 0.5) > 1e-7)
        rounded = np.copysign(np.where(k >= 0, n / scale, n * scale), a)
    out[ok] = rounded[ok]
    for i in np.flatnonzero(~ok & np.isfinite(a) & (a != 0)).tolist():
        out[i] = float(f"{a[i]:.7g}")
    return out.reshape(shape)


def compact_rows(rows: list) -> list:
    """`compact` of each of `rows`, column by column where they are dicts with the same keys (one
    source's proofs): a column of floats is rounded at once by `compact_array`, bit for bit."""
    if not rows or type(rows[0]) is not dict:
        return [compact(r) for r in rows]
    keys = tuple(rows[0])
    if any(type(r) is not dict or tuple(r) != keys for r in rows):   # same keys in the same order
        return [compact(r) for r in rows]
    columns = []
    for k in keys:
        col = [r[k] for r in rows]
        if all(type(v) is float for v in col):
            col = compact_array(np.array(col, dtype=np.float64)).tolist()
        elif not all(type(v) is str or type(v) is int for v in col):
            col = [v if type(v) is str or type(v) is int else compact(v) for v in col]
        columns.append(col)
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]


def _row(c: Candidate, features: list[np.ndarray]) -> list:
    proof = dict(c.proof)
    ranker = proof.pop("ranker", None)
    feature_row = -1
    if ranker is not None:
        feature_row = len(features)
        features.append(np.asarray(ranker["features"], np.float32))
    return [c.index, list(c.sources), compact(dict(c.scores)), compact(proof), feature_row,
            None if ranker is None else ranker["t"]]


def online_block(pipeline, keep: int) -> BlockRanker:
    """The reference engine: the pipeline's own per-user `ranked`, user by user."""
    snap = pipeline.snap

    def rank(users: np.ndarray) -> list[tuple[int, bytes, np.ndarray]]:
        out = []
        for user in users.tolist():
            features: list[np.ndarray] = []
            ranked = pipeline.ranked(user, Recommendation(snap.external_id(user), []))[:keep]
            rows = [_row(c, features) for c in ranked]
            out.append((user, orjson.dumps(rows), np.stack(features) if features else np.zeros((0, 0), np.float32)))
        return out

    return rank


_WORKER_RANK: BlockRanker | None = None   # set before forking the workers, inherited by them


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)   # one process per core; each must not spawn a thread per core too


def _worker(users: np.ndarray) -> list[tuple[int, bytes, np.ndarray]]:
    return _WORKER_RANK(users)


def _ranked_blocks(rank: BlockRanker, users: np.ndarray, block: int, workers: int
                   ) -> Iterator[list[tuple[int, bytes, np.ndarray]]]:
    blocks = [users[i:i + block] for i in range(0, users.size, block)]
    global _WORKER_RANK
    _WORKER_RANK = rank
    # The snapshot, the models and their indexes are long-lived objects that every full collection
    # would scan again, to free nothing: ~20% of a precompute's time (30k-user world, bench/RESULTS.md).
    # Frozen, the collector scans only what the blocks allocate; forked workers inherit the freeze.
    # gc has one frozen set: a freeze made before (a serving process's) is left as it was.
    thaw = gc.get_freeze_count() == 0
    gc.collect()
    gc.freeze()
    try:
        if workers <= 1:
            yield from map(rank, blocks)
            return
        with multiprocessing.get_context("fork").Pool(workers, initializer=_worker_init) as pool:
            yield from pool.imap(_worker, blocks)
    finally:
        _WORKER_RANK = None
        if thaw:
            gc.unfreeze()


def build_precomputed(pipeline, users: Sequence[int], versions: dict[str, str | None], out: ArtifactStore,
                      keep: int = 60, progress: bool = True, rank: BlockRanker | None = None,
                      block: int = 64, workers: int = 1) -> Path:
    """Rank `users` (internal indices) now and publish their top `keep` lists: with `rank` (a block
    engine) when given, else with `pipeline` user by user."""
    users = np.unique(np.asarray(users, np.int64))
    results = _ranked_blocks(rank or online_block(pipeline, keep), users, block, workers)
    return publish_lists(pipeline.snap.num_users, users, results, out,
                         {"keep": keep, "block": block, "workers": workers, "engine": "block" if rank else "online",
                          **versions}, progress)


def publish_lists(num_users: int, users: np.ndarray, results: Iterable[list[tuple[int, bytes, np.ndarray]]],
                  out: ArtifactStore, manifest: dict, progress: bool = True, started: float | None = None) -> Path:
    """Write ranked lists arriving in increasing user order (batches of (user, blob, feature rows))
    as one artifact and publish it; its time counts from `started` (perf_counter; default: now)."""
    start = time.perf_counter() if started is None else started
    offsets = np.zeros(num_users + 1, np.int64)
    feature_offsets = np.zeros(num_users + 1, np.int64)
    features: list[np.ndarray] = []
    staging = out.staging_dir()
    sizes = np.zeros(num_users, np.int64)
    rows = np.zeros(num_users, np.int64)
    last = -1
    with open(staging / "lists.bin", "wb") as fh, progress_bar(
            total=users.size, desc="precompute", unit=" user", enabled=progress, mininterval=1.0) as bar:
        for done in results:
            for user, blob, feats in done:
                if user <= last:
                    raise ValueError(f"precomputed lists must arrive in increasing user order ({user} after {last})")
                last = user
                fh.write(blob)
                sizes[user] = len(blob)
                if feats.size:
                    features.append(feats)
                    rows[user] = feats.shape[0]
            bar.update(len(done))
    np.cumsum(sizes, out=offsets[1:])
    np.cumsum(rows, out=feature_offsets[1:])
    np.save(staging / "offsets.npy", offsets)
    np.save(staging / "feature_offsets.npy", feature_offsets)
    width = features[0].shape[1] if features else 0
    np.save(staging / "features.npy", np.concatenate(features) if features else np.zeros((0, width), np.float32))
    seconds = time.perf_counter() - start
    path = out.publish(staging, {"kind": "precomputed_candidates", "format": FORMAT_VERSION, "users": int(users.size),
                                 "num_users": num_users, "seconds": round(seconds, 2),
                                 "ms_per_user": round(1000 * seconds / max(1, users.size), 3),
                                 "users_per_s": round(users.size / max(seconds, 1e-9), 1), **manifest})
    log.info("precomputed %d users' lists in %.1fs -> %s", users.size, seconds, path)
    return path


class PrecomputedCandidates:
    """Read side: a user's ranked list from a published artifact (memory-mapped; shared by workers)."""

    def __init__(self, path: Path, snap: Snapshot) -> None:
        try:
            self.manifest = json.loads((path / "manifest.json").read_text())
            if self.manifest.get("format") != FORMAT_VERSION:
                raise ValueError(f"format {self.manifest.get('format')}, this code reads {FORMAT_VERSION}")
            self.feature_offsets = np.load(path / "feature_offsets.npy", mmap_mode="r").view(np.ndarray)
            # plain ndarray views of the memory maps: np.memmap's per-slice bookkeeping costs more than the read
            self.offsets = np.load(path / "offsets.npy", mmap_mode="r").view(np.ndarray)
            self.features = np.load(path / "features.npy", mmap_mode="r").view(np.ndarray)
            size = (path / "lists.bin").stat().st_size
            self.lists = (np.memmap(path / "lists.bin", np.uint8, "r").view(np.ndarray) if size
                          else np.zeros(0, np.uint8))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"precomputed candidates at {path} are incomplete: {exc}") from exc
        if self.offsets.shape != (snap.num_users + 1,) or int(self.offsets[-1]) != size:
            raise ArtifactError(f"precomputed candidates at {path} do not match the snapshot "
                                f"({self.offsets.shape[0] - 1} users vs {snap.num_users}, {size} bytes)")
        self.snap = snap
        self.version = self.manifest.get("version")

    def get(self, user: int) -> list[Candidate] | None:
        """The user's ranked list (None when the job did not rank this user)."""
        lo, hi = int(self.offsets[user]), int(self.offsets[user + 1])
        if lo == hi:
            return None
        ids = self.snap.id_strings
        out = []
        first = int(self.feature_offsets[user])
        for index, sources, scores, proof, row, t in orjson.loads(self.lists[lo:hi].tobytes()):
            if row >= 0:
                proof["ranker"] = {"t": t, "features": self.features[first + row].tolist()}
            out.append(Candidate(ids[index], index, tuple(sources), MappingProxyType(scores),
                                 MappingProxyType(proof)))
        return out
