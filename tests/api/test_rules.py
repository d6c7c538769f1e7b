"""Hard rules on fresh state through the API: blocks, requests, unfriending, deactivated and deleted
accounts, written after the snapshot and respected by the next response."""

from __future__ import annotations

import time

from tests.api.common import KEY, suggested


def test_a_mutual_friend_the_viewer_blocked_since_the_snapshot_is_not_named(client):
    assert client.post("/v1/blocks", json={"src": "a1", "dst": "a0"}, headers=KEY).status_code == 201
    body = client.get("/v1/users/a1/suggestions?limit=5").get_json()
    assert body["suggestions"] and "a0" not in suggested(client.get("/v1/users/a1/suggestions?limit=5"))
    for s in body["suggestions"]:   # the snapshot still has the tie a1-a0 and b0's proof through a0
        assert "a0" not in " ".join(s["reasons"]) and "a0" not in s["proof"].get("fof", {}).get("mutual_ids", [])


def test_unfriending_is_a_delete_of_the_pair_in_either_order(client, world):
    assert client.delete("/v1/friendships/a2/a1").status_code == 401
    resp = client.delete("/v1/friendships/a2/a1", headers=KEY)
    assert resp.status_code == 200 and resp.get_json() == {"a": "a2", "b": "a1", "removed": True}
    assert "a2" not in world.friends("a1")
    assert client.delete("/v1/friendships/a1/a2", headers=KEY).get_json()["removed"] is False   # idempotent
    assert client.delete("/v1/friendships/a1/nobody", headers=KEY).get_json()["error"]["field"] == "b"
    assert client.delete("/v1/friendships/a1/a1", headers=KEY).status_code == 400
    reasons = [r for s in client.get("/v1/users/a1/suggestions").get_json()["suggestions"] for r in s["reasons"]]
    assert not any("a2" in r for r in reasons)   # no longer named as a mutual friend


def test_a_deactivated_mutual_friend_still_counts_but_is_not_named(client):
    assert client.post("/v1/users", json={"id": "a0", "deactivated": True}, headers=KEY).status_code == 201
    first = client.get("/v1/users/a1/suggestions?limit=5").get_json()["suggestions"][0]
    assert first["user_id"] == "b0" and first["reasons"][0] == "1 mutual friend"
    assert first["proof"]["fof"]["mutual_ids"] == [] and first["proof"]["fof"]["mutual_count"] == 1


def test_block_and_new_friendship_are_respected_immediately(client):
    assert suggested(client.get("/v1/users/a1/suggestions"))[0] == "b0"
    assert client.post("/v1/blocks", json={"src": "b0", "dst": "a1"}, headers=KEY).status_code == 201
    assert "b0" not in suggested(client.get("/v1/users/a1/suggestions"))
    before = suggested(client.get("/v1/users/b1/suggestions"))
    assert "a0" in before
    assert client.post("/v1/friendships", json={"a": "b1", "b": "a0"}, headers=KEY).status_code == 201
    assert "a0" not in suggested(client.get("/v1/users/b1/suggestions"))


def test_a_second_request_after_a_declines_cool_down_keeps_the_pair_out_of_both_lists(client):
    from candidates.filters import DECLINE_COOLDOWN_S

    long_ago = time.time() - 2 * DECLINE_COOLDOWN_S
    events = [{"type": "send", "src": "a1", "dst": "b0", "ts": long_ago},
              {"type": "decline", "src": "b0", "dst": "a1", "ts": long_ago + 60}]
    assert client.post("/v1/events", json=events, headers=KEY).status_code == 202
    assert suggested(client.get("/v1/users/a1/suggestions"))[0] == "b0"   # the cool-down is over
    assert client.post("/v1/events", json={"type": "send", "src": "a1", "dst": "b0", "ts": time.time()},
                       headers=KEY).status_code == 202
    assert "b0" not in suggested(client.get("/v1/users/a1/suggestions"))   # pending again, either way
    assert "a1" not in suggested(client.get("/v1/users/b0/suggestions"))


def test_a_proof_names_no_mutual_friend_of_a_candidate_whose_ties_ended_since_the_snapshot(client):
    """b0 and a0 end their tie after the snapshot: a1 may still be shown b0 (the snapshot's two hops), but
    not "mutual friend: a0", which would tell a1 of a tie that ended (or a block). A tie b0 ended with
    someone else leaves the proof as it was: the names are checked pair by pair."""
    first = client.get("/v1/users/a1/suggestions?explain=true").get_json()["suggestions"][0]
    assert first["user_id"] == "b0" and first["proof"]["fof"]["mutual_ids"] == ["a0"]
    assert client.delete("/v1/friendships/b0/b1", headers=KEY).status_code == 200   # stamps b0 (and b1)
    again = client.get("/v1/users/a1/suggestions?explain=true").get_json()["suggestions"][0]
    assert again["user_id"] == "b0" and again["proof"]["fof"] == first["proof"]["fof"]
    assert client.delete("/v1/friendships/a0/b0", headers=KEY).status_code == 200
    for s in client.get("/v1/users/a1/suggestions?explain=true").get_json()["suggestions"]:
        assert "fof" not in s["proof"] and not any("a0" in r for r in s["reasons"]), s


