"""Pair features read from walks out of the viewer, compiled (numba): mutual friends and their
weights, links among the mutual friends, and paths of length 3.

One pass per viewer over its two-hop walks viewer - m - x (m a friend, x a friend of m), in CSR
order, replaces what had been ~30 small numpy calls per block (row expansions, pair keys, sorts,
searches, bincounts); every sum is taken in the same order as those calls took it, so the features
are the same bit for bit (tests/test_pair_walk.py keeps the numpy code as the oracle). Per-thread
dense scratch (csr.thread_scratch), left zeroed after every viewer; the compiled code runs without
the GIL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from graph.snapshot import Snapshot
from graph.snapshot.csr import adjacent, search_left, thread_scratch

# A candidate's neighbours read for the paths of length 3 (evenly spaced over its neighbour list, the
# sum scaled up): a hub candidate costs no more than this many lookups.
PATHS3_SAMPLE = 128
EGO, DIVIDED = 1, 2   # scratch mark bits: a friend of the viewer; its paths-of-3 weight already divided
# Links among mutual friends go through bit sets of the viewer's friends up to this many friends (their
# ego bit sets then take at most 2 MiB); a viewer with more searches adjacency per link instead.
BITSET_FRIENDS = 4096


@dataclass(frozen=True)
class PairWalk:
    """`block` rows, per (viewer, candidate) row: mutual friends; their sums of 1 / log(max(deg, 2))
    (Adamic-Adar) and 1 / max(deg, 2) (resource allocation); the interaction strength of the viewer's
    and of the candidate's ties to them; links among them; paths of length 3 and their degree-weighted
    sum. Per row the first row of its pair (a candidate listed twice for a viewer). Per mutual path
    (viewer - m - candidate): its row (the first row of its pair) and the time of its newer tie (NaN:
    neither time known), for time-weighted counts."""

    block: np.ndarray
    first_row: np.ndarray
    path_row: np.ndarray
    path_newer: np.ndarray

    mutual = property(lambda self: self.block[0])
    aa = property(lambda self: self.block[1])
    ra = property(lambda self: self.block[2])
    viewer_side = property(lambda self: self.block[3])
    cand_side = property(lambda self: self.block[4])
    links = property(lambda self: self.block[5])
    paths3 = property(lambda self: self.block[6])
    paths3_weighted = property(lambda self: self.block[7])


@njit(cache=True, nogil=True)
def _sampled_sums(indptr, indices, deg, cands, rows, sample, buf, out):   # pragma: no cover - compiled
    """out[j, row] = the sum of buf[:, j] over the candidate's sampled neighbours, scaled up to all of them."""
    width = buf.shape[1]
    acc = np.zeros(width)
    for row in rows:
        c = cands[row]
        d = np.int64(deg[c])
        take = min(d, sample)
        acc[:] = 0.0
        for k in range(take):
            x = indices[indptr[c] + k * d // take]
            for j in range(width):
                acc[j] += buf[x, j]
        for j in range(width):
            out[j, row] = acc[j] * (d / max(take, 1))


@njit(cache=True, nogil=True)
def _popcount(x):   # pragma: no cover - compiled
    """Set bits of a uint64 (SWAR)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, nogil=True)
def _links(ego_bits, mutual_bits):   # pragma: no cover - compiled
    """Links among a pair's mutual friends: over each mutual friend i (a bit of `mutual_bits`), its
    neighbours among them (ego_bits[i] & mutual_bits), each link seen from both ends."""
    total = 0
    for w in range(mutual_bits.size):
        word = mutual_bits[w]
        while word != 0:
            low = word & (~word + np.uint64(1))
            i = w * 64 + _popcount(low - np.uint64(1))
            for u in range(mutual_bits.size):
                total += _popcount(ego_bits[i, u] & mutual_bits[u])
            word ^= low
    return 0.5 * total


@njit(cache=True, nogil=True)
def _walk(indptr, indices, since, strength, deg, inv_log_deg, viewers, cands, c_order, c_bounds, sample,
          bitset_friends, wide, mark, out, first):   # pragma: no cover - compiled
    """out: (8, rows) zeros, filled per row (PairWalk's first eight fields); first: each row's pair's first row.
    wide (columns: walks ending at a user, their 1 / deg weights, row + 1 of the user's first row as a
    candidate) and mark: dense per-user scratch (zeros), left zeroed. Returns each mutual
    path's row and newer tie time."""
    room = 0
    for v_i in range(viewers.size):
        if c_bounds[v_i + 1] > c_bounds[v_i]:
            for j in range(indptr[viewers[v_i]], indptr[viewers[v_i] + 1]):
                room += deg[indices[j]]
    path_row = np.empty(room, dtype=np.int64)
    path_newer = np.empty(room)
    n_paths = 0
    slot = np.empty(cands.size, dtype=np.int64)   # a first row's position among its viewer's first rows
    ego = np.empty(64, dtype=np.int64)   # (above bitset_friends) a friend's neighbours among the friends
    for v_i in range(viewers.size):
        rows = c_order[c_bounds[v_i]:c_bounds[v_i + 1]]
        if rows.size == 0:
            continue
        v = viewers[v_i]
        n_first = 0
        for r in rows:   # a candidate listed twice is computed once, on its first row
            if wide[cands[r], 2] == 0:
                wide[cands[r], 2] = r + 1.0
                slot[r] = n_first
                n_first += 1
        friends = indices[indptr[v]:indptr[v + 1]]
        bits = friends.size <= bitset_friends
        words = (friends.size + 63) // 64 if bits else 0
        # friend i's neighbours among the friends, and each first row's mutual friends, as bit sets over the
        # friends' positions: links among mutual friends are then word-wise ANDs, not adjacency searches
        ego_bits = np.zeros((friends.size if bits else 0, words), dtype=np.uint64)
        mutual_bits = np.zeros((n_first if bits else 0, words), dtype=np.uint64)
        for j in range(indptr[v], indptr[v + 1]):
            mark[indices[j]] |= EGO
        for j in range(indptr[v], indptr[v + 1]):
            m = indices[j]
            i = j - indptr[v]
            bit = np.uint64(1) << np.uint64(i & 63)
            dm = max(deg[m], 2)
            inv_m = 1.0 / max(deg[m], 1)
            n_ego = 0
            for q in range(indptr[m], indptr[m + 1]):
                if mark[indices[q]] & EGO:
                    if bits:
                        e = search_left(friends, indices[q])
                        ego_bits[i, e >> 6] |= np.uint64(1) << np.uint64(e & 63)
                        continue
                    if n_ego == ego.size:
                        ego = np.concatenate((ego, np.empty(ego.size, dtype=np.int64)))
                    ego[n_ego] = indices[q]
                    n_ego += 1
            for q in range(indptr[m], indptr[m + 1]):
                x = indices[q]
                wide[x, 0] += 1.0
                wide[x, 1] += inv_m
                if wide[x, 2] == 0:
                    continue
                p = np.int64(wide[x, 2]) - 1
                out[0, p] += 1.0
                out[1, p] += inv_log_deg[m]
                out[2, p] += 1.0 / dm
                out[3, p] += strength[j]
                out[4, p] += strength[q]
                if bits:
                    mutual_bits[slot[p], i >> 6] |= bit
                for e in range(n_ego):   # links from m to other mutual friends (each link seen from both ends)
                    if adjacent(indptr, indices, x, ego[e]):
                        out[5, p] += 0.5
                a, b = since[j], since[q]
                path_row[n_paths] = p
                path_newer[n_paths] = b if np.isnan(a) else a if np.isnan(b) else max(a, b)
                n_paths += 1
        # paths of length 3 end at a neighbour of the candidate: read the walk sums there
        for j in range(indptr[v], indptr[v + 1]):
            for q in range(indptr[indices[j]], indptr[indices[j] + 1]):
                x = indices[q]
                if mark[x] & DIVIDED == 0:   # per walk end once, not per walk ending there
                    mark[x] |= DIVIDED
                    wide[x, 1] /= max(deg[x], 1)
        _sampled_sums(indptr, indices, deg, cands, rows, sample, wide[:, :2], out[6:])
        for j in range(indptr[v], indptr[v + 1]):
            for q in range(indptr[indices[j]], indptr[indices[j] + 1]):
                x = indices[q]
                wide[x, 0] = 0.0
                wide[x, 1] = 0.0
                mark[x] = 0
            mark[indices[j]] = 0
        for r in rows:   # a pair's first row comes before its repeats in `rows`
            p = np.int64(wide[cands[r], 2]) - 1
            first[r] = p
            if p == r:
                if bits:
                    out[5, r] = _links(ego_bits, mutual_bits[slot[r]])
            else:
                for f in range(6):
                    out[f, r] = out[f, p]
        for r in rows:
            wide[cands[r], 2] = 0.0
    return path_row[:n_paths], path_newer[:n_paths]


def runs(keys: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """An order grouping `keys` (0 <= key < count) and where each key's run starts and ends in it."""
    order = np.arange(keys.size) if np.all(keys[1:] >= keys[:-1]) else np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(count + 1))
    return order, bounds


def pair_walk(g: Snapshot, deg: np.ndarray, inv_log_deg: np.ndarray, strength: np.ndarray, viewers: np.ndarray,
              cands: np.ndarray, order: np.ndarray, bounds: np.ndarray, bitset_friends: int = BITSET_FRIENDS
              ) -> PairWalk:
    """The walk features of the pairs (viewers[owner[i]], cands[i]) on graph g (neighbour lists sorted),
    rows grouped by owner as `runs(owner, len(viewers))` groups them.

    Paths of length 3, viewer - a - b - candidate: their number and their sum of 1 / (deg a * deg b)
    (the pair's entry of (D^-1/2 A D^-1/2)^3 times sqrt(deg viewer * deg candidate)). Friends of
    friends of friends close ties too (Kovacs et al. 2019, "L3"): it adds what the shared neighbourhood
    misses. The two-hop walks are summed per end b and read at the candidate's neighbours b, at most
    PATHS3_SAMPLE of them evenly spaced over its list, the sum scaled up. Links among mutual friends:
    the local community of the pair, as in Cannistraci's CAR index. A viewer's rows never depend on
    the rest of its block."""
    viewers = np.asarray(viewers, dtype=np.int64)
    cands = np.asarray(cands, dtype=np.int64)
    n = g.num_users
    out = np.zeros((8, cands.size))
    first = np.arange(cands.size)
    wide, mark = thread_scratch(n, 3)
    path_row, path_newer = _walk(g.indptr, g.indices, g.since, strength, deg, inv_log_deg, viewers, cands, order,
                                 bounds, PATHS3_SAMPLE, bitset_friends, wide, mark, out, first)
    return PairWalk(out, first, path_row, path_newer)
