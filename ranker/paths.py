"""Pair features read from paths in the graph beyond the mutual friends themselves: links among the
mutual friends, and paths of length 3."""

from __future__ import annotations

import numpy as np
from numba import njit

from graph.snapshot import Snapshot
from graph.snapshot.csr import lookup, pair_keys, row_positions, thread_scratch

# A candidate's neighbours read for the paths of length 3 (evenly spaced over its neighbour list, the
# sum scaled up): a hub candidate costs no more than this many lookups.
PATHS3_SAMPLE = 128


def links_among_mutuals(friend_rows: int, ego_from: np.ndarray, ego_to: np.ndarray, via_pos: np.ndarray,
                        via: np.ndarray, where: np.ndarray, n: int, n_p: int) -> np.ndarray:
    """Friendships among each pair's mutual friends (the local community of the pair, as in
    Cannistraci's CAR index). Both ends of such a link are friends of the viewer, so each mutual
    friend's links are looked up in the viewer's ego network (`ego_from` -> `ego_to`: friend entry
    -> a friend it is friends with), a far smaller list than all its friends."""
    ego_ptr = np.zeros(friend_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(ego_from, minlength=friend_rows), out=ego_ptr[1:])
    offsets, entry = row_positions(ego_ptr, where)
    hit, _ = lookup(np.sort(pair_keys(via_pos, via, n)), pair_keys(via_pos[entry], ego_to[offsets], n))
    return np.bincount(via_pos[entry][hit], minlength=n_p) / 2.0   # each link is seen from both ends


def _runs(keys: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """An order grouping `keys` (0 <= key < count) and where each key's run starts and ends in it."""
    order = np.arange(keys.size) if np.all(keys[1:] >= keys[:-1]) else np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(count + 1))
    return order, bounds


@njit(cache=True, nogil=True)
def _sampled_sums(indptr, indices, deg, cands, rows, sample, buf, out):   # pragma: no cover - compiled
    """out[row] = the sum of buf over the candidate's sampled neighbours, scaled up to all of them."""
    for row in rows:
        c = cands[row]
        d = np.int64(deg[c])
        take = min(d, sample)
        acc = 0.0
        for k in range(take):
            acc += buf[indices[indptr[c] + k * d // take]]
        out[row] = acc * (d / max(take, 1))


@njit(cache=True, nogil=True)
def _paths3(indptr, indices, deg, cands, c_order, c_bounds, ends, inv_via, w_bounds, sample, buf, mark,
            count, norm):   # pragma: no cover - compiled
    for v in range(c_bounds.size - 1):
        rows = c_order[c_bounds[v]:c_bounds[v + 1]]
        e = ends[w_bounds[v]:w_bounds[v + 1]]
        if rows.size == 0 or e.size == 0:
            continue
        for b in e:
            buf[b] += 1.0
        _sampled_sums(indptr, indices, deg, cands, rows, sample, buf, count)
        for b in e:
            buf[b] = 0.0
        for i, b in enumerate(e):
            buf[b] += inv_via[w_bounds[v] + i]
        for b in e:
            if mark[b] == 0:   # per b once, not per walk ending at b
                mark[b] = 1
                buf[b] /= max(deg[b], 1)
        _sampled_sums(indptr, indices, deg, cands, rows, sample, buf, norm)
        for b in e:
            buf[b] = 0.0
            mark[b] = 0


def paths_of_length_3(g: Snapshot, deg: np.ndarray, owner: np.ndarray, cands: np.ndarray, path_owner: np.ndarray,
                      path_end: np.ndarray, path_via: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paths of length 3, viewer - a - b - candidate, per pair: their number and their sum of
    1 / (deg a * deg b) (the pair's entry of (D^-1/2 A D^-1/2)^3 times sqrt(deg viewer * deg
    candidate)). Friends of friends of friends close ties too (Kovacs et al. 2019, "L3"): it adds
    what the shared neighbourhood misses.

    Viewer by viewer (compiled, numba), its two-hop walks (viewer `path_owner` - a `path_via` - b
    `path_end`) are summed per b into a dense per-thread array (n floats, reused) and read at the
    candidate's neighbours b, at most PATHS3_SAMPLE of them evenly spaced over its list, the sum
    scaled up. A viewer's result never depends on its block."""
    n, n_c = g.num_users, cands.size
    count, norm = np.zeros(n_c), np.zeros(n_c)
    if not path_end.size or not n_c:
        return count, norm
    viewers = int(max(owner.max(), path_owner.max())) + 1
    w_order, w_bounds = _runs(path_owner, viewers)
    c_order, c_bounds = _runs(owner, viewers)
    ends = np.ascontiguousarray(path_end[w_order], dtype=np.int64)
    inv_via = 1.0 / np.maximum(deg[path_via[w_order]], 1)
    buf, mark = thread_scratch(n, 1)
    buf = buf.reshape(n)   # a view: the kernel reads one float a user
    _paths3(g.indptr, g.indices, deg, np.asarray(cands, dtype=np.int64), c_order, c_bounds, ends, inv_via, w_bounds,
            PATHS3_SAMPLE, buf, mark, count, norm)
    return count, norm
