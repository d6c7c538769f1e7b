"""The graph store contract (the in-memory fake and the real Neo4j alike): events, connection requests
and their answers, blocks and unblocks, in time order whatever order and batches they arrive in."""

from __future__ import annotations

from graph.records import Event, Friendship, UserRecord


def test_events_requests_blocks_dismissals(store, prefix):
    p = prefix
    store.upsert_users([UserRecord(id=f"{p}{x}") for x in "abcde"])
    store.apply_events([
        Event("send", f"{p}a", f"{p}b", 10.0), Event("send", f"{p}c", f"{p}a", 11.0),
        Event("send", f"{p}d", f"{p}a", 12.0), Event("impression", f"{p}a", f"{p}e", 9.0, position=0),
    ])
    assert store.pending_requests(f"{p}a").outgoing == (f"{p}b",)
    assert store.pending_requests(f"{p}a").incoming == (f"{p}c", f"{p}d")
    store.apply_events([Event("accept", f"{p}a", f"{p}c", 20.0), Event("decline", f"{p}a", f"{p}d", 21.0),
                        Event("dismiss", f"{p}a", f"{p}e", 22.0), Event("block", f"{p}b", f"{p}a", 23.0)])
    state = store.user_state(f"{p}a")
    assert state.friends == {f"{p}c"}
    assert state.pending == frozenset()   # a's request to b went with b's block
    assert state.blocked == {f"{p}b"}
    assert state.declined == {f"{p}d": 21.0}
    assert state.dismissed == {f"{p}e"}
    assert store.blocked(f"{p}b") == {f"{p}a"}
    rules_state, opted = store.viewer_rules(f"{p}a", [f"{p}b", f"{p}e", f"{p}nobody"])
    assert rules_state == state and opted == set()
    store.set_opted_out(f"{p}e", True)
    assert store.viewer_rules(f"{p}a", [f"{p}b", f"{p}e"])[1] == {f"{p}e"}
    assert store.viewer_rules(f"{p}nobody", [f"{p}e"])[0].friends == frozenset()
    # applying the same events again changes nothing
    before = store.counts()
    store.apply_events([Event("accept", f"{p}a", f"{p}c", 20.0), Event("block", f"{p}b", f"{p}a", 23.0)])
    assert store.counts() == before


def test_block_removes_the_friendship(store, prefix):
    a, b = f"{prefix}a", f"{prefix}b"
    store.add_friendships([Friendship(a, b)])
    store.apply_events([Event("block", a, b, 5.0)])
    assert store.friends(a) == []
    assert store.blocked(a) == {b}


def test_an_accept_never_makes_a_tie_between_blocked_users_whatever_the_batch(store, prefix):
    a, b, c = (f"{prefix}{x}" for x in "abc")
    store.upsert_users([UserRecord(id=x) for x in (a, b, c)])
    store.apply_events([Event("send", a, b, 1.0), Event("send", a, c, 1.0)])
    store.apply_events([Event("block", b, a, 2.0)])
    store.apply_events([Event("accept", b, a, 3.0), Event("accept", c, a, 3.0)])  # b's accept comes late
    assert store.friends(a) == [c] and store.friends(b) == []
    store.apply_events([Event("send", c, b, 4.0), Event("accept", b, c, 5.0), Event("block", c, b, 6.0)])
    assert store.friends(b) == []   # in one batch the block wins too


def test_an_unblock_lifts_only_its_own_block_in_time_order_whatever_the_batch_order(store, prefix):
    a, b, c = (f"{prefix}{x}" for x in "abc")
    store.add_friendships([Friendship(a, b), Friendship(a, c)])
    store.apply_events([Event("block", a, b, 1.0), Event("block", b, a, 1.0)])
    store.apply_events([Event("unblock", a, b, 2.0)])
    assert store.blocked(a) == {b}   # b's block of a stays
    store.apply_events([Event("unblock", b, a, 3.0), Event("unblock", b, a, 3.0)])
    assert store.blocked(a) == set() and store.friends(a) == [c]   # the tie the block ended stays ended
    # one batch: the later of a block and an unblock of one pair wins, in whatever order they are listed
    store.apply_events([Event("unblock", a, c, 5.0), Event("block", a, c, 4.0)])
    assert store.blocked(a) == set() and store.friends(a) == []   # blocked at 4 (the tie ended), lifted at 5
    store.apply_events([Event("block", a, c, 7.0), Event("unblock", a, c, 6.0)])
    assert store.blocked(a) == {c}
    store.apply_events([Event("unblock", c, a, 8.0)])   # c never blocked a: nothing to lift
    assert store.blocked(a) == {c}


