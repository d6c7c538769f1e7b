"""The order of equal friends-of-friends scores, from the two users' ids alone.

Friends of friends are ranked by mutual friends, then Adamic-Adar; many candidates tie on both (every friend
of a viewer's only friend does), often more than a list holds. Where ids follow sign-up order, breaking those
ties by id gave the oldest accounts the places. A pair's tie key is a hash of both ids, so the same on every
path that ranks friends of friends: the snapshot's source, the Spark precompute, and the graph store's
Cypher (the store sorts the rows Cypher returns at the cut, graph/neo4j_store.py), which all know the ids and
need nothing else. Different for each viewer, and saying nothing of when an account was made.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graph.snapshot.csr import scrambled

_SEED = np.uint64(0x6A09E667F3BCC908)


def id_hashes(ids: np.ndarray | Sequence[str]) -> np.ndarray:
    """A fixed pseudo-random uint64 per id (its text, one code point at a time through splitmix64): the same
    for an id however it is held (int64 or str arrays, a list of str)."""
    text = np.asarray(ids).astype(str).reshape(-1)
    if text.size == 0:
        return np.zeros(0, np.uint64)
    # longest first: at code point j only the ids longer than j are read (one long id widens the whole array)
    order = np.argsort(-np.char.str_len(text), kind="stable")
    points = text[order].view(np.uint32).reshape(text.size, -1)   # padded with NUL (no id holds one)
    longer = np.count_nonzero(points, axis=0)   # ids with a code point at j: a prefix of `order`
    h = np.full(text.size, _SEED, np.uint64)
    with np.errstate(over="ignore"):
        for j, n in enumerate(longer.tolist()):
            h[:n] = scrambled(h[:n] + points[:n, j].astype(np.uint64))
    out = np.empty_like(h)
    out[order] = h
    return out


def tie_keys(viewer_hash: np.ndarray | np.uint64, cand_hash: np.ndarray) -> np.ndarray:
    """Sort keys of equal scores among (viewer, candidate) pairs, from the two ids' hashes."""
    return scrambled(np.asarray(viewer_hash, np.uint64) ^ np.asarray(cand_hash, np.uint64))


def fof_order(viewer: str, rows: Sequence, limit: int) -> list:
    """Rows with `candidate`, `mutual_count` and `adamic_adar` (graph.store.FofRow) in the friends-of-friends
    order (mutual friends, Adamic-Adar to 9 decimals, then the pair's tie key), the first `limit`."""
    if not rows:
        return []
    keys = tie_keys(id_hashes([viewer])[0], id_hashes([r.candidate for r in rows]))
    order = np.lexsort((keys, -np.round([r.adamic_adar for r in rows], 9), -np.array([r.mutual_count for r in rows])))
    return [rows[i] for i in order[:limit].tolist()]
