"""Pair features read from paths in the graph beyond the mutual friends themselves: links among the
mutual friends, and paths of length 3."""

from __future__ import annotations

import numpy as np

from graph.snapshot import Snapshot
from graph.snapshot.csr import lookup, pair_keys, row_positions

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


def paths_of_length_3(g: Snapshot, deg: np.ndarray, owner: np.ndarray, cands: np.ndarray, path_keys: np.ndarray,
                      path_via: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paths of length 3, viewer - a - b - candidate, per pair: their number and their sum of
    1 / (deg a * deg b) (the pair's entry of (D^-1/2 A D^-1/2)^3 times sqrt(deg viewer * deg
    candidate)). Friends of friends of friends close ties too (Kovacs et al. 2019, "L3"): it adds
    what the shared neighbourhood misses. The viewer's two-hop walks (`path_keys`: viewer, b; via
    a = `path_via`) are read at the candidate's neighbours b, at most PATHS3_SAMPLE of them."""
    n, n_c = g.num_users, cands.size
    if not path_keys.size:
        return np.zeros(n_c), np.zeros(n_c)
    ends, walk = np.unique(path_keys, return_inverse=True)
    walks = np.bincount(walk, minlength=ends.size).astype(np.float64)
    walks_norm = np.bincount(walk, weights=1.0 / np.maximum(deg[path_via], 1), minlength=ends.size)
    d = deg[cands].astype(np.int64)
    take = np.minimum(d, PATHS3_SAMPLE)
    if (take == d).all():
        offsets, row = row_positions(g.indptr, cands)
    else:
        row = np.repeat(np.arange(n_c), take)
        step = np.arange(row.size) - np.repeat(np.cumsum(take) - take, take)
        offsets = g.indptr[cands][row] + step * d[row] // take[row]
    b = g.indices[offsets]
    hit, at = lookup(ends, pair_keys(owner[row], b, n))
    scale = d / np.maximum(take, 1)
    count = np.bincount(row, weights=np.where(hit, walks[at], 0.0), minlength=n_c) * scale
    norm = np.bincount(row, weights=np.where(hit, walks_norm[at] / np.maximum(deg[b], 1), 0.0),
                       minlength=n_c) * scale
    return count, norm
