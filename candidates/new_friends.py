"""Friends of the viewer's new friends: the people a tie made since the snapshot brings two steps away.

The snapshot's sources rank the viewer's friends of friends as the snapshot holds its friends, so until the
next snapshot a tie made today proposes no one: just after connecting with someone (when "people you may
know" matters most) their friends are missing. The viewer's friends now come with the hard rules' read from
the graph store; a friend the snapshot does not list as one is new, and its friends (as the snapshot holds
them) are proposed, most mutual friends now first, into the list's fresh-tie slots beside the newcomers
(candidates/newcomers.py `with_newcomers`), through every hard rule on fresh state; one the list already
holds keeps its place, its proof now naming the new friend.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from candidates.types import Candidate
from graph.snapshot import Snapshot
from graph.snapshot.build import in_snapshot_order
from graph.snapshot.csr import pair_ties

SOURCE = "new_friends"
MAX_NEW = 50        # new friends read at most (the first by id): a viewer who befriended hundreds since
MAX_NAMED = 20      # mutual friends a proof names, as the friends-of-friends source's do
SHORTLIST = 4       # candidates scored exactly per one asked for (by new friends shared, then by index)


def friends_of_new_friends(snap: Snapshot, user: int, friends_now: frozenset[str], limit: int) -> list[Candidate]:
    """Up to `limit` snapshot users tied to friends `user` (a snapshot index) made since the snapshot, most
    mutual friends now first (equal counts in a pseudo-random order of the pair), each with a
    friends-of-friends proof naming them (the new friends first)."""
    if limit <= 0:
        return []
    index = snap.build_index()
    now = np.sort(np.fromiter((index[f] for f in friends_now if f in index), np.int64))
    new = now[~np.isin(now, snap.neighbors(user))][:MAX_NEW]
    if not new.size:
        return []
    reach = np.concatenate([snap.neighbors(int(f)) for f in new]).astype(np.int64)
    cand, shared = np.unique(reach, return_counts=True)
    keep = (cand != user) & ~np.isin(cand, now) & ~snap.opted_out[cand]
    cand, shared = cand[keep], shared[keep]
    if not cand.size:
        return []
    # equal counts in a pseudo-random order of the (viewer, candidate) pair, not by index (ids often follow
    # sign-up order: the oldest accounts would take every tie)
    tie = pair_ties(user, cand, snap.num_users)
    keep = np.lexsort((tie, -shared))[:SHORTLIST * limit]
    short, tie = cand[keep], tie[keep]
    mutual = [np.intersect1d(snap.neighbors(int(c)), now, assume_unique=False) for c in short]
    order = sorted(range(short.size), key=lambda i: (-mutual[i].size, int(tie[i])))[:limit]
    ids = snap.id_strings
    out = []
    for i in order:
        c, m = int(short[i]), mutual[i]
        via = in_snapshot_order(ids[f] for f in m[np.isin(m, new)].tolist())
        names = via + [x for x in in_snapshot_order(ids[f] for f in m.tolist()) if x not in via]
        out.append(Candidate(ids[c], c, (SOURCE,), MappingProxyType({SOURCE: float(m.size)}),
                             MappingProxyType({"fof": {"mutual_count": int(m.size), "mutual_ids": names[:MAX_NAMED]},
                                               SOURCE: {"via": via[:MAX_NAMED]}})))
    return out
