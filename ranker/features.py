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

from candidates.ppr import forward_push_block
from candidates.types import Candidate
from graph.geo import haversine_km
from graph.snapshot import Snapshot, as_of
from graph.snapshot.csr import lookup, pair_keys, rank_in_group, run_bounds
from graph.snapshot.format import EVENT_CODE
from ranker.graph_at import GraphAt
from ranker.paths import pair_walk

DAY = 86_400.0
WEEK = 7 * DAY
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
    "viewer_side_strength", "cand_side_strength", "viewer_interactions_w5", "cand_interactions_w5",
    "cand_new_ties_span10", "log_paths3", "paths3_norm",
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


def ranks_in_groups(owner: np.ndarray, cand: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Each row's 0-based rank within its owner's rows by (-score, candidate index); NaN score: NaN rank."""
    rows = np.flatnonzero(~np.isnan(score))
    rows = rows[np.lexsort((cand[rows], -score[rows], owner[rows]))]
    out = np.full(score.size, np.nan)
    out[rows] = rank_in_group(owner[rows])
    return out


def group_mean_ranks(x: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Each row's ascending rank among its owner's rows, equal values sharing their mean rank, divided by
    (rows of that owner - 1): 0 for the group's smallest, 1 for its largest."""
    order = np.lexsort((x, owner))
    xs, os = x[order], owner[order]
    new_run = np.concatenate(([True], (xs[1:] != xs[:-1]) | (os[1:] != os[:-1])))
    run = np.flatnonzero(new_run) if x.size else np.zeros(0, int)
    lens = np.diff(np.append(run, x.size))
    first = rank_in_group(os)[run]
    out = np.empty(x.size)
    out[order] = np.repeat(first + (lens - 1) / 2.0, lens)
    size = np.bincount(owner, minlength=int(owner.max(initial=-1)) + 1)[owner]
    return out / np.maximum(size - 1, 1)


def source_ranks(candidates: list[Candidate]) -> dict[str, np.ndarray]:
    """For each source, every candidate's 0-based rank in that source's own order (NaN: not proposed)."""
    out: dict[str, np.ndarray] = {}
    idx = np.array([c.index for c in candidates], dtype=np.int64)
    owner = np.zeros(idx.size, dtype=np.int64)
    for name in SOURCE_NAMES:
        score = np.array([c.scores.get(name, np.nan) for c in candidates], dtype=np.float64)
        if not np.isnan(score).all():
            out[name] = ranks_in_groups(owner, idx, score)
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
        self._past: OrderedDict[float, GraphAt] = OrderedDict()

    def graph_at(self, t: float) -> GraphAt:
        """The graph of ties before t and what every pair reads of it per user, cached for the last few t."""
        if t not in self._past:
            self._past[t] = GraphAt.of(self.snap if t > self.latest_tie else as_of(self.snap, t), t)
            if len(self._past) > 8:
                self._past.popitem(last=False)
        return self._past[t]

    def features(self, viewer: int, candidates: list[Candidate], t: float) -> np.ndarray:
        """Features of a candidate list as the pipeline produced it (source membership and ranks included)."""
        return self.pair_features(viewer, np.array([c.index for c in candidates], dtype=np.int64), t,
                                  source_ranks(candidates))

    def pair_features(self, viewer: int, candidates: np.ndarray, t: float,
                      ranks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """[len(candidates), len(FEATURE_NAMES)] float32 features of (viewer, candidate) pairs at time t."""
        cands = np.asarray(candidates, dtype=np.int64)
        return self.block_features(np.array([viewer]), np.zeros(cands.size, dtype=np.int64), cands, t, ranks)

    def block_features(self, viewers: np.ndarray, owner: np.ndarray, candidates: np.ndarray, t: float,
                       ranks: dict[str, np.ndarray] | None = None,
                       ppr: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Features of the pairs (viewers[owner[i]], candidates[i]) at time t, for a block of viewers at once
        (row i's features depend only on its own viewer's rows: a block gives each viewer's rows exactly
        what that viewer alone would get). `ppr`: the viewers' pushes (forward_push_block) if at hand."""
        at = self.graph_at(t)
        g, deg, recent_start = at.g, at.deg, at.recent_start
        n = g.num_users
        viewers, owner = np.asarray(viewers, dtype=np.int64), np.asarray(owner, dtype=np.int64)
        cands = np.asarray(candidates, dtype=np.int64)
        n_c = cands.size
        vrow = viewers[owner]
        deg_c = deg[cands].astype(np.float64)
        # mutual friends, their links and paths of length 3: one compiled walk out of each viewer
        walk = pair_walk(g, deg, at.inv_log_deg, at.strength, viewers, owner, cands)
        mutual, aa, ra, links = walk.mutual, walk.aa, walk.ra, walk.links
        # Recency is measured in the graph's own tempo, never in days: a week means different things on a
        # graph that grows by the minute and on one that grows by the month, or in a busy and a quiet
        # period of one graph (a model trained on days-windows at busy inner cuts misranked a quiet test cut).
        tempo = t - recent_start[1] if np.isfinite(recent_start[1]) and t > recent_start[1] else np.inf
        # a path viewer - m - candidate counts by how recent its newer tie is (unknown times: weight 1)
        newer = walk.path_newer
        recent = np.bincount(walk.path_row, weights=np.where(np.isnan(newer), 1.0, np.exp(-(t - newer) / tempo)),
                             minlength=n_c)[walk.first_row]
        deg_v = deg[viewers].astype(np.float64)[owner]
        jaccard = mutual / np.maximum(deg_v + deg_c - mutual, 1.0)
        paths3 = walk.paths3
        paths3_norm = walk.paths3_weighted / np.sqrt(np.maximum(deg_v, 1.0) * np.maximum(deg_c, 1.0))

        def since_last(last: np.ndarray) -> np.ndarray:
            known = np.isfinite(last)
            out = np.full(last.size, -1.0)
            out[known] = np.log1p(np.maximum(t - last[known], 0.0) / tempo)
            return out

        viewer_new = [w[vrow] for w in at.new_ties]
        cand_new = [w[cands] for w in at.new_ties]
        p_owner, p_nodes, p_vals = ppr if ppr is not None else forward_push_block(
            g.indptr, g.indices, deg, viewers, self.ppr_alpha, self.ppr_eps)
        hit, pos = lookup(pair_keys(p_owner, p_nodes, n), pair_keys(owner, cands, n))
        ppr = np.where(hit, p_vals[pos], 0.0) if p_vals.size else np.zeros(n_c)
        order = np.lexsort((cands, -ppr, owner))
        ppr_rank = np.empty(n_c)
        ppr_rank[order] = rank_in_group(owner[order])
        cat = g.categorical

        def same(col: str) -> np.ndarray:
            codes = cat.get(col)
            if codes is None:
                return np.zeros(n_c)
            return ((codes[cands] == codes[vrow]) & (codes[vrow] >= 0)).astype(np.float64)

        lat, lon = g.numeric["lat"], g.numeric["lon"]
        dist = haversine_km(lat[vrow], lon[vrow], lat[cands], lon[cands])
        missing = np.isnan(dist)
        age = self.age_rank
        age_gap = (np.abs(age[cands] - age[vrow]) * ((age[cands] >= 0) & (age[vrow] >= 0))
                   if age is not None else np.zeros(n_c))
        sends_7d = self.sends_by_sender.count(viewers, t - WEEK, t)[owner]
        received = self.sends_by_receiver.count(cands, 0, t)
        accepted = self.accepts_by_responder.count(cands, 0, t)
        responded = self.responses_by_responder.count(cands, 0, t)
        pair_imp = self._impressions_before(viewers, owner, cands, t, n)
        emb_sim = (np.einsum("ij,ij->i", self.emb[cands], self.emb[vrow]).astype(np.float64)
                   if self.emb is not None else np.zeros(n_c))
        src_cols = []
        for name in SOURCE_NAMES:
            r = (ranks or {}).get(name)
            src_cols += ([np.zeros(n_c), np.zeros(n_c)] if r is None
                         else [(~np.isnan(r)).astype(np.float64), np.nan_to_num(1.0 / (1.0 + r), nan=0.0)])
        cols = [
            mutual, np.log1p(mutual), aa, ra, jaccard, np.log1p(deg_v), np.log1p(deg_c),
            links, mutual * links, links / np.maximum(mutual * (mutual - 1) / 2, 1.0),
            same("school"), same("employer"), same("city"), np.where(missing, 0.0, np.log1p(dist)),
            missing.astype(np.float64), age_gap, same("language"), sends_7d,
            (accepted + 1.0) / (received + 2.0), np.log1p(np.maximum(received - responded, 0.0)),
            pair_imp, emb_sim,
            np.log(ppr + 1e-7), np.log1p(ppr_rank), np.log(ppr / np.maximum(deg_c, 1.0) + 1e-9),
            *viewer_new, *cand_new,
            since_last(at.last_tie[vrow]), since_last(at.last_tie[cands]),
            cand_new[2] / np.maximum(deg_c, 1.0), recent, group_mean_ranks(cand_new[1], owner),
            group_mean_ranks(deg_c, owner), walk.viewer_side, walk.cand_side, np.log1p(at.interactions[vrow]),
            np.log1p(at.interactions[cands]), at.new_ties_span[cands], np.log1p(paths3), paths3_norm, *src_cols,
        ]
        return np.column_stack(cols).astype(np.float32)

    def _impressions_before(self, viewers: np.ndarray, owner: np.ndarray, cands: np.ndarray, t: float,
                            n: int) -> np.ndarray:
        """How often each candidate was shown to its viewer in seconds before t."""
        lo, hi = run_bounds(self.imp_src, viewers)
        lens = hi - lo
        pos = np.repeat(lo - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
        shown_to = np.repeat(np.arange(viewers.size), lens)
        before = np.floor(self.imp_ts[pos]) < np.floor(t)
        keys = np.sort(pair_keys(shown_to[before], self.imp_dst[pos][before].astype(np.int64), n))
        probe = pair_keys(owner, cands, n)
        return (np.searchsorted(keys, probe, "right") - np.searchsorted(keys, probe, "left")).astype(np.float64)
