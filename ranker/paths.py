"""Pair features read from paths in the graph beyond the mutual friends themselves: links among the
mutual friends, and paths of length 3."""

from __future__ import annotations

import threading

import numpy as np

from graph.snapshot import Snapshot
from graph.snapshot.csr import lookup, pair_keys, row_positions

# A candidate's neighbours read for the paths of length 3 (evenly spaced over its neighbour list, the
# sum scaled up): a hub candidate costs no more than this many lookups.
PATHS3_SAMPLE = 128
_scratch = threading.local()


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


def _zeros(n: int) -> np.ndarray:
    """This thread's array of n zeros, reused across calls: whoever writes into it puts the zeros back."""
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.size != n:
        buf = _scratch.buf = np.zeros(n)
    return buf


def _runs(keys: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """An order grouping `keys` (0 <= key < count) and where each key's run starts and ends in it."""
    order = np.arange(keys.size) if np.all(keys[1:] >= keys[:-1]) else np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(count + 1))
    return order, bounds


def _neighbour_sample(g: Snapshot, d: np.ndarray, cands: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each candidate's neighbours, at most PATHS3_SAMPLE of them evenly spaced over its list; the row
    (candidate position) of each; per candidate, what a sum over its sample is scaled by."""
    take = np.minimum(d, PATHS3_SAMPLE)
    if (take == d).all():
        offsets, row = row_positions(g.indptr, cands)
    else:
        row = np.repeat(np.arange(cands.size), take)
        step = np.arange(row.size) - np.repeat(np.cumsum(take) - take, take)
        offsets = g.indptr[cands][row] + step * d[row] // take[row]
    return g.indices[offsets], row, d / np.maximum(take, 1)


def paths_of_length_3(g: Snapshot, deg: np.ndarray, owner: np.ndarray, cands: np.ndarray, path_owner: np.ndarray,
                      path_end: np.ndarray, path_via: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paths of length 3, viewer - a - b - candidate, per pair: their number and their sum of
    1 / (deg a * deg b) (the pair's entry of (D^-1/2 A D^-1/2)^3 times sqrt(deg viewer * deg
    candidate)). Friends of friends of friends close ties too (Kovacs et al. 2019, "L3"): it adds
    what the shared neighbourhood misses.

    Viewer by viewer, its two-hop walks (viewer `path_owner` - a `path_via` - b `path_end`) are
    summed per b into a dense per-thread array (n floats, reused; an index search of every probe over
    the whole block's walks cost ~3x more) and read at the candidate's neighbours b, at most
    PATHS3_SAMPLE of them, the sum scaled up. A viewer's result never depends on its block."""
    n, n_c = g.num_users, cands.size
    count, norm = np.zeros(n_c), np.zeros(n_c)
    if not path_end.size or not n_c:
        return count, norm
    viewers = int(max(owner.max(), path_owner.max())) + 1
    w_order, w_bounds = _runs(path_owner, viewers)
    c_order, c_bounds = _runs(owner, viewers)
    ends, inv_via = path_end[w_order], 1.0 / np.maximum(deg[path_via[w_order]], 1)
    d = deg[cands].astype(np.int64)
    buf = _zeros(n)
    for v in np.flatnonzero((np.diff(c_bounds) > 0) & (np.diff(w_bounds) > 0)).tolist():
        e, via = ends[w_bounds[v]:w_bounds[v + 1]], inv_via[w_bounds[v]:w_bounds[v + 1]]
        rows = c_order[c_bounds[v]:c_bounds[v + 1]]
        b, local, scale = _neighbour_sample(g, d[rows], cands[rows])
        try:
            np.add.at(buf, e, 1.0)
            count[rows] = np.bincount(local, weights=buf[b], minlength=rows.size) * scale
            buf[e] = 0.0
            np.add.at(buf, e, via)
            buf[e] /= np.maximum(deg[e], 1)   # per b once, not per probe of b (the same quotients)
            norm[rows] = np.bincount(local, weights=buf[b], minlength=rows.size) * scale
        finally:
            buf[e] = 0.0
    return count, norm
