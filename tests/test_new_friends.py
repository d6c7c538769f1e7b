"""Friends of the viewer's new friends (candidates/new_friends.py) in the fresh-tie slots."""

from __future__ import annotations

from api import create_app
from api.schemas import SuggestionsOut
from candidates.new_friends import friends_of_new_friends
from graph.memory_store import MemoryGraphStore
from graph.records import Friendship, UserRecord
from graph.snapshot import from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.settings import Settings

KEY = {"X-API-Key": "k1"}


def _cliques() -> MemoryGraphStore:
    """Cliques a0..a3, b0..b3 and c0..c3; a0-b0 a bridge; c3 opted out."""
    store = MemoryGraphStore()
    pairs = [(f"{s}{i}", f"{s}{j}") for s in "abc" for i in range(4) for j in range(i + 1, 4)] + [("a0", "b0")]
    store.add_friendships([Friendship(a, b, 1.0) for a, b in pairs])
    store.upsert_users([UserRecord(id="c3", opted_out=True)])
    return store


def test_the_friends_of_a_new_friend_most_mutual_friends_now_first():
    snap = from_store(_cliques())
    i = snap.index_of
    assert friends_of_new_friends(snap, i("a1"), frozenset({"a0", "a2", "a3"}), 5) == []   # no new friend
    # a1 befriended b1 and c1 since the snapshot: b0 shares a0 and b1 with it now, b2 and b3 b1, c0 and c2 c1
    got = friends_of_new_friends(snap, i("a1"), frozenset({"a0", "a2", "a3", "b1", "c1"}), 5)
    # c3 opted out; b2, b3, c0 and c2 share one each: in a pseudo-random order of the pair, not by index
    assert got[0].user_id == "b0" and {c.user_id for c in got[1:]} == {"b2", "b3", "c0", "c2"}
    assert [c.score("new_friends") for c in got] == [2.0, 1.0, 1.0, 1.0, 1.0]
    assert got[0].proof["fof"] == {"mutual_count": 2, "mutual_ids": ["b1", "a0"]}   # the new friend first
    assert got[0].proof["new_friends"] == {"via": ["b1"]} and got[0].score("new_friends") == 2.0
    only_new = [c.user_id for c in friends_of_new_friends(snap, i("a1"), frozenset({"b1", "c1"}), 6)]
    assert sorted(only_new) == ["b0", "b2", "b3", "c0", "c2"]   # each shares one friend now: all tie
    assert [c.user_id for c in friends_of_new_friends(snap, i("a1"), frozenset({"b1", "c1"}), 2)] == only_new[:2]


def test_a_tie_made_since_the_snapshot_brings_its_friends_into_the_list(tmp_path):
    store = _cliques()
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_API_KEYS": "k1", "PYMK_EXPLORE_SHARE": "0",
                                  "PYMK_NEWCOMER_REFRESH_S": "0"})
    save_snapshot(from_store(store), ArtifactStore(settings.snapshot_dir), source="test")
    client = create_app(settings, store=store).test_client()

    def listed():
        body = client.get("/v1/users/a1/suggestions?limit=8").get_json()
        SuggestionsOut.model_validate(body)   # as the OpenAPI description says
        return body["suggestions"]

    before = listed()
    assert "new_friends" not in {s for x in before for s in x["sources"]}
    assert client.post("/v1/friendships", json={"a": "a1", "b": "c1"}, headers=KEY).status_code == 201
    after = listed()
    third = after[2]
    assert third["user_id"] == "c0" and "new_friends" in third["sources"]   # moved up into the first slot
    assert third["reasons"][0] == "1 mutual friend: c1"
    assert "c1" not in [x["user_id"] for x in after] and "c3" not in [x["user_id"] for x in after]
    # every one of the new friend's friends the list holds names it; b0 keeps its own proof
    for x in after:
        if x["user_id"] in ("c0", "c2"):
            assert x["proof"]["fof"]["mutual_ids"] == ["c1"]
    assert after[0]["user_id"] == "b0" and after[0]["reasons"][0] == "1 mutual friend: a0"
    from candidates.why import why

    verdict = why(client.application.extensions["pymk"].served.pipeline, "a1", "c0", 8)
    assert verdict.shown_at == 2 and verdict.via_new_friends == ["c1"]
    assert "new_friends (a friend of the viewer's new friends c1, in a fresh-tie slot)" in verdict.lines()[1]
