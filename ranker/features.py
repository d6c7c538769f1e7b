"""Pairwise features for a viewer and its candidates, as of a time t. One code path for training
(t = a cut time in the graph's history, or the start of an impression's day) and serving (t = the
snapshot's data time), so there is no train/serve skew.

Nothing at or after t is read: ties count only if formed before t, degrees and PageRank walks are
on the graph at t, counters count only events in earlier seconds than t (timestamps are floored
to whole seconds). Recency features count ties in windows measured in the graph's own tempo (the
spans in which its latest 1%, 5% and 20% of ties before t formed), not in days. The embedding
similarity is only as leak-free as the embeddings passed in (train them on ties before every t they
are used at). Per-source membership and rank, and the in-list percentiles, describe the candidate
list the serving stages produced for this viewer (sources run on the graph at t).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from candidates.ppr import forward_push
from candidates.types import Candidate
from graph.geo import haversine_km
from graph.snapshot import Snapshot, as_of, recent_window_start
from graph.snapshot.csr import row_positions
from graph.snapshot.format import EVENT_CODE
from pymk.metrics import mean_ranks

DAY = 86_400.0
WEEK = 7 * DAY
MAX_LINK_DEGREE = 2_000
RECENT_SHARES = (0.01, 0.05, 0.2)   # recency windows: the spans holding the graph's latest 1%, 5%, 20% of ties
SOURCE_NAMES = ("fof", "ppr", "coldstart", "ann", "popular", "trending")
SOURCE_FEATURES = tuple(f"{kind}_{s}" for s in SOURCE_NAMES for kind in ("in", "inv_rank"))
FEATURE_NAMES = (
    "mutual", "log_mutual", "adamic_adar", "resource_allocation", "jaccard", "log_deg_viewer", "log_deg_cand",
    "mutual_links", "car", "mutual_density",
    "same_school", "same_employer", "same_city", "log_distance_km", "distance_missing", "age_gap",
    "same_language", "viewer_sends_7d", "cand_accept_rate", "log_cand_pending", "pair_impressions",
    "emb_sim", "log_ppr", "ppr_rank", "log_ppr_per_degree",
    "viewer_new_ties_w1", "viewer_new_ties_w5", "viewer_new_ties_w20", "cand_new_ties_w1", "cand_new_ties_w5",
    "cand_new_ties_w20", "viewer_since_last_tie", "cand_since_last_tie", "cand_growth_w20", "recent_mutual",
    "cand_recent_pct_in_list", "cand_degree_pct_in_list",
    *SOURCE_FEATURES,
)
# Columns an impression-log example cannot have (which sources proposed the shown user was not
# logged): the send/accept heads see them as zero in training and serving alike.
SOURCE_COLUMNS = np.array([FEATURE_NAMES.index(n) for n in SOURCE_FEATURES])


class _EventIndex:
    """Counts of one event type per user in a time window, by binary search on (user, second) keys."""

    def __init__(self, users: np.ndarray, ts: np.ndarray) -> None:
        self.keys = np.sort((users.astype(np.int64) << 32) | np.floor(ts).astype(np.int64))

    def count(self, users: np.ndarray, t_lo: float, t_hi: float) -> np.ndarray:
        """Events of each user with floor(ts) in [floor(t_lo), floor(t_hi))."""
        u = users.astype(np.int64) << 32
        lo = np.searchsorted(self.keys, u | int(np.floor(max(t_lo, 0))), side="left")
        hi = np.searchsorted(self.keys, u | int(np.floor(max(t_hi, 0))), side="left")
        return (hi - lo).astype(np.float64)


def source_ranks(candidates: list[Candidate]) -> dict[str, np.ndarray]:
    """For each source, every candidate's 0-based rank in that source's own order (NaN: not proposed)."""
    out: dict[str, np.ndarray] = {}
    for name in SOURCE_NAMES:
        rows = [(-c.scores[name], c.index, i) for i, c in enumerate(candidates) if name in c.scores]
        if not rows:
            continue
        ranks = np.full(len(candidates), np.nan)
        ranks[[i for *_, i in sorted(rows)]] = np.arange(len(rows))
        out[name] = ranks
    return out


class FeatureContext:
    """Everything features are computed from: a snapshot (with tie times and events), embeddings."""

    def __init__(self, snap: Snapshot, emb: np.ndarray | None = None, ppr_alpha: float = 0.15,
                 ppr_eps: float = 1e-4) -> None:
        self.snap = snap
        self.emb = emb
        self.ppr_alpha, self.ppr_eps = ppr_alpha, ppr_eps
        ev = snap.events
        t = ev["type"]
        send, acc, dec, imp = (t == EVENT_CODE[x] for x in ("send", "accept", "decline", "impression"))
        self.sends_by_sender = _EventIndex(ev["src"][send], ev["ts"][send])
        self.sends_by_receiver = _EventIndex(ev["dst"][send], ev["ts"][send])
        self.accepts_by_responder = _EventIndex(ev["src"][acc], ev["ts"][acc])
        self.responses_by_responder = _EventIndex(ev["src"][acc | dec], ev["ts"][acc | dec])
        order = np.lexsort((ev["ts"][imp], ev["src"][imp]))
        self.imp_src, self.imp_dst, self.imp_ts = ev["src"][imp][order], ev["dst"][imp][order], ev["ts"][imp][order]
        self.age_rank = snap.categorical.get("age_group")
        timed = snap.since[np.isfinite(snap.since)]
        self.latest_tie = float(timed.max()) if timed.size else -np.inf
        self._past: OrderedDict[float, tuple[Snapshot, np.ndarray, np.ndarray]] = OrderedDict()

    def graph_at(self, t: float) -> tuple[Snapshot, np.ndarray, np.ndarray]:
        """The graph of ties before t (the snapshot itself when it has nothing later), its degrees, and
        the starts of the recency windows (RECENT_SHARES), cached for the last few t."""
        if t not in self._past:
            g = self.snap if t > self.latest_tie else as_of(self.snap, t)
            self._past[t] = (g, g.degree, np.array([recent_window_start(g.since, t, q) for q in RECENT_SHARES]))
            if len(self._past) > 8:
                self._past.popitem(last=False)
        return self._past[t]

    def _links_among_mutuals(self, g: Snapshot, deg: np.ndarray, via_pos: np.ndarray, via: np.ndarray,
                             n_c: int) -> np.ndarray:
        """Friendships among each candidate's mutual friends with the viewer (the local community of the
        pair, as in Cannistraci's CAR index). Mutual friends with more than MAX_LINK_DEGREE friends are
        skipped as the first end of a link, which bounds the work per request."""
        first = deg[via] <= MAX_LINK_DEGREE
        offsets, owner = row_positions(g.indptr, via[first])
        n = np.int64(g.num_users)
        pair_keys = np.sort(via_pos.astype(np.int64) * n + via)
        probe = via_pos[first][owner].astype(np.int64) * n + g.indices[offsets]
        pos = np.minimum(np.searchsorted(pair_keys, probe), max(pair_keys.size - 1, 0))
        hit = pair_keys[pos] == probe if pair_keys.size else np.zeros(0, dtype=bool)
        both_ends = np.bincount(via_pos[first][owner][hit], minlength=n_c).astype(np.float64)
        return both_ends / 2.0 if first.all() else both_ends  # each link seen from both ends unless one is skipped

    def features(self, viewer: int, candidates: list[Candidate], t: float) -> np.ndarray:
        """Features of a candidate list as the pipeline produced it (source membership and ranks included)."""
        return self.pair_features(viewer, np.array([c.index for c in candidates], dtype=np.int64), t,
                                  source_ranks(candidates))

    def pair_features(self, viewer: int, candidates: np.ndarray, t: float,
                      ranks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """[len(candidates), len(FEATURE_NAMES)] float32 features of (viewer, candidate) pairs at time t."""
        g, deg, recent_start = self.graph_at(t)
        cands = np.asarray(candidates, dtype=np.int64)
        n_c = cands.size
        friends, f_since = g.neighbors(viewer), g.since[g.indptr[viewer]:g.indptr[viewer + 1]]
        c_off, c_pos = row_positions(g.indptr, cands)
        c_nb, c_since = g.indices[c_off], g.since[c_off]
        deg_c = deg[cands].astype(np.float64)
        if friends.size:
            where = np.minimum(np.searchsorted(friends, c_nb), friends.size - 1)
            is_mutual = friends[where] == c_nb
        else:
            where, is_mutual = np.zeros(c_nb.size, dtype=np.int64), np.zeros(c_nb.size, dtype=bool)
        via_pos, via = c_pos[is_mutual], c_nb[is_mutual]
        via_deg = np.maximum(deg[via], 2).astype(np.float64)
        mutual = np.bincount(via_pos, minlength=n_c).astype(np.float64)
        aa = np.bincount(via_pos, weights=1.0 / np.log(via_deg), minlength=n_c)
        ra = np.bincount(via_pos, weights=1.0 / via_deg, minlength=n_c)
        # Recency is measured in the graph's own tempo, never in days: a week means different things on a
        # graph that grows by the minute and on one that grows by the month, or in a busy and a quiet
        # period of one graph (a model trained on days-windows at busy inner cuts misranked a quiet test cut).
        tempo = t - recent_start[1] if np.isfinite(recent_start[1]) and t > recent_start[1] else np.inf
        # a path viewer - m - candidate counts by how recent its newer tie is (unknown times: weight 1)
        newer = np.fmax(f_since[where[is_mutual]], c_since[is_mutual])
        recent = np.bincount(via_pos, weights=np.where(np.isnan(newer), 1.0, np.exp(-(t - newer) / tempo)),
                             minlength=n_c)
        deg_v = float(friends.size)
        jaccard = mutual / np.maximum(deg_v + deg_c - mutual, 1.0)
        links = self._links_among_mutuals(g, deg, via_pos, via, n_c)

        def new_ties(since: np.ndarray, owner: np.ndarray, n: int) -> list[np.ndarray]:
            return [np.bincount(owner, weights=(since >= w).astype(np.float64), minlength=n) for w in recent_start]

        def since_last(since: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
            last = np.full(n, -np.inf)
            np.maximum.at(last, owner, np.nan_to_num(since, nan=-np.inf))
            known = np.isfinite(last)
            out = np.full(n, -1.0)
            out[known] = np.log1p(np.maximum(t - last[known], 0.0) / tempo)
            return out

        def pct_in_list(x: np.ndarray) -> np.ndarray:
            # equal values share their mean rank, so the feature does not depend on the list's order
            return mean_ranks(x) / max(n_c - 1, 1)

        v_owner = np.zeros(friends.size, dtype=np.int64)
        viewer_new = [np.full(n_c, w[0]) for w in new_ties(f_since, v_owner, 1)]
        cand_new = new_ties(c_since, c_pos, n_c)
        ppr_nodes, ppr_vals = forward_push(g.indptr, g.indices, deg, viewer, self.ppr_alpha, self.ppr_eps)
        pos = np.minimum(np.searchsorted(ppr_nodes, cands), ppr_nodes.size - 1)
        ppr = np.where(ppr_nodes[pos] == cands, ppr_vals[pos], 0.0)
        ppr_rank = np.empty(n_c)
        ppr_rank[np.lexsort((cands, -ppr))] = np.arange(n_c)
        cat = g.categorical

        def same(col: str) -> np.ndarray:
            codes = cat.get(col)
            if codes is None:
                return np.zeros(n_c)
            return ((codes[cands] == codes[viewer]) & (codes[viewer] >= 0)).astype(np.float64)

        lat, lon = g.numeric["lat"], g.numeric["lon"]
        dist = haversine_km(lat[viewer], lon[viewer], lat[cands], lon[cands])
        missing = np.isnan(dist)
        age = self.age_rank
        age_gap = (np.abs(age[cands] - age[viewer]) * ((age[cands] >= 0) & (age[viewer] >= 0))
                   if age is not None else np.zeros(n_c))
        v_arr = np.array([viewer])
        sends_7d = self.sends_by_sender.count(v_arr, t - WEEK, t)[0]
        received = self.sends_by_receiver.count(cands, 0, t)
        accepted = self.accepts_by_responder.count(cands, 0, t)
        responded = self.responses_by_responder.count(cands, 0, t)
        a, b = np.searchsorted(self.imp_src, viewer, "left"), np.searchsorted(self.imp_src, viewer, "right")
        seen_dst = np.sort(self.imp_dst[a:b][np.floor(self.imp_ts[a:b]) < np.floor(t)])
        pair_imp = (np.searchsorted(seen_dst, cands, "right") - np.searchsorted(seen_dst, cands, "left"))
        emb_sim = ((self.emb[cands] @ self.emb[viewer]).astype(np.float64) if self.emb is not None
                   else np.zeros(n_c))
        src_cols = []
        for name in SOURCE_NAMES:
            r = (ranks or {}).get(name)
            src_cols += ([np.zeros(n_c), np.zeros(n_c)] if r is None
                         else [(~np.isnan(r)).astype(np.float64), np.nan_to_num(1.0 / (1.0 + r), nan=0.0)])
        cols = [
            mutual, np.log1p(mutual), aa, ra, jaccard, np.full(n_c, np.log1p(deg_v)), np.log1p(deg_c),
            links, mutual * links, links / np.maximum(mutual * (mutual - 1) / 2, 1.0),
            same("school"), same("employer"), same("city"), np.where(missing, 0.0, np.log1p(dist)),
            missing.astype(np.float64), age_gap, same("language"), np.full(n_c, sends_7d),
            (accepted + 1.0) / (received + 2.0), np.log1p(np.maximum(received - responded, 0.0)),
            pair_imp.astype(np.float64), emb_sim,
            np.log(ppr + 1e-7), np.log1p(ppr_rank), np.log(ppr / np.maximum(deg_c, 1.0) + 1e-9),
            *viewer_new, *cand_new,
            np.full(n_c, since_last(f_since, v_owner, 1)[0]), since_last(c_since, c_pos, n_c),
            cand_new[2] / np.maximum(deg_c, 1.0), recent, pct_in_list(cand_new[1]), pct_in_list(deg_c),
            *src_cols,
        ]
        return np.column_stack(cols).astype(np.float32)
