"""Why one user is, or is not, in a viewer's suggestions: each stage's verdict for that candidate.

For operators answering "why does A (not) see B?": the same pipeline and fresh state as serving,
run stage by stage for one pair (sources -> merge -> cheap filters -> rank -> hard rules -> list).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from candidates.filters import FilterContext, apply_rules
from candidates.fresh import fresh_ranked, fresh_shown, seen_penalized
from candidates.fusion import fusion_ranks
from candidates.new_friends import SOURCE as NEW_FRIENDS
from candidates.newcomers import SOURCE as NEWCOMERS
from candidates.pipeline import CandidatePipeline
from candidates.reasons import reasons
from candidates.types import Candidate, Recommendation, RerankTrace
from graph.store import GraphStore
from pymk.errors import UnknownUserError

FRESH_PATH = ("the viewer is newer than the served snapshot (or its id was created again since, or it had "
              "almost no friends there and has made new ones): friends of friends from the graph store, fused "
              "with the snapshot's cold start and popularity")

# A stage that failed on the request, and what the list did without it (CandidatePipeline.recommend)
STAGE_FAILED = {"ranker": "ranker {}: ranked by reciprocal rank fusion",
                "rerank": "re-rank {}: the list keeps its ranked order"}

# What the re-rank's notes mean (ranker/rerank.py `Reranker.__call__`)
HELD_BACK = {
    "source_share": "its first source already filled its share of the list (max_source_share)",
    "city_share": "its city already filled its share of the list (max_group_share)",
    "popular": "the list already held its most popular users (max_popular of the top popular_quantile by degree)",
    "explore": "exploration took a slot above it, and the list's last fell off",
}


@dataclass
class Verdict:
    viewer: str
    candidate: str
    proposed_by: dict[str, int] = field(default_factory=dict)   # source -> the candidate's rank in its list
    removed: str | None = None        # the stage and reason that took it out, if one did
    ranked_at: int | None = None      # position in the ranked list (before the hard rules), 0-based
    shown_at: int | None = None       # position in the list the viewer gets, 0-based
    proof: dict = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)   # source -> why it proposed nothing this time
    reranked: list[str] = field(default_factory=list)       # what the re-rank did to it (seen penalty, caps)

    @property
    def via_new_friends(self) -> list[str]:
        """The viewer's new friends through which the fresh-tie stage placed it (none: it did not)."""
        return list(self.proof.get(NEW_FRIENDS, {}).get("via", []))

    def lines(self) -> list[str]:
        out = [f"{self.candidate} for {self.viewer}:"]
        proposed = [f"{s} (#{r + 1})" for s, r in self.proposed_by.items()]
        if self.via_new_friends:
            proposed.append(f"{NEW_FRIENDS} (a friend of the viewer's new friends {', '.join(self.via_new_friends)}, "
                            "in a fresh-tie slot)")
        out.append("  proposed by " + (", ".join(proposed) or "no source (not within reach of any source's list)"))
        out += ["  " + STAGE_FAILED.get(name, f"source {name} skipped: {{}}").format(reason)
                for name, reason in self.skipped.items()]
        if self.ranked_at is not None:
            out.append(f"  ranked #{self.ranked_at + 1} before the hard rules")
        out += [f"  re-rank: {note}" for note in self.reranked]
        if self.removed:
            out.append(f"  removed: {self.removed}")
        if self.shown_at is None:
            return [*out, "  not shown"]
        shown = Candidate(self.candidate, -1, tuple(self.proof), proof=MappingProxyType(self.proof))
        return [*out, f"  shown at #{self.shown_at + 1}: " + "; ".join(reasons(shown))]   # what the viewer reads


