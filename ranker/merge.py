"""Merge and cheap filters of a block's proposals, compiled (numba): one row per (viewer, candidate)
with every source's score and row, the viewer, its friends and opted-out users left out, and each
source's rank of the row among the viewer's rows.

The same rows, values and ranks as the numpy code it replaced (a sort, a unique, fancy assignments,
a neighbour search, masks and a lexsort per source: ~40 calls of a few microseconds each for a
request's few hundred rows); tests/test_merge_block.py keeps that code as the oracle.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from numba import njit

from candidates.base import Proposals
from graph.snapshot import Snapshot
from graph.snapshot.csr import adjacent, pair_keys

REASONS = ("self", "already_friends", "opted_out")


@dataclass(frozen=True)
class Merged:
    """Rows grouped by owner, sorted by candidate within it. `score[:, j]`: source j's score (NaN: not
    proposed); `src_row[:, j]`: the row in its proposals (-1); `rank[:, j]`: its 0-based rank among the
    owner's rows by score, equal scores sharing the best (NaN: not proposed): a rank feature tells apart
    only what the source's score does, never candidate indices (ids often follow sign-up order)."""

    owner: np.ndarray
    cand: np.ndarray
    score: np.ndarray
    src_row: np.ndarray
    rank: np.ndarray
    removed: Counter


@njit(cache=True, nogil=True)
def _merge(keys, src, vals, rows, n_src, n, users, indptr, indices, opted_out):   # pragma: no cover - compiled
    order = np.argsort(keys)
    uniq = np.empty(keys.size, dtype=np.int64)
    inv = np.empty(keys.size, dtype=np.int64)
    u = 0
    for i in order:
        if u == 0 or uniq[u - 1] != keys[i]:
            uniq[u] = keys[i]
            u += 1
        inv[i] = u - 1
    score = np.full((u, n_src), np.nan)
    src_row = np.full((u, n_src), -1, dtype=np.int64)
    for i in range(keys.size):   # in proposal order: a pair a source lists twice keeps its last row
        score[inv[i], src[i]] = vals[i]
        src_row[inv[i], src[i]] = rows[i]
    removed = np.zeros(3, dtype=np.int64)
    kept = np.zeros(u, dtype=np.bool_)
    for i in range(u):
        o, c = uniq[i] // n, uniq[i] % n
        v = users[o]
        if c == v:
            removed[0] += 1
        elif adjacent(indptr, indices, v, c):
            removed[1] += 1
        elif opted_out[c]:
            removed[2] += 1
        else:
            kept[i] = True
    idx = np.flatnonzero(kept)
    owner, cand = uniq[idx] // n, uniq[idx] % n
    score, src_row = score[idx], src_row[idx]
    rank = np.full((idx.size, n_src), np.nan)
    start = 0
    while start < idx.size:   # per owner (rows by candidate already): a stable sort by -score
        end = start
        while end < idx.size and owner[end] == owner[start]:
            end += 1
        for j in range(n_src):
            s = score[start:end, j]
            proposed = np.flatnonzero(~np.isnan(s))
            by_score = proposed[np.argsort(-s[proposed], kind="mergesort")]
            r = 0
            for k in range(by_score.size):   # equal scores share the best rank among them
                if k > 0 and s[by_score[k]] != s[by_score[k - 1]]:
                    r = k
                rank[start + by_score[k], j] = r
        start = end
    return owner, cand, score, src_row, rank, removed


def merge_block(props: list[Proposals], users: np.ndarray, snap: Snapshot) -> Merged:
    """Merge the sources' proposals (in the pipeline's source order) for the viewers `users` and apply
    the cheap filters (the viewer, friends as of the snapshot, opted-out users)."""
    n = snap.num_users
    sizes = [p.cand.size for p in props]
    keys = np.concatenate([pair_keys(p.owner, p.cand, n) for p in props] or [np.zeros(0, np.int64)])
    src = np.repeat(np.arange(len(props)), sizes)
    rows = np.concatenate([np.arange(s) for s in sizes] or [np.zeros(0, np.int64)])
    vals = np.concatenate([p.score for p in props] or [np.zeros(0)]).astype(np.float64)
    owner, cand, score, src_row, rank, removed = _merge(
        keys.astype(np.int64), src, vals, rows, len(props), n, np.asarray(users, dtype=np.int64), snap.indptr,
        snap.indices, snap.opted_out)
    return Merged(owner, cand, score, src_row, rank,
                  Counter({r: int(k) for r, k in zip(REASONS, removed.tolist(), strict=True) if k}))
