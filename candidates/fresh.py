"""Friends-of-friends straight from the graph store (Cypher), through the same hard rules as every path.

Used for users newer than the served snapshot (the API) and by `pymk suggest`.
"""

from __future__ import annotations

from candidates.filters import FilterContext, StoreStateReader, apply_rules, current_proof
from candidates.types import Candidate, Recommendation
from graph.snapshot.build import id_array
from graph.store import GraphStore


def in_snapshot_order(ids: list[str]) -> list[str]:
    """Ids in the order a snapshot holds them (`id_array`: by value when every one is a canonical
    integer, else as strings), so a proof names the same mutual friends first on both paths."""
    return [str(x) for x in id_array(ids)]


def fresh_fof(store: GraphStore, user_id: str, k: int, max_friend_degree: int = 5000,
              overfetch: int = 5) -> Recommendation:
    """Up to k two-hop candidates by mutual friends, every hard rule applied on the store's state."""
    rows = store.friends_of_friends(user_id, limit=k * overfetch, max_friend_degree=max_friend_degree)
    cands = [Candidate.of(r.candidate, -1, "fof", r.mutual_count,
                          {"mutual_count": r.mutual_count, "adamic_adar": r.adamic_adar,
                           "mutual_ids": in_snapshot_order(list(r.mutual_ids))[:20]}) for r in rows]
    rec = Recommendation(viewer=user_id, candidates=[])
    ctx = FilterContext(user_id, *StoreStateReader(store).rules(user_id, [c.user_id for c in cands]))
    rec.candidates = current_proof(apply_rules(cands, ctx, rec.removed).kept[:k], ctx.state.friends, ctx.state.unnamed)
    return rec