def why(pipeline: CandidatePipeline, viewer: str, candidate: str, k: int = 20, store: GraphStore | None = None
        ) -> Verdict:
    """Every stage's verdict on `candidate` for `viewer`. A viewer the snapshot lacks (or whose id was created
    again since) is served as the API serves it (`why_fresh`) when `store` is given; else UnknownUserError."""
    snap = pipeline.snap
    if not snap.has_user(viewer):
        if store is None:
            raise UnknownUserError(viewer)
        return why_fresh(pipeline, store, viewer, candidate, k)   # UnknownUserError if the store lacks it too
    verdict = Verdict(viewer, candidate)
    state, opted = pipeline.state.rules(viewer, [candidate], snap.meta.get("accounts_read_at"))
    # served off the snapshot, as the API serves a user newer than it: a new account under a former one's
    # id, or one with almost no friends there and new ones now
    off = ("the viewer's account was deleted and created again since the served snapshot" if state.replaced
           else "the viewer had almost no friends in the served snapshot and has made new ones since"
           if pipeline.friends_changed(viewer, state.friends) else None)
    if off is not None:
        if store is not None:
            return why_fresh(pipeline, store, viewer, candidate, k)
        verdict.removed = f"{off}: it is served as a user newer than the snapshot"
        return verdict
    if not snap.has_user(candidate):
        return why_newcomer(pipeline, verdict, state.friends, k)
    user, cand = snap.index_of(viewer), snap.index_of(candidate)
    rec = Recommendation(viewer, [])
    # the sources run once, as serving runs them (budgets too): every stage below reads the same lists
    proposals = pipeline.proposals(user, rec)
    for name, got in proposals.items():
        at = np.flatnonzero(got.cand == cand)
        if at.size:
            verdict.proposed_by[name] = int(at[0])
    verdict.skipped = dict(rec.skipped_sources)
    one = Candidate(candidate, cand, tuple(verdict.proposed_by) or ("none",))
    if not pipeline.cheap_filters(user, [one], rec):
        verdict.removed = f"cheap filters (snapshot): {next(iter(rec.removed))}"
    # the list the viewer's request reads: the precomputed one where serving has it
    ranked_list = pipeline.precomputed_for(user, rec)
    if ranked_list is None:   # as a request ranks it (fusion order if the learned ranker fails)
        ranking = Recommendation(viewer, [])
        ranked_list = pipeline.ranked_or_fused(user, ranking, proposals)
        verdict.skipped.update(ranking.skipped_sources)
    ranked = [c.index for c in ranked_list]
    verdict.ranked_at = ranked.index(cand) if cand in ranked else None
    result = apply_rules([one], FilterContext(viewer, state, opted))
    if result.removed and verdict.removed is None:
        verdict.removed = f"hard rules (fresh state): {result.removed[0][1]}"
    served = pipeline.recommend(viewer, k, ranked=ranked_list, trace=True)
    verdict.skipped.update((name, why) for name, why in served.skipped_sources.items() if name in STAGE_FAILED)
    final = served.candidates
    shown = [c.user_id for c in final]
    if served.rerank is not None:
        verdict.reranked = rerank_notes(served.rerank, cand, pipeline.seen_decay)
    if candidate in shown:
        verdict.shown_at = shown.index(candidate)
        verdict.proof = {s: p for s, p in final[verdict.shown_at].proof.items() if s != "ranker"}
        if final[verdict.shown_at].score("explore"):
            verdict.reranked.append("shown in an exploration slot (a random pick from further down the list)")
    elif verdict.removed is None:
        verdict.removed = _not_shown(served.rerank, cand, k, bool(verdict.proposed_by or verdict.ranked_at is not None))
    return verdict


def rerank_notes(trace: RerankTrace, cand: int, decay: float) -> list[str]:
    """What the re-rank did to `cand` (a snapshot index), as `pymk why` says it; nothing when it did not reach it."""
    if cand not in trace.considered:
        return []
    out = _seen_note(trace.seen.get(cand, 0), decay)
    if (held := trace.held_back.get(cand)) is not None:
        out.append(f"held back: {HELD_BACK[held]}")
    return out


def _seen_note(n: int, decay: float) -> list[str]:
    return [f"shown to the viewer {n} time{'s' if n > 1 else ''} without an action: its score x{decay ** n:.3g} "
            f"(the seen penalty, x{decay:g} a time)"] if n else []


