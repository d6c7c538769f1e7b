"""Accounts newer than the served snapshot, suggested to the friends of their friends (candidates/newcomers.py)."""

from __future__ import annotations

import functools
import gc
import random
import threading
import time

import pytest

from api import create_app
from candidates import newcomers
from candidates.newcomers import NewcomerConfig, NewcomerIndex, blend
from candidates.types import Candidate
from graph.memory_store import MemoryGraphStore
from graph.records import Friendship, UserRecord
from graph.snapshot import from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.errors import GraphStoreUnavailableError
from pymk.settings import Settings
from tests.conftest import between_writes

KEY = {"X-API-Key": "k1"}


def _world() -> MemoryGraphStore:
    """v's friends f1, f2, f3; f1-f3 a triangle with x; y and z friends of x only (two hops from v)."""
    store = MemoryGraphStore()
    store.add_friendships([Friendship(a, b, 1.0) for a, b in (
        ("v", "f1"), ("v", "f2"), ("v", "f3"), ("f1", "x"), ("f2", "x"), ("f3", "x"), ("x", "y"), ("x", "z"))])
    store.upsert_users([UserRecord(id=u, created_at=10.0) for u in store.users])
    return store


@pytest.fixture
def world() -> MemoryGraphStore:
    return _world()


def _client(tmp_path, world, **env: str):
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_API_KEYS": "k1", "PYMK_EXPLORE_SHARE": "0",
                                  "PYMK_NEWCOMER_REFRESH_S": "0", **env})
    save_snapshot(from_store(world), ArtifactStore(settings.snapshot_dir), source="test")
    return create_app(settings, store=world).test_client()


def _sign_up(client, user: str, *friends: str) -> None:
    assert client.post("/v1/users", json={"id": user}, headers=KEY).status_code == 201
    for f in friends:
        assert client.post("/v1/friendships", json={"a": user, "b": f}, headers=KEY).status_code == 201


def _ids_up_to_yz(got: list[dict], want: list[str]) -> bool:
    """The ids are `want`, y and z (alike in every way: friends of x alone) in either order: equal scores
    go in a pseudo-random order of the pair, never by id."""
    ids = [s["user_id"] for s in got]
    swap = {"y": "z", "z": "y"}
    return ids in (want, [swap.get(u, u) for u in want])


