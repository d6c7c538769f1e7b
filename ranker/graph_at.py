"""The graph as of a time t, and what every pair's features read of it per user and per tie.

Computed once per t (FeatureContext caches the last few): degrees, recency windows measured in the
graph's own tempo, new ties in each, each user's first and latest tie, the degrees of the partners of
each user's newest ties, and the tie strengths and recent activity that interaction events give.
Nothing at or after t is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from graph.snapshot import Snapshot, recent_window_start
from graph.snapshot.csr import lookup, undirected_keys
from graph.snapshot.format import EVENT_CODE
from ranker.feature_names import SAME_FIELDS

RECENT_SHARES = (0.01, 0.05, 0.2)   # recency windows: the spans holding the graph's latest 1%, 5%, 20% of ties
SPAN_SHARE = 0.1   # and the latest 10% of the time since the graph's first tie (the recent-popularity baseline's)
RECENT_PARTNERS = 5   # a user's latest ties, whose partners' degrees say with whom the user is tying now


@dataclass(frozen=True)
class GraphAt:
    """The graph of ties before t, its degrees, the starts of the recency windows (RECENT_SHARES), and
    per user: new ties in each window, the times of the first and the latest tie (-inf: none with a
    known time) and the mean log degree of its newest ties' partners (recent_partner_degree).
    Where interaction events are logged (messages between users; an edge list that repeats pairs):
    per tie (CSR entry) log1p of the interactions on it before t, and per user its interactions in the
    middle recency window."""

    g: Snapshot
    deg: np.ndarray
    recent_start: np.ndarray
    new_ties: list[np.ndarray]
    last_tie: np.ndarray
    first_tie: np.ndarray   # the earliest tie with a known time (inf: none)
    first_time: float   # the graph's earliest known tie time (inf: none)
    strength: np.ndarray
    interactions: np.ndarray
    new_ties_span: np.ndarray
    inv_log_deg: np.ndarray   # 1 / log(max(deg, 2)): a mutual friend's Adamic-Adar weight
    new_ties_rows: np.ndarray   # new_ties as one (windows, users) array
    codes: np.ndarray   # (users, len(SAME_FIELDS)) categorical codes compared between pairs (-1: missing)
    answers: np.ndarray   # (3, users): requests received, accepted, answered (accepted or declined) before t
    recent_partner_deg: np.ndarray   # per user: recent_partner_degree

    @staticmethod
    def of(g: Snapshot, t: float) -> GraphAt:
        deg = g.degree
        recent_start = np.array([recent_window_start(g.since, t, q) for q in RECENT_SHARES])
        rows = g.entry_rows()

        def new_ties_since(start: float) -> np.ndarray:   # Snapshot.new_ties_since, on rows built once
            return np.bincount(rows, weights=(g.since >= start).astype(np.float64), minlength=g.num_users)

        new_ties = [new_ties_since(w) for w in recent_start]
        last_tie, first_tie = np.full(g.num_users, -np.inf), np.full(g.num_users, np.inf)
        has = deg > 0
        if has.any():
            last_tie[has] = np.maximum.reduceat(np.nan_to_num(g.since, nan=-np.inf), g.indptr[:-1][has])
            first_tie[has] = np.minimum.reduceat(np.nan_to_num(g.since, nan=np.inf), g.indptr[:-1][has])
        ev = g.events
        before = np.floor(ev["ts"]) < np.floor(t)   # in whole seconds before t's, as every event count
        said = (ev["type"] == EVENT_CODE["interaction"]) & before
        a, b = ev["src"][said].astype(np.int64), ev["dst"][said].astype(np.int64)
        n = g.num_users
        keys, counts = np.unique(undirected_keys(a, b, n), return_counts=True)
        hit, pos = lookup(keys, undirected_keys(rows, g.indices, n))
        strength = np.where(hit, np.log1p(counts[pos] if counts.size else 0.0), 0.0)
        recent = ev["ts"][said] >= recent_start[1]
        interactions = (np.bincount(a[recent], minlength=n) + np.bincount(b[recent], minlength=n)).astype(float)
        timed = g.since[np.isfinite(g.since) & (g.since < t)]
        first_time = float(timed.min()) if timed.size else np.inf   # the graph's first tie
        span_start = t - SPAN_SHARE * (t - first_time) if timed.size else np.inf
        return GraphAt(g, deg, recent_start, new_ties, last_tie, first_tie, first_time, strength, interactions,
                       new_ties_since(span_start),
                       1.0 / np.log(np.maximum(deg, 2).astype(np.float64)), np.stack(new_ties),
                       np.stack([g.categorical.get(f, np.full(n, -1, dtype=np.int32)) for f in SAME_FIELDS], axis=1),
                       _answers(ev, before, n), recent_partner_degree(g, deg))


def recent_partner_degree(g: Snapshot, deg: np.ndarray, latest: int = RECENT_PARTNERS) -> np.ndarray:
    """Per user: the mean log(1 + degree) of the partners of its `latest` newest ties (0: no tie). Every tie
    as new as the last of them counts, so equal times need no order; unknown times count as the oldest
    (an untimed graph: every friend). A user whose latest ties went to newcomers is taking new ties from
    the edge of the graph now (on Bitcoin Alpha and CollegeMsg, the candidate's column helped the ranker;
    bench/RESULTS.md). One compiled pass over the ties (a sort of 50M ties' times took 32 s)."""
    return _recent_partner_means(g.indptr, g.indices, g.since, np.log1p(deg.astype(np.float64)), latest)


@njit(cache=True, nogil=True)
def _recent_partner_means(indptr, indices, since, log_deg, latest):   # pragma: no cover - compiled
    n = indptr.size - 1
    out, top = np.zeros(n), np.empty(latest)
    for u in range(n):
        lo, hi = indptr[u], indptr[u + 1]
        floor = -np.inf
        if hi - lo >= latest:   # the `latest`-th newest time: the newest times kept in `top`, newest first
            filled = 0
            for j in range(lo, hi):
                s = -np.inf if np.isnan(since[j]) else since[j]
                if filled < latest:
                    k = filled
                    filled += 1
                elif s > top[latest - 1]:
                    k = latest - 1
                else:
                    continue
                while k > 0 and top[k - 1] < s:
                    top[k] = top[k - 1]
                    k -= 1
                top[k] = s
            floor = top[latest - 1]
        total, count = 0.0, 0
        for j in range(lo, hi):   # summed in tie order
            s = -np.inf if np.isnan(since[j]) else since[j]
            if s >= floor:
                total += log_deg[indices[j]]
                count += 1
        if count:
            out[u] = total / count
    return out


def _answers(ev: dict[str, np.ndarray], before: np.ndarray, n: int) -> np.ndarray:
    """Per user: connection requests received, accepted and answered, in seconds before t."""
    kind = ev["type"][before]
    send, accept, decline = (kind == EVENT_CODE[k] for k in ("send", "accept", "decline"))
    src, dst = ev["src"][before], ev["dst"][before]
    return np.stack([np.bincount(dst[send], minlength=n), np.bincount(src[accept], minlength=n),
                     np.bincount(src[accept | decline], minlength=n)]).astype(np.float64)