def test_requests_since_a_time_are_the_pending_ones_and_those_sent_or_answered_since(store, prefix):
    p = prefix
    store.upsert_users([UserRecord(id=f"{p}{x}") for x in "abcde"])
    store.apply_events([Event("send", f"{p}a", f"{p}b", 10.0), Event("send", f"{p}a", f"{p}c", 11.0),
                        Event("send", f"{p}a", f"{p}d", 12.0), Event("send", f"{p}a", f"{p}e", 150.0)])
    store.apply_events([Event("decline", f"{p}c", f"{p}a", 20.0), Event("accept", f"{p}d", f"{p}a", 120.0)])

    def dsts(**kw):
        return sorted(r.dst.removeprefix(p) for batch in store.iter_requests(**kw) for r in batch
                      if r.src == f"{p}a")

    assert dsts() == ["b", "c", "d", "e"]
    # b and e pending (whenever sent); c declined at 20 (out); d answered at 120
    assert dsts(since=100.0) == ["b", "d", "e"]
    assert dsts(since=1000.0) == ["b", "e"]


def _request(store, src: str, dst: str) -> tuple[str, float, float | None] | None:
    got = [(r.status, r.sent_at, r.responded_at) for batch in store.iter_requests() for r in batch
           if (r.src, r.dst) == (src, dst)]
    return got[0] if got else None


def test_a_request_follows_its_events_in_time_order_whatever_order_they_arrive_in(store, prefix):
    a, b, c, d, e = (f"{prefix}{x}" for x in "abcde")
    store.upsert_users([UserRecord(id=x) for x in (a, b, c, d, e)])
    day = 86_400.0
    # a second try after a decline is a new pending request: both sides' lists must leave the pair out again
    store.apply_events([Event("send", a, b, 1 * day)])
    store.apply_events([Event("decline", b, a, 2 * day)])
    assert _request(store, a, b) == ("declined", 1 * day, 2 * day) and store.user_state(b).declined == {a: 2 * day}
    store.apply_events([Event("send", a, b, 100 * day)])
    assert _request(store, a, b) == ("pending", 100 * day, None)
    assert store.user_state(b).pending == {a} and store.user_state(a).pending == {b}
    assert store.user_state(b).declined == {}
    # the first request's file ingested again, and a retry: the pending request stays as it is
    store.apply_events([Event("send", a, b, 1 * day), Event("decline", b, a, 2 * day)])
    store.apply_events([Event("send", a, b, 100 * day + 5)])
    assert _request(store, a, b) == ("pending", 100 * day, None)
    # an answer arriving after a newer one changes nothing; nor does an older send
    store.apply_events([Event("accept", b, a, 101 * day)])
    store.apply_events([Event("decline", b, a, 100.5 * day), Event("send", a, b, 100.7 * day)])
    assert _request(store, a, b) == ("accepted", 100 * day, 101 * day) and store.friends(a) == [b]
    # an older accept arriving after a newer decline makes no tie
    store.apply_events([Event("send", c, a, 10 * day), Event("decline", a, c, 30 * day)])
    store.apply_events([Event("accept", a, c, 20 * day)])
    assert _request(store, c, a) == ("declined", 10 * day, 30 * day) and store.friends(c) == []
    # an answer dated a minute before its request (the answering client's clock behind): dated when it was
    # sent, and so is the tie; one dated days before it answered an earlier request: nothing changes
    store.apply_events([Event("send", d, a, 100 * day), Event("send", e, a, 100 * day)])
    store.apply_events([Event("accept", a, d, 100 * day - 60), Event("accept", a, e, 1.0)])
    assert _request(store, d, a) == ("accepted", 100 * day, 100 * day)
    assert [f.since for batch in store.iter_friendships() for f in batch if d in (f.a, f.b)] == [100 * day]
    assert _request(store, e, a) == ("pending", 100 * day, None) and store.friends(e) == []


def test_one_batch_applies_each_requests_events_in_time_order(store, prefix):
    a, b, c = (f"{prefix}{x}" for x in "abc")
    store.upsert_users([UserRecord(id=x) for x in (a, b, c)])
    # listed out of order: sent at 10, declined at 20, sent again at 30 -> pending since 30
    store.apply_events([Event("send", a, b, 30.0), Event("decline", b, a, 20.0), Event("send", a, b, 10.0)])
    assert _request(store, a, b) == ("pending", 30.0, None)
    # sent and accepted in one batch, the accept listed first: a tie dated by the accept
    store.apply_events([Event("accept", c, a, 12.0), Event("send", a, c, 11.0)])
    assert _request(store, a, c) == ("accepted", 11.0, 12.0)
    assert [f.since for batch in store.iter_friendships() for f in batch if c in (f.a, f.b)] == [12.0]


def test_request_rounds_put_each_pairs_events_in_time_order_and_drop_repeated_sends():
    from graph.cypher_rows import request_rounds

    events = [Event("send", "a", "b", t) for t in (3.0, 1.0, 2.0)] + [
        Event("decline", "b", "a", 4.0), Event("send", "a", "b", 5.0), Event("send", "c", "b", 1.0),
        Event("send", "b", "a", 4.5), Event("impression", "a", "b", 0.5, position=0)]
    rounds = [[(e.type, e.src, e.ts) for e in r] for r in request_rounds(events)]
    # the pair's two ways are one sequence: b's own request to a comes between a's decline and a's next send
    assert rounds == [[("send", "a", 1.0), ("send", "c", 1.0)], [("decline", "b", 4.0)], [("send", "b", 4.5)],
                      [("send", "a", 5.0)]]


