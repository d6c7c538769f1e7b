"""What GET /v1/users/<id>/suggestions serves and why: explanations, viewers newer than the snapshot or
with almost no friends in it, degraded sources, impressions that rotate the list, `pymk why`."""

from __future__ import annotations

import functools
import time

import pytest

from api import create_app
from api.routes import bucket
from api.schemas import SuggestionsOut
from graph.records import Event, Friendship, UserRecord
from graph.snapshot import from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.settings import Settings
from tests.api.common import KEY, suggested


def test_suggestions_with_explanations(app, client):
    resp = client.get("/v1/users/a1/suggestions?limit=5")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["suggestions"][0]["user_id"] == "b0"
    assert body["suggestions"][0]["reasons"][0] == "1 mutual friend: a0"
    SuggestionsOut.model_validate(body)  # the body is what the OpenAPI description (from this model) says
    with app.app_context():
        assert body["bucket"] == bucket("a1")
    assert resp.headers["X-Pymk-Snapshot-Version"] == body["snapshot_version"] != "none"
    lean = client.get("/v1/users/a1/suggestions?explain=false").get_json()["suggestions"][0]
    assert "reasons" not in lean


def test_a_viewer_the_snapshot_lacks_costs_two_reads_and_an_unknown_one_is_a_404(client, world, monkeypatch):
    """The fresh path's first read says whether the store holds the viewer: no existence read before it."""
    assert client.post("/v1/users", json={"id": "newbie", "city": "oslo"}, headers=KEY).status_code == 201
    reads, depth = [], [0]

    def counted(read, name, *a, **k):   # the store's own calls (the fake's fresh_view calls its other reads)
        if not depth[0]:
            reads.append(name)
        depth[0] += 1
        try:
            return read(*a, **k)
        finally:
            depth[0] -= 1

    for name in ("get_user", "fresh_view", "viewer_rules", "friends_of_friends", "friends"):
        monkeypatch.setattr(world, name, functools.partial(counted, getattr(world, name), name))
    assert client.get("/v1/users/newbie/suggestions").status_code == 200
    assert reads == ["fresh_view", "viewer_rules"]
    reads.clear()
    resp = client.get("/v1/users/nobody/suggestions")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "unknown_user" and reads == ["fresh_view"]


def test_a_user_newer_than_the_snapshot_is_served_when_a_snapshot_source_or_its_impressions_fail(app, client):
    """The fresh path degrades as the pipeline does: a failing source proposes nothing, unreadable
    impressions leave the list without the seen penalty; friends of friends from the store still come."""
    assert client.post("/v1/users", json={"id": "nu", "city": "oslo"}, headers=KEY).status_code == 201
    assert client.post("/v1/friendships", json={"a": "nu", "b": "a0"}, headers=KEY).status_code == 201
    pipeline = app.extensions["pymk"].served.pipeline

    def fails(*_a, **_k):
        raise RuntimeError("chaos")

    (cold,) = [s for s in pipeline.sources if s.name == "coldstart"]
    cold.generate_for_profile = fails
    pipeline.seen_by_id = fails
    resp = client.get("/v1/users/nu/suggestions")
    body = resp.get_json()
    assert resp.status_code == 200 and {"a1", "a2", "a3", "b0"} <= {s["user_id"] for s in body["suggestions"]}
    assert body["skipped_sources"] == {"coldstart": "failed: RuntimeError('chaos')", "rerank": "failed: "
                                       "RuntimeError('chaos')", "snapshot": "user is newer than the served snapshot"}
    metrics = client.get("/metrics").get_data(as_text=True)
    for part, outcome in (("coldstart", "failed"), ("rerank", "failed"), ("snapshot", "skipped")):
        assert f'pymk_skipped_total{{outcome="{outcome}",part="{part}"}} 1.0' in metrics
    from candidates.why import why

    verdict = why(pipeline, "nu", "a1", store=app.extensions["pymk"].store)   # `pymk why` says what the request did
    chaos = "failed: RuntimeError('chaos')"
    assert {p: w for p, w in verdict.skipped.items() if p != "snapshot"} == {"coldstart": chaos, "rerank": chaos}
    assert "snapshot" in verdict.skipped and verdict.shown_at is not None


