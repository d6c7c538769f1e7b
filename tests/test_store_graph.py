"""The graph store contract (the in-memory fake and the real Neo4j alike): friendships, friends of
friends and the fresh view, ties that end."""

from __future__ import annotations

import math
import time

import numpy as np

from graph.records import Event, FreshView, Friendship, UserRecord
from graph.tiebreak import id_hashes, tie_keys


def two_cliques(p: str) -> list[Friendship]:
    """Cliques {a0..a3} and {b0..b3} joined by the bridge a0-b0."""
    edges = []
    for side in "ab":
        nodes = [f"{p}{side}{i}" for i in range(4)]
        edges += [Friendship(x, y, 100.0) for i, x in enumerate(nodes) for y in nodes[i + 1:]]
    edges.append(Friendship(f"{p}a0", f"{p}b0", 200.0))
    return edges


def test_friendship_stored_once_per_pair_with_earliest_since(store, prefix):
    a, b = f"{prefix}a", f"{prefix}b"
    before = store.counts().friendships
    store.add_friendships([Friendship(a, b, 50.0), Friendship(b, a, 20.0), Friendship(a, a, 1.0)])
    store.add_friendships([Friendship(b, a, 30.0)])
    assert store.counts().friendships == before + 1
    assert store.friends(a) == [b] and store.friends(b) == [a]
    rows = [f for batch in store.iter_friendships() for f in batch if f.a in (a, b)]
    assert [(f.a, f.b, f.since) for f in rows] == [(a, b, 20.0)]
    assert store.remove_friendship(b, a) is True
    assert store.friends(a) == []


def test_fof_on_two_cliques_joined_by_a_bridge(store, prefix):
    store.add_friendships(two_cliques(prefix))
    rows = store.friends_of_friends(f"{prefix}a1", limit=10, max_friend_degree=1000)
    # a1 knows a0, a2, a3; only b0 is two hops away (via a0), with one mutual friend.
    assert [(r.candidate, r.mutual_count, r.mutual_ids) for r in rows] == [(f"{prefix}b0", 1, (f"{prefix}a0",))]
    assert math.isclose(rows[0].adamic_adar, 1 / math.log(4))  # a0 has degree 4
    rows = store.friends_of_friends(f"{prefix}a0", limit=10, max_friend_degree=1000)
    assert {r.candidate: r.mutual_count for r in rows} == {f"{prefix}b1": 1, f"{prefix}b2": 1, f"{prefix}b3": 1}
    # hub cap: a0 (degree 4) is no longer an intermediary, so a1 has no candidates
    assert store.friends_of_friends(f"{prefix}a1", limit=10, max_friend_degree=3) == []


def test_fof_orders_by_mutual_count_then_adamic_adar(store, prefix):
    p = prefix
    # u's friends f1,f2,f3; c2 shares f1,f2 (2 mutuals); c1 shares f3 only; f3 has lower degree than f1
    edges = [(f"{p}u", f"{p}f{i}") for i in (1, 2, 3)] + [(f"{p}f1", f"{p}c2"), (f"{p}f2", f"{p}c2"),
                                                            (f"{p}f3", f"{p}c1"), (f"{p}f1", f"{p}c3"),
                                                            (f"{p}f1", f"{p}x")]
    store.add_friendships([Friendship(a, b) for a, b in edges])
    rows = store.friends_of_friends(f"{p}u", limit=2, max_friend_degree=100)
    assert [(r.candidate, r.mutual_count) for r in rows] == [(f"{p}c2", 2), (f"{p}c1", 1)]


