"""Hard rules no model may break. Each filter returns what it kept and what it removed, and why.

State comes from a `StateReader`: fresh from the graph store when serving (a block made a second
ago counts), or derived from the snapshot for offline evaluation.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

import numpy as np

from candidates.types import Candidate
from graph.records import UserState
from graph.snapshot import Snapshot
from graph.snapshot.format import EVENT_CODE, STATUS_CODE
from graph.store import GraphStore

log = logging.getLogger(__name__)
DECLINE_COOLDOWN_S = 90 * 86_400.0


class StateReader(Protocol):
    def viewer_state(self, user_id: str) -> UserState: ...
    def opted_out(self, user_ids: list[str]) -> set[str]: ...
    def rules(self, user_id: str, candidate_ids: list[str], accounts_since: float | None = None
              ) -> tuple[UserState, set[str]]:
        """The viewer's state and the unsuggestable among the candidates (see GraphStore.viewer_rules)."""
        ...

    def ties_among(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """The pairs that are friends now (see GraphStore.ties_among)."""
        ...


class StoreStateReader:
    """Fresh state from the system of record (Neo4j)."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store

    def viewer_state(self, user_id: str) -> UserState:
        return self.store.user_state(user_id)

    def opted_out(self, user_ids: list[str]) -> set[str]:
        return self.store.opted_out_among(user_ids)

    def rules(self, user_id: str, candidate_ids: list[str], accounts_since: float | None = None
              ) -> tuple[UserState, set[str]]:
        return self.store.viewer_rules(user_id, candidate_ids, accounts_since)

    def ties_among(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return self.store.ties_among(pairs)


class SnapshotStateReader:
    """State as of the snapshot (offline evaluation, or when the store is unreachable)."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def viewer_state(self, user_id: str) -> UserState:
        s = self.snap
        i = s.index_of(user_id)
        ext = s.external_id
        req = s.requests
        mine = (req["src"] == i) | (req["dst"] == i)
        other = np.where(req["src"][mine] == i, req["dst"][mine], req["src"][mine])
        status = req["status"][mine]
        pending = {ext(int(o)) for o in other[status == STATUS_CODE["pending"]]}
        declined = {ext(int(o)): float(t) for o, t in zip(other[status == STATUS_CODE["declined"]],
                                                           req["responded_at"][mine][status == STATUS_CODE["declined"]],
                                                           strict=True)}
        blk = s.blocks
        bmask = (blk["src"] == i) | (blk["dst"] == i)
        blocked = {ext(int(o)) for o in np.where(blk["src"][bmask] == i, blk["dst"][bmask], blk["src"][bmask])}
        ev = s.events
        dismissed = {ext(int(d)) for d in ev["dst"][(ev["src"] == i) & (ev["type"] == EVENT_CODE["dismiss"])]}
        friends = {ext(int(f)) for f in s.neighbors(i)}
        return UserState(user_id, frozenset(friends), frozenset(pending), frozenset(blocked), declined,
                         frozenset(dismissed))

    def opted_out(self, user_ids: list[str]) -> set[str]:
        return {u for u in user_ids if self.snap.has_user(u) and self.snap.opted_out[self.snap.index_of(u)]}

    def rules(self, user_id: str, candidate_ids: list[str], accounts_since: float | None = None
              ) -> tuple[UserState, set[str]]:
        return self.viewer_state(user_id), self.opted_out(candidate_ids)   # the snapshot's own accounts

    def ties_among(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        s = self.snap
        return {(a, b) for a, b in pairs if s.has_user(a) and s.has_user(b)
                and s.index_of(b) in s.neighbors(s.index_of(a))}


@dataclass
class FilterContext:
    viewer: str
    state: UserState
    opted_out: set[str]
    now: float = field(default_factory=time.time)
    decline_cooldown_s: float = DECLINE_COOLDOWN_S
    read_for: frozenset[str] = frozenset()   # the candidates the read of `state` and `opted_out` covered


@dataclass(frozen=True)
class FilterResult:
    kept: list[Candidate]
    removed: list[tuple[Candidate, str]]


def _rule(name: str, reason, ctx: FilterContext, candidates: list[Candidate]) -> FilterResult:
    kept, removed = [], []
    for c in candidates:
        why = reason(c, ctx)
        if why:
            removed.append((c, f"{name}: {why}"))
        else:
            kept.append(c)
    return FilterResult(kept, removed)


RULES = {
    "viewer_deactivated": lambda c, ctx: "the viewer's account is deactivated" if ctx.state.deactivated else None,
    "self": lambda c, ctx: "is the viewer" if c.user_id == ctx.viewer else None,
    "already_friends": lambda c, ctx: "already friends" if c.user_id in ctx.state.friends else None,
    "pending_request": lambda c, ctx: "request pending" if c.user_id in ctx.state.pending else None,
    "blocked": lambda c, ctx: "blocked" if c.user_id in ctx.state.blocked else None,
    "opted_out": lambda c, ctx: ("opted out of suggestions, deactivated or deleted" if c.user_id in ctx.opted_out
                                 else None),
    "declined": lambda c, ctx: ("declined within cool-down"
                                if ctx.now - ctx.state.declined.get(c.user_id, -np.inf) < ctx.decline_cooldown_s
                                else None),
    "dismissed": lambda c, ctx: "dismissed by the viewer" if c.user_id in ctx.state.dismissed else None,
}


def current_proof(candidates: list[Candidate], friends: frozenset[str], unnamed: frozenset[str] = frozenset(),
                  ties_ended: frozenset[str] = frozenset(), tied: set[tuple[str, str]] | None = None
                  ) -> list[Candidate]:
    """The mutual friends a proof names, kept only while they are still the viewer's friends on fresh state.

    The snapshot's two-hop proof can name someone whose tie with the viewer ended since (a block either
    way, an unfriending, a deleted account): that name is not shown, and the count drops with it. A friend
    in `unnamed` (opted out or deactivated) still counts but is never named. A candidate in `ties_ended`
    ended a tie since the snapshot, maybe with a friend the proof names (an unfriending, a block): its proof
    keeps the names whose (candidate, friend) pair is in `tied` (the ties that stand now, read for those
    pairs; `proof_ties`) and counts only them; without `tied` it names no mutual friend and counts none.
    """
    out = []
    for c in candidates:
        fof = c.proof.get("fof")
        if fof and c.user_id in ties_ended:
            names = [m for m in fof.get("mutual_ids", ()) if tied is not None and (c.user_id, m) in tied]
            proof = {k: v for k, v in c.proof.items() if k != "fof"}
            fof = {**fof, "mutual_count": len(names), "mutual_ids": names} if names else None
            c = replace(c, proof=MappingProxyType({**proof, **({"fof": fof} if fof else {})}))
        names = fof.get("mutual_ids", ()) if fof else ()
        gone = sum(m not in friends for m in names)
        if gone or any(m in unnamed for m in names):
            left = int(fof["mutual_count"]) - gone
            proof = dict(c.proof)
            if left > 0:
                proof["fof"] = {**fof, "mutual_count": left,
                                "mutual_ids": [m for m in names if m in friends and m not in unnamed]}
            else:
                del proof["fof"]
            c = replace(c, proof=MappingProxyType(proof))
        out.append(c)
    return out


def apply_rules(candidates: list[Candidate], ctx: FilterContext, counts: Counter | None = None
                ) -> FilterResult:
    """Run every rule in order; `counts` (if given) is incremented per removal reason."""
    removed: list[tuple[Candidate, str]] = []
    for name, reason in RULES.items():
        result = _rule(name, reason, ctx, candidates)
        candidates = result.kept
        removed.extend(result.removed)
        if counts is not None:
            counts[name] += len(result.removed)
    return FilterResult(candidates, removed)


def passing_rules(state: StateReader, candidates: list[Candidate], ctx: FilterContext,
                  counts: Counter | None = None) -> list[Candidate]:
    """The candidates that pass every hard rule on `ctx`, their proofs made current (`current_proof`, with
    the ties read for the candidates that ended one since the snapshot: `proof_ties`)."""
    kept = apply_rules(candidates, ctx, counts).kept
    tied = proof_ties(state, kept, ctx.state.friends, ctx.state.ties_ended)
    return current_proof(kept, ctx.state.friends, ctx.state.unnamed, ctx.state.ties_ended, tied)


def proof_ties(state: StateReader, candidates: list[Candidate], friends: frozenset[str],
               ties_ended: frozenset[str]) -> set[tuple[str, str]]:
    """For the candidates that ended a tie since the snapshot, which of the mutual friends their proofs
    name (and the viewer still has) they are still friends with: one read, only when there are any."""
    pairs = [(c.user_id, m) for c in candidates if c.user_id in ties_ended and "fof" in c.proof
             for m in c.proof["fof"].get("mutual_ids", ()) if m in friends]
    return state.ties_among(pairs) if pairs else set()
