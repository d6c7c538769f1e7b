"""Re-ranking after the model: fresh faces, diversity, a cap on very popular users, exploration.

Applied to the ranked list before truncation, in this order:
1. seen penalty: score x `seen_decay` ** (times shown to this viewer without an action: in the snapshot's
   log and, when serving, logged since: candidates/recent_shown.py), so each refresh brings new faces;
2. greedy selection with diversity: no source may fill more than `max_source_share` of the list
   and no city more than `max_group_share`; at most `max_popular` suggestions may target users in
   the top `popular_quantile` by degree;
3. exploration: each slot from `explore_from` on is, with probability `explore_share`, given to a
   random candidate from further down the list, marked in its scores as `explore` = 1 so training can
   tell (and weight) those impressions apart. The candidates it displaces move down a slot (the list's
   last falls off). The first slots, the ones most seen, always show the ranker's best: before
   2026-12-06 the first could go to exploration too (one list in twenty), and the candidate in an
   explored slot left the list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from candidates.types import Candidate
from graph.snapshot import Snapshot


@dataclass(frozen=True)
class RerankConfig:
    seen_decay: float = 0.7
    max_source_share: float = 0.7
    max_group_share: float = 0.6
    max_popular: int = 2
    popular_quantile: float = 0.99
    explore_share: float = 0.05
    explore_from: int = 3         # 0-based: the first slot exploration may take


class Reranker:
    def __init__(self, snap: Snapshot, cfg: RerankConfig | None = None, seed: int | None = None) -> None:
        self.snap = snap
        self.cfg = cfg or RerankConfig()
        deg = self.degree = snap.degree  # computed once: Snapshot.degree is a fresh np.diff each call
        self.popular_degree = float(np.quantile(deg, self.cfg.popular_quantile)) if deg.size else np.inf
        self.rng = np.random.default_rng(seed)
        self.city = snap.categorical.get("city")

    def __call__(self, ranked: list[Candidate], k: int, seen: dict[int, int] | None = None,
                 notes: dict[int, str] | None = None) -> list[Candidate]:
        """The first k of `ranked` after the three steps; `notes` (when given) gets, for each candidate a cap
        held back or exploration displaced, which: "source_share", "city_share", "popular" or "explore"
        (`pymk why` says them: candidates/why.py)."""
        cfg, seen = self.cfg, seen or {}
        keys = {c.index: c.score("score", c.score("rrf")) * cfg.seen_decay ** seen.get(c.index, 0) for c in ranked}
        pool = sorted(ranked, key=lambda c: -keys[c.index])   # equal keys keep the ranker's order (stable)
        # each candidate's city group (-1: none) and whether it is popular, looked up for the pool at once
        idx = np.fromiter((c.index for c in pool), np.int64, len(pool))
        known = idx >= 0
        at = np.where(known, idx, 0)
        groups = (np.where(known, self.city[at], -1) if self.city is not None else np.full(idx.size, -1)).tolist()
        popular_of = (known & (self.degree[at] >= self.popular_degree)).tolist()
        chosen: list[Candidate] = []
        by_source: dict[str, int] = {}
        by_group: dict[int, int] = {}
        popular = 0
        cap_source = max(1, int(np.ceil(cfg.max_source_share * k)))
        cap_group = max(1, int(np.ceil(cfg.max_group_share * k)))
        deferred: list[tuple[Candidate, bool]] = []
        for c, group, is_popular in zip(pool, groups, popular_of, strict=True):
            if len(chosen) == k:
                break
            held = ("source_share" if by_source.get(c.sources[0], 0) >= cap_source
                    else "city_share" if group >= 0 and by_group.get(group, 0) >= cap_group
                    else "popular" if is_popular and popular >= cfg.max_popular else None)
            if held is not None:
                deferred.append((c, is_popular))
                if notes is not None:
                    notes[c.index] = held
                continue
            chosen.append(c)
            by_source[c.sources[0]] = by_source.get(c.sources[0], 0) + 1
            if group >= 0:
                by_group[group] = by_group.get(group, 0) + 1
            popular += int(is_popular)
        # diversity may leave slots empty on a narrow pool: fill them (popular cap still holds)
        for c, is_popular in deferred:
            if len(chosen) == k:
                break
            if not (is_popular and popular >= cfg.max_popular):
                chosen.append(c)
                popular += int(is_popular)
        taken = {c.index for c in chosen}
        # the caps are preferences, never a reason to return fewer than k: fill what is still empty
        for c, _ in deferred:
            if len(chosen) == k:
                break
            if c.index not in taken:
                chosen.append(c)
                taken.add(c.index)
        rest = [c for c in pool if c.index not in taken]
        out: list[Candidate] = []
        best = iter(chosen)
        for slot in range(len(chosen)):
            if slot >= cfg.explore_from and rest and self.rng.random() < cfg.explore_share:
                pick = rest.pop(int(self.rng.integers(len(rest))))
                out.append(pick.with_scores(rerank=keys[pick.index], explore=1.0))
            else:
                c = next(best)
                out.append(c.with_scores(rerank=keys[c.index]))
        if notes is not None:
            notes.update((c.index, "explore") for c in best)   # what the explored slots pushed off the end
        return out
