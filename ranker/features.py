"""Pairwise features for a viewer and its candidates, as of a time t. One code path for training
(t = the event's time) and serving (t = now), so there is no train/serve skew.

Nothing after t is read: ties count only if formed before t, degrees are degrees at t, counters
count only events in earlier seconds than t (timestamps are floored to whole seconds, so an event
in the same second as t is never counted). Features that cannot be computed as of t cheaply
(personalized and global PageRank over the graph at t) are left out on purpose; the embedding
similarity is only as leak-free as the embeddings passed in (train them on ties before the
training period).
"""

from __future__ import annotations

import numpy as np

from candidates.fof import row_positions
from graph.geo import haversine_km
from graph.snapshot import Snapshot
from graph.snapshot.format import EVENT_CODE

FEATURE_NAMES = (
    "mutual", "log_mutual", "adamic_adar", "jaccard", "log_deg_viewer", "log_deg_cand",
    "same_school", "same_employer", "same_city", "log_distance_km", "distance_missing", "age_gap",
    "same_language", "viewer_sends_7d", "cand_accept_rate", "log_cand_pending", "pair_impressions",
    "emb_sim", "hour_sin", "hour_cos",
)
WEEK = 7 * 86_400.0


class _EventIndex:
    """Counts of one event type per user in a time window, by binary search on (user, second) keys."""

    def __init__(self, users: np.ndarray, ts: np.ndarray) -> None:
        self.keys = np.sort((users.astype(np.int64) << 32) | np.floor(ts).astype(np.int64))

    def count(self, users: np.ndarray, t_lo: float, t_hi: float) -> np.ndarray:
        """Events of each user with floor(ts) in [floor(t_lo), floor(t_hi))."""
        u = users.astype(np.int64) << 32
        lo = np.searchsorted(self.keys, u | int(np.floor(max(t_lo, 0))), side="left")
        hi = np.searchsorted(self.keys, u | int(np.floor(t_hi)), side="left")
        return (hi - lo).astype(np.float64)


class FeatureContext:
    """Everything features are computed from: a snapshot (with tie times and events), embeddings."""

    def __init__(self, snap: Snapshot, emb: np.ndarray | None = None) -> None:
        self.snap = snap
        self.emb = emb
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

    def _known_before(self, since: np.ndarray, t: float) -> np.ndarray:
        return np.isnan(since) | (since < t)

    def pair_features(self, viewer: int, candidates: np.ndarray, t: float) -> np.ndarray:
        """[len(candidates), len(FEATURE_NAMES)] float32 features of (viewer, candidate) pairs at time t."""
        s = self.snap
        cands = np.asarray(candidates, dtype=np.int64)
        n_c = cands.size
        lo, hi = s.indptr[viewer], s.indptr[viewer + 1]
        friends = s.indices[lo:hi][self._known_before(s.since[lo:hi], t)]
        # friends' degrees at t (for Adamic-Adar)
        f_off, f_owner = row_positions(s.indptr, friends)
        f_deg = np.bincount(f_owner[self._known_before(s.since[f_off], t)], minlength=friends.size)
        # candidates' neighbourhoods at t
        c_off, c_pos = row_positions(s.indptr, cands)
        alive = self._known_before(s.since[c_off], t)
        c_nb, c_pos = s.indices[c_off][alive], c_pos[alive]
        deg_c = np.bincount(c_pos, minlength=n_c).astype(np.float64)
        if friends.size:
            where = np.minimum(np.searchsorted(friends, c_nb), friends.size - 1)
            is_mutual = friends[where] == c_nb
        else:
            where, is_mutual = np.zeros(c_nb.size, dtype=np.int64), np.zeros(c_nb.size, dtype=bool)
        mutual = np.bincount(c_pos[is_mutual], minlength=n_c).astype(np.float64)
        w = 1.0 / np.log(np.maximum(f_deg[where[is_mutual]], 2)) if friends.size else np.zeros(0)
        aa = np.bincount(c_pos[is_mutual], weights=w, minlength=n_c)
        deg_v = float(friends.size)
        jaccard = mutual / np.maximum(deg_v + deg_c - mutual, 1.0)
        cat = s.categorical

        def same(col: str) -> np.ndarray:
            codes = cat.get(col)
            if codes is None:
                return np.zeros(n_c)
            return ((codes[cands] == codes[viewer]) & (codes[viewer] >= 0)).astype(np.float64)

        lat, lon = s.numeric["lat"], s.numeric["lon"]
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
        seen_dst = self.imp_dst[a:b][np.floor(self.imp_ts[a:b]) < np.floor(t)]
        order = np.argsort(seen_dst)
        seen_sorted = seen_dst[order]
        pair_imp = (np.searchsorted(seen_sorted, cands, "right") - np.searchsorted(seen_sorted, cands, "left"))
        emb_sim = ((self.emb[cands] @ self.emb[viewer]).astype(np.float64) if self.emb is not None
                   else np.zeros(n_c))
        hour = (t % 86_400.0) / 3_600.0
        cols = [
            mutual, np.log1p(mutual), aa, jaccard, np.full(n_c, np.log1p(deg_v)), np.log1p(deg_c),
            same("school"), same("employer"), same("city"), np.where(missing, 0.0, np.log1p(dist)),
            missing.astype(np.float64), age_gap, same("language"), np.full(n_c, sends_7d),
            (accepted + 1.0) / (received + 2.0), np.log1p(np.maximum(received - responded, 0.0)),
            pair_imp.astype(np.float64), emb_sim,
            np.full(n_c, np.sin(2 * np.pi * hour / 24)), np.full(n_c, np.cos(2 * np.pi * hour / 24)),
        ]
        return np.column_stack(cols).astype(np.float32)
