"""Friends-of-friends on the snapshot CSR: mutual counts, Adamic-Adar, resource allocation.

Vectorized numpy, no per-candidate Python loops. Two guards keep big neighbourhoods cheap:
friends with more than `max_friend_degree` friends are not used as intermediaries (one celebrity
friend cannot flood the list; the Cypher query in the graph store applies the same rule), and at
most `max_two_hop` two-hop paths are scored, taking the viewer's lowest-degree friends first
(their friends are the most specific evidence).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from candidates.types import Candidate
from graph.snapshot import Snapshot
from graph.snapshot.csr import gather_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FofScores:
    """Two-hop candidates of one viewer, ranked (mutual count, then Adamic-Adar, then id)."""

    candidates: np.ndarray    # internal indices
    mutual: np.ndarray
    adamic_adar: np.ndarray
    resource_allocation: np.ndarray
    paths_cand: np.ndarray    # every scored path viewer -> via -> cand, for proof
    paths_via: np.ndarray

    def mutual_ids_of(self, candidates: np.ndarray, limit: int) -> list[list[int]]:
        """The first `limit` mutual friends (sorted) of each candidate, with one sort of all paths."""
        order = np.lexsort((self.paths_via, self.paths_cand))
        cand, via = self.paths_cand[order], self.paths_via[order]
        lo = np.searchsorted(cand, candidates, "left")
        hi = np.minimum(np.searchsorted(cand, candidates, "right"), lo + limit)
        return [via[a:b].tolist() for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]


def fof_scores(snap: Snapshot, user: int, degree: np.ndarray, max_friend_degree: int = 5000,
               max_two_hop: int = 200_000) -> FofScores:
    """Score every two-hop candidate of `user` (internal index)."""
    friends = snap.neighbors(user)
    fdeg = degree[friends]
    mids = friends[(fdeg >= 2) & (fdeg <= max_friend_degree)]
    if mids.size and degree[mids].sum() > max_two_hop:
        order = np.argsort(degree[mids], kind="stable")
        within = np.cumsum(degree[mids][order]) <= max_two_hop
        within[0] = True
        mids = np.sort(mids[order][within])
    cand, via = gather_rows(snap.indptr, snap.indices, mids)
    keep = cand != user
    if friends.size:
        pos = np.minimum(np.searchsorted(friends, cand), friends.size - 1)
        keep &= friends[pos] != cand
    cand, via = cand[keep], via[keep]
    uniq, inv = np.unique(cand, return_inverse=True)
    vdeg = degree[via].astype(np.float64)
    mutual = np.bincount(inv, minlength=uniq.size)
    aa = np.bincount(inv, weights=1.0 / np.log(vdeg), minlength=uniq.size)
    ra = np.bincount(inv, weights=1.0 / vdeg, minlength=uniq.size)
    order = np.lexsort((snap.ids[uniq].astype(str), -np.round(aa, 9), -mutual))
    return FofScores(uniq[order], mutual[order], aa[order], ra[order], cand, via)


class FriendsOfFriendsSource:
    """Candidate source: people two hops away, scored by mutual friends (proof: their ids)."""

    name = "fof"
    description = "friends of your friends, by number of mutual friends (Adamic-Adar breaks ties)"

    def __init__(self, snap: Snapshot, max_friend_degree: int = 5000, max_two_hop: int = 200_000,
                 max_proof: int = 20) -> None:
        self.snap = snap
        self.degree = snap.degree
        self.max_friend_degree = max_friend_degree
        self.max_two_hop = max_two_hop
        self.max_proof = max_proof

    def generate(self, user: int, k: int) -> list[Candidate]:
        s = fof_scores(self.snap, user, self.degree, self.max_friend_degree, self.max_two_hop)
        out = []
        ids = self.snap.id_strings
        top = s.candidates[:k]
        for c, m, aa, ra, mutual in zip(top.tolist(), s.mutual[:k].tolist(), s.adamic_adar[:k].tolist(),
                                        s.resource_allocation[:k].tolist(), s.mutual_ids_of(top, self.max_proof),
                                        strict=True):
            proof = {"mutual_count": m, "adamic_adar": aa, "resource_allocation": ra,
                     "mutual_ids": [ids[x] for x in mutual]}
            out.append(Candidate.of(ids[c], c, self.name, float(m), proof))
        return out