def test_new_user_then_friendship_gets_fresh_suggestions(client):
    """A user who signed up after the snapshot: cold start from the profile the store holds and the
    snapshot's popular people at once, under every hard rule on fresh state; then friends of friends."""
    assert client.post("/v1/users", json={"id": "newbie", "city": "oslo"}, headers=KEY).status_code == 201
    body = client.get("/v1/users/newbie/suggestions?explain=true").get_json()
    by_id = {s["user_id"]: s for s in body["suggestions"]}
    assert set(by_id) == {"a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3", "c0"}
    assert "snapshot" in body["skipped_sources"]
    order = [s["user_id"] for s in body["suggestions"]]
    assert set(order[:2]) == {"a0", "b0"}   # the best connected (equally: ties go in a pseudo-random order)
    client.get("/v1/users/a1/suggestions")   # in the snapshot; no precomputed lists in this app: ranked online
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'pymk_suggestion_lists_total{path="fresh"} 1.0' in metrics
    assert 'pymk_suggestion_lists_total{path="online"} 1.0' in metrics
    for limit in (1, 4):   # the same order whatever the limit (every source proposes as many)
        assert suggested(client.get(f"/v1/users/newbie/suggestions?limit={limit}")) == order[:limit]
    assert by_id["c0"]["sources"] == ["coldstart"] and by_id["c0"]["proof"]["coldstart"]["shared"] == ["city"]
    assert by_id["c0"]["reasons"] and "popular" in by_id["a0"]["sources"]
    client.post("/v1/blocks", json={"src": "a0", "dst": "newbie"}, headers=KEY)
    client.post("/v1/users", json={"id": "c0", "opted_out": True}, headers=KEY)
    assert client.delete("/v1/users/b1", headers=KEY).status_code == 200
    assert client.post("/v1/users", json={"id": "b1"}, headers=KEY).status_code == 201   # someone else now
    assert set(suggested(client.get("/v1/users/newbie/suggestions"))) == {"a1", "a2", "a3", "b0", "b2", "b3"}
    client.post("/v1/friendships", json={"a": "newbie", "b": "a2"}, headers=KEY)
    body = client.get("/v1/users/newbie/suggestions?explain=true").get_json()
    by_id = {s["user_id"]: s for s in body["suggestions"]}
    assert set(by_id) == {"a1", "a3", "b0", "b2", "b3"} and "snapshot" in body["skipped_sources"]
    assert by_id["a1"]["proof"]["fof"]["mutual_ids"] == ["a2"] and "popular" in by_id["a1"]["sources"]


def test_a_viewer_with_almost_no_friends_in_the_snapshot_who_makes_some_is_served_off_it(client):
    """c0 had no friend when the snapshot was made (its second day, say) and befriends a2: the snapshot's
    sources would still see a user without friends, so c0 gets the friends of a2 from the graph store now.
    A viewer with friends enough in the snapshot stays on it, new friend or not."""
    before = client.get("/v1/users/c0/suggestions?explain=true").get_json()
    assert "snapshot" not in before["skipped_sources"] and not any("fof" in s["proof"] for s in before["suggestions"])
    assert client.post("/v1/friendships", json={"a": "c0", "b": "a2"}, headers=KEY).status_code == 201
    after = client.get("/v1/users/c0/suggestions?explain=true").get_json()
    assert after["skipped_sources"]["snapshot"].startswith("the viewer had fewer than 3 friends")
    fof = {s["user_id"]: s["proof"]["fof"]["mutual_ids"] for s in after["suggestions"] if "fof" in s["proof"]}
    assert fof == {"a0": ["a2"], "a1": ["a2"], "a3": ["a2"]}
    assert "a2" not in suggested(client.get("/v1/users/c0/suggestions"))
    assert client.post("/v1/friendships", json={"a": "a1", "b": "b3"}, headers=KEY).status_code == 201
    assert "snapshot" not in client.get("/v1/users/a1/suggestions").get_json()["skipped_sources"]   # 3 friends then


