"""The newcomer index itself: read whole or by what changed (kept equal), in the background when stale,
through failed reads, at its cap; the order of newcomers and the slots they take."""

from __future__ import annotations

import functools
import gc
import random
import threading
import time

from candidates import newcomers
from candidates.newcomers import NewcomerConfig, NewcomerIndex, blend
from candidates.types import Candidate
from graph.memory_store import MemoryGraphStore
from graph.records import Friendship, UserRecord
from pymk.errors import GraphStoreUnavailableError
from tests.conftest import between_writes
from tests.test_newcomers import newcomer_world


def _reads_through(store: MemoryGraphStore, around=None) -> None:
    """Both of the index's reads of `store` (whole, and what changed) made through `around(read, *args)`;
    None: plain again."""
    for name in ("new_accounts", "newcomer_changes"):
        store.__dict__.pop(name, None)
        if around is not None:
            setattr(store, name, functools.partial(around, getattr(store, name)))


def test_the_index_is_read_again_only_when_stale_in_the_background_and_survives_a_failed_read():
    store = newcomer_world()
    index = NewcomerIndex(store, since=between_writes(), config=NewcomerConfig(refresh_s=3600))
    store.upsert_users([UserRecord(id="n", created_at=200.0)])
    store.add_friendships([Friendship("n", "f1", 200.0)])
    assert [c.user_id for c in index.near("v", frozenset({"f1", "f2"}), 5)] == ["n"]   # the first read: inline
    store.add_friendships([Friendship("n", "f2", 201.0)])
    reads = len(store.calls)
    assert index.near("v", frozenset({"f1", "f2"}), 5)[0].scores["newcomers"] == 1.0   # not stale yet
    assert len(store.calls) == reads and index.reading is None
    index.config = NewcomerConfig(refresh_s=0.05)
    index.refresh(force=True)
    store.add_friendships([Friendship("n", "f3", 202.0)])
    gate = threading.Event()
    _reads_through(store, lambda read, *a: (gate.wait(5), read(*a))[1])   # a read takes until the gate opens
    time.sleep(0.06)      # stale: read in a thread of its own, while this request goes on with the last read
    assert index.near("v", frozenset({"f1", "f2", "f3"}), 5)[0].scores["newcomers"] == 2.0
    assert index.reading.is_alive()
    gate.set()
    index.reading.join(5)
    assert index.near("v", frozenset({"f1", "f2", "f3"}), 5)[0].scores["newcomers"] == 3.0

    slowly = lambda read, *a: (time.sleep(0.02), read(*a))[1]   # noqa: E731
    cold = NewcomerIndex(store, since=index.since, config=NewcomerConfig(refresh_s=0.05, full_read_s=0.05))
    _reads_through(store, slowly)
    cold.refresh()                                  # the first read (the server plans the query) spaces nothing
    assert cold.last_read_full and cold._next_read - time.monotonic() < 0.06
    assert cold._next_full - time.monotonic() < 0.06
    index.refresh(force=True)                       # a slow read spaces the next ones of its kind out
    assert not index.last_read_full
    assert index.read_s >= 0.02 and index._next_read - time.monotonic() > 0.1   # 10x the read, not 0.05 s
    time.sleep(0.06)
    cold.refresh(force=True)
    assert cold.last_read_full and cold._next_full - time.monotonic() > 0.1
    _reads_through(store)

    def down(*_a, **_k):
        raise GraphStoreUnavailableError("bolt://x", "stalled")

    _reads_through(store, down)
    assert index.refresh(force=True) is False
    assert [c.user_id for c in index.near("v", frozenset({"f1"}), 5)] == ["n"]      # the last read stands
    _reads_through(store)


def test_reads_of_what_changed_keep_the_index_as_a_whole_read_would(monkeypatch):
    """Random sign-ups, ties (dated long ago, as a file may date them), unfriendings, deletions and
    accounts created again; after each step the index read incrementally (with no overlap, so a change
    read one read late would show) holds what a whole read holds, and only whole reads every full_read_s."""
    monkeypatch.setattr(newcomers, "CHANGE_OVERLAP_S", 0.0)
    rng = random.Random(7)
    store = newcomer_world()
    since = time.time()
    index = NewcomerIndex(store, since, NewcomerConfig(refresh_s=0, full_read_s=3600))
    old = sorted(store.users)
    made: list[str] = []
    for step in range(120):
        for _ in range(rng.randint(1, 3)):   # several changes a read, of one account or of several
            roll = rng.random()
            if roll < 0.25 or not made:
                made.append(f"n{len(made)}")
                store.upsert_users([UserRecord(id=made[-1])], created_at_default=time.time())
            elif roll < 0.6:
                store.add_friendships([Friendship(rng.choice(made), rng.choice(old + made), 1.0)])
            elif roll < 0.75:
                store.add_friendships([Friendship(rng.choice(old), rng.choice(old), 1.0)])   # no newcomer's
            elif roll < 0.9:
                a = rng.choice(made)
                if store.adj.get(a):
                    store.remove_friendship(a, rng.choice(sorted(store.adj[a])))
            else:
                store.delete_users([rng.choice(made)])
        index.refresh()
        whole = NewcomerIndex(store, since, NewcomerConfig(refresh_s=0))
        whole.refresh()
        assert index._ties.accounts == whole._ties.accounts, step
        assert {f: set(ns) for f, ns in index._ties.by_friend.items()} == \
            {f: set(ns) for f, ns in whole._ties.by_friend.items()}, step
    assert store.calls.count("newcomer_changes") == 120 - 1 and index.last_read_full is False