def test_an_id_deleted_and_created_again_is_a_new_account_not_the_snapshots(client):
    """Whoever takes a deleted account's id is not suggested on the former account's ties, nor shown
    suggestions drawn from them, while the served snapshot still describes the former account."""
    assert "b1" in suggested(client.get("/v1/users/a0/suggestions"))
    assert "a0" in suggested(client.get("/v1/users/b1/suggestions"))
    assert client.delete("/v1/users/b1", headers=KEY).status_code == 200
    assert client.post("/v1/users", json={"id": "b1"}, headers=KEY).status_code == 201
    assert "b1" not in suggested(client.get("/v1/users/a0/suggestions"))
    fresh = client.get("/v1/users/b1/suggestions?explain=true").get_json()
    # no friends yet: what any new account gets (popular people), nothing from the former account's network
    assert client.post("/v1/users", json={"id": "newbie"}, headers=KEY).status_code == 201
    assert suggested(client.get("/v1/users/newbie/suggestions")) == [s["user_id"] for s in fresh["suggestions"]] != []
    assert all(set(s["proof"]) <= {"popular", "trending"} for s in fresh["suggestions"])
    assert client.post("/v1/friendships", json={"a": "b1", "b": "c0"}, headers=KEY).status_code == 201
    body = client.get("/v1/users/b1/suggestions?explain=true").get_json()   # c0 has no other friend to suggest
    assert body["suggestions"] and not any("fof" in s["proof"] for s in body["suggestions"])


def test_a_deactivated_user_is_never_suggested_from_the_moment_it_is_written(client):
    assert suggested(client.get("/v1/users/a1/suggestions"))[0] == "b0"
    assert client.post("/v1/users", json={"id": "b0", "deactivated": True}, headers=KEY).status_code == 201
    assert "b0" not in suggested(client.get("/v1/users/a1/suggestions"))
    assert client.post("/v1/users", json={"id": "b0", "deactivated": False}, headers=KEY).status_code == 201
    assert suggested(client.get("/v1/users/a1/suggestions"))[0] == "b0"


def test_a_deactivated_viewer_is_shown_nothing_and_costs_one_rules_read(client, world, monkeypatch):
    calls = []
    rules = world.viewer_rules
    monkeypatch.setattr(world, "viewer_rules", lambda *a: calls.append(a) or rules(*a))
    assert client.post("/v1/users", json={"id": "a1", "deactivated": True}, headers=KEY).status_code == 201
    resp = client.get("/v1/users/a1/suggestions?limit=2")  # 2: the rules would refill batch after batch
    assert resp.status_code == 200 and resp.get_json()["suggestions"] == []
    assert len(calls) == 1   # the refill stops at the first batch: no walk down the list and the fallback
    assert "b0" in suggested(client.get("/v1/users/a2/suggestions"))  # others are served as before
    assert client.post("/v1/users", json={"id": "a1", "deactivated": False}, headers=KEY).status_code == 201
    assert suggested(client.get("/v1/users/a1/suggestions"))[0] == "b0"


def test_a_deleted_account_is_gone_from_suggestions_at_once_though_the_snapshot_holds_it(client):
    assert suggested(client.get("/v1/users/a1/suggestions"))[0] == "b0"
    assert client.delete("/v1/users/b0").status_code == 401
    resp = client.delete("/v1/users/b0", headers=KEY)
    assert resp.status_code == 200 and resp.get_json() == {"user_id": "b0", "deleted": True}
    assert "b0" not in suggested(client.get("/v1/users/a1/suggestions"))
    gone = client.get("/v1/users/b0/suggestions")   # in the served snapshot, deleted in the store
    assert gone.status_code == 404 and gone.get_json()["error"]["code"] == "unknown_user"
    again = client.delete("/v1/users/b0", headers=KEY)
    assert again.status_code == 404 and again.get_json()["error"]["field"] == "user_id"
    assert client.post("/v1/users", json={"id": "b0"}, headers=KEY).status_code == 201  # a new account
    assert client.get("/v1/users/b0/suggestions").status_code == 200
