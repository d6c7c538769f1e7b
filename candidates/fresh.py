"""Friends-of-friends straight from the graph store (Cypher), through the same hard rules as every path.

Used for users newer than the served snapshot (the API, with the snapshot's cold-start and popularity
sources beside it) and by `pymk suggest`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from candidates.filters import FilterContext, FilterResult, StoreStateReader, apply_rules, current_proof
from candidates.fusion import RRF_K, rrf_rank
from candidates.pipeline import PER_SOURCE_K
from candidates.types import Candidate, Recommendation
from graph.snapshot import Snapshot
from graph.snapshot.build import in_snapshot_order
from graph.store import GraphStore
from pymk.errors import UnknownUserError

log = logging.getLogger(__name__)


def fresh_fof(store: GraphStore, user_id: str, k: int, max_friend_degree: int = 5000,
              snap: Snapshot | None = None, sources: Sequence[object] = (),
              seen: Mapping[str, int] | None = None, seen_decay: float = 1.0) -> Recommendation:
    """Up to k two-hop candidates by mutual friends, every hard rule applied on the store's state.

    With a snapshot, a viewer served off it (signed up since, or with almost no friends there and new
    ones now: FriendsChangedError) also gets what the `sources` that serve a profile propose
    (`generate_for_profile`: cold start from the profile the store holds, popularity), fused with the
    two-hop candidates by reciprocal rank, so a new account with no friend is not left with an empty
    list until the next snapshot. Those candidates are the snapshot's: an id deleted and created again
    since it read the accounts is left out (someone else now). `seen`: how often each candidate was shown to
    the viewer, by id; a candidate's fused score is weighed by `seen_decay` to that power, as the re-rank
    weighs a snapshot viewer's, so this list too brings new faces each time it is opened.
    """
    rec = Recommendation(viewer=user_id, candidates=[])
    ranked, ctx = fresh_ranked(store, user_id, k, max_friend_degree, snap, sources, rec)
    if seen:
        ranked = seen_penalized(ranked, seen, seen_decay)
    rec.candidates = fresh_shown(ranked, ctx, k, rec.removed)[0]
    return rec


def seen_penalized(ranked: list[Candidate], seen: Mapping[str, int], decay: float) -> list[Candidate]:
    """`ranked` by fused score (its position's reciprocal rank where it has none) x `decay` ** times seen."""
    keys = [c.score("rrf", 1.0 / (RRF_K + i + 1)) * decay ** seen.get(c.user_id, 0) for i, c in enumerate(ranked)]
    return [ranked[i] for i in sorted(range(len(ranked)), key=lambda i: -keys[i])]


def fresh_shown(ranked: list[Candidate], ctx: FilterContext, k: int, counts: Counter | None = None
                ) -> tuple[list[Candidate], FilterResult]:
    """The first k of `ranked` that pass the hard rules, their proofs current; and the rules' result."""
    result = apply_rules(ranked, ctx, counts)
    return current_proof(result.kept[:k], ctx.state.friends, ctx.state.unnamed), result


def fresh_ranked(store: GraphStore, user_id: str, k: int, max_friend_degree: int = 5000,
                 snap: Snapshot | None = None, sources: Sequence[object] = (), rec: Recommendation | None = None
                 ) -> tuple[list[Candidate], FilterContext]:
    """fresh_fof's candidates in their order before the hard rules, and the rules' context. Every source
    proposes as many as the pipeline's do (k if more): for every k up to that the fused order is the same.
    Two round trips: the viewer (profile, friends, friends of friends), then the hard rules of every
    candidate. With a snapshot, an id it holds that was deleted and created again since it read the
    accounts is left out, whichever source proposed it (its features there are the former account's).
    UnknownUserError for an id the store does not hold (the first read says so: no read of its own). A
    snapshot source that fails proposes nothing, as in the pipeline, and is named in `rec` (when given)."""
    n = max(PER_SOURCE_K, k)
    view = store.fresh_view(user_id, limit=n, max_friend_degree=max_friend_degree)
    if view.profile is None:
        raise UnknownUserError(user_id)
    cands = [Candidate.of(r.candidate, -1, "fof", r.mutual_count,
                          {"mutual_count": r.mutual_count, "adamic_adar": r.adamic_adar,
                           "mutual_ids": in_snapshot_order(list(r.mutual_ids))[:20]}) for r in view.fof]
    profiled = [s for s in sources if hasattr(s, "generate_for_profile")]
    if snap is not None and profiled:
        friends = np.array([snap.index_of(f) for f in view.friends if snap.has_user(f)], dtype=np.int64)
        more = [c for s in profiled for c in _for_profile(s, view.profile, friends, n, rec)]
        if more:
            cands = rrf_rank(user_id, _merged(snap, cands, more))
    since = snap.meta.get("accounts_read_at") if snap is not None else None
    state, unsuggestable = StoreStateReader(store).rules(user_id, [c.user_id for c in cands], since)
    return cands, FilterContext(user_id, state, unsuggestable)


def _for_profile(source, profile, friends: np.ndarray, n: int, rec: Recommendation | None) -> list[Candidate]:
    try:
        return source.generate_for_profile(profile, friends, n)
    except Exception as exc:   # a broken source degrades the answer, never fails it (CandidatePipeline)
        log.error("source %s failed for %r", source.name, profile.id, exc_info=exc)
        if rec is not None:
            rec.failed(source.name, exc)
        return []


def _merged(snap: Snapshot, fof: list[Candidate], more: list[Candidate]) -> list[Candidate]:
    """One candidate per user: the store's two-hop ones indexed as the snapshot holds them (a user it does
    not hold gets a negative index of its own), merged with the snapshot sources' for the same user."""
    out: dict[str, Candidate] = {}
    for i, c in enumerate(fof):
        index = snap.index_of(c.user_id) if snap.has_user(c.user_id) else -1 - i
        out[c.user_id] = replace(c, index=index)
    for c in more:
        out[c.user_id] = out[c.user_id].merged(c) if c.user_id in out else c
    return list(out.values())