def test_the_index_holds_nothing_the_garbage_collector_keeps_walking():
    """Every full collection in an API worker walks what it tracks: 200,000 newcomers as objects with
    attributes made each one ~160 ms longer, for every request thread (RESULTS)."""
    store = newcomer_world()
    index = NewcomerIndex(store, between_writes(), NewcomerConfig(refresh_s=0))
    for i in range(50):   # half of them dated (None is a constant the collector never tracks either)
        store.upsert_users([UserRecord(id=f"n{i}", created_at=time.time() if i % 2 else None)])
        store.add_friendships([Friendship(f"n{i}", f"f{1 + i % 3}", 1.0), Friendship(f"n{i}", f"n{i // 2}", 1.0)])
    index.refresh()
    store.remove_friendship("n7", "f2")
    store.delete_users(["n9"])
    index.refresh()                      # an index updated by a read of changes too
    gc.collect()
    gc.collect()
    ties = index._ties
    assert not index.last_read_full and len(ties.accounts) == 49
    assert not any(gc.is_tracked(x) for x in (ties.accounts, ties.by_friend, *ties.accounts.values(),
                                                *ties.by_friend.values()))


def test_an_index_at_its_cap_keeps_the_newest_accounts_as_a_rebuild_would():
    """Over the cap the oldest go, picked without rebuilding the index (a platform at the cap would pay a
    rebuild every read: 1.7 s at 200,000 newcomers, against 0.12-0.16 s)."""
    from candidates.newcomer_ties import NewcomerTies
    from graph.records import NewAccount, NewcomerChanges

    rng = random.Random(11)
    def account(i: int, t: float) -> NewAccount:
        return NewAccount(f"n{i}", t, tuple(sorted({f"f{rng.randrange(12)}" for _ in range(rng.randrange(4))})),
                          rng.choice((None, t - rng.randrange(10**6))))

    for trial in range(30):
        old = [account(i, float(rng.randrange(50))) for i in range(40)]
        changes = [account(rng.randrange(60), float(rng.randrange(80))) for _ in range(rng.randrange(1, 15))]
        cap = rng.randrange(5, 45)
        merged = {a.id: a for a in [*old, *changes]}   # as read now where changed (none left: it goes)
        newest = sorted((a for a in merged.values() if a.friends), key=lambda a: (-a.written_at, a.id))[:cap]
        got = NewcomerTies.of(1.0, old).updated(2.0, NewcomerChanges(tuple(changes), ()), cap)
        want = NewcomerTies.of(2.0, newest)
        assert got.accounts == want.accounts, trial
        assert {f: set(ns) for f, ns in got.by_friend.items()} == {f: set(ns) for f, ns in want.by_friend.items()}


def test_a_read_of_changes_that_reaches_the_cap_makes_the_next_read_whole():
    store = newcomer_world()
    index = NewcomerIndex(store, between_writes(), NewcomerConfig(refresh_s=0, max_accounts=2))
    for i in range(3):
        store.upsert_users([UserRecord(id=f"n{i}", created_at=time.time())])
        time.sleep(0.001)
        store.add_friendships([Friendship(f"n{i}", "f1", 1.0)])
    index.refresh()
    assert index.last_read_full and sorted(index._ties.accounts) == ["n1", "n2"]   # the newest 2
    store.add_friendships([Friendship("n0", "f2", 1.0), Friendship("n1", "f2", 1.0), Friendship("n2", "f2", 1.0)])
    index.refresh()
    assert not index.last_read_full and sorted(index._ties.accounts) == ["n1", "n2"]
    index.refresh()   # the changes read filled the cap: some may be missing, so this read is whole
    assert index.last_read_full and sorted(index._ties.accounts) == ["n1", "n2"]


def test_newcomers_are_ranked_by_mutual_friends_then_the_newest():
    """The newest by when they entered the store, whatever their created_at says (b, the newest, is dated
    before a; c, written first, is dated latest)."""
    store = newcomer_world()
    since = None
    for uid, t, friends in (("old", 300.0, ("f1", "f2", "f3")), ("c", 400.0, ("f1", "f2")), ("a", 202.0, ("f1",)),
                            ("b", 201.0, ("f1",))):
        store.upsert_users([UserRecord(id=uid, created_at=t)])
        store.add_friendships([Friendship(uid, f, t) for f in friends])
        since = since or between_writes()   # old entered before
    index = NewcomerIndex(store, since=since)
    got = index.near("v", frozenset({"f1", "f2", "f3"}), 5)
    assert [(c.user_id, c.proof["fof"]["mutual_count"]) for c in got] == [("c", 2), ("b", 1), ("a", 1)]
    assert [c.proof["newcomers"]["created_at"] for c in got] == [400.0, 201.0, 202.0]
    assert [c.user_id for c in index.near("v", frozenset({"f1", "f2", "f3"}), 2)] == ["c", "b"]


def test_blend_takes_the_slots_in_order_and_never_repeats_a_user():
    ranked = [Candidate.of(u, i, "fof", 1.0) for i, u in enumerate("abcde")]
    new = [Candidate.of(u, -1 - i, "newcomers", 1.0) for i, u in enumerate(["n", "c", "m"])]
    assert [c.user_id for c in blend(ranked, new, (2, 4))] == ["a", "n", "b", "m", "c", "d", "e"]
    assert [c.user_id for c in blend(ranked[:1], new, (3, 8))] == ["a", "n", "c"]   # c not in this list
