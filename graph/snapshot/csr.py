"""CSR helpers shared by the candidate sources and the ranking features (numpy, and a few compiled
(numba) searches the compiled kernels call)."""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

_scratch = threading.local()


def thread_scratch(n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's zeroed dense scratch for a compiled kernel over n users: float64 (n, width) and
    uint8 marks (n), one pair per width, reused across calls: whoever writes into them puts the zeros
    back (candidates/push.py, candidates/fof.py, ranker/paths.py)."""
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None:
        bufs = _scratch.bufs = {}
    got = bufs.get(width)
    if got is None or got[1].size != n:
        got = bufs[width] = (np.zeros((n, width)), np.zeros(n, dtype=np.uint8))
    return got


def row_positions(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR positions of every entry of `rows`, and for each the index (into `rows`) it belongs to."""
    starts, lens = indptr[rows], indptr[rows + 1] - indptr[rows]
    total = int(lens.sum())
    offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
    return offsets, np.repeat(np.arange(rows.size), lens)


def gather_rows(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated neighbour lists of `rows`, and for each entry the row it came from."""
    offsets, owner = row_positions(indptr, rows)
    return indices[offsets], rows[owner]


def lookup(keys: np.ndarray, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each probe: whether it is in the sorted array `keys`, and its position there (clipped)."""
    if keys.size == 0:
        return np.zeros(probe.shape, dtype=bool), np.zeros(probe.shape, dtype=np.int64)
    pos = np.minimum(np.searchsorted(keys, probe), keys.size - 1)
    return keys[pos] == probe, pos


def run_bounds(sorted_values: np.ndarray, probe) -> tuple[np.ndarray, np.ndarray]:
    """Where each probe's run of equal values starts and ends in `sorted_values`.

    The probes are cast to the array's dtype first (they must fit it, as user indices do): searching
    an int32 array for int64 values makes numpy convert the whole array on every call (~80 us per
    call on 170k impressions instead of ~1 us)."""
    probe = np.asarray(probe).astype(sorted_values.dtype, copy=False)
    return np.searchsorted(sorted_values, probe, "left"), np.searchsorted(sorted_values, probe, "right")


def group_starts(group: np.ndarray) -> np.ndarray:
    """Where each run of equal values of `group` (sorted) starts."""
    if group.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))


def rank_in_group(group: np.ndarray) -> np.ndarray:
    """0-based position of each entry within its run of equal values (`group` sorted)."""
    starts = group_starts(group)
    return np.arange(group.size) - np.repeat(starts, np.diff(np.append(starts, group.size)))


def shared_ranks(owner: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Each row's 0-based rank within its owner's rows by score (highest first), equal scores sharing the
    best rank among them ("min" ranks); NaN score: NaN rank. A rank that tells apart only what the score
    does: breaking ties by row or index would rank users by their ids."""
    rows = np.flatnonzero(~np.isnan(score))
    rows = rows[np.lexsort((-score[rows], owner[rows]))]
    o, v = owner[rows], score[rows]
    tied = np.zeros(rows.size, dtype=bool)   # the same owner and score as the row before
    tied[1:] = (o[1:] == o[:-1]) & (v[1:] == v[:-1])
    first = np.maximum.accumulate(np.where(tied, -1, np.arange(rows.size)))   # where each row's run starts
    out = np.full(score.size, np.nan)
    out[rows] = rank_in_group(o)[first]
    return out


def pair_keys(owner: np.ndarray, node: np.ndarray, n: int) -> np.ndarray:
    """One int64 key per (owner, node) pair, ordered as the pairs are (owner first)."""
    return owner.astype(np.int64) * np.int64(n) + node


def scrambled(keys: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random uint64 for each integer key (splitmix64's finalizer): an order of users or pairs
    that says nothing about them, to break ties by where ids (often in sign-up order) must not decide."""
    with np.errstate(over="ignore"):
        z = np.asarray(keys).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def pair_ties(owner: np.ndarray | int, node: np.ndarray, n: int) -> np.ndarray:
    """The order of equal scores among (owner, node) pairs, as sort keys: `scrambled` pair keys, a fixed
    pseudo-random order that differs from viewer to viewer and says nothing of the ids. `owner`: one per
    node, or one for all."""
    return scrambled(pair_keys(np.asarray(owner), node, n))


def undirected_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """One int64 key per unordered pair: (a, b) and (b, a) share it."""
    return pair_keys(np.minimum(a, b), np.maximum(a, b), n)


def is_neighbour(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, owner: np.ndarray,
                 nodes: np.ndarray) -> np.ndarray:
    """Whether each nodes[i] is a neighbour of rows[owner[i]] (neighbour lists sorted, as in a snapshot)."""
    offsets, of = row_positions(indptr, rows)
    n = indptr.size - 1
    return lookup(pair_keys(of, indices[offsets], n), pair_keys(owner, nodes, n))[0]


@njit(cache=True, nogil=True)
def search_left(a: np.ndarray, x) -> int:   # pragma: no cover - compiled
    """np.searchsorted(a, x) for one value, in compiled code (numba's own is several times slower)."""
    lo, hi = 0, a.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def search_right(a: np.ndarray, x) -> int:   # pragma: no cover - compiled
    """np.searchsorted(a, x, side="right") for one value, in compiled code."""
    lo, hi = 0, a.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def adjacent(indptr: np.ndarray, indices: np.ndarray, a: int, b: int) -> bool:   # pragma: no cover - compiled
    """Whether b is in a's (sorted) neighbour list, in compiled code."""
    row = indices[indptr[a]:indptr[a + 1]]
    at = search_left(row, b)
    return at < row.size and row[at] == b
