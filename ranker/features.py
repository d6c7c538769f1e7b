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

from candidates.fusion import source_fusion_ranks
from candidates.ppr import forward_push_block
from candidates.types import Candidate
from graph.geo import haversine_km
from graph.snapshot import Snapshot, as_of
from graph.snapshot.csr import pair_keys
from graph.snapshot.format import EVENT_CODE
from ranker.columns import LOG, LOG1P, fill
from ranker.feature_names import FEATURE_NAMES, SOURCE_NAMES
from ranker.graph_at import GraphAt
from ranker.paths import pair_walk, runs

DAY = 86_400.0
WEEK = 7 * DAY
RECENT, V_SINCE, C_SINCE, LOG_DIST, DIST_MISSING, EMB_SIM, V_AGE, C_AGE, C_PARTNERS = (FEATURE_NAMES.index(c) for c in (
    "recent_mutual", "viewer_since_last_tie", "cand_since_last_tie", "log_distance_km", "distance_missing", "emb_sim",
    "viewer_age_share", "cand_age_share", "cand_recent_partner_deg"))


def source_ranks(candidates: list[Candidate]) -> dict[str, np.ndarray]:
    """For each source, every candidate's 0-based rank by that source's score, equal scores sharing the best
    (NaN: not proposed)."""
    ranks = source_fusion_ranks(candidates, SOURCE_NAMES)
    return {name: rank for name, rank in ranks.items() if not np.isnan(rank).all()}


class FeatureContext:
    """Everything features are computed from: a snapshot (with tie times and events), embeddings."""

    def __init__(self, snap: Snapshot, emb: np.ndarray | None = None, ppr_alpha: float = 0.15,
                 ppr_eps: float = 1e-4) -> None:
        self.snap = snap
        self.emb = emb
        self.ppr_alpha, self.ppr_eps = ppr_alpha, ppr_eps
        ev = snap.events
        send = ev["type"] == EVENT_CODE["send"]
        # requests sent, as sorted keys sender << 32 | whole second (counted per window by binary search)
        self.send_keys = np.sort((ev["src"][send].astype(np.int64) << 32) | np.floor(ev["ts"][send]).astype(np.int64))
        # impressions by viewer, then time: who was shown whom, in which second
        self.imp_viewer, self.imp_shown, self.imp_sec = snap.impressions_by_viewer()
        age = snap.categorical.get("age_group")
        self.age = age if age is not None else np.zeros(0, dtype=np.int32)
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
        order, bounds = runs(owner, viewers.size)
        # mutual friends, their links and paths of length 3: one compiled walk out of each viewer
        walk = pair_walk(g, deg, at.inv_log_deg, at.strength, viewers, cands, order, bounds)
        p_owner, p_nodes, p_vals = ppr if ppr is not None else forward_push_block(
            g.indptr, g.indices, deg, viewers, self.ppr_alpha, self.ppr_eps)
        src_ranks = np.full((len(SOURCE_NAMES), n_c), np.nan)
        for j, name in enumerate(SOURCE_NAMES):
            if (ranks or {}).get(name) is not None:
                src_ranks[j] = ranks[name]
        x, logs = np.zeros((n_c, len(FEATURE_NAMES))), np.zeros((10, n_c))
        fill(x, logs, viewers, cands, order, bounds, deg, walk.block, at.codes, self.age, at.new_ties_rows,
             at.interactions, at.new_ties_span, pair_keys(p_owner, p_nodes, n), p_vals, n, src_ranks,
             at.answers, self.send_keys, _second(t - WEEK), _second(t), self.imp_viewer, self.imp_shown,
             self.imp_sec, np.floor(t))
        x[:, LOG1P] = np.log1p(logs[:8]).T
        x[:, LOG] = np.log(logs[8:]).T
        # Recency is measured in the graph's own tempo, never in days: a week means different things on a
        # graph that grows by the minute and on one that grows by the month, or in a busy and a quiet
        # period of one graph (a model trained on days-windows at busy inner cuts misranked a quiet test cut).
        tempo = t - recent_start[1] if np.isfinite(recent_start[1]) and t > recent_start[1] else np.inf
        # a path viewer - m - candidate counts by how recent its newer tie is (unknown times: weight 1)
        newer = walk.path_newer
        x[:, RECENT] = np.bincount(walk.path_row, weights=np.where(np.isnan(newer), 1.0, np.exp(-(t - newer) / tempo)),
                                   minlength=n_c)[walk.first_row]
        vrow = viewers[owner]
        for col, last in ((V_SINCE, at.last_tie[vrow]), (C_SINCE, at.last_tie[cands])):
            known = np.isfinite(last)
            x[:, col] = -1.0
            x[known, col] = np.log1p(np.maximum(t - last[known], 0.0) / tempo)
        life = t - at.first_time if np.isfinite(at.first_time) else 0.0   # the graph's age at t
        for col, first in ((V_AGE, at.first_tie[vrow]), (C_AGE, at.first_tie[cands])):
            known = np.isfinite(first) & (life > 0)
            x[:, col] = -1.0
            x[known, col] = np.maximum(t - first[known], 0.0) / life
        x[:, C_PARTNERS] = at.recent_partner_deg[cands]
        lat, lon = g.numeric["lat"], g.numeric["lon"]
        dist = haversine_km(lat[vrow], lon[vrow], lat[cands], lon[cands])
        missing = np.isnan(dist)
        x[:, LOG_DIST] = np.where(missing, 0.0, np.log1p(dist))
        x[:, DIST_MISSING] = missing
        if self.emb is not None:
            x[:, EMB_SIM] = np.einsum("ij,ij->i", self.emb[cands], self.emb[vrow])
        return x.astype(np.float32)


def _second(t: float) -> int:
    """The whole second of t as an event key's low bits (times before 1970 count from 0)."""
    return int(np.floor(max(t, 0)))
