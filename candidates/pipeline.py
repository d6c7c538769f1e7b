"""recommend(): sources -> merge -> cheap filters -> rank -> expensive filters -> re-rank -> newcomers ->
truncate.

The first four stages may have run ahead of time (candidates/precompute.py); the last ones always
run per request. The hard rules (expensive filters, on fresh state) take the ranked list batch by
batch, and then the fallback sources' candidates, until k survive: a list comes back short only when
no eligible candidate is left. Newcomers (accounts newer than the snapshot, which no source can
propose) take fixed slots of the list when the server keeps their index (candidates/newcomers.py).

Each source runs under a time budget; one that fails or runs late is skipped and logged, never
fatal. Until the learned ranker is plugged in (`ranker=`), candidates are ordered by reciprocal
rank fusion over the sources (candidates/fusion.py). On a request, a learned ranker, re-rank or
newcomer stage that fails degrades the list the same way (fusion order, ranked order, no slots) and
is named in `skipped_sources`; only the hard rules' read failing fails a request.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from candidates.base import CandidateSource, Proposals, empty_proposals, propose, to_candidates
from candidates.budget import SourceRunner
from candidates.filters import FilterContext, StateReader, passing_rules
from candidates.fusion import rrf_rank
from candidates.new_friends import friends_of_new_friends
from candidates.newcomers import NewcomerIndex, newcomers_ahead, with_newcomers
from candidates.precompute import PrecomputedCandidates
from candidates.recent_shown import RecentImpressions
from candidates.seen import SeenCounts
from candidates.types import Candidate, Recommendation, RerankTrace
from graph.snapshot import Snapshot
from pymk.errors import AccountReplacedError, FriendsChangedError, UnknownUserError

log = logging.getLogger(__name__)
# What each source proposes per viewer. The ranker's training examples are built with the same number
# (ranker/history.py, recorded in its manifest; serving takes it from there): a candidate's rank in its
# source and its percentiles within the viewer's list mean the same thing only if the lists are as long.
PER_SOURCE_K = 100
FALLBACK_SOURCES = ("popular",)   # asked for more when the hard rules leave a list short
Ranker = Callable[[str, list[Candidate]], list[Candidate]]
Reranker = Callable[..., list[Candidate]]


@dataclass(frozen=True)
class PipelineConfig:
    per_source_k: int = PER_SOURCE_K
    source_budget_s: float = 0.25
    overfetch: int = 3           # candidates kept after ranking, per requested suggestion
    concurrency: int = 2         # requests served at once (server threads): the source pool has a thread
                                 # per source for each of them, so one request never waits on another's
    seen_window_days: float = 14.0   # impressions the re-rank's seen penalty counts: this many days back from
                                     # the newest (fatigue is recent)
    fresh_below_friends: int = 3     # a viewer with fewer friends in the snapshot who has made new ones since is
                                     # served off the snapshot (FriendsChangedError): a new account's second day
    new_friends: bool = True         # the friends of ties made since the snapshot take the fresh-tie slots too


class CandidatePipeline(SeenCounts):
    """The whole candidate flow for one snapshot, a set of sources and a state reader."""

    def __init__(self, snap: Snapshot, sources: list[CandidateSource], state: StateReader,
                 config: PipelineConfig | None = None, ranker: Ranker | None = None,
                 reranker: Reranker | None = None) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate candidate source names in {names}")
        self.snap = snap
        self.sources = sources
        self.state = state
        self.config = config or PipelineConfig()
        self.ranker = ranker or rrf_rank
        self.reranker = reranker
        self.precomputed: PrecomputedCandidates | None = None  # set by the server when versions match
        self.newcomers: NewcomerIndex | None = None   # set by the server: accounts newer than the snapshot
        self.recent_shown: RecentImpressions | None = None   # set by the server: impressions since the snapshot
        self.fallback = [s for s in sources if s.name in FALLBACK_SOURCES]
        self.count_seen_from(snap, self.config.seen_window_days)
        self.runner = SourceRunner(sources, self.config.source_budget_s, self.config.concurrency)

    def recommend(self, user_id: str, k: int = 20, ranked: Sequence[Candidate] | None = None,
                  trace: bool = False) -> Recommendation:
        """The viewer's list; `ranked`: the first four stages' list when the caller already has it; `trace`:
        keep what the re-rank did in `rec.rerank` (`pymk why`)."""
        rec = Recommendation(viewer=user_id, candidates=[], rerank=RerankTrace() if trace else None)
        user = self.snap.index_of(user_id)
        start = time.perf_counter()
        if ranked is None:
            ranked = self.precomputed_for(user, rec)
        if ranked is None:
            ranked = self.ranked_or_fused(user, rec)
        final: list[Candidate] = []
        # refill: the hard rules run batch by batch down the ranked list, then over the fallback
        # sources, until k candidates survive or there are none left
        ahead = (newcomers_ahead(self.newcomers, user_id, self.snapshot_friends(user), k)
                 if self.newcomers is not None else [])
        for batch in self._batches(user, ranked, k * self.config.overfetch):
            final += self.expensive_filters(user_id, batch, rec, ahead)
            ahead = []
            if len(final) >= k or rec.removed["viewer_deactivated"]:  # a closed account is shown nothing
                break
        times = None
        if self.reranker is not None:
            final, times = self._reranked(user, final, k, rec)
        if self.newcomers is not None:
            final = with_newcomers(self.newcomers, self.state, user_id, final, k, rec,
                                   lambda: self.seen_by_id(user_id, times), self.seen_decay,
                                   (lambda friends, n: friends_of_new_friends(self.snap, user, friends, n))
                                   if self.config.new_friends else None,
                                   self.snap.meta.get("accounts_read_at"))
        rec.candidates = final[:k]
        rec.timings_ms["total"] = (time.perf_counter() - start) * 1000
        return rec

    def _reranked(self, user: int, final: list[Candidate], k: int, rec: Recommendation
                  ) -> tuple[list[Candidate], dict[int, int] | None]:
        """The re-rank (seen penalty, diversity caps, exploration) and the times seen it read. It orders and
        spreads a list the hard rules have already passed: when it fails, the list keeps its ranked order
        (`rec.skipped_sources["rerank"]` says so) and the request still answers."""
        times = None
        try:
            times = self.times_seen(user)
            trace = rec.rerank
            if trace is not None:
                trace.considered, trace.seen = [c.index for c in final], dict(times)
            out = self.reranker(final, k, times, trace.held_back if trace is not None else None)
            if trace is not None:
                trace.kept = [c.index for c in out]
            return out, times
        except Exception as exc:
            rec.failed("rerank", exc)
            log.error("re-rank failed for user %d: the list keeps its ranked order", user, exc_info=exc)
            return final, times if times is not None else {}   # unread: the newcomer slots weigh none

    def ranked_or_fused(self, user: int, rec: Recommendation, proposals: dict[str, Proposals] | None = None
                        ) -> Sequence[Candidate]:
        """`ranked` as a request runs it: the same proposals fused by reciprocal rank when the learned ranker
        fails. A broken model degrades one request's order (`rec.skipped_sources["ranker"]` says so), as a
        broken source degrades its candidates, and never fails the request. The batch job calls `ranked`
        itself: a list published under a ranker's version is always that ranker's order."""
        if self.ranker is rrf_rank:
            return self.ranked(user, rec, proposals)
        proposals = proposals if proposals is not None else self.proposals(user, rec)
        removed = Counter(rec.removed)
        try:
            return self.ranked(user, rec, proposals)
        except Exception as exc:
            rec.removed = removed   # what the failed attempt's cheap filters counted is counted again below
            rec.failed("ranker", exc)
            log.error("ranker failed for user %d: its list is ranked by reciprocal rank fusion", user, exc_info=exc)
            return self._merged_and_ranked(user, rec, proposals, rrf_rank)

    def precomputed_for(self, user: int, rec: Recommendation) -> Sequence[Candidate] | None:
        """The precomputed list of `user` (its version noted in `rec`), or None without one, or when its
        bytes do not read as a list (the user is ranked on request, with an error logged)."""
        try:
            ranked = self.precomputed.get(user) if self.precomputed is not None else None
        except (ValueError, TypeError, IndexError) as exc:   # orjson's decode error is a ValueError
            log.error("precomputed list of user %d in %s cannot be read, ranking it on request: %r", user,
                      self.precomputed.version, exc)
            return None
        if ranked is not None:
            rec.precomputed = self.precomputed.version
        return ranked

    def _batches(self, user: int, ranked: list[Candidate], size: int) -> Iterator[list[Candidate]]:
        """The ranked list in batches of `size`, then what the fallback sources add to it."""
        for i in range(0, len(ranked), size):
            yield ranked[i:i + size]
        seen = {c.index for c in ranked}
        for source in self.fallback:
            want = size + len(seen)
            while True:  # ask for more and more until the source runs dry
                got = source.generate(user, want)
                extra = [c for c in got if c.index not in seen]
                seen.update(c.index for c in extra)
                for i in range(0, len(extra), size):
                    yield extra[i:i + size]
                if len(got) < want:
                    break
                want *= 2

    def ranked(self, user: int, rec: Recommendation, proposals: dict[str, Proposals] | None = None
               ) -> Sequence[Candidate]:
        """The first four stages, also run ahead of time by the precompute job; `proposals`: the
        sources' output when the caller already ran them (`proposals`), so they run once.

        A ranker that ranks proposals as arrays (`rank_proposals`, the learned ranker) gets the
        sources' proposals and does merge, cheap filters and rank itself, with the batch job's code
        (its Candidates are built only for the head of the list a request reads)."""
        rank_proposals = getattr(self.ranker, "rank_proposals", None)
        if rank_proposals is not None:
            return rank_proposals(self, user, proposals if proposals is not None else self.proposals(user, rec), rec)
        return self._merged_and_ranked(user, rec, proposals, self.ranker)

    def _merged_and_ranked(self, user: int, rec: Recommendation, proposals: dict[str, Proposals] | None,
                           ranker: Ranker) -> Sequence[Candidate]:
        """Merge, cheap filters and `ranker` over Candidates (the sources run now when `proposals` is None)."""
        generated = (self.generate(user, rec) if proposals is None
                     else [to_candidates(name, self.snap, p) for name, p in proposals.items() if p.cand.size])
        kept = self.cheap_filters(user, self.merge(generated), rec)
        return ranker(self.snap.external_id(user), kept)

    def warm(self) -> None:
        """The first four stages once, for a user with a friend, and the head of its list built (the
        proofs' kernels too): the one-time work (compiled kernels loaded or compiled, per-snapshot caches
        built; seconds without a kernel cache) is not left to the first request."""
        _ = self.snap.id_hash
        with_friend = np.flatnonzero(self.snap.degree)
        if with_friend.size:
            _ = self.ranked(int(with_friend[0]), Recommendation(viewer="warm-up", candidates=[]))[:20]

    def generate(self, user: int, rec: Recommendation) -> list[list[Candidate]]:
        """Every source's candidates (a source over its budget or failing is skipped, with the reason)."""
        done = self.runner.run(lambda s: s.generate(user, self.config.per_source_k), user, rec)
        return [got for got in done.values() if got is not None]

    def proposals(self, user: int, rec: Recommendation) -> dict[str, Proposals]:
        """Every source's proposals as arrays (a skipped source proposes nothing)."""
        one = np.array([user])
        done = self.runner.run(lambda s: propose(s, one, self.config.per_source_k), user, rec)
        return {name: got if got is not None else empty_proposals() for name, got in done.items()}

    @staticmethod
    def merge(generated: list[list[Candidate]]) -> list[Candidate]:
        by_user: dict[int, Candidate] = {}
        for batch in generated:
            for c in batch:
                by_user[c.index] = by_user[c.index].merged(c) if c.index in by_user else c
        return list(by_user.values())

    def cheap_filters(self, user: int, candidates: list[Candidate], rec: Recommendation) -> list[Candidate]:
        """What the snapshot alone can rule out: the viewer, friends as of the snapshot, opt-outs."""
        friends = set(self.snap.neighbors(user).tolist())
        kept = []
        for c in candidates:
            reason = ("self" if c.index == user else "already_friends" if c.index in friends
                      else "opted_out" if self.snap.opted_out[c.index] else None)
            if reason:
                rec.removed[reason] += 1
            else:
                kept.append(c)
        return kept

    def expensive_filters(self, user_id: str, candidates: list[Candidate], rec: Recommendation,
                          also: Sequence[str] = ()) -> list[Candidate]:
        """Every hard rule, on fresh state, for the few candidates about to be returned; the read covers the
        ids `also` names too (the newcomer stage's, kept in `rec.rules` with the first read)."""
        start = time.perf_counter()
        ids = [c.user_id for c in candidates] + list(also)
        ctx = FilterContext(user_id, *self.state.rules(user_id, ids, self.snap.meta.get("accounts_read_at")),
                            read_for=frozenset(ids))
        if ctx.state.deleted:   # deleted after the snapshot was made: unknown from now on, as for the store
            raise UnknownUserError(user_id)
        if ctx.state.replaced:  # deleted and created again since: the snapshot's record is someone else's
            raise AccountReplacedError(user_id)
        if self.friends_changed(user_id, ctx.state.friends):
            raise FriendsChangedError(user_id)
        if rec.rules is None:
            rec.rules = ctx
        kept = passing_rules(self.state, candidates, ctx, rec.removed)
        rec.timings_ms["filters"] = (time.perf_counter() - start) * 1000
        return kept

    def friends_changed(self, user_id: str, friends: frozenset[str]) -> bool:
        """Fewer than `fresh_below_friends` friends in the snapshot, and a friend now that it lacks: its two-hop
        sources saw (almost) no one, where the graph store sees the friends of the new friends."""
        user = self.snap.index_of(user_id)
        if self.snap.indptr[user + 1] - self.snap.indptr[user] >= self.config.fresh_below_friends:
            return False
        return bool(friends - set(self.snapshot_friends(user)))

    def snapshot_friends(self, user: int) -> list[str]:
        """The ids of `user`'s friends as the snapshot holds them."""
        ids = self.snap.id_strings
        return [ids[i] for i in self.snap.neighbors(user).tolist()]

    def close(self) -> None:
        self.runner.close()