def test_impressions_posted_since_the_snapshot_rotate_the_list(world, tmp_path):
    """A candidate shown again and again gives its place to the next one at once, not at the next snapshot
    (the seen penalty counts the impressions logged since it: candidates/recent_shown.py); a newcomer in a
    slot gives it to the next newcomer the same way."""
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_API_KEYS": "k1", "PYMK_EXPLORE_SHARE": "0",
                                  "PYMK_SEEN_REFRESH_S": "0", "PYMK_NEWCOMER_REFRESH_S": "0",
                                  "PYMK_NEWCOMER_SLOTS": "2"})
    save_snapshot(from_store(world), ArtifactStore(settings.snapshot_dir), source="test")
    # two newcomers, each befriended by one of a1's friends (one mutual friend each: a tie, n1 first by id)
    world.add_friendships([Friendship("a2", "n1", time.time()), Friendship("a3", "n2", time.time())])
    client = create_app(settings, store=world).test_client()
    first = suggested(client.get("/v1/users/a1/suggestions?limit=5"))
    assert len(first) >= 3 and first[1] == "n1"
    now = time.time()
    shown = [{"type": "impression", "src": "a1", "dst": user, "ts": now + n, "position": position}
             for n in range(3) for position, user in ((0, first[0]), (1, "n1"))]   # three lists shown
    assert client.post("/v1/events", json=shown, headers=KEY).status_code == 202
    again = suggested(client.get("/v1/users/a1/suggestions?limit=5"))
    assert again[0] != first[0] and first[0] in again   # moved down, still suggested
    assert again[1] == "n2" and "n1" not in again[:2]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "pymk_recent_impressions_held 6.0" in metrics   # an operator sees what the workers hold


def test_a_viewer_newer_than_the_snapshot_gets_new_faces_too(world, tmp_path):
    """Its list is served off the store (the fresh path, no re-rank): the impressions logged since weigh its
    fused order the same way."""
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_API_KEYS": "k1", "PYMK_EXPLORE_SHARE": "0",
                                  "PYMK_SEEN_REFRESH_S": "0"})
    save_snapshot(from_store(world), ArtifactStore(settings.snapshot_dir), source="test")
    client = create_app(settings, store=world).test_client()
    assert client.post("/v1/users", json={"id": "nu"}, headers=KEY).status_code == 201
    assert client.post("/v1/friendships", json={"a": "nu", "b": "a0"}, headers=KEY).status_code == 201
    resp = client.get("/v1/users/nu/suggestions?limit=4")
    first = suggested(resp)
    assert "snapshot" in resp.get_json()["skipped_sources"] and len(first) == 4
    now = time.time()
    shown = [{"type": "impression", "src": "nu", "dst": u, "ts": now + n, "position": i}
             for n in range(2) for i, u in enumerate(first[:2])]
    assert client.post("/v1/events", json=shown, headers=KEY).status_code == 202
    again = suggested(client.get("/v1/users/nu/suggestions?limit=4"))
    assert again[:2] == first[2:4]   # the two shown twice moved behind the two not shown
    # pymk why says so (its pipeline built as the command builds it)
    from candidates.filters import StoreStateReader
    from candidates.why import why
    from pymk.assemble import add_live_state, assemble_pipeline

    pipeline = assemble_pipeline(settings, StoreStateReader(world)).pipeline
    add_live_state(pipeline, settings, world)
    try:
        verdict = why(pipeline, "nu", first[0], k=2, store=world)   # behind again[:2], as served
        assert verdict.reranked == ["shown to the viewer 2 times without an action: its score x0.49 (the seen "
                                    "penalty, x0.7 a time)"] and verdict.shown_at is None
        assert verdict.removed == "re-ranked below the first 2 (the re-rank's lines above)"
        assert why(pipeline, "nu", first[0], k=10, store=world).shown_at is not None
    finally:
        pipeline.close()


