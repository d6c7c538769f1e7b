"""The graph store contract (the in-memory fake and the real Neo4j alike): accounts, their creation
and write times, newcomers, deactivation, opt-out, deletion and what an account reads back."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest

from graph.records import Event, Friendship, UserRecord
from tests.conftest import between_writes


def test_users_upsert_and_read_back(store, prefix):
    u = UserRecord(id=f"{prefix}ana", school="MIT", city="Boston", lat=42.36, lon=-71.06, created_at=1.5e9)
    store.upsert_users([u])
    store.upsert_users([UserRecord(id=f"{prefix}ana", employer="Acme")])  # partial update keeps the rest
    got = store.get_user(f"{prefix}ana")
    assert got is not None
    assert (got.school, got.city, got.employer, got.lat, got.created_at) == ("MIT", "Boston", "Acme", 42.36, 1.5e9)
    assert store.get_user(f"{prefix}nobody") is None
    assert store.existing_users([f"{prefix}ana", f"{prefix}nobody"]) == {f"{prefix}ana"}


def test_created_at_default_dates_only_an_account_the_call_creates(store, prefix):
    a, b, c, d = f"{prefix}new", f"{prefix}dated", f"{prefix}bare", f"{prefix}says"
    store.add_friendships([Friendship(c, f"{prefix}z", 1.0)])   # c exists, undated (made by its tie)
    store.upsert_users([UserRecord(id=b, created_at=7.0)])
    store.upsert_users([UserRecord(id=a, city="Oslo"), UserRecord(id=b), UserRecord(id=c),
                        UserRecord(id=d, created_at=3.0)], created_at_default=99.0)
    assert [store.get_user(x).created_at for x in (a, b, c, d)] == [99.0, 7.0, None, 3.0]
    store.upsert_users([UserRecord(id=a, city="Rome")], created_at_default=500.0)   # an update keeps the date
    assert (store.get_user(a).created_at, store.get_user(a).city) == (99.0, "Rome")
    store.upsert_users([UserRecord(id=f"{prefix}file")])       # ingestion gives no default: stays unknown
    assert store.get_user(f"{prefix}file").created_at is None
    store.delete_users([a])                                    # an id created again is a new account, dated anew
    store.upsert_users([UserRecord(id=a)], created_at_default=800.0)
    assert store.get_user(a).created_at == 800.0


def _unstamp(store, user_id: str, created_at: float) -> None:
    """Make `user_id` an account as a version before `written_at` on users wrote it: none, and this created_at."""
    if hasattr(store, "user_written"):
        store.user_written.pop(user_id, None)
        store.users[user_id] = dataclasses.replace(store.users[user_id], created_at=created_at)
    else:
        store._driver.execute_query("MATCH (u:User {id: $id}) REMOVE u.written_at SET u.created_at = $t",
                                    id=user_id, t=created_at)


def test_new_accounts_are_those_written_since_a_time_whatever_their_created_at(store, prefix):
    """A newcomer is an account that entered the store since `since`: a sign-up, a file's row dated years
    back, an account made by its first tie (no created_at); newest first, those with a friend."""
    p = prefix
    mine = lambda accounts: [(a.id, a.created_at, a.friends) for a in accounts if a.id.startswith(p)]  # noqa: E731
    store.upsert_users([UserRecord(id=f"{p}old", created_at=1.0e9)])
    store.add_friendships([Friendship(f"{p}old", f"{p}x", 1.0)])
    since = between_writes(0.02)
    store.upsert_users([UserRecord(id=f"{p}n1", created_at=1.2e9)])   # a file's row, dated long ago
    store.add_friendships([Friendship(f"{p}n1", f"{p}old", 1.0), Friendship(f"{p}n1", f"{p}x", 1.0)])
    between_writes(0.02)
    store.add_friendships([Friendship(f"{p}n2", f"{p}n1", 1.0)])       # n2: made by its tie, undated
    between_writes(0.02)
    store.upsert_users([UserRecord(id=f"{p}n3")], created_at_default=since + 1)   # a sign-up
    store.add_friendships([Friendship(f"{p}n3", f"{p}old", 1.0)])
    between_writes(0.02)
    store.upsert_users([UserRecord(id=f"{p}lonely", created_at=since + 2)])
    got = store.new_accounts(since, limit=10, max_friends=10)
    # `lonely` has no friend (no one's friends-of-friends); `old` and `x` entered before `since`
    assert mine(got) == [(f"{p}n3", since + 1, (f"{p}old",)), (f"{p}n2", None, (f"{p}n1",)),
                         (f"{p}n1", 1.2e9, (f"{p}n2", f"{p}old", f"{p}x"))]
    assert [a.written_at for a in got] == sorted((a.written_at for a in got), reverse=True)
    assert since < got[-1].written_at < got[0].written_at < time.time()
    assert [a.friends for a in store.new_accounts(since, limit=10, max_friends=1)][-1] == (f"{p}n2",)
    # the limit counts the newest accounts, friended or not: `lonely` and n3
    assert mine(store.new_accounts(since, limit=2, max_friends=10)) == [(f"{p}n3", since + 1, (f"{p}old",))]
    assert store.new_accounts(between_writes(0.02), limit=10, max_friends=10) == []
    # an account a version before the stamp wrote counts by its created_at, and is dated by it
    _unstamp(store, f"{p}old", since + 0.005)
    got = store.new_accounts(since, limit=10, max_friends=1)
    assert mine(got)[-1] == (f"{p}old", since + 0.005, (f"{p}n1",)) and got[-1].written_at == since + 0.005
    _unstamp(store, f"{p}old", since - 0.5)
    assert f"{p}old" not in {a.id for a in store.new_accounts(since, limit=10, max_friends=1)}


def test_newcomer_changes_are_the_newcomers_whose_ties_changed_since_a_time(store, prefix):
    """Ties are dated by when they were written (a file may date them years back): a newcomer that gained,
    lost or got its first tie since `changed_since` is read with all its friends now; one deleted is gone."""
    p = prefix
    mine = lambda ids: [i for i in ids if i.startswith(p)]   # noqa: E731 (a shared server holds others)
    store.upsert_users([UserRecord(id=f"{p}{u}", created_at=1.0e9) for u in ("old", "x", "y", "z")])
    since = between_writes(0.02)
    for i in range(1, 5):   # n1 (written first) .. n4, each dated long ago by its file
        store.upsert_users([UserRecord(id=f"{p}n{i}", created_at=1.0e9 + i)])
        between_writes(0.02)
    store.add_friendships([Friendship(f"{p}n1", f"{p}old", 1.0), Friendship(f"{p}n2", f"{p}old", 1.0),
                           Friendship(f"{p}n3", f"{p}x", 1.0), Friendship(f"{p}n4", f"{p}old", 1.0)])
    changed = between_writes(0.02)
    got = store.newcomer_changes(since, changed, limit=100, max_friends=10)
    assert mine(a.id for a in got.accounts) == [] and mine(got.gone) == []   # nothing changed yet
    store.add_friendships([Friendship(f"{p}n1", f"{p}y", 1.0),    # n1 gains a tie dated long ago
                           Friendship(f"{p}old", f"{p}z", 1.0),   # old is no newcomer
                           Friendship(f"{p}n4", f"{p}old", 0.5)])  # a tie n4 had: not a change
    store.remove_friendship(f"{p}n2", f"{p}old")                   # n2 loses its only tie
    store.delete_users([f"{p}n3"])
    between_writes(0.02)
    store.upsert_users([UserRecord(id=f"{p}n5", created_at=1.0e9 + 5)])
    store.add_friendships([Friendship(f"{p}n5", f"{p}old", 1.0)])
    between_writes(0.02)
    store.upsert_users([UserRecord(id=f"{p}n6")])   # written since, with no tie
    got = store.newcomer_changes(since, changed, limit=100, max_friends=10)
    assert [(a.id, a.created_at, a.friends) for a in got.accounts if a.id.startswith(p)] == [
        (f"{p}n6", None, ()), (f"{p}n5", 1.0e9 + 5, (f"{p}old",)), (f"{p}n2", 1.0e9 + 2, ()),
        (f"{p}n1", 1.0e9 + 1, (f"{p}old", f"{p}y"))]
    assert mine(got.gone) == [f"{p}n3"]
    between_writes(0.02)
    store.upsert_users([UserRecord(id=f"{p}n3")])   # created again: not gone
    got = store.newcomer_changes(since, changed, limit=100, max_friends=1)
    assert mine(got.gone) == [] and [a.friends for a in got.accounts if a.id == f"{p}n1"] == [(f"{p}old",)]
    # a later `since` than `changed_since` reads from `since`; the limit keeps the newest
    n2 = next(a.written_at for a in store.new_accounts(since, 100, 10) if a.id == f"{p}n1")
    assert mine(a.id for a in store.newcomer_changes(n2 + 0.01, changed, 100, 10).accounts) == [
        f"{p}n3", f"{p}n6", f"{p}n5", f"{p}n2"]
    assert mine(a.id for a in store.newcomer_changes(since, since - 1, 100, 10).accounts) == [
        f"{p}n3", f"{p}n6", f"{p}n5", f"{p}n4", f"{p}n2", f"{p}n1"]
    # an account a version before the stamp wrote: read by its created_at, when that is since (its ties
    # changed since `changed`: old-z, n5-old)
    _unstamp(store, f"{p}old", since - 0.5)
    assert f"{p}old" not in mine(a.id for a in store.newcomer_changes(since, changed, 100, 10).accounts)
    _unstamp(store, f"{p}old", since + 0.005)
    got = store.newcomer_changes(since, changed, 100, 10)
    assert [a.written_at for a in got.accounts if a.id == f"{p}old"] == [since + 0.005]


def test_the_viewer_state_says_when_its_own_account_is_deactivated(store, prefix):
    a, b = f"{prefix}a", f"{prefix}b"
    store.upsert_users([UserRecord(id=a, deactivated=True), UserRecord(id=b)])
    store.add_friendships([Friendship(a, b), Friendship(b, f"{prefix}c"), Friendship(b, f"{prefix}d")])
    store.upsert_users([UserRecord(id=f"{prefix}d", opted_out=True)])
    assert store.viewer_rules(b, [])[0].unnamed == {a, f"{prefix}d"}   # friends never named in a proof
    assert store.viewer_rules(a, [b])[0].deactivated and store.user_state(a).deactivated
    assert not store.viewer_rules(b, [a])[0].deactivated
    assert not store.viewer_rules(f"{prefix}nobody", [])[0].deactivated
    store.upsert_users([UserRecord(id=a, deactivated=False)])
    assert not store.user_state(a).deactivated


def test_a_deleted_user_is_never_suggested_nor_served_until_created_again(store, prefix):
    a, b, c = (f"{prefix}{x}" for x in "abc")
    store.add_friendships([Friendship(a, b), Friendship(b, c)])
    assert store.delete_users([c, c, f"{prefix}nobody"]) == 1   # a repeated or unknown id is no error
    assert store.opted_out_among([a, c]) == {c} == store.viewer_rules(a, [b, c])[1]
    assert store.viewer_rules(c, [a])[0].deleted and store.user_state(c).deleted
    assert not store.viewer_rules(a, [])[0].deleted and not store.user_state(f"{prefix}nobody").deleted
    assert store.friends(b) == [a]
    assert store.deletions()[c] == math.inf   # every record under the id is the deleted account's
    store.upsert_users([UserRecord(id=c)])   # the same id created again is a new, suggestable user
    assert store.opted_out_among([c]) == set() and not store.user_state(c).deleted
    assert store.deletions()[c] <= time.time()   # only the records before the deletion are
    assert store.deletions([c, a]) == {c: store.deletions()[c]}
    at = store.deletions()[c]
    time.sleep(0.02)
    store.delete_users([a])
    later = {u for u in store.deletions(since=at + 0.01) if u.startswith(prefix)}   # the nightly export's read
    assert later == {a} and c in store.deletions(since=at) and store.deletions([c, a], since=at + 0.01) == {a: math.inf}
    store.delete_users([c])
    store.delete_users_with_prefix(prefix)   # a namespace wiped leaves no tombstone behind
    assert not store.user_state(c).deleted and store.opted_out_among([c]) == set()


def test_opt_out_and_delete(store, prefix):
    ids = [f"{prefix}{i}" for i in range(3)]
    store.upsert_users([UserRecord(id=i) for i in ids])
    store.set_opted_out(ids[1], True)
    store.upsert_users([UserRecord(id=ids[1], city="Oslo")])  # no opted_out column: opt-out stays
    assert store.opted_out_among(ids) == {ids[1]}
    store.upsert_users([UserRecord(id=ids[2], deactivated=True)])  # deactivated accounts: never suggested either
    assert store.opted_out_among(ids) == {ids[1], ids[2]} == store.viewer_rules(ids[0], ids)[1]
    store.upsert_users([UserRecord(id=ids[2], deactivated=False)])
    assert store.opted_out_among(ids) == {ids[1]}
    store.add_friendships([Friendship(ids[0], ids[1])])
    assert store.delete_users(ids[:1]) == 1
    assert store.delete_users_with_prefix(prefix) == 2
    assert store.existing_users(ids) == set()
    with pytest.raises(ValueError, match="empty prefix"):
        store.delete_users_with_prefix("")


def test_an_account_reads_back_whole_with_its_own_actions_only(store, prefix):
    from graph.records import Request

    a, b, c, d, e, f = (f"{prefix}{x}" for x in "abcdef")
    written = time.time()
    store.upsert_users([UserRecord(id=a, city="Lyon", created_at=5.0), *(UserRecord(id=x) for x in (b, c, d, e, f))])
    store.add_friendships([Friendship(b, a, 7.0), Friendship(a, e)])
    store.apply_events([Event("send", a, c, 10.0), Event("send", d, a, 11.0), Event("decline", a, d, 12.0),
                        Event("dismiss", a, b, 13.0), Event("block", a, f, 14.0), Event("dismiss", c, a, 15.0),
                        Event("block", d, a, 16.0)])
    got = store.account_data(a)
    assert got is not None and {k: got.profile[k] for k in ("id", "city", "created_at")} == {
        "id": a, "city": "Lyon", "created_at": 5.0}
    assert written <= got.profile["written_at"] <= time.time()   # when it entered the store: stored, so given
    assert got.friends == (Friendship(a, b, 7.0), Friendship(a, e, None))
    assert got.requests_sent == (Request(a, c, 10.0, "pending"),)
    assert got.requests_received == (Request(d, a, 11.0, "declined", 12.0),)
    # its own block and dismissal; c's dismissal of a and d's block of a are theirs, not a's
    assert (got.blocks, got.dismissals) == (((f, 14.0),), ((b, 13.0),))
    assert store.account_data(f"{prefix}nobody") is None
    store.delete_users([a])
    assert store.account_data(a) is None


def test_an_id_deleted_and_created_again_is_a_new_account_to_records_made_before(store, prefix):
    a, b, c = (f"{prefix}{x}" for x in "abc")
    store.add_friendships([Friendship(a, b), Friendship(b, c)])
    before = time.time() - 1.0          # a snapshot read the accounts then
    store.delete_users([c])
    store.upsert_users([UserRecord(id=c)])   # someone else takes the id
    state, unsuggestable = store.viewer_rules(a, [b, c], accounts_since=before)
    assert unsuggestable == {c} and not state.replaced
    assert store.viewer_rules(c, [a], accounts_since=before)[0].replaced
    after = time.time() + 1.0           # a snapshot made since knows the new account
    assert store.viewer_rules(a, [b, c], accounts_since=after)[1] == set()
    assert not store.viewer_rules(c, [a], accounts_since=after)[0].replaced
    assert store.viewer_rules(a, [b, c])[1] == set() and not store.viewer_rules(c, [])[0].replaced
    assert store.opted_out_among([c]) == set()