def _not_shown(trace: RerankTrace | None, cand: int, k: int, proposed: bool) -> str:
    """Why a candidate that passed every rule (or that the rules' batches never reached) is not in the first k."""
    if trace is not None and cand in trace.kept[:k]:
        return f"pushed past the first {k} by the fresh-tie slots (newcomers, friends of new friends)"
    if trace is not None and cand in trace.considered[:k]:   # within the first k before the re-rank
        return f"re-ranked below the first {k} (the re-rank's lines above)"
    return f"ranked below the first {k} that passed the hard rules" if proposed else "no source proposed it"


def why_fresh(pipeline: CandidatePipeline, store: GraphStore, viewer: str, candidate: str, k: int = 20) -> Verdict:
    """The verdict for a viewer served off the snapshot (candidates/fresh.py): friends of friends from the
    store, fused with the snapshot's cold start and popularity, under the hard rules on fresh state."""
    verdict = Verdict(viewer, candidate, skipped={"snapshot": FRESH_PATH})
    rec = Recommendation(viewer, [])
    ranked, ctx = fresh_ranked(store, viewer, k, snap=pipeline.snap, sources=pipeline.sources, rec=rec)
    verdict.skipped.update(rec.skipped_sources)   # a snapshot source that failed for the profile
    mine = next((c for c in ranked if c.user_id == candidate), None)
    if mine is None:
        verdict.removed = "no source proposed it"
        return verdict
    for source in mine.sources:   # its rank in each list, as the fusion read them
        verdict.proposed_by[source] = int(fusion_ranks(ranked, source)[ranked.index(mine)])
    verdict.ranked_at = ranked.index(mine)
    try:
        seen = pipeline.seen_by_id(viewer)
    except Exception as exc:   # as the request degrades: the list goes without the seen penalty
        seen = {}
        rec.failed("rerank", exc)
        verdict.skipped.update(rec.skipped_sources)
    verdict.reranked = _seen_note(seen.get(candidate, 0), pipeline.seen_decay)
    shown, result = fresh_shown(seen_penalized(ranked, seen, pipeline.seen_decay), ctx, k)
    gone = next((why for c, why in result.removed if c.user_id == candidate), None)
    at = next((i for i, c in enumerate(shown) if c.user_id == candidate), None)
    if gone is not None:
        verdict.removed = f"hard rules (fresh state): {gone}"
    elif at is None:
        passed = {c.user_id for c in result.kept}   # where it stood among them without the seen penalty
        plain = [c.user_id for c in ranked if c.user_id in passed][:k]
        verdict.removed = (f"re-ranked below the first {k} (the re-rank's lines above)" if candidate in plain
                           else f"ranked below the first {k} that passed the hard rules")
    else:
        verdict.shown_at, verdict.proof = at, dict(shown[at].proof)
    return verdict


def why_newcomer(pipeline: CandidatePipeline, verdict: Verdict, friends: frozenset[str], k: int) -> Verdict:
    """The verdict on a candidate the snapshot lacks: only the newcomer stage can propose it (an account
    that entered the store since, befriended by the viewer's friends; candidates/newcomers.py)."""
    viewer, candidate, index = verdict.viewer, verdict.candidate, pipeline.newcomers
    if index is None:
        verdict.removed = "not in the served snapshot (added since it was made, or unknown)"
        return verdict
    mine = next(((i, c) for i, c in enumerate(index.near(viewer, friends, 1_000)) if c.user_id == candidate), None)
    if mine is None:
        verdict.removed = ("not in the served snapshot, and not a newcomer befriended by the viewer's friends "
                           "(the newcomer index's read of " + str(index.read_at) + ")")
        return verdict
    verdict.proposed_by[NEWCOMERS] = mine[0]
    result = apply_rules([mine[1]], FilterContext(viewer, *pipeline.state.rules(viewer, [candidate], index.read_at)))
    final = pipeline.recommend(viewer, k).candidates
    at = next((i for i, c in enumerate(final) if c.user_id == candidate), None)
    if result.removed:
        verdict.removed = f"hard rules (fresh state): {result.removed[0][1]}"
    elif at is None:
        verdict.removed = (f"newcomer #{mine[0] + 1}: below those in the {len(index.config.slots)} newcomer slots "
                           f"{index.config.slots} (or slots past the first {k})")
    else:
        verdict.shown_at, verdict.proof = at, dict(final[at].proof)
    return verdict