def test_why_gives_each_stages_verdict_for_one_pair(app_settings, world):
    from candidates.filters import StoreStateReader
    from candidates.why import why
    from pymk.assemble import assemble_pipeline
    from pymk.errors import UnknownUserError

    save_snapshot(from_store(world), ArtifactStore(app_settings.snapshot_dir), source="test")
    pipeline = assemble_pipeline(app_settings, StoreStateReader(world)).pipeline
    try:
        shown = why(pipeline, "a1", "b0")
        assert "fof" in shown.proposed_by and shown.shown_at == 0 and shown.removed is None
        assert shown.proof["fof"]["mutual_ids"] == ["a0"] and shown.lines()[-1] == "  shown at #1: 1 mutual friend: a0"
        friend = why(pipeline, "a1", "a2")
        assert friend.removed == "cheap filters (snapshot): already_friends" and friend.shown_at is None
        world.apply_events([Event("block", "b0", "a1", 5.0)])   # fresh state, after the snapshot
        blocked = why(pipeline, "a1", "b0")
        assert blocked.removed == "hard rules (fresh state): blocked: blocked" and blocked.ranked_at == 0
        assert why(pipeline, "a1", "new-user").removed.startswith("not in the served snapshot")
        with pytest.raises(UnknownUserError):
            why(pipeline, "nobody", "b0")
        world.delete_users(["a1"])
        world.upsert_users([UserRecord(id="a1")])   # a new account under the id the snapshot knows
        assert why(pipeline, "a1", "b0").removed.startswith("the viewer's account was deleted and created again")
        assert why(pipeline, "b0", "a1").removed == ("hard rules (fresh state): opted_out: opted out of "
                                                     "suggestions, deactivated or deleted")
        # with the store, as `pymk why` runs it: a viewer served off the snapshot gets the API's verdicts
        replaced = why(pipeline, "a1", "b0", store=world)
        assert "snapshot" in replaced.skipped and replaced.removed is None and replaced.shown_at is not None
        # first of the global lists, with a0 (4 friends each, every tie made at once): equal scores share a rank
        assert replaced.proposed_by == {"popular": 0, "trending": 0} and replaced.proof["popular"] == {"friends": 4}
        world.upsert_users([UserRecord(id="newbie", city="oslo")])
        world.add_friendships([Friendship("newbie", "b1", 9.0)])
        cold = why(pipeline, "newbie", "c0", store=world)
        assert cold.proposed_by == {"coldstart": 0} and cold.proof["coldstart"]["shared"] == ["city"]
        via = why(pipeline, "newbie", "b2", store=world)
        assert via.proposed_by["fof"] == 0 and via.proof["fof"]["mutual_ids"] == ["b1"] and via.shown_at is not None
        assert why(pipeline, "newbie", "b3", store=world).proposed_by["fof"] == 0   # b0, b2, b3: one mutual each
        assert why(pipeline, "newbie", "b1", store=world).removed == "no source proposed it"   # a friend already
        assert why(pipeline, "newbie", "b0", store=world).shown_at is not None
        world.apply_events([Event("block", "newbie", "b0", 10.0)])
        assert why(pipeline, "newbie", "b0", store=world).removed == "hard rules (fresh state): blocked: blocked"
        with pytest.raises(UnknownUserError):
            why(pipeline, "nobody", "b0", store=world)
        world.add_friendships([Friendship("c0", "a3", 9.0)])   # c0 had no friend in the snapshot
        assert why(pipeline, "c0", "a0").removed.startswith("the viewer had almost no friends in the served snapshot")
        second_day = why(pipeline, "c0", "a0", store=world)
        assert "snapshot" in second_day.skipped and second_day.proof["fof"]["mutual_ids"] == ["a3"]
    finally:
        pipeline.close()