def test_fof_cut_inside_a_tie_takes_the_tied_by_their_pairs_tie_keys(store, prefix):
    """v's only friend h has 40 other friends, all tied for v: the first 5 are those the whole tie group
    puts first by tie key (Cypher returns the group at the cut; the store orders it), as the snapshot does."""
    p = prefix
    store.add_friendships([Friendship(f"{p}h", f"{p}c{i}") for i in range(40)] + [Friendship(f"{p}v", f"{p}h")])
    every = store.friends_of_friends(f"{p}v", limit=1000, max_friend_degree=100)
    first = store.friends_of_friends(f"{p}v", limit=5, max_friend_degree=100)
    keys = tie_keys(id_hashes([f"{p}v"])[0], id_hashes([r.candidate for r in every]))
    assert len(every) == 40 and first == every[:5] == [every[i] for i in np.argsort(keys)[:5]]
    assert store.fresh_view(f"{p}v", 5, 100).fof == tuple(first)
    assert [r.candidate for r in first] != [f"{p}c{i}" for i in (0, 1, 10, 11, 12)]   # not the lowest ids


def test_fresh_view_is_the_profile_friends_and_fof_in_one_read(store, prefix):
    p = prefix
    store.add_friendships([*two_cliques(p), Friendship(f"{p}b3", f"{p}x"), Friendship(f"{p}b2", f"{p}x")])
    store.upsert_users([UserRecord(id=f"{p}a0", city="Oslo", created_at=5.0), UserRecord(id=f"{p}alone")])
    for user, limit, cap in ((f"{p}a0", 10, 1000), (f"{p}b0", 2, 1000), (f"{p}b0", 10, 3), (f"{p}a1", 10, 1000)):
        view = store.fresh_view(user, limit=limit, max_friend_degree=cap)
        assert view.profile == store.get_user(user)
        assert view.friends == tuple(store.friends(user))
        assert list(view.fof) == store.friends_of_friends(user, limit=limit, max_friend_degree=cap)
    assert store.fresh_view(f"{p}a0", 10, 1000).profile.city == "Oslo"
    # x: two mutual friends; a1..a3 one each (a0), tied: in the order of their pairs' tie keys, not by id
    tied = [f"{p}a{i}" for i in (1, 2, 3)]
    keys = tie_keys(id_hashes([f"{p}b0"])[0], id_hashes(tied))
    expected = [f"{p}x", *(tied[i] for i in np.argsort(keys))]
    assert [r.candidate for r in store.fresh_view(f"{p}b0", 10, 1000).fof] == expected
    alone = store.fresh_view(f"{p}alone", 10, 1000)
    assert (alone.profile.id, alone.friends, alone.fof) == (f"{p}alone", (), ())
    assert store.fresh_view(f"{p}nobody", 10, 1000) == FreshView(None, (), ())


def test_a_tie_that_ends_marks_both_users_for_proofs_made_before(store, prefix):
    a, b, c, d, e = (f"{prefix}{x}" for x in "abcde")
    store.add_friendships([Friendship(a, b), Friendship(c, d), Friendship(a, e)])
    before = time.time() - 1.0          # a snapshot read the accounts then: it still holds the ties below
    assert store.remove_friendship(a, b)
    store.apply_events([Event("block", c, d, 5.0), Event("block", e, d, 6.0)])   # e and d had no tie
    state = store.viewer_rules(e, [a, b, c, d, f"{prefix}nobody"], accounts_since=before)[0]
    assert state.ties_ended == {a, b, c, d}
    assert store.viewer_rules(e, [a, b, c, d], accounts_since=time.time() + 1.0)[0].ties_ended == frozenset()
    assert store.viewer_rules(e, [a, b, c, d])[0].ties_ended == frozenset()


def test_ties_among_says_which_pairs_are_friends_now(store, prefix):
    a, b, c, gone = (f"{prefix}{x}" for x in ("a", "b", "c", "gone"))
    store.add_friendships([Friendship(a, b, 1.0), Friendship(b, c, 1.0), Friendship(c, gone, 1.0)])
    store.remove_friendship(b, c)
    store.delete_users([gone])
    assert store.ties_among([(a, b), (b, a), (b, c), (a, c), (c, gone), (a, f"{prefix}nobody")]) == {(a, b), (b, a)}
    assert store.ties_among([]) == set()