def _list(client, viewer: str, limit: int = 20) -> list[dict]:
    resp = client.get(f"/v1/users/{viewer}/suggestions?limit={limit}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["suggestions"]


def test_a_sign_up_befriended_by_the_viewers_friends_takes_a_slot_at_once(tmp_path, world):
    """Before, n (signed up after the snapshot, friends with f1 and f2) was suggested to no one until the
    next snapshot; now v sees it in slot 3 with the mutual friends named, m (one mutual friend) in slot 8."""
    client = _client(tmp_path, world)
    assert _ids_up_to_yz(_list(client, "v"), ["x", "y", "z"])
    _sign_up(client, "n", "f1", "f2")
    _sign_up(client, "m", "f3")
    _sign_up(client, "far", "y")          # two hops from v through y: not a friend of v's friends
    got = _list(client, "v")
    assert _ids_up_to_yz(got, ["x", "y", "n", "z", "m"])   # slot 8 past the end: appended
    n = got[2]
    assert n["sources"] == ["newcomers"] and n["score"] == 2
    assert n["reasons"] == ["2 mutual friends: f1, f2", "joined recently"]
    assert n["proof"]["fof"] == {"mutual_count": 2, "mutual_ids": ["f1", "f2"]}
    assert _ids_up_to_yz(_list(client, "v", limit=2), ["x", "y"])     # slots past the limit stay out
    assert _ids_up_to_yz(_list(client, "v", limit=3), ["x", "y", "n"])
    assert "n" not in {s["user_id"] for s in _list(client, "f1")}               # already friends
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "\npymk_newcomer_suggestions_total 3.0\n" in metrics   # n and m, then n in the 3-long list
    assert 'pymk_stage_seconds_count{stage="newcomers"}' in metrics


def test_accounts_ingested_from_files_after_the_snapshot_are_newcomers_whatever_their_dates(tmp_path, world):
    """An hourly ingestion brings accounts whose created_at is before the snapshot (they signed up before it
    was made, and reached the store after), and ties whose ends no users file named (made by the tie, with no
    created_at). Before, neither was a newcomer (read by created_at), so each waited for the next snapshot;
    now a newcomer is an account that entered the store since the snapshot read the accounts."""
    from graph.ingest import ingest_edges, ingest_users

    client = _client(tmp_path, world)
    (tmp_path / "users.csv").write_text("id,created_at,city\nlate,1500000000,Oslo\n")
    (tmp_path / "edges.txt").write_text("late f1 1500000100\nlate f2 1500000200\nbare f3 1500000300\n")
    ingest_users(world, tmp_path / "users.csv", batch_size=10, progress=False)
    ingest_edges(world, tmp_path / "edges.txt", batch_size=10, progress=False)
    got = _list(client, "v")
    assert _ids_up_to_yz(got, ["x", "y", "late", "z", "bare"])
    assert got[2]["proof"]["newcomers"]["created_at"] == 1500000000.0 and got[2]["score"] == 2
    assert got[2]["reasons"] == ["2 mutual friends: f1, f2"]   # an account from 2017: it did not join recently
    assert got[4]["proof"]["newcomers"]["created_at"] is None
    assert got[4]["reasons"] == ["1 mutual friend: f3", "joined recently"]


def _metric(text: str, name: str) -> float:
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def test_the_index_reads_are_in_the_metrics_with_their_failures(tmp_path, world):
    """An operator sees each worker's reads of the index (whole or changes, ok or failed), when it last read
    with success (to alert on a stalled index) and how many newcomers it holds."""
    client = _client(tmp_path, world)
    _sign_up(client, "n", "f1", "f2")
    _list(client, "v")
    text = client.get("/metrics").get_data(as_text=True)
    assert _metric(text, 'pymk_newcomer_index_read_seconds_count{kind="whole",outcome="ok"}') == 1.0
    assert _metric(text, 'pymk_newcomer_index_read_seconds_count{kind="changes",outcome="ok"}') >= 1.0
    assert _metric(text, "pymk_newcomer_index_accounts") == 1.0
    read_at = _metric(text, "pymk_newcomer_index_read_timestamp_seconds")
    assert time.time() - 60 < read_at <= time.time()

    def down(*_a, **_k):
        raise GraphStoreUnavailableError("bolt://x", "stalled")

    world.newcomer_changes = down
    _list(client, "v")
    text = client.get("/metrics").get_data(as_text=True)
    assert _metric(text, 'pymk_newcomer_index_read_seconds_count{kind="changes",outcome="failed"}') >= 1.0
    assert _metric(text, "pymk_newcomer_index_read_timestamp_seconds") == read_at   # the last good read
    assert _metric(text, "pymk_newcomer_index_accounts") == 1.0


def test_a_failing_newcomer_stage_leaves_the_list_without_its_slots(tmp_path, world, caplog):
    client = _client(tmp_path, world)
    _sign_up(client, "n", "f1", "f2")
    assert "n" in [s["user_id"] for s in _list(client, "v")]
    index = client.application.extensions["pymk"].served.pipeline.newcomers

    def broken(*_a, **_k):
        raise KeyError("index entry")

    index.near = broken
    with caplog.at_level("ERROR"):
        resp = client.get("/v1/users/v/suggestions")
    body = resp.get_json()
    assert resp.status_code == 200 and body["skipped_sources"] == {"newcomers": "failed: KeyError('index entry')"}
    assert "n" not in [s["user_id"] for s in body["suggestions"]] and body["suggestions"]
    assert "newcomer stage failed for 'v'" in caplog.text
    text = client.get("/metrics").get_data(as_text=True)
    assert _metric(text, 'pymk_skipped_total{outcome="failed",part="newcomers"}') == 1.0


def test_the_api_checks_the_schema_at_start_and_serves_without_the_right_to(tmp_path, world, caplog):
    _client(tmp_path / "allowed", world)
    assert world.calls.index("ensure_schema") < world.calls.index("new_accounts")   # before the first read

    def refused():
        raise PermissionError("Neo.ClientError.Security.Forbidden: schema operations are not allowed")

    world.ensure_schema = refused
    with caplog.at_level("WARNING", logger="api.services"):
        client = _client(tmp_path, world)
    assert "run `pymk neo4j schema`" in caplog.text
    _sign_up(client, "n", "f1", "f2")
    assert _ids_up_to_yz(_list(client, "v"), ["x", "y", "n", "z"])


def test_every_hard_rule_holds_for_newcomers(tmp_path, world):
    client = _client(tmp_path, world)
    _sign_up(client, "n", "f1", "f2")
    _sign_up(client, "m", "f3")
    _sign_up(client, "o", "f1")
    assert client.post("/v1/blocks", json={"src": "n", "dst": "v"}, headers=KEY).status_code == 201
    assert client.post("/v1/users", json={"id": "m", "opted_out": True}, headers=KEY).status_code == 201
    assert _ids_up_to_yz(_list(client, "v"), ["x", "y", "o", "z"])
    # a friendship of the newcomer's that ended since: it no longer counts nor is named
    assert client.delete("/v1/friendships/o/f1", headers=KEY).status_code == 200
    assert "o" not in {s["user_id"] for s in _list(client, "v")}
    _sign_up(client, "gone", "f1", "f2", "f3")           # deleted: never suggested, though the index held it
    assert [s["user_id"] for s in _list(client, "v")][2] == "gone"
    index = client.application.extensions["pymk"].served.pipeline.newcomers
    index.config = NewcomerConfig(refresh_s=3600)
    index.refresh(force=True)                            # the last read for an hour
    assert client.delete("/v1/users/gone", headers=KEY).status_code == 200
    assert "gone" in {c.user_id for c in index.near("v", frozenset({"f1"}), 5)}   # not read again yet
    assert "gone" not in {s["user_id"] for s in _list(client, "v")}
    assert client.delete("/v1/users/v", headers=KEY).status_code == 200
    assert client.get("/v1/users/v/suggestions").status_code == 404


def test_the_slots_are_a_setting_and_can_be_switched_off(tmp_path, world):
    client = _client(tmp_path, world, PYMK_NEWCOMER_SLOTS="1")
    _sign_up(client, "n", "f1")
    assert [s["user_id"] for s in _list(client, "v")][:2] == ["n", "x"]
    off = _client(tmp_path / "off", _world(), PYMK_NEWCOMER_SLOTS="")
    _sign_up(off, "n", "f1")
    assert "n" not in {s["user_id"] for s in _list(off, "v")}


def _reads_through(store: MemoryGraphStore, around=None) -> None:
    """Both of the index's reads of `store` (whole, and what changed) made through `around(read, *args)`;
    None: plain again."""
    for name in ("new_accounts", "newcomer_changes"):
        store.__dict__.pop(name, None)
        if around is not None:
            setattr(store, name, functools.partial(around, getattr(store, name)))


def test_the_index_is_read_again_only_when_stale_in_the_background_and_survives_a_failed_read():
    store = _world()
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
    store = _world()
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
    store = _world()
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
    store = _world()
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
    store = _world()
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


def test_why_explains_a_newcomer(tmp_path, world):
    from candidates.why import why

    client = _client(tmp_path, world, PYMK_NEWCOMER_SLOTS="1")
    _sign_up(client, "n", "f1", "f2")
    _sign_up(client, "m", "f3")
    _sign_up(client, "far", "y")
    pipeline = client.application.extensions["pymk"].served.pipeline
    shown = why(pipeline, "v", "n")
    assert (shown.proposed_by, shown.shown_at, shown.proof["fof"]["mutual_ids"]) == ({"newcomers": 0}, 0, ["f1", "f2"])
    assert shown.lines()[-1] == "  shown at #1: 2 mutual friends: f1, f2; joined recently"   # the API's reasons
    assert why(pipeline, "v", "m").removed.startswith("newcomer #2: below those in the 1 newcomer slots")
    assert why(pipeline, "v", "far").removed.startswith("not in the served snapshot, and not a newcomer")
    assert client.post("/v1/blocks", json={"src": "v", "dst": "n"}, headers=KEY).status_code == 201
    assert why(pipeline, "v", "n").removed == "hard rules (fresh state): blocked: blocked"
    pipeline.newcomers = None
    assert why(pipeline, "v", "m").removed.startswith("not in the served snapshot (added since")


def test_the_stage_reads_the_rules_with_the_lists_own_read_unless_the_viewers_friends_changed(tmp_path, world):
    client = _client(tmp_path, world)
    _sign_up(client, "n", "f1", "f2")
    _sign_up(client, "m", "y")     # two hops from v only through y, whom v befriends below
    reads = []
    rules = world.viewer_rules
    world.viewer_rules = lambda user, ids, since=None: (reads.append(list(ids)), rules(user, ids, since))[1]
    assert _ids_up_to_yz(_list(client, "v"), ["x", "y", "n", "z"])
    assert len(reads) == 1 and "n" in reads[0]          # one read: the list's, n's rules with it
    assert client.post("/v1/friendships", json={"a": "v", "b": "y"}, headers=KEY).status_code == 201
    reads.clear()
    got = _list(client, "v")
    assert [s["user_id"] for s in got] == ["x", "z", "n", "m"]   # y a friend now; m in slot 8, past the end
    # m was not among the snapshot's friends' newcomers; x, a friend of y (v's new friend), is proposed by the
    # friends of new friends: already first, it keeps its place, its proof now counting y
    assert len(reads) == 2 and reads[1] == ["n", "m", "x"]
    assert got[0]["reasons"][0] == "4 mutual friends: y, f1, f2, …"
    assert got[3]["reasons"] == ["1 mutual friend: y", "joined recently"]
