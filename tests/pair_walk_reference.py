"""The numpy code ranker/paths.pair_walk replaced (one block of viewers at once, ~30 array calls), kept
as the oracle the compiled walk must match bit for bit."""

from __future__ import annotations

import numpy as np
from numba import njit

from graph.snapshot import Snapshot
from graph.snapshot.csr import is_neighbour, lookup, pair_keys, row_positions, thread_scratch
from ranker.paths import PATHS3_SAMPLE


def links_among_mutuals(friend_rows, ego_from, ego_to, via_pos, via, where, n, n_p):
    ego_ptr = np.zeros(friend_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(ego_from, minlength=friend_rows), out=ego_ptr[1:])
    offsets, entry = row_positions(ego_ptr, where)
    hit, _ = lookup(np.sort(pair_keys(via_pos, via, n)), pair_keys(via_pos[entry], ego_to[offsets], n))
    return np.bincount(via_pos[entry][hit], minlength=n_p) / 2.0


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


def reference_walk(g, deg, strength, viewers, owner, cands, t, tempo):
    """(mutual, aa, ra, recent, viewer_side, cand_side, links, paths3, paths3_weighted) per row, as
    FeatureContext.block_features computed them before the walk was compiled."""
    n = g.num_users
    f_off, f_owner = row_positions(g.indptr, viewers)
    f_since = g.since[f_off]
    pairs, pair_of_row = np.unique(pair_keys(owner, cands, n), return_inverse=True)
    friends = g.indices[f_off]
    p_off, p_friend = row_positions(g.indptr, friends)
    path_keys = pair_keys(f_owner[p_friend], g.indices[p_off], n)
    is_mutual, pos = lookup(pairs, path_keys)
    is_ego = is_neighbour(g.indptr, g.indices, viewers, f_owner[p_friend], g.indices[p_off])
    via_pos, via, where = pos[is_mutual], friends[p_friend[is_mutual]], p_friend[is_mutual]
    n_p = pairs.size
    via_deg = np.maximum(deg[via], 2).astype(np.float64)
    mutual = np.bincount(via_pos, minlength=n_p).astype(np.float64)[pair_of_row]
    aa = np.bincount(via_pos, weights=1.0 / np.log(via_deg), minlength=n_p)[pair_of_row]
    ra = np.bincount(via_pos, weights=1.0 / via_deg, minlength=n_p)[pair_of_row]
    newer = np.fmax(f_since[where], g.since[p_off[is_mutual]])
    recent = np.bincount(via_pos, weights=np.where(np.isnan(newer), 1.0, np.exp(-(t - newer) / tempo)),
                         minlength=n_p)[pair_of_row]
    viewer_side = np.bincount(via_pos, weights=strength[f_off[where]], minlength=n_p)[pair_of_row]
    cand_side = np.bincount(via_pos, weights=strength[p_off[is_mutual]], minlength=n_p)[pair_of_row]
    links = links_among_mutuals(friends.size, p_friend[is_ego], g.indices[p_off[is_ego]], via_pos, via,
                                where, n, n_p)[pair_of_row]
    paths3, weighted = paths_of_length_3(g, deg, owner, cands, f_owner[p_friend], g.indices[p_off],
                                         friends[p_friend])
    return mutual, aa, ra, recent, viewer_side, cand_side, links, paths3, weighted