def test_time_segments_cut_where_a_request_follows_a_block_or_unblock_of_its_pair():
    from graph.cypher_rows import time_segments

    ev = lambda kind, a, b, t: Event(kind, a, b, t)   # noqa: E731
    plain = [ev("send", "a", "b", 3.0), ev("block", "c", "d", 1.0), ev("unblock", "c", "d", 2.0),
             ev("block", "c", "e", 2.5), ev("send", "a", "c", 4.0), ev("dismiss", "a", "d", 0.5)]
    assert time_segments(plain) == [sorted(plain, key=lambda e: e.ts)]   # no pair blocked and then asked
    batch = [ev("accept", "b", "a", 5.0), ev("unblock", "a", "b", 2.0), ev("send", "a", "b", 3.0),
             ev("block", "a", "b", 1.0), ev("send", "b", "a", 1.0), ev("block", "x", "y", 6.0),
             ev("unblock", "x", "y", 7.0), ev("block", "y", "x", 8.0)]
    assert [[(e.type, e.ts) for e in seg] for seg in time_segments(batch)] == [
        [("block", 1.0), ("send", 1.0), ("unblock", 2.0)],   # the same time as the block: not after it
        [("send", 3.0), ("accept", 5.0), ("block", 6.0), ("unblock", 7.0)],
        [("block", 8.0)]]                                    # a block after an unblock of its pair


def test_a_request_after_an_unblock_in_the_same_batch_goes_through(store, prefix):
    """Block, unblock, then a request sent and accepted, all in one batch (a queue's batch of a few
    minutes): the pair are friends, as applying the events one by one leaves them. Before, a batch ran its
    requests' events before its blocks and unblocks: the send and the accept met the block still standing,
    and a tie the platform holds was missing (so each could be suggested to the other)."""
    a, b, c = (f"{prefix}{x}" for x in "abc")
    store.upsert_users([UserRecord(id=x) for x in (a, b, c)])
    store.apply_events([Event("accept", b, a, 40.0), Event("send", c, b, 25.0), Event("send", a, b, 30.0),
                        Event("unblock", a, b, 20.0), Event("block", a, b, 10.0)])
    assert store.friends(a) == [b] and _request(store, a, b) == ("accepted", 30.0, 40.0)
    assert store.user_state(b).pending == frozenset({c}) and store.user_state(a).blocked == frozenset()


def test_no_request_stands_pending_between_friends(store, prefix):
    a, b, c, d, e, f = (f"{prefix}{x}" for x in "abcdef")
    store.upsert_users([UserRecord(id=x) for x in (a, b, c, d, e, f)])
    store.add_friendships([Friendship(a, b, 5.0)])
    # a stale client's send to a friend (a tie made outside requests) changes nothing, either way
    store.apply_events([Event("send", a, b, 10.0)])
    store.apply_events([Event("send", b, a, 11.0)])
    assert _request(store, a, b) is None and _request(store, b, a) is None
    assert store.user_state(a).pending == frozenset() == store.user_state(b).pending
    # crossed requests: the tie d's accept makes answers d's own request to c, dated by the tie
    store.apply_events([Event("send", c, d, 20.0), Event("send", d, c, 21.0)])
    store.apply_events([Event("accept", d, c, 30.0)])
    assert _request(store, c, d) == ("accepted", 20.0, 30.0) and _request(store, d, c) == ("accepted", 21.0, 30.0)
    assert store.user_state(c).pending == frozenset() == store.user_state(d).pending
    # in one batch as in two, a send after the tie formed changes nothing
    store.apply_events([Event("send", e, f, 40.0), Event("accept", f, e, 41.0), Event("send", f, e, 45.0)])
    assert _request(store, e, f) == ("accepted", 40.0, 41.0) and _request(store, f, e) is None
    assert store.friends(e) == [f] and store.user_state(f).pending == frozenset()


def test_a_block_withdraws_pending_requests_and_stops_new_ones(store, prefix):
    a, b, c = (f"{prefix}{x}" for x in "abc")
    store.upsert_users([UserRecord(id=x) for x in (a, b, c)])
    store.apply_events([Event("send", b, a, 10.0), Event("send", a, c, 11.0)])
    store.apply_events([Event("block", a, b, 20.0)])   # b's request to a goes with the block
    assert _request(store, b, a) is None and _request(store, a, c) == ("pending", 11.0, None)
    store.apply_events([Event("send", b, a, 30.0)])    # blocked: no request, either way
    store.apply_events([Event("send", a, b, 31.0)])
    assert _request(store, b, a) is None and _request(store, a, b) is None
    assert store.user_state(a).pending == frozenset({c})
    # in one batch as one at a time: a send after a block changes nothing
    store.apply_events([Event("send", c, b, 40.0), Event("block", b, c, 39.0)])
    assert _request(store, c, b) is None and store.user_state(b).pending == frozenset()
    store.apply_events([Event("unblock", a, b, 50.0)])
    store.apply_events([Event("send", b, a, 60.0)])    # unblocked: a request again
    assert _request(store, b, a) == ("pending", 60.0, None)
