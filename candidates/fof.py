"""Friends-of-friends on the snapshot CSR: mutual counts, Adamic-Adar, resource allocation.

The two-hop paths are listed by a compiled pass (numba) and scored with numpy. Two guards keep big
neighbourhoods cheap:
friends with more than `max_friend_degree` friends are not used as intermediaries (one celebrity
friend cannot flood the list; the Cypher query in the graph store applies the same rule), and at
most `max_two_hop` two-hop paths are scored, taking the viewer's lowest-degree friends first
(their friends are the most specific evidence).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numba import njit

from candidates.base import Proposals, to_candidates
from candidates.types import Candidate
from graph.snapshot import Snapshot
from graph.snapshot.csr import pair_keys, rank_in_group, thread_scratch
from graph.tiebreak import tie_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FofScores:
    """Two-hop candidates of a block of viewers: rows grouped by owner (the viewer's position in the
    block), each group ranked (mutual count, then Adamic-Adar, then the pair's tie key: graph/tiebreak.py)."""

    owner: np.ndarray
    candidates: np.ndarray    # internal indices
    mutual: np.ndarray
    adamic_adar: np.ndarray
    resource_allocation: np.ndarray
    paths_owner: np.ndarray   # every scored path viewer -> via -> cand, for proof
    paths_cand: np.ndarray
    paths_via: np.ndarray
    num_users: int

    def mutual_ids_of(self, owner: np.ndarray, candidates: np.ndarray, limit: int) -> list[list[int]]:
        """The first `limit` mutual friends (sorted) of each (owner, candidate)."""
        owner, candidates = np.asarray(owner, np.int64), np.asarray(candidates, np.int64)
        keys, inv = np.unique(pair_keys(owner, candidates, self.num_users), return_inverse=True)
        if keys.size and np.all(self.paths_owner[1:] >= self.paths_owner[:-1]):
            # where each asked owner's paths begin (and the next one's: where they end)
            starts = np.searchsorted(self.paths_owner, np.arange(int(keys[-1] // self.num_users) + 2))
            slot = thread_scratch(self.num_users, 1)[0][:, 0]
            vias, ends = _mutual_vias(self.paths_cand, self.paths_via, starts, keys // self.num_users,
                                      keys % self.num_users, limit, slot)
        else:   # paths in no owner order: every path sorted by its pair, then mutual friend
            path_keys = pair_keys(self.paths_owner, self.paths_cand, self.num_users)
            order = np.lexsort((self.paths_via, path_keys))
            path_keys, vias = path_keys[order], self.paths_via[order]
            lo = np.searchsorted(path_keys, keys, "left")
            ends = np.stack([lo, np.minimum(np.searchsorted(path_keys, keys, "right"), lo + limit)], axis=1)
        lists = [vias[a:b].tolist() for a, b in ends.tolist()]
        return [lists[i] for i in inv.tolist()]


@njit(cache=True, nogil=True)
def _mutual_vias(p_cand, p_via, starts, q_owner, q_cand, limit, slot):   # pragma: no cover
    """For distinct (owner, candidate) queries sorted by owner: each one's mutual friends (the vias of
    its paths, sorted, the first `limit`), as a flat array and each query's [start, end) in it. Paths
    are grouped by owner (`starts[o]`: where owner o's begin). slot: zeroed float scratch, left zeroed."""
    room = 0
    for q in range(q_owner.size):   # every path of every asked owner, at most
        if q == 0 or q_owner[q] != q_owner[q - 1]:
            room += starts[q_owner[q] + 1] - starts[q_owner[q]]
    q_of = np.empty(room, dtype=np.int64)   # the matched paths: the query each answers, its via
    v_of = np.empty(room, dtype=np.int64)
    m = 0
    lo = 0
    while lo < q_owner.size:
        hi = lo
        while hi < q_owner.size and q_owner[hi] == q_owner[lo]:
            slot[q_cand[hi]] = hi + 1
            hi += 1
        for p in range(starts[q_owner[lo]], starts[q_owner[lo] + 1]):
            s = np.int64(slot[p_cand[p]])
            if s > 0:
                q_of[m], v_of[m] = s - 1, p_via[p]
                m += 1
        for q in range(lo, hi):
            slot[q_cand[q]] = 0.0
        lo = hi
    begin = np.zeros(q_owner.size + 1, dtype=np.int64)   # grouped by query (a counting sort)
    for i in range(m):
        begin[q_of[i] + 1] += 1
    begin = np.cumsum(begin)
    vias = np.empty(m, dtype=np.int64)
    fill = begin[:-1].copy()
    for i in range(m):
        vias[fill[q_of[i]]] = v_of[i]
        fill[q_of[i]] += 1
    ends = np.empty((q_owner.size, 2), dtype=np.int64)
    for q in range(q_owner.size):
        a, b = begin[q], begin[q + 1]
        vias[a:b] = np.sort(vias[a:b])
        ends[q, 0], ends[q, 1] = a, min(b, a + limit)
    return vias, ends


@njit(cache=True, nogil=True)
def _paths(indptr, indices, degree, users, max_friend_degree, max_two_hop, mark):   # pragma: no cover
    """Every scored path viewer -> via -> candidate (owner = the viewer's position), in the order the
    numpy expansion listed them: per viewer, its friends used as intermediaries in increasing index
    order, each one's friends in CSR order. mark: per-user scratch (marks the viewer's friends), left
    zeroed."""
    n = mark.size
    room = 0
    for v in users:
        for j in range(indptr[v], indptr[v + 1]):
            d = degree[indices[j]]
            if 2 <= d <= max_friend_degree:
                room += d
    p_owner = np.empty(room, dtype=np.int64)
    p_cand = np.empty(room, dtype=np.int64)
    p_via = np.empty(room, dtype=np.int64)
    n_p = 0
    for o in range(users.size):
        v = users[o]
        lo, hi = indptr[v], indptr[v + 1]
        keys = np.empty(hi - lo, dtype=np.int64)   # (degree, index) of the usable friends
        n_k = 0
        for j in range(lo, hi):
            m = indices[j]
            mark[m] = 1
            if 2 <= degree[m] <= max_friend_degree:
                keys[n_k] = np.int64(degree[m]) * n + m
                n_k += 1
        keys = np.sort(keys[:n_k])
        total, take = 0, 0
        for k in range(n_k):   # the lowest-degree friends first, up to max_two_hop paths (always one)
            total += keys[k] // n
            if total > max_two_hop and k > 0:
                break
            take += 1
        for m in np.sort(keys[:take] % n):
            for q in range(indptr[m], indptr[m + 1]):
                c = indices[q]
                if c != v and mark[c] == 0:
                    p_owner[n_p], p_cand[n_p], p_via[n_p] = o, c, m
                    n_p += 1
        for j in range(lo, hi):
            mark[indices[j]] = 0
    return p_owner[:n_p], p_cand[:n_p], p_via[:n_p]


@njit(cache=True, nogil=True)
def _sum_paths(owner, cand, w_aa, w_ra, acc):   # pragma: no cover
    """Per (owner, candidate) pair of paths grouped by owner: path count and the sums of w_aa and w_ra,
    added in path order from 0.0 (as np.bincount adds them, so the same bits), pairs in first-seen
    order. acc: zeroed (n, 3) scratch, left zeroed."""
    u_owner = np.empty(owner.size, dtype=np.int64)
    u_cand = np.empty(owner.size, dtype=np.int64)
    mutual = np.empty(owner.size, dtype=np.int64)
    aa = np.empty(owner.size, dtype=np.float64)
    ra = np.empty(owner.size, dtype=np.float64)
    n_u = 0
    i = 0
    while i < owner.size:
        o, first = owner[i], n_u
        while i < owner.size and owner[i] == o:
            c = cand[i]
            if acc[c, 0] == 0.0:
                u_cand[n_u] = c
                n_u += 1
            acc[c, 0] += 1.0
            acc[c, 1] += w_aa[i]
            acc[c, 2] += w_ra[i]
            i += 1
        for k in range(first, n_u):   # read back and zeroed before the next owner's paths use acc
            c = u_cand[k]
            u_owner[k] = o
            mutual[k] = np.int64(acc[c, 0])
            aa[k] = acc[c, 1]
            ra[k] = acc[c, 2]
            acc[c, 0] = 0.0
            acc[c, 1] = 0.0
            acc[c, 2] = 0.0
    return u_owner[:n_u], u_cand[:n_u], mutual[:n_u], aa[:n_u], ra[:n_u]


@njit(cache=True, nogil=True)
def _top_mutual(owner, mutual, k):   # pragma: no cover
    """Rows (grouped by owner) that can be among their owner's first k by mutual count: those with at
    least the owner's k-th largest count (every row below it has k rows ranked before it)."""
    keep = np.ones(owner.size, dtype=np.bool_)
    lo = 0
    while lo < owner.size:
        hi = lo
        while hi < owner.size and owner[hi] == owner[lo]:
            hi += 1
        if hi - lo > k:
            floor = np.partition(mutual[lo:hi].copy(), hi - lo - k)[hi - lo - k]
            keep[lo:hi] = mutual[lo:hi] >= floor
        lo = hi
    return keep


def fof_block(snap: Snapshot, users: np.ndarray, degree: np.ndarray, max_friend_degree: int = 5000,
              max_two_hop: int = 200_000, k: int | None = None) -> FofScores:
    """Score every two-hop candidate of each of `users` (internal indices), all at once: friends with
    more than `max_friend_degree` friends (or fewer than 2) are not intermediaries; per viewer at most
    `max_two_hop` paths, through its lowest-degree friends first (then by index). With `k`, only
    rows that can be among a viewer's first k are ranked (its first k are the same)."""
    users = np.asarray(users, dtype=np.int64)
    mark = thread_scratch(snap.num_users, 1)[1]
    p_owner, cand, via = _paths(snap.indptr, snap.indices, degree, users, max_friend_degree, max_two_hop, mark)
    return score_paths(p_owner, cand, via, degree[via], snap.id_hash, snap.id_hash[users], snap.num_users, k)


def score_paths(owner: np.ndarray, cand: np.ndarray, via: np.ndarray, via_degree: np.ndarray, id_hash: np.ndarray,
                owner_hash: np.ndarray, n: int, k: int | None = None) -> FofScores:
    """Score two-hop paths viewer (owner) -> via -> cand: per pair, mutual count, Adamic-Adar and
    resource allocation, summed in the order the paths come in (so callers that pass them in the
    same order get the same bits); ranked per owner by mutual count, Adamic-Adar, then the pair's tie
    key (graph/tiebreak.py: `id_hash` per user, Snapshot.id_hash; `owner_hash` per owner). With `k`, rows
    that cannot be among their owner's first k are left out before ranking (the sort is most of the cost;
    the first k are unchanged)."""
    vdeg = via_degree.astype(np.float64)
    w_aa, w_ra = 1.0 / np.log(vdeg), 1.0 / vdeg
    if owner.size and np.all(owner[1:] >= owner[:-1]):   # grouped by owner, as every caller lists them
        acc = thread_scratch(n, 3)[0]
        u_owner, u_cand, mutual, aa, ra = _sum_paths(owner, cand, w_aa, w_ra, acc)
    else:
        uniq, inv = np.unique(pair_keys(owner, cand, n), return_inverse=True)
        u_owner, u_cand = uniq // n, uniq % n
        mutual = np.bincount(inv, minlength=uniq.size)
        aa = np.bincount(inv, weights=w_aa, minlength=uniq.size)
        ra = np.bincount(inv, weights=w_ra, minlength=uniq.size)
    if k is not None:   # u_owner is grouped by owner either way
        kept = _top_mutual(u_owner, mutual, k) if k > 0 else np.zeros(u_owner.size, dtype=bool)
        u_owner, u_cand, mutual, aa, ra = u_owner[kept], u_cand[kept], mutual[kept], aa[kept], ra[kept]
    order = np.lexsort((tie_keys(owner_hash[u_owner], id_hash[u_cand]), -np.round(aa, 9), -mutual, u_owner))
    return FofScores(u_owner[order], u_cand[order], mutual[order], aa[order], ra[order], owner, cand, via, n)


def fof_proofs(mutual: list[int], adamic_adar: list[float], resource_allocation: list[float],
               mutual_ids: list[list[int]], ids: list[str]) -> list[dict]:
    """The proof the friends-of-friends source gives each candidate (mutual friends by external id)."""
    return [{"mutual_count": m, "adamic_adar": a, "resource_allocation": r, "mutual_ids": [ids[x] for x in via]}
            for m, a, r, via in zip(mutual, adamic_adar, resource_allocation, mutual_ids, strict=True)]


def fof_scores(snap: Snapshot, user: int, degree: np.ndarray, max_friend_degree: int = 5000,
               max_two_hop: int = 200_000) -> FofScores:
    """Score every two-hop candidate of `user` (internal index)."""
    return fof_block(snap, np.array([user]), degree, max_friend_degree, max_two_hop)


class FriendsOfFriendsSource:
    """Candidate source: people two hops away, scored by mutual friends (proof: their ids)."""

    name = "fof"
    description = "friends of your friends, by number of mutual friends (Adamic-Adar breaks ties)"
    inline = True   # in-memory, bounded work: runs in the request's own thread (candidates/budget.py)

    def __init__(self, snap: Snapshot, max_friend_degree: int = 5000, max_two_hop: int = 200_000,
                 max_proof: int = 20) -> None:
        self.snap = snap
        self.degree = snap.degree
        self.max_friend_degree = max_friend_degree
        self.max_two_hop = max_two_hop
        self.max_proof = max_proof

    def propose(self, users: np.ndarray, k: int) -> Proposals:
        s = fof_block(self.snap, users, self.degree, self.max_friend_degree, self.max_two_hop, k)
        top = rank_in_group(s.owner) < k
        owner, cand, mutual = s.owner[top], s.candidates[top], s.mutual[top]
        aa, ra = s.adamic_adar[top], s.resource_allocation[top]
        ids = self.snap.id_strings

        def proof(rows: np.ndarray) -> list[dict]:
            return fof_proofs(mutual[rows].tolist(), aa[rows].tolist(), ra[rows].tolist(),
                              s.mutual_ids_of(owner[rows], cand[rows], self.max_proof), ids)

        return Proposals(owner, cand, mutual.astype(np.float64), proof)

    def generate(self, user: int, k: int) -> list[Candidate]:
        return to_candidates(self.name, self.snap, self.propose(np.array([user]), k))
