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
from functools import cached_property

import numpy as np
from numba import njit

from candidates.base import Proposals, to_candidates
from candidates.types import Candidate
from graph.snapshot import Snapshot
from graph.snapshot.csr import pair_keys, rank_in_group, thread_scratch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FofScores:
    """Two-hop candidates of a block of viewers: rows grouped by owner (the viewer's position in the
    block), each group ranked (mutual count, then Adamic-Adar, then id)."""

    owner: np.ndarray
    candidates: np.ndarray    # internal indices
    mutual: np.ndarray
    adamic_adar: np.ndarray
    resource_allocation: np.ndarray
    paths_owner: np.ndarray   # every scored path viewer -> via -> cand, for proof
    paths_cand: np.ndarray
    paths_via: np.ndarray
    num_users: int

    @cached_property
    def _sorted_paths(self) -> tuple[np.ndarray, np.ndarray]:
        keys = pair_keys(self.paths_owner, self.paths_cand, self.num_users)
        order = np.lexsort((self.paths_via, keys))
        return keys[order], self.paths_via[order]

    def mutual_ids_of(self, owner: np.ndarray, candidates: np.ndarray, limit: int) -> list[list[int]]:
        """The first `limit` mutual friends (sorted) of each (owner, candidate), the paths sorted once."""
        keys, via = self._sorted_paths
        probe = pair_keys(owner, candidates, self.num_users)
        lo = np.searchsorted(keys, probe, "left")
        hi = np.minimum(np.searchsorted(keys, probe, "right"), lo + limit)
        return [via[a:b].tolist() for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]


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


def fof_block(snap: Snapshot, users: np.ndarray, degree: np.ndarray, max_friend_degree: int = 5000,
              max_two_hop: int = 200_000) -> FofScores:
    """Score every two-hop candidate of each of `users` (internal indices), all at once: friends with
    more than `max_friend_degree` friends (or fewer than 2) are not intermediaries; per viewer at most
    `max_two_hop` paths, through its lowest-degree friends first (then by index)."""
    users = np.asarray(users, dtype=np.int64)
    mark = thread_scratch(snap.num_users, 1)[1]
    p_owner, cand, via = _paths(snap.indptr, snap.indices, degree, users, max_friend_degree, max_two_hop, mark)
    return score_paths(p_owner, cand, via, degree[via], snap.id_rank, snap.num_users)


def score_paths(owner: np.ndarray, cand: np.ndarray, via: np.ndarray, via_degree: np.ndarray, id_rank: np.ndarray,
                n: int) -> FofScores:
    """Score two-hop paths viewer (owner) -> via -> cand: per pair, mutual count, Adamic-Adar and
    resource allocation, summed in the order the paths come in (so callers that pass them in the
    same order get the same bits); ranked per owner by mutual count, Adamic-Adar, then external id
    as a string (`id_rank`: Snapshot.id_rank)."""
    uniq, inv = np.unique(pair_keys(owner, cand, n), return_inverse=True)
    u_owner, u_cand = uniq // n, uniq % n
    vdeg = via_degree.astype(np.float64)
    mutual = np.bincount(inv, minlength=uniq.size)
    aa = np.bincount(inv, weights=1.0 / np.log(vdeg), minlength=uniq.size)
    ra = np.bincount(inv, weights=1.0 / vdeg, minlength=uniq.size)
    order = np.lexsort((id_rank[u_cand], -np.round(aa, 9), -mutual, u_owner))
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
    inline = True   # in-memory, bounded work: runs in the request's own thread (pipeline._run_sources)

    def __init__(self, snap: Snapshot, max_friend_degree: int = 5000, max_two_hop: int = 200_000,
                 max_proof: int = 20) -> None:
        self.snap = snap
        self.degree = snap.degree
        self.max_friend_degree = max_friend_degree
        self.max_two_hop = max_two_hop
        self.max_proof = max_proof

    def propose(self, users: np.ndarray, k: int) -> Proposals:
        s = fof_block(self.snap, users, self.degree, self.max_friend_degree, self.max_two_hop)
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
