"""Why one user is, or is not, in a viewer's suggestions: each stage's verdict for that candidate.

For operators answering "why does A (not) see B?": the same pipeline and fresh state as serving,
run stage by stage for one pair (sources -> merge -> cheap filters -> rank -> hard rules -> list).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from candidates.filters import FilterContext, apply_rules
from candidates.pipeline import CandidatePipeline
from candidates.types import Candidate, Recommendation
from pymk.errors import UnknownUserError


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

    def lines(self) -> list[str]:
        out = [f"{self.candidate} for {self.viewer}:"]
        out.append("  proposed by " + (", ".join(f"{s} (#{r + 1})" for s, r in self.proposed_by.items())
                                       or "no source (not within reach of any source's list)"))
        out += [f"  source {name} skipped: {reason}" for name, reason in self.skipped.items()]
        if self.ranked_at is not None:
            out.append(f"  ranked #{self.ranked_at + 1} before the hard rules")
        if self.removed:
            out.append(f"  removed: {self.removed}")
        out.append(f"  shown at #{self.shown_at + 1}" if self.shown_at is not None else "  not shown")
        return out


def why(pipeline: CandidatePipeline, viewer: str, candidate: str, k: int = 20) -> Verdict:
    """Every stage's verdict on `candidate` for `viewer`; UnknownUserError for a viewer the snapshot lacks."""
    snap = pipeline.snap
    if not snap.has_user(viewer):
        raise UnknownUserError(viewer)
    verdict = Verdict(viewer, candidate)
    if not snap.has_user(candidate):
        verdict.removed = "not in the served snapshot (created since it was made, or unknown)"
        return verdict
    state, opted = pipeline.state.rules(viewer, [candidate], snap.meta.get("accounts_read_at"))
    if state.replaced:
        verdict.removed = ("the viewer's account was deleted and created again since the served snapshot: its "
                           "suggestions come from the graph store's friends of friends, not from these stages")
        return verdict
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
    if ranked_list is None:
        ranked_list = pipeline.ranked(user, Recommendation(viewer, []), proposals)
    ranked = [c.index for c in ranked_list]
    verdict.ranked_at = ranked.index(cand) if cand in ranked else None
    result = apply_rules([one], FilterContext(viewer, state, opted))
    if result.removed and verdict.removed is None:
        verdict.removed = f"hard rules (fresh state): {result.removed[0][1]}"
    final = pipeline.recommend(viewer, k, ranked=ranked_list).candidates
    shown = [c.user_id for c in final]
    if candidate in shown:
        verdict.shown_at = shown.index(candidate)
        verdict.proof = {s: p for s, p in final[verdict.shown_at].proof.items() if s != "ranker"}
    elif verdict.removed is None:
        verdict.removed = (f"ranked below the first {k} that passed the hard rules" if verdict.proposed_by
                           else "no source proposed it")
    return verdict
