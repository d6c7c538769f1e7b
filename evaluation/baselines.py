"""Heuristic link-prediction baselines for the offline evaluation, vectorized on the snapshot CSR.

Neighbourhood scores (common neighbours, Adamic-Adar, resource allocation, Jaccard, preferential
attachment) rank every two-hop non-friend, with no hub cap (the textbook definitions; a test checks
them against networkx). Popularity baselines rank every non-friend by degree (global popularity)
or by ties formed in the last window before the cut (recent popularity).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from candidates.fof import fof_scores
from candidates.popular import top_excluding
from graph.snapshot import Snapshot
from graph.snapshot.csr import pair_ties, scrambled

Baseline = Callable[[int, int], np.ndarray]   # (viewer index, k) -> ranked candidate indices


def _top(user: int, cands: np.ndarray, score: np.ndarray, k: int, n: int) -> np.ndarray:
    """The k best-scored candidates; equal scores in a pseudo-random order of the (viewer, candidate) pair,
    not by index: ids often follow sign-up order, and a tie broken by them would make the baseline's
    figures depend on how the graph's ids were given out (common neighbours ties most of its candidates).
    Sorted are only those scoring at least the k-th best score (a viewer beside a hub has hundreds of
    thousands of two-hop candidates)."""
    if cands.size > 4 * k:
        keep = np.flatnonzero(score >= np.partition(score, cands.size - k)[cands.size - k])
        cands, score = cands[keep], score[keep]
    return cands[np.lexsort((pair_ties(user, cands, n), -score))[:k]]


def neighbourhood_baselines(snap: Snapshot) -> dict[str, Baseline]:
    """The five neighbourhood scores. They share one count of the viewer's two-hop paths (the last viewer's
    is kept): the harness asks all five for one viewer in a row, and a viewer tied to a hub of 650,000
    users took ~220 ms a count, ~1.1 s for the five (bench/RESULTS.md)."""
    deg = snap.degree
    n = snap.num_users
    last: list = [None, None]   # the viewer, and its two-hop counts

    def counts(user: int):
        if last[0] != user:
            last[:] = [user, fof_scores(snap, user, deg, max_friend_degree=n, max_two_hop=2**62)]
        return last[1]

    def make(name: str) -> Baseline:
        def rank(user: int, k: int) -> np.ndarray:
            s = counts(user)
            mutual = s.mutual.astype(np.float64)
            score = {"common_neighbours": mutual, "adamic_adar": s.adamic_adar,
                     "resource_allocation": s.resource_allocation,
                     "jaccard": mutual / (deg[user] + deg[s.candidates] - mutual),
                     "pref_attachment": deg[s.candidates].astype(np.float64)}[name]
            return _top(user, s.candidates, score, k, n)
        return rank

    return {name: make(name) for name in ("common_neighbours", "adamic_adar", "resource_allocation", "jaccard",
                                          "pref_attachment")}


def popularity_baselines(snap: Snapshot, cut: float | None, recent_share: float = 0.1) -> dict[str, Baseline]:
    """Most-connected users, and most new ties in the last `recent_share` of the training time span."""
    deg = snap.degree.astype(np.float64)
    out = {"global_popularity": deg}
    timed = snap.since[np.isfinite(snap.since)]
    if cut is not None and timed.size:
        start = cut - recent_share * (cut - timed.min())
        out["recent_popularity"] = snap.new_ties_since(start)
    ties = scrambled(np.arange(snap.num_users))   # equal counts in a pseudo-random order, not by index (_top)
    ranked = {name: np.lexsort((ties, -score)) for name, score in out.items()}
    degree = snap.degree

    def make(order: np.ndarray) -> Baseline:
        return lambda user, k: top_excluding(order, snap, degree, user, k)

    return {name: make(order) for name, order in ranked.items()}
