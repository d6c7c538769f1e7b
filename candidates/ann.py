"""Embedding ANN candidate source over FAISS: exact inner product when small, HNSW above a size.

Vectors are unit-normalized, so inner product is cosine similarity. The viewer and their friends
are excluded inside the search by a FAISS id selector (HNSW), or masked in a block's exact scores.

Exact search proposes for a block of viewers at once: one matrix product scores every user for the
whole block (a single query reads every vector once per viewer, a block once per block: 1.1 ms a
viewer at 100k users, most of a precompute's source time). Matrix kernels round differently with the
number of rows, so the product only shortlists: each viewer keeps the users within a bound of its
k-th best product, and those are scored again one pair at a time in a fixed order (`_pair_dots`), so
a viewer's list never depends on its block (the batch precompute gives the lists serving does).
"""

from __future__ import annotations

import logging
import time

import faiss
import numpy as np
import torch
from numba import njit

from candidates.base import Proposals, empty_proposals, to_candidates
from candidates.types import Candidate
from graph.snapshot import Snapshot
from graph.snapshot.csr import rank_in_group, row_positions
from pymk.artifacts import ArtifactStore

log = logging.getLogger(__name__)
EXACT_MAX = 200_000


def build_index(emb: np.ndarray, exact_max: int = EXACT_MAX, hnsw_m: int = 32, ef_search: int = 128) -> faiss.Index:
    """IndexFlatIP up to `exact_max` vectors, IndexHNSWFlat (inner product) beyond."""
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if emb.ndim != 2:
        raise ValueError(f"'emb' needs to be two-dimensional (got {emb.ndim} dimensions)")
    start = time.perf_counter()
    if emb.shape[0] <= exact_max:
        index = faiss.IndexFlatIP(emb.shape[1])
    else:
        index = faiss.IndexHNSWFlat(emb.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = ef_search
    index.add(emb)
    log.info("built %s over %d vectors in %.2fs", type(index).__name__, emb.shape[0], time.perf_counter() - start)
    return index


def search_excluding(index: faiss.Index, query: np.ndarray, k: int, exclude: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (ids, scores) for one query vector, never returning `exclude`.

    The exclusion is a FAISS id selector applied inside the search (an earlier version asked for
    k + len(exclude) and dropped them afterwards: 31.8 ms against 0.41 ms with 5,000 excluded ids).
    """
    banned = np.fromiter(exclude, dtype=np.int64, count=len(exclude))
    selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(banned.size, faiss.swig_ptr(banned)))
    if isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(index.hnsw.efSearch, k))
    else:
        params = faiss.SearchParameters(sel=selector)
    scores, ids = index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k, params=params)
    found = ids[0] >= 0
    return ids[0][found].astype(np.int64), scores[0][found].astype(np.float32)


def current_embeddings(store: ArtifactStore, snapshot_version: str
                       ) -> tuple[str | None, np.ndarray | None, faiss.Index | None]:
    """(current version, vectors, FAISS index) when the current embeddings were computed from this
    snapshot; (version or None, None, None) otherwise (vectors of another graph would be wrong)."""
    version = store.current_version()
    if version is None:
        return None, None, None
    path = store.current()
    made_from = store.manifest(path).get("snapshot_version")
    if made_from != snapshot_version:
        log.warning("embeddings %s were made from snapshot %s, not %s: not using them",
                    version, made_from, snapshot_version)
        return version, None, None
    return version, np.load(path / "embeddings.npy"), faiss.read_index(str(path / "index.faiss"))


@njit(cache=True, nogil=True)
def _pair_dots(emb, a, b):   # pragma: no cover
    """float32 inner products of the pairs (emb[a[i]], emb[b[i]]), each summed in float64 in index order
    (products of float32 are exact in float64): the same bits whatever else is computed beside it."""
    out = np.empty(a.size, dtype=np.float32)
    for i in range(a.size):
        s = 0.0
        for d in range(emb.shape[1]):
            s += np.float64(emb[a[i], d]) * np.float64(emb[b[i], d])
        out[i] = np.float32(s)
    return out


@njit(cache=True, nogil=True)
def _chunk_max(scores, chunk):   # pragma: no cover
    """Each row's maximum over consecutive runs of `chunk` columns, the last run possibly shorter (one
    pass; numpy's reduction over a short last axis is ~10x slower)."""
    rows, cols = scores.shape
    out = np.empty((rows, -(-cols // chunk)), dtype=scores.dtype)
    for i in range(rows):
        for c in range(out.shape[1]):
            m = scores[i, c * chunk]
            for j in range(c * chunk + 1, min((c + 1) * chunk, cols)):
                if scores[i, j] > m:
                    m = scores[i, j]
            out[i, c] = m
    return out


@njit(cache=True, nogil=True)
def _shortlist(scores, rows, cols, keep, chunk):   # pragma: no cover
    """(row, column) of every score at least its row's `keep` (and not -inf) in the given chunks."""
    owner = np.empty(rows.size * chunk, dtype=np.int64)
    cand = np.empty(rows.size * chunk, dtype=np.int64)
    m = 0
    for i in range(rows.size):
        r = rows[i]
        for j in range(cols[i] * chunk, min((cols[i] + 1) * chunk, scores.shape[1])):
            if scores[r, j] >= keep[r] and scores[r, j] > -np.inf:
                owner[m], cand[m] = r, j
                m += 1
    return owner[:m], cand[:m]


CHUNK = 16   # users per chunk when shortlisting (a chunk's best product bounds the k-th best from below)


def exact_block(emb: np.ndarray, norms: np.ndarray, users: np.ndarray, excluded: tuple[np.ndarray, np.ndarray],
                k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each viewer's top k users by inner product (ties: lower index first), never one of its
    `excluded` (owner, user) pairs: (owner, user, score) grouped by owner, best first. `emb`: float32,
    C-contiguous; `norms`: its rows' lengths."""
    # torch's matrix product keeps to torch's thread setting (one per precompute worker process); numpy's
    # BLAS would start its own threads per core in each worker and make them wait on each other
    scores = (torch.from_numpy(emb[users]) @ torch.from_numpy(emb).T).numpy()
    scores[excluded] = -np.inf
    best = _chunk_max(scores, CHUNK)
    # k chunks whose best is at least the k-th best chunk hold k products at least that: a lower bound on
    # each viewer's k-th best product, found among n / CHUNK values instead of n
    floor = (np.partition(best, best.shape[1] - k, axis=1)[:, best.shape[1] - k] if k <= best.shape[1]
             else np.full(users.size, -np.inf, np.float32))
    # a float32 product differs from the pair's exact sum by at most d * 2^-24 * |q| |e| (rounded products
    # and partial sums); twice that, and the exact scores' own rounding, keeps every true top-k user
    slack = 2.0 * (emb.shape[1] + 2) * 2.0 ** -24 * norms[users] * norms.max()
    keep = floor - slack
    rows, cols = (np.ascontiguousarray(a) for a in np.nonzero(best >= keep[:, None]))   # one compiled layout
    owner, cand = _shortlist(scores, rows, cols, keep, CHUNK)
    exact = _pair_dots(emb, users[owner], cand)
    order = np.lexsort((cand, -exact, owner))
    order = order[rank_in_group(owner[order]) < k]
    return owner[order], cand[order], exact[order]


class EmbeddingAnnSource:
    """Candidate source: users whose GraphSAGE vectors are closest to the viewer's."""

    name = "ann"
    description = "people similar to you and your friends (graph embeddings)"

    def __init__(self, snap: Snapshot, emb: np.ndarray, index: faiss.Index | None = None) -> None:
        if emb.shape[0] != snap.num_users:
            raise ValueError(f"embeddings cover {emb.shape[0]} users, the snapshot has {snap.num_users}")
        self.snap = snap
        self.emb = emb
        self.index = index if index is not None else build_index(emb)
        self._flat: np.ndarray | None = None   # exact search: the vectors as its kernels read them, their lengths
        self._norms: np.ndarray | None = None
        if isinstance(self.index, faiss.IndexFlat) and emb.shape[0]:
            self._flat = np.ascontiguousarray(emb, dtype=np.float32)
            self._norms = np.linalg.norm(self._flat.astype(np.float64), axis=1)
            # its compiled kernels loaded (or, without a kernel cache, compiled: seconds) now, not by a
            # request: this source runs under the request's time budget, which a compile would overrun
            exact_block(self._flat[:2], self._norms[:2], np.zeros(1, np.int64), (np.zeros(1, np.int64),) * 2, 1)

    def propose(self, users: np.ndarray, k: int) -> Proposals:
        users = np.asarray(users, dtype=np.int64)
        if self._flat is not None and users.size and k > 0:
            offsets, rows = row_positions(self.snap.indptr, users)
            excluded = (np.concatenate([np.arange(users.size), rows]),
                        np.concatenate([users, self.snap.indices[offsets]]))
            owner, cand, score = exact_block(self._flat, self._norms, users, excluded, k)
        else:
            found = [search_excluding(self.index, self.emb[u], k, {u, *self.snap.neighbors(u).tolist()})
                     for u in users.tolist()]
            if not found:
                return empty_proposals()
            owner = np.repeat(np.arange(len(found)), [ids.size for ids, _ in found])
            cand = np.concatenate([ids for ids, _ in found])
            score = np.concatenate([s for _, s in found])
        score = score.astype(np.float64)
        return Proposals(owner, cand, score, lambda r: [{"similarity": s} for s in score[r].tolist()])

    def generate(self, user: int, k: int) -> list[Candidate]:
        return to_candidates(self.name, self.snap, self.propose(np.array([user]), k))
