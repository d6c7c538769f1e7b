"""The Flask API through its test client: every endpoint and error path, fresh-state rules, hot swap."""

from __future__ import annotations

import contextlib
import functools
import time

import pytest

from api import close_app, create_app
from api.routes import bucket
from api.schemas import SuggestionsOut
from graph.memory_store import MemoryGraphStore
from graph.records import Event, Friendship, UserRecord
from graph.snapshot import from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.errors import ConfigError
from pymk.settings import Settings

KEY = {"X-API-Key": "k1"}


def _world(store) -> None:
    """Cliques a0..a3 and b0..b3 joined by the bridge a0-b0, plus c0 with a school."""
    pairs = [(f"{s}{i}", f"{s}{j}") for s in "ab" for i in range(4) for j in range(i + 1, 4)] + [("a0", "b0")]
    # an hour apart, the bridge last (one time for every tie would read as no times: graph/snapshot/build.py)
    store.add_friendships([Friendship(a, b, 1.7e9 + 3600.0 * k) for k, (a, b) in enumerate(pairs)])
    store.upsert_users([UserRecord(id="c0", school="mit", city="oslo")])


@pytest.fixture
def app_settings(tmp_path) -> Settings:
    return Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_API_KEYS": "k1,k2",
                              "PYMK_API_MAX_REQUEST_BYTES": "20000", "PYMK_EXPLORE_SHARE": "0",
                              "PYMK_SERVED_LOG": "features"})


@pytest.fixture
def world() -> MemoryGraphStore:
    """The graph store behind the app (in memory): two cliques joined by a bridge, and c0."""
    store = MemoryGraphStore()
    _world(store)
    return store


@pytest.fixture
def app(app_settings, world):
    save_snapshot(from_store(world), ArtifactStore(app_settings.snapshot_dir), source="test")
    return create_app(app_settings, store=world)


@pytest.fixture
def client(app):
    return app.test_client()


def _ids(resp) -> list[str]:
    return [s["user_id"] for s in resp.get_json()["suggestions"]]


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


def test_a_mutual_friend_the_viewer_blocked_since_the_snapshot_is_not_named(client):
    assert client.post("/v1/blocks", json={"src": "a1", "dst": "a0"}, headers=KEY).status_code == 201
    body = client.get("/v1/users/a1/suggestions?limit=5").get_json()
    assert body["suggestions"] and "a0" not in _ids(client.get("/v1/users/a1/suggestions?limit=5"))
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


def test_unknown_user_is_a_json_404(client):
    resp = client.get("/v1/users/nobody/suggestions")
    assert resp.status_code == 404
    assert resp.get_json()["error"] == {"code": "unknown_user", "message": "unknown user 'nobody'", "field": "user_id",
                                        "request_id": resp.headers["X-Request-ID"]}


@pytest.mark.parametrize(("query", "field"), [("limit=0", "limit"), ("limit=abc", "limit"), ("limit=101", "limit"),
                                              ("limit=-1", "limit"), ("limit=+5", "limit"),
                                              ("limit=%C2%B2", "limit"),   # '²': str.isdigit() says yes
                                              ("limit=%D9%A3", "limit"),   # Arabic-Indic 3: int() reads it
                                              ("explain=maybe", "explain")])
def test_bad_query_is_a_400_naming_the_field(client, query, field):
    resp = client.get(f"/v1/users/a1/suggestions?{query}")
    assert resp.status_code == 400 and resp.get_json()["error"]["field"] == field


def test_writes_need_an_api_key(client):
    assert client.post("/v1/users", json={"id": "z"}).status_code == 401
    resp = client.post("/v1/users", json={"id": "z"}, headers={"X-API-Key": "nope"})
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "bad_api_key"
    for partial in ("k", "k1 ", "k1,k2", ""):   # a prefix, padding, the whole list, empty: all refused
        assert client.post("/v1/users", json={"id": "z"}, headers={"X-API-Key": partial}).status_code == 401
    assert client.post("/v1/users", json={"id": "z"}, headers={"X-API-Key": "k2"}).status_code == 201


def test_with_auth_all_reads_need_a_key_too_and_each_key_is_its_own_rate_limit_client(app_settings, world):
    import dataclasses

    settings = dataclasses.replace(app_settings, api=dataclasses.replace(app_settings.api, auth="all",
                                                                         rate_limit_per_minute=4))
    save_snapshot(from_store(world), ArtifactStore(settings.snapshot_dir), source="test")
    client = create_app(settings, store=world).test_client()
    url = "/v1/users/a1/suggestions"
    for headers in ({}, {"X-API-Key": "k"}, {"X-API-Key": "k1,k2"}):
        resp = client.get(url, headers=headers)
        assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "bad_api_key", headers
    assert client.get("/v1/users/nobody/suggestions").status_code == 401   # no key: not even whether one exists
    for path in ("/healthz", "/readyz", "/metrics"):   # probes and scrapes stay open
        assert client.get(path).status_code == 200, path
    spec = client.get("/openapi.json").get_json()["paths"][url.replace("a1", "{user_id}")]["get"]
    assert spec["security"] == [{"apiKey": []}] and "401" in spec["responses"]
    # the address spent its 4 requests above; a configured key on a read is its own client now
    assert client.get(url, headers={"X-API-Key": "k1"}).status_code == 200
    assert client.get(url).status_code == 429
    assert client.post("/v1/users", json={"id": "z"}, headers=KEY).status_code == 201   # writes as before
    with pytest.raises(ConfigError, match="PYMK_API_AUTH=all"):
        create_app(dataclasses.replace(settings, api=dataclasses.replace(settings.api, api_keys=frozenset())),
                   store=world)


def test_close_app_closes_the_logs_and_only_a_store_it_opened(app_settings, world, monkeypatch):
    save_snapshot(from_store(world), ArtifactStore(app_settings.snapshot_dir), source="test")
    given = create_app(app_settings, store=world)
    client = given.test_client()
    assert client.get("/v1/users/a1/suggestions").status_code == 200   # the served log's segment opens
    sent = client.post("/v1/events", json={"type": "send", "src": "a1", "dst": "b1", "ts": 5}, headers=KEY)
    assert sent.status_code == 202                                    # ... and the event log's
    services = given.extensions["pymk"]
    handles = [services.events._live[1], services.served_log._live[1]]
    pool = services.served.pipeline.runner._pool
    close_app(given)
    assert all(h.closed for h in handles) and "close" not in world.calls   # the caller's store stays open
    with pytest.raises(RuntimeError, match="shutdown"):                    # the sources' threads are stopped
        pool.submit(print)

    opened = MemoryGraphStore()
    _world(opened)
    monkeypatch.setattr("graph.connect.open_store", lambda settings, for_requests=False: opened)
    own = create_app(app_settings)
    from types import SimpleNamespace

    from api.server import _worker_exit

    _worker_exit(None, SimpleNamespace(wsgi=own))   # gunicorn's hook as a worker stops
    assert opened.calls[-1] == "close"
    _worker_exit(None, SimpleNamespace())          # a worker that failed before loading the app


def test_by_default_reads_need_no_key(client, app):
    assert client.get("/v1/users/a1/suggestions").status_code == 200
    spec = client.get("/openapi.json").get_json()["paths"]["/v1/users/{user_id}/suggestions"]["get"]
    assert "security" not in spec and "401" not in spec["responses"]


def test_events_single_and_batch(client, world, app_settings):
    assert client.post("/v1/events", json={"type": "send", "src": "a1", "dst": "b1", "ts": 5},
                       headers=KEY).status_code == 202
    resp = client.post("/v1/events", json=[{"type": "impression", "src": "a1", "dst": "b2", "ts": 6, "position": 0},
                                           {"type": "dismiss", "src": "a1", "dst": "b2", "ts": 7},
                                           {"type": "interaction", "src": "a1", "dst": "b3", "ts": 8}], headers=KEY)
    assert resp.status_code == 202 and resp.get_json() == {"accepted": 3}
    assert world.pending_requests("a1").outgoing == ("b1",)
    assert world.user_state("a1").dismissed == {"b2"}   # an interaction changes no state: it is only logged
    from graph.eventlog import EventLog

    assert [e.type for e in EventLog(app_settings.event_log_dir).read()] == ["send", "impression", "dismiss",
                                                                             "interaction"]
    for bad in (1e300, -5):  # implausible times are a 400 naming the field, and nothing is logged
        resp = client.post("/v1/events", json={"type": "send", "src": "a1", "dst": "b3", "ts": bad}, headers=KEY)
        assert resp.status_code == 400 and "outside the accepted window" in resp.get_json()["error"]["message"]
    assert len(list(EventLog(app_settings.event_log_dir).read())) == 4


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"type": "poke", "src": "a1", "dst": "b1", "ts": 1}, 400, "[0]"),
    ([{"type": "send", "src": "a1", "dst": "b1", "ts": 1}, {"type": "send", "src": "a1", "ts": 1}], 400, "[1]"),
    ({"type": "send", "src": "a1", "dst": "ghost", "ts": 1}, 404, "[0].dst"),
    ([], 400, "body"),
    ("just a string", 400, "[0]"),
])
def test_bad_events(client, world, body, status, field):
    resp = client.post("/v1/events", json=body, headers=KEY)
    assert resp.status_code == status and resp.get_json()["error"]["field"] == field
    assert world.pending_requests("a1").outgoing == ()  # nothing of a bad batch was applied


def test_block_and_new_friendship_are_respected_immediately(client):
    assert _ids(client.get("/v1/users/a1/suggestions"))[0] == "b0"
    assert client.post("/v1/blocks", json={"src": "b0", "dst": "a1"}, headers=KEY).status_code == 201
    assert "b0" not in _ids(client.get("/v1/users/a1/suggestions"))
    before = _ids(client.get("/v1/users/b1/suggestions"))
    assert "a0" in before
    assert client.post("/v1/friendships", json={"a": "b1", "b": "a0"}, headers=KEY).status_code == 201
    assert "a0" not in _ids(client.get("/v1/users/b1/suggestions"))


def test_a_second_request_after_a_declines_cool_down_keeps_the_pair_out_of_both_lists(client):
    from candidates.filters import DECLINE_COOLDOWN_S

    long_ago = time.time() - 2 * DECLINE_COOLDOWN_S
    events = [{"type": "send", "src": "a1", "dst": "b0", "ts": long_ago},
              {"type": "decline", "src": "b0", "dst": "a1", "ts": long_ago + 60}]
    assert client.post("/v1/events", json=events, headers=KEY).status_code == 202
    assert _ids(client.get("/v1/users/a1/suggestions"))[0] == "b0"   # the cool-down is over
    assert client.post("/v1/events", json={"type": "send", "src": "a1", "dst": "b0", "ts": time.time()},
                       headers=KEY).status_code == 202
    assert "b0" not in _ids(client.get("/v1/users/a1/suggestions"))   # pending again, either way
    assert "a1" not in _ids(client.get("/v1/users/b0/suggestions"))


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("/v1/users", {"id": "u", "lat": 100, "lon": 0}, 400, "lat"),
    ("/v1/users", {"id": "u", "created_at": "2999-01-01"}, 400, "created_at"),   # the accepted time window
    ("/v1/users", {"id": "u", "created_at": "soon"}, 400, "created_at"),
    ("/v1/users", {"id": "u", "nickname": "x"}, 400, "nickname"),
    ("/v1/users", {"id": ""}, 400, "id"),
    ("/v1/users", {"id": "abc\x00"}, 400, "id"),   # the snapshot's id array would make it 'abc'
    ("/v1/friendships", {"a": "a1", "b": "b\nx"}, 400, "b"),
    ("/v1/friendships", {"a": "a1", "b": "a1"}, 400, "b"),
    ("/v1/friendships", {"a": "a1", "b": "ghost"}, 404, "b"),
    ("/v1/friendships", {"a": "a1", "b": "b3", "since": "yesterday"}, 400, "since"),
    ("/v1/blocks", {"src": "ghost", "dst": "a1"}, 404, "src"),
])
def test_bad_writes(client, path, body, status, field):
    resp = client.post(path, json=body, headers=KEY)
    assert resp.status_code == status and resp.get_json()["error"]["field"] == field


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
        assert _ids(client.get(f"/v1/users/newbie/suggestions?limit={limit}")) == order[:limit]
    assert by_id["c0"]["sources"] == ["coldstart"] and by_id["c0"]["proof"]["coldstart"]["shared"] == ["city"]
    assert by_id["c0"]["reasons"] and "popular" in by_id["a0"]["sources"]
    client.post("/v1/blocks", json={"src": "a0", "dst": "newbie"}, headers=KEY)
    client.post("/v1/users", json={"id": "c0", "opted_out": True}, headers=KEY)
    assert client.delete("/v1/users/b1", headers=KEY).status_code == 200
    assert client.post("/v1/users", json={"id": "b1"}, headers=KEY).status_code == 201   # someone else now
    assert set(_ids(client.get("/v1/users/newbie/suggestions"))) == {"a1", "a2", "a3", "b0", "b2", "b3"}
    client.post("/v1/friendships", json={"a": "newbie", "b": "a2"}, headers=KEY)
    body = client.get("/v1/users/newbie/suggestions?explain=true").get_json()
    by_id = {s["user_id"]: s for s in body["suggestions"]}
    assert set(by_id) == {"a1", "a3", "b0", "b2", "b3"} and "snapshot" in body["skipped_sources"]
    assert by_id["a1"]["proof"]["fof"]["mutual_ids"] == ["a2"] and "popular" in by_id["a1"]["sources"]


def test_health_ready_metrics_openapi_and_generic_errors(client, world, tmp_path):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.get("/v1/users/a1/suggestions")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'pymk_http_requests_total{endpoint="/v1/users/<user_id>/suggestions",status="200"}' in text
    for stage in ("fof", "ppr", "generate", "filters", "total"):  # per-stage timings
        assert f'pymk_stage_seconds_count{{stage="{stage}"}} 1.0' in text
    spec = client.get("/openapi.json").get_json()
    assert "/v1/events" in spec["paths"] and spec["openapi"].startswith("3.")
    assert client.get("/nope").get_json()["error"]["code"] == "not_found"
    assert client.delete("/v1/users").status_code == 405
    big = client.post("/v1/events", data="x" * 30000, headers={**KEY, "Content-Type": "application/json"})
    assert big.status_code == 413 and "error" in big.get_json()
    bare = create_app(Settings.from_env({"PYMK_DATA_DIR": str(tmp_path / "empty")}), store=world).test_client()
    resp = bare.get("/readyz")
    assert resp.status_code == 503 and "no snapshot" in resp.get_json()["error"]["message"]


def test_rate_limit_counts_validated_identities_across_apps_sharing_storage(tmp_path):
    import uuid

    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_API_RATE_LIMIT": "6",
                                  "PYMK_API_KEYS": "k1,k2"})
    # two apps on one data directory stand for two worker processes: they share the counters
    first, second = (create_app(settings, store=MemoryGraphStore()).test_client() for _ in range(2))
    codes = [c.get("/v1/users/x/suggestions").status_code for c in (first, second) * 3]
    assert codes == [404] * 6
    limited = second.get("/v1/users/x/suggestions")
    assert limited.status_code == 429 and limited.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 61
    assert first.get("/healthz").status_code == 200  # probes are never limited
    # a client inventing a key per request is still one client (its address): no escape
    rotated = [first.post("/v1/users", json={"id": "z"}, headers={"X-API-Key": uuid.uuid4().hex}).status_code
               for _ in range(3)]
    assert rotated == [429, 429, 429]
    # a configured key on a write is its own identity, with its own budget
    assert first.post("/v1/users", json={"id": "z"}, headers={"X-API-Key": "k1"}).status_code == 201


def test_bucket_is_stable_and_splits_users(app):
    with app.app_context():
        first = [bucket(f"u{i}") for i in range(400)]
        assert first == [bucket(f"u{i}") for i in range(400)]
        assert 120 < first.count("control") < 280


def test_hot_swap_never_fails_a_request_that_started_on_the_old_pipeline(app, client, world, app_settings):
    svc = app.extensions["pymk"]
    before = svc.served  # what a request that started just before the swap holds
    world.add_friendships([Friendship("a1", "x9")])
    save_snapshot(from_store(world), ArtifactStore(app_settings.snapshot_dir), source="test")
    assert svc.reload(force=True) and svc.served.snapshot_version != before.snapshot_version
    rec = before.pipeline.recommend("a1", 5)  # ...and runs its stages after it
    assert rec.candidates[0].user_id == "b0" and not rec.skipped_sources
    resp = client.get("/v1/users/x9/suggestions")
    assert resp.status_code == 200 and resp.headers["X-Pymk-Snapshot-Version"] == svc.served.snapshot_version


def _published_gauge(client) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    return {line.split('"')[1]: float(line.split()[-1]) for line in text.splitlines()
            if line.startswith("pymk_served_published_timestamp_seconds{")}


def test_metrics_say_when_each_served_artifact_was_published(app, client, world, app_settings):
    """What an operator alerts on (a snapshot growing old: the nightly refresh stopped)."""
    snapshots = ArtifactStore(app_settings.snapshot_dir)
    first = snapshots.manifest(snapshots.current())["published_at"]
    assert _published_gauge(client) == {"snapshot": first, "embeddings": 0.0, "ranker": 0.0, "candidates": 0.0}
    world.add_friendships([Friendship("a1", "x9")])
    save_snapshot(from_store(world), snapshots, source="test")
    app.extensions["pymk"].reload(force=True)
    client.get("/healthz")   # the gauge follows the swap with the next response
    later = snapshots.manifest(snapshots.current())["published_at"]
    assert later > first and _published_gauge(client)["snapshot"] == later


@pytest.mark.integration
def test_against_real_neo4j_block_respected_in_next_response(neo4j_store, prefix, tmp_path):
    p = prefix
    pairs = [(f"{p}{s}{i}", f"{p}{s}{j}") for s in "ab" for i in range(4) for j in range(i + 1, 4)]
    neo4j_store.add_friendships([Friendship(a, b) for a, b in [*pairs, (f"{p}a0", f"{p}b0")]])
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_API_KEYS": "k1", "PYMK_EXPLORE_SHARE": "0"})
    save_snapshot(from_store(neo4j_store), ArtifactStore(settings.snapshot_dir), source="neo4j")
    client = create_app(settings, store=neo4j_store).test_client()
    assert _ids(client.get(f"/v1/users/{p}a1/suggestions"))[0] == f"{p}b0"
    assert client.post("/v1/blocks", json={"src": f"{p}a1", "dst": f"{p}b0"}, headers=KEY).status_code == 201
    assert f"{p}b0" not in _ids(client.get(f"/v1/users/{p}a1/suggestions"))
    ev = {"type": "send", "src": f"{p}b1", "dst": f"{p}a0", "ts": 1}
    assert client.post("/v1/events", json=ev, headers=KEY).status_code == 202
    assert f"{p}a0" not in _ids(client.get(f"/v1/users/{p}b1/suggestions"))  # pending request
    assert client.get("/readyz").status_code == 200


def _publish_embeddings(svc, settings, seed: int = 0):
    import faiss
    import numpy as np

    from candidates.ann import build_index

    snap = svc.served.pipeline.snap
    emb_store = ArtifactStore(settings.embeddings_dir)
    staging = emb_store.staging_dir()
    emb = np.random.default_rng(seed).normal(size=(snap.num_users, 8)).astype(np.float32)
    np.save(staging / "embeddings.npy", emb)
    faiss.write_index(build_index(emb), str(staging / "index.faiss"))
    return emb, emb_store.publish(staging, {"kind": "embeddings", "snapshot_version": svc.served.snapshot_version}).name


def test_ann_source_is_served_when_embeddings_match_the_snapshot(app, client, app_settings):
    svc = app.extensions["pymk"]
    _publish_embeddings(svc, app_settings)
    assert svc.reload(force=True)
    assert "ann" in [s.name for s in svc.served.pipeline.sources]
    resp = client.get("/v1/users/c0/suggestions?limit=50")
    assert resp.status_code == 200
    assert resp.headers["X-Pymk-Model-Version"] == f"ranker:none,embeddings:{svc.served.embeddings_version}"
    assert any("ann" in s["sources"] for s in resp.get_json()["suggestions"])


def _publish_untrained_ranker(settings, emb_version=None, per_source_k=None) -> str:
    """A randomly initialised connect-head ranker: its scores are arbitrary but fixed, which is all parity needs."""
    import torch

    from ranker.calibration import Calibration
    from ranker.features import FEATURE_NAMES
    from ranker.model import MultiTaskRanker
    from ranker.scorers import TorchScorer
    from ranker.train import RankerConfig, publish

    torch.manual_seed(0)
    scorer = TorchScorer(MultiTaskRanker(len(FEATURE_NAMES)), Calibration(), mode="connect")
    extra = {"per_source_k": per_source_k} if per_source_k is not None else {}
    return publish(scorer, RankerConfig(), {"note": "untrained"}, ArtifactStore(settings.ranker_dir), None,
                   emb_version, **extra)


def test_sources_propose_as_many_candidates_as_the_rankers_examples_had(app, app_settings):
    """List-relative features (rank in a source, percentiles in the viewer's list) mean what they meant in
    training only if every source proposes as many candidates when serving as when the examples were built."""
    from candidates.pipeline import PER_SOURCE_K

    svc = app.extensions["pymk"]
    assert svc.served.pipeline.config.per_source_k == PER_SOURCE_K     # heuristic order: the default
    _publish_untrained_ranker(app_settings, per_source_k=7)
    assert svc.reload(force=True) and svc.served.pipeline.config.per_source_k == 7
    _publish_untrained_ranker(app_settings)
    assert svc.reload(force=True) and svc.served.pipeline.config.per_source_k == PER_SOURCE_K


def test_learned_ranker_is_served_and_a_mismatched_one_falls_back(app, client, app_settings):
    import numpy as np

    from candidates.pipeline import Recommendation
    from graph.eventlog import EventLog

    svc = app.extensions["pymk"]
    store = ArtifactStore(app_settings.ranker_dir)
    _publish_untrained_ranker(app_settings)
    assert svc.reload(force=True) and svc.served.ranker_version == store.current_version()
    body = client.get("/v1/users/a1/suggestions").get_json()
    items = SuggestionsOut.model_validate(body).model_dump()["suggestions"]  # with the model's scores, too
    served = list(EventLog(app_settings.data_dir / "served").read_records())[-1]
    assert served["ranker"] == store.current_version()
    # parity through the serving object: ranking the same viewer again gives the served scores and the
    # logged features, candidate by candidate
    pipeline = svc.served.pipeline
    again = {c.user_id: c for c in pipeline.ranked(pipeline.snap.index_of("a1"), Recommendation("a1", []))}
    for item, logged in zip(items, served["candidates"], strict=True):
        c = again[item["user_id"]]
        assert item["p_connect"] == round(c.score("p_connect"), 6) == item["score"]
        assert np.array_equal(np.float32(logged["features"]), c.proof["ranker"]["features"])
    staging = store.staging_dir()
    (staging / "model.pt").write_bytes(b"")
    store.publish(staging, {"kind": "ranker", "features": ["something_else"], "config": {}})
    assert svc.reload(force=True) and svc.served.ranker_version is None  # heuristic order, still serving
    assert client.get("/v1/users/a1/suggestions").status_code == 200


def test_a_served_ranker_that_fails_on_a_request_leaves_it_in_fusion_order(app, client, app_settings):
    svc = app.extensions["pymk"]
    _publish_untrained_ranker(app_settings)
    assert svc.reload(force=True) and svc.served.ranker_version is not None
    model = client.get("/v1/users/a1/suggestions").get_json()
    assert "ranker" not in model["skipped_sources"] and "p_connect" in model["suggestions"][0]

    def fails(x):
        raise RuntimeError(f"scorer broke on {x.shape[0]} rows")

    svc.served.pipeline.ranker.scorer = fails
    resp = client.get("/v1/users/a1/suggestions")
    body = resp.get_json()
    assert resp.status_code == 200 and body["skipped_sources"]["ranker"].startswith("failed: RuntimeError('scorer")
    assert {s["user_id"] for s in body["suggestions"]} == {s["user_id"] for s in model["suggestions"]}
    assert all("p_connect" not in s for s in body["suggestions"])   # fused, not scored
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'pymk_skipped_total{outcome="failed",part="ranker"} 1.0' in metrics


def test_a_ranker_trained_on_another_feature_version_is_refused(app, client, app_settings, monkeypatch, caplog):
    """Same column names, other meanings (e.g. ranks at equal scores, changed 2026-12-07): a ranker
    published by older code is not served over this code's features; heuristic order until it is retrained."""
    import shutil

    import ranker.train
    from ranker.feature_names import FEATURE_VERSION

    svc = app.extensions["pymk"]
    store = ArtifactStore(app_settings.ranker_dir)
    _publish_untrained_ranker(app_settings)
    assert store.manifest(store.current())["feature_version"] == FEATURE_VERSION
    assert svc.reload(force=True) and svc.served.ranker_version == store.current_version()
    monkeypatch.setattr(ranker.train, "FEATURE_VERSION", FEATURE_VERSION - 1)
    old = _publish_untrained_ranker(app_settings)
    with caplog.at_level("ERROR"):
        assert svc.reload(force=True) and svc.served.ranker_version is None
    assert f"trained on feature version {FEATURE_VERSION - 1}" in caplog.text and old in caplog.text
    assert client.get("/v1/users/a1/suggestions").status_code == 200
    staging = store.staging_dir()   # a ranker published before versions were written: version 1
    shutil.copytree(store.current(), staging, dirs_exist_ok=True)
    manifest = store.manifest(store.current())
    for key in ("feature_version", "version", "published_at"):
        del manifest[key]
    store.publish(staging, manifest)
    caplog.clear()
    with caplog.at_level("ERROR"):
        assert svc.reload(force=True) and svc.served.ranker_version is None
    assert "trained on feature version 1," in caplog.text


def test_ranker_ranks_with_the_embeddings_it_was_trained_with_and_refuses_others(app, client, app_settings):

    from ranker.features import FEATURE_NAMES

    svc = app.extensions["pymk"]
    emb, emb_version = _publish_embeddings(svc, app_settings)
    _publish_untrained_ranker(app_settings, emb_version)
    assert svc.reload(force=True) and svc.served.ranker_version is not None
    client.get("/v1/users/a1/suggestions")
    from graph.eventlog import EventLog

    logged = list(EventLog(app_settings.data_dir / "served").read_records())[-1]["candidates"]
    snap = svc.served.pipeline.snap
    col = FEATURE_NAMES.index("emb_sim")
    for c in logged:  # emb_sim is the served embeddings' similarity, not the 0 it used to be
        expected = float(emb[snap.index_of(c["user_id"])] @ emb[snap.index_of("a1")])
        assert c["features"][col] == pytest.approx(expected, rel=1e-5) and expected != 0
    _publish_embeddings(svc, app_settings, seed=1)  # newer embeddings: the ranker was not trained with them
    assert svc.reload(force=True) and svc.served.ranker_version is None
    assert client.get("/v1/users/a1/suggestions").status_code == 200


def test_precomputed_lists_are_served_while_their_versions_are_and_hard_rules_still_apply(app, client, world,
                                                                                         app_settings):
    import numpy as np
    from click.testing import CliRunner

    from candidates.pipeline import Recommendation
    from graph.eventlog import EventLog
    from pymk.cli import main

    svc = app.extensions["pymk"]
    _publish_untrained_ranker(app_settings)
    assert svc.reload(force=True) and svc.served.precomputed_version is None
    online = _ids(client.get("/v1/users/a1/suggestions"))
    result = CliRunner().invoke(main, ["candidates", "precompute", "--all-users"],
                                env={"PYMK_DATA_DIR": str(app_settings.data_dir)})
    assert result.exit_code == 0, result.output
    assert svc.reload(force=True)
    pipeline = svc.served.pipeline
    assert svc.served.precomputed_version == ArtifactStore(app_settings.candidates_dir).current_version()
    a1 = pipeline.snap.index_of("a1")
    stored = pipeline.precomputed.get(a1)
    fresh = pipeline.ranked(a1, Recommendation("a1", []))
    assert [c.user_id for c in stored] == [c.user_id for c in fresh] and "b0" in online
    for s, f in zip(stored, fresh, strict=True):
        assert s.sources == f.sources and s.proof.keys() == f.proof.keys()
        if "fof" in f.proof:
            assert s.proof["fof"]["mutual_ids"] == f.proof["fof"]["mutual_ids"]
            assert np.isclose(s.proof["fof"]["adamic_adar"], f.proof["fof"]["adamic_adar"], rtol=1e-6)
        assert s.scores.keys() == f.scores.keys()
        assert all(np.isclose(s.scores[k], f.scores[k], rtol=1e-6) for k in s.scores)
        # stored features are exactly those the serving ranker computes now, at the same time
        assert s.proof["ranker"]["t"] == f.proof["ranker"]["t"]
        assert np.array_equal(np.float32(s.proof["ranker"]["features"]), f.proof["ranker"]["features"])
    assert pipeline.precomputed.get(pipeline.snap.index_of("c0")) is None  # no friends: ranked on request
    assert _ids(client.get("/v1/users/a1/suggestions")) == online
    served = list(EventLog(app_settings.data_dir / "served").read_records())[-1]
    assert served["precomputed"] == svc.served.precomputed_version
    assert 'pymk_suggestion_lists_total{path="precomputed"} 1.0' in client.get("/metrics").get_data(as_text=True)
    assert client.post("/v1/blocks", json={"src": "b0", "dst": "a1"}, headers=KEY).status_code == 201
    assert "b0" not in _ids(client.get("/v1/users/a1/suggestions"))  # fresh rules beat the stored list
    world.add_friendships([Friendship("a1", "c0", 2.0)])
    save_snapshot(from_store(world), ArtifactStore(app_settings.snapshot_dir), source="test")
    assert svc.reload(force=True) and svc.served.precomputed_version is None  # made for the old snapshot
    assert client.get("/v1/users/a1/suggestions").status_code == 200
    assert list(EventLog(app_settings.data_dir / "served").read_records())[-1]["precomputed"] is None


def test_active_users_are_the_recent_actors_and_targets():
    import numpy as np

    from candidates.precompute import active_users
    from graph.snapshot import from_pairs
    from graph.snapshot.format import EVENT_CODE

    snap = from_pairs(["a", "b", "c", "d"], ["b", "c", "d", "e"])
    ix = snap.index_of
    day = 86_400.0
    snap.events = {"type": np.array([EVENT_CODE[t] for t in ("impression", "send", "impression", "accept")]),
                   "src": np.array([ix("a"), ix("b"), ix("c"), ix("e")]),
                   "dst": np.array([ix("e"), ix("d"), ix("a"), ix("b")]),
                   "ts": np.array([0.0, 9 * day, 9.5 * day, 10 * day]), "position": np.zeros(4, np.int32)}
    got = {snap.external_id(i) for i in active_users(snap, days=3)}
    assert got == {"b", "c", "d", "e"}  # a acted 10 days ago; e was only shown, but later accepted


@pytest.mark.integration
def test_running_server_with_worker_processes_shares_fresh_rules_and_metrics(neo4j_store, settings, prefix,
                                                                              tmp_path):
    """`pymk serve --workers 2` (gunicorn) against the real Neo4j: a block made through one request is
    respected by whichever worker answers next, and /metrics counts the requests of every worker."""
    import http.client
    import json
    import os
    import socket
    import subprocess
    import sys
    import time

    p = prefix
    pairs = [(f"{p}{s}{i}", f"{p}{s}{j}") for s in "ab" for i in range(4) for j in range(i + 1, 4)]
    neo4j_store.add_friendships([Friendship(a, b) for a, b in [*pairs, (f"{p}a0", f"{p}b0")]])
    save_snapshot(from_store(neo4j_store), ArtifactStore(tmp_path / "snapshots"), source="neo4j")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYMK_DATA_DIR": str(tmp_path), "PYMK_NEO4J_PORT": str(settings.neo4j.port),
           "PYMK_API_KEYS": "k1", "PYMK_EXPLORE_SHARE": "0", "PYMK_API_RATE_LIMIT": "0"}
    serve_log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "pymk", "serve", "--port", str(port), "--workers", "2",
                               "--threads", "2"], env=env, stdout=subprocess.DEVNULL, stderr=serve_log)

    def call(method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # new connection: any worker
        try:
            conn.request(method, path, body=json.dumps(body) if body else None,
                         headers={"Content-Type": "application/json", **KEY})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        return resp.status, (json.loads(raw) if resp.getheader("Content-Type", "").startswith("application/json")
                             else raw.decode())

    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if call("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not become ready"
            time.sleep(0.5)
        first = call("GET", f"/v1/users/{p}a1/suggestions")[1]
        assert first["suggestions"][0]["user_id"] == f"{p}b0"
        assert call("POST", "/v1/blocks", {"src": f"{p}a1", "dst": f"{p}b0"})[0] == 201
        for _ in range(16):  # new connections, spread over both workers by the kernel (SO_REUSEPORT)
            status, body = call("GET", f"/v1/users/{p}a1/suggestions")
            assert status == 200 and f"{p}b0" not in [s["user_id"] for s in body["suggestions"]]
        metrics = call("GET", "/metrics")[1]
        key = 'pymk_http_requests_total{endpoint="/v1/users/<user_id>/suggestions",status="200"}'
        line = next(x for x in metrics.splitlines() if x.startswith(key))
        assert float(line.rsplit(" ", 1)[1]) == 17.0
        assert len(list((tmp_path / "served").glob("live-*.jsonl"))) == 2  # one served log per worker: both answered
        value = {x.rsplit(" ", 1)[0]: float(x.rsplit(" ", 1)[1]) for x in metrics.splitlines() if x[:1] != "#"}
        # each worker read its newcomer index whole at start; the gauge holds the oldest read of a live worker
        assert value['pymk_newcomer_index_read_seconds_count{kind="whole",outcome="ok"}'] == 2.0
        assert time.time() - 300 < value["pymk_newcomer_index_read_timestamp_seconds"] <= time.time()
        # ... and the impressions logged since the snapshot (none here), read before serving
        assert time.time() - 300 < value["pymk_recent_impressions_read_timestamp_seconds"] <= time.time()
        assert value["pymk_recent_impressions_held"] == 0.0
        assert call("GET", "/v1/users/nobody/suggestions")[0] == 404
    finally:
        server.terminate()
        server.wait(timeout=30)
        serve_log.close()
    assert server.returncode == 0
    assert "Traceback" not in (tmp_path / "serve.log").read_text()   # the workers closed their apps cleanly


@pytest.mark.integration
def test_a_graph_store_query_past_its_bound_is_a_503_and_batch_jobs_are_not_bounded(neo4j_store, settings, prefix,
                                                                                     tmp_path):
    """A write waiting for a lock another transaction holds (an ingestion batch, a slow job): the API's store
    asks the server to end any query after PYMK_NEO4J_REQUEST_TIMEOUT_S, so the request is a 503 to retry
    and its thread is free again, not held as long as the other transaction runs; the retry succeeds once
    the lock goes. A batch job's store waits as long as it takes."""
    import dataclasses
    import threading
    import time

    user = f"{prefix}u1"
    neo4j_store.upsert_users([UserRecord(id=user, city="bergen")])
    env = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_API_KEYS": "k1"})
    app = create_app(dataclasses.replace(env, neo4j=dataclasses.replace(settings.neo4j, request_timeout_s=0.5)))
    client = app.test_client()

    def hold_the_lock(seconds: float) -> threading.Timer:
        """An open transaction that wrote the user (so holds its node's write lock), rolled back later."""
        session = neo4j_store._driver.session(database=settings.neo4j.database)
        tx = session.begin_transaction()
        tx.run("MATCH (u:User {id: $id}) SET u.city = 'held'", id=user).consume()

        def end() -> None:
            if not tx.closed():
                tx.rollback()
            session.close()

        release = threading.Timer(seconds, end)
        release.start()
        return release

    release = hold_the_lock(8.0)
    try:
        start = time.perf_counter()
        resp = client.post("/v1/users", json={"id": user, "city": "oslo"}, headers=KEY)
        assert resp.status_code == 503 and time.perf_counter() - start < 5
        err = resp.get_json()["error"]
        assert err["code"] == "graph_store_timeout" and "0.5 s" in err["message"] and resp.headers["Retry-After"]
    finally:
        release.cancel()
        release.function()
    assert client.post("/v1/users", json={"id": user, "city": "oslo"}, headers=KEY).status_code == 201
    assert neo4j_store.get_user(user).city == "oslo"

    release = hold_the_lock(1.5)
    try:
        start = time.perf_counter()
        neo4j_store.upsert_users([UserRecord(id=user, city="tromso")])   # the batch jobs' store: unbounded
        assert time.perf_counter() - start >= 1.4 and neo4j_store.get_user(user).city == "tromso"
    finally:
        release.join()
        app.extensions["pymk"].store.close()


def _app_behind_a_proxy(neo4j_store, settings, tmp_path, query_timeout_s: float | None = None,
                        breaker_cooldown_s: float = 0.0):
    """An app whose store reaches the real server only through a TCP proxy (connect timeout 1 s), serving a
    snapshot of the server's graph as it is now: (test client, its store, the proxy). A cooldown > 0 gives
    the store the API's circuit breaker, as `open_store(for_requests=True)` does."""
    import dataclasses
    from urllib.parse import urlparse

    from graph.breaker import CircuitBreaker
    from graph.neo4j_store import Neo4jGraphStore
    from tests.tcp_proxy import TcpProxy

    target = urlparse(settings.neo4j.bolt_uri)
    proxy = TcpProxy(target.hostname, target.port)
    breaker = CircuitBreaker(cooldown_s=breaker_cooldown_s, slow_s=0.9) if breaker_cooldown_s else None
    store = Neo4jGraphStore(dataclasses.replace(settings.neo4j, uri=f"bolt://127.0.0.1:{proxy.port}",
                                                connect_timeout_s=1.0), query_timeout_s, breaker)
    app_settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_EXPLORE_SHARE": "0",
                                      "PYMK_API_KEYS": "k1"})
    save_snapshot(from_store(neo4j_store), ArtifactStore(app_settings.snapshot_dir), source="neo4j")
    return create_app(app_settings, store=store).test_client(), store, proxy


@contextlib.contextmanager
def _stalled(neo4j_store, settings, prefix, tmp_path, **app_options):
    """A viewer a1 served through the proxy, then the proxy stalled: (test client, proxy, a1's suggestions
    URL). The proxy is taken down and the store closed afterwards."""
    if settings.neo4j.external:
        pytest.skip("an external server's keep-alive is its operator's setting")
    p = prefix
    neo4j_store.add_friendships([Friendship(f"{p}a0", f"{p}a1"), Friendship(f"{p}a0", f"{p}b0")])
    client, store, proxy = _app_behind_a_proxy(neo4j_store, settings, tmp_path, **app_options)
    url = f"/v1/users/{p}a1/suggestions"
    try:
        assert client.get(url).status_code == 200
        proxy.stall()
        yield client, proxy, url
    finally:
        proxy.down()
        store.close()


@pytest.mark.integration
def test_graph_store_down_is_a_fast_503_and_serving_recovers_by_itself(neo4j_store, settings, prefix, tmp_path):
    import time

    p = prefix
    pairs = [(f"{p}a{i}", f"{p}a{j}") for i in range(4) for j in range(i + 1, 4)] + [(f"{p}a0", f"{p}b0")]
    neo4j_store.add_friendships([Friendship(a, b) for a, b in pairs])
    # with the API's breaker: a refused connection fails fast, so it must not hold back the next request
    client, store, proxy = _app_behind_a_proxy(neo4j_store, settings, tmp_path, breaker_cooldown_s=600.0)
    url = f"/v1/users/{p}a1/suggestions"
    try:
        assert client.get(url).status_code == 200
        proxy.down()
        start = time.perf_counter()
        resp = client.get(url)
        assert resp.status_code == 503 and time.perf_counter() - start < 5
        assert resp.get_json()["error"]["code"] == "graph_store_unavailable" and resp.headers["Retry-After"] == "5"
        assert client.get("/readyz").status_code == 503
        proxy.up()
        resp = client.get(url)  # the driver reconnects by itself: the very next request is served
        assert resp.status_code == 200 and _ids(resp)[0] == f"{p}b0"
    finally:
        proxy.down()
        store.close()


@pytest.mark.integration
def test_a_graph_store_that_stops_answering_costs_a_request_seconds_not_two_minutes(
        neo4j_store, settings, prefix, tmp_path):
    """A server that keeps its connections open but answers nothing (a long pause, a network dropping
    packets). The driver's only read timeout is the server's hint: keep-alive x probes, 120 s on Neo4j's
    defaults; the local server's is 2 x PYMK_NEO4J_KEEP_ALIVE_S, and a query that runs longer than that
    is kept alive by the server's no-ops."""
    import time

    if settings.neo4j.external:
        pytest.skip("an external server's keep-alive is its operator's setting")
    silent = 2 * settings.neo4j.keep_alive_s
    n, took = 10_000_000, 0.0
    while took < 1.25 * silent:   # longer and longer counts, until one runs well past the silence limit
        start = time.perf_counter()
        assert neo4j_store._read("UNWIND range(1, $n) AS x RETURN count(x) AS n", n=n)[0]["n"] == n
        took, n = time.perf_counter() - start, 2 * n

    with _stalled(neo4j_store, settings, prefix, tmp_path, query_timeout_s=1.0) as (client, proxy, url):
        start = time.perf_counter()
        resp = client.get(url)
        assert resp.status_code == 503 and silent - 0.5 < time.perf_counter() - start < silent + 3
        assert resp.get_json()["error"]["code"] == "graph_store_unavailable"
        start = time.perf_counter()   # a new connection stalls in its handshake: the 1 s connect timeout
        assert client.get("/readyz").status_code == 503 and time.perf_counter() - start < silent + 3
        proxy.resume()
        assert client.get(url).status_code == 200   # served again with the next request


@pytest.mark.integration
def test_after_a_stall_is_found_requests_fail_at_once_until_a_trial_finds_the_server_again(
        neo4j_store, settings, prefix, tmp_path):
    """The circuit breaker: the first request into a stalled server waits out the silence limit; the ones
    after it answer 503 at once (with how long until the next try) instead of each waiting as long, until
    the cooldown has passed and one request finds the server answering again."""
    import time

    silent, cooldown = 2 * settings.neo4j.keep_alive_s, 3.0
    with _stalled(neo4j_store, settings, prefix, tmp_path, query_timeout_s=1.0,
                  breaker_cooldown_s=cooldown) as (client, proxy, url):
        start = time.perf_counter()
        assert client.get(url).status_code == 503 and time.perf_counter() - start > silent - 0.5
        opened = time.perf_counter()
        for path in (url, "/readyz", url):
            start = time.perf_counter()
            resp = client.get(path)
            assert resp.status_code == 503 and time.perf_counter() - start < 0.5, path
        assert resp.get_json()["error"]["code"] == "graph_store_unavailable"
        assert 1 <= int(resp.headers["Retry-After"]) <= cooldown
        # the two suggestions requests (/readyz answers its own 503)
        assert "pymk_graph_store_held_back_total 2.0" in client.get("/metrics").get_data(as_text=True)
        proxy.resume()
        assert client.get(url).status_code == 503   # still within the cooldown: not tried yet
        time.sleep(max(0.0, opened + cooldown - time.perf_counter()) + 0.1)
        assert client.get(url).status_code == 200   # the trial finds the server: closed again
        assert client.get(url).status_code == 200 and client.get("/readyz").status_code == 200


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
    assert "b1" in _ids(client.get("/v1/users/a0/suggestions"))
    assert "a0" in _ids(client.get("/v1/users/b1/suggestions"))
    assert client.delete("/v1/users/b1", headers=KEY).status_code == 200
    assert client.post("/v1/users", json={"id": "b1"}, headers=KEY).status_code == 201
    assert "b1" not in _ids(client.get("/v1/users/a0/suggestions"))
    fresh = client.get("/v1/users/b1/suggestions?explain=true").get_json()
    # no friends yet: what any new account gets (popular people), nothing from the former account's network
    assert client.post("/v1/users", json={"id": "newbie"}, headers=KEY).status_code == 201
    assert _ids(client.get("/v1/users/newbie/suggestions")) == [s["user_id"] for s in fresh["suggestions"]] != []
    assert all(set(s["proof"]) <= {"popular", "trending"} for s in fresh["suggestions"])
    assert client.post("/v1/friendships", json={"a": "b1", "b": "c0"}, headers=KEY).status_code == 201
    body = client.get("/v1/users/b1/suggestions?explain=true").get_json()   # c0 has no other friend to suggest
    assert body["suggestions"] and not any("fof" in s["proof"] for s in body["suggestions"])


def test_a_deactivated_user_is_never_suggested_from_the_moment_it_is_written(client):
    assert _ids(client.get("/v1/users/a1/suggestions"))[0] == "b0"
    assert client.post("/v1/users", json={"id": "b0", "deactivated": True}, headers=KEY).status_code == 201
    assert "b0" not in _ids(client.get("/v1/users/a1/suggestions"))
    assert client.post("/v1/users", json={"id": "b0", "deactivated": False}, headers=KEY).status_code == 201
    assert _ids(client.get("/v1/users/a1/suggestions"))[0] == "b0"


def test_a_deactivated_viewer_is_shown_nothing_and_costs_one_rules_read(client, world, monkeypatch):
    calls = []
    rules = world.viewer_rules
    monkeypatch.setattr(world, "viewer_rules", lambda *a: calls.append(a) or rules(*a))
    assert client.post("/v1/users", json={"id": "a1", "deactivated": True}, headers=KEY).status_code == 201
    resp = client.get("/v1/users/a1/suggestions?limit=2")  # 2: the rules would refill batch after batch
    assert resp.status_code == 200 and resp.get_json()["suggestions"] == []
    assert len(calls) == 1   # the refill stops at the first batch: no walk down the list and the fallback
    assert "b0" in _ids(client.get("/v1/users/a2/suggestions"))  # others are served as before
    assert client.post("/v1/users", json={"id": "a1", "deactivated": False}, headers=KEY).status_code == 201
    assert _ids(client.get("/v1/users/a1/suggestions"))[0] == "b0"


def test_ids_holding_a_slash_or_a_percent_sign_are_served_deleted_and_unfriended(app_settings):
    """Ids come from files and POST /v1/users, which accept any text: each must be servable through the URL."""
    from urllib.parse import quote

    store = MemoryGraphStore()
    ids = ["a/b", "x%2Fy", "c d/", "h"]
    store.add_friendships([Friendship(u, "h", 1.0) for u in ids[:3]] + [Friendship("h", "z", 1.0)])
    save_snapshot(from_store(store), ArtifactStore(app_settings.snapshot_dir), source="test")
    client = create_app(app_settings, store=store).test_client()
    for user in ids[:3]:
        # percent-encoded, as OpenAPI clients send it, and as it is where that means the same ('%' must be encoded)
        for sent in {quote(user, safe=""), user.replace("%", "%25")}:
            resp = client.get(f"/v1/users/{sent}/suggestions")
            assert resp.status_code == 200 and resp.get_json()["user_id"] == user and "z" in _ids(resp)
    gone = client.get(f"/v1/users/{quote('no/one', safe='')}/suggestions")
    assert gone.status_code == 404 and gone.get_json()["error"]["code"] == "unknown_user"
    resp = client.delete("/v1/friendships", query_string={"a": "a/b", "b": "h"}, headers=KEY)
    assert resp.get_json() == {"a": "a/b", "b": "h", "removed": True} and store.friends("a/b") == []
    missing = client.delete("/v1/friendships", query_string={"a": "a/b"}, headers=KEY)
    assert missing.status_code == 400 and missing.get_json()["error"]["field"] == "b"
    assert client.delete("/v1/friendships/h/z", headers=KEY).get_json()["removed"] is True   # the path form
    resp = client.delete(f"/v1/users/{quote('x%2Fy', safe='')}", headers=KEY)
    assert resp.get_json() == {"user_id": "x%2Fy", "deleted": True} and store.get_user("x%2Fy") is None
    assert client.delete("/v1/users/c d/", headers=KEY).get_json()["user_id"] == "c d/"
    assert store.friends("h") == []


def test_a_deleted_account_is_gone_from_suggestions_at_once_though_the_snapshot_holds_it(client):
    assert _ids(client.get("/v1/users/a1/suggestions"))[0] == "b0"
    assert client.delete("/v1/users/b0").status_code == 401
    resp = client.delete("/v1/users/b0", headers=KEY)
    assert resp.status_code == 200 and resp.get_json() == {"user_id": "b0", "deleted": True}
    assert "b0" not in _ids(client.get("/v1/users/a1/suggestions"))
    gone = client.get("/v1/users/b0/suggestions")   # in the served snapshot, deleted in the store
    assert gone.status_code == 404 and gone.get_json()["error"]["code"] == "unknown_user"
    again = client.delete("/v1/users/b0", headers=KEY)
    assert again.status_code == 404 and again.get_json()["error"]["field"] == "user_id"
    assert client.post("/v1/users", json={"id": "b0"}, headers=KEY).status_code == 201  # a new account
    assert client.get("/v1/users/b0/suggestions").status_code == 200


@pytest.mark.parametrize("mode", ["ids", "off"])
def test_served_log_modes(app_settings, world, mode):
    from dataclasses import replace

    from graph.eventlog import EventLog

    settings = replace(app_settings, api=replace(app_settings.api, served_log=mode))
    save_snapshot(from_store(world), ArtifactStore(settings.snapshot_dir), source="test")
    body = create_app(settings, store=world).test_client().get("/v1/users/a1/suggestions").get_json()
    records = list(EventLog(settings.data_dir / "served").read_records())
    if mode == "off":
        assert records == []
        return
    (served,) = records
    assert [c["user_id"] for c in served["candidates"]] == [s["user_id"] for s in body["suggestions"]]
    assert all(c.keys() == {"user_id", "position", "sources", "scores"} for c in served["candidates"])


def test_every_response_has_a_request_id_that_joins_the_served_log_the_events_and_the_logs(app, client, app_settings,
                                                                                         monkeypatch, caplog):
    """The caller's X-Request-ID is kept when it is a plain token, else one is made; it is on every response, in
    error bodies, in the served-log record of a suggestions response (so events carrying it join that record
    exactly, as an extra field kept with the event) and in the log line of an unhandled error."""
    import re

    from graph.eventlog import EventLog

    resp = client.get("/v1/users/a1/suggestions", headers={"X-Request-ID": "lb-7f3a.2:1"})
    body = resp.get_json()
    assert resp.headers["X-Request-ID"] == body["request_id"] == "lb-7f3a.2:1"
    SuggestionsOut.model_validate(body)
    (served,) = EventLog(app_settings.data_dir / "served").read_records()
    assert served["request_id"] == "lb-7f3a.2:1" and served["viewer"] == "a1"
    event = {"type": "impression", "src": "a1", "dst": body["suggestions"][0]["user_id"], "ts": 1.7e9,
             "position": 0, "request_id": body["request_id"]}
    assert client.post("/v1/events", json=event, headers=KEY).status_code == 202
    (logged,) = [ev for ev in app.extensions["pymk"].events.read() if ev.type == "impression"]
    assert logged.extra["request_id"] == served["request_id"]

    made = set()
    for given in (None, "", "has space", "x" * 129, "semi;colon", "ü"):
        headers = {} if given is None else {"X-Request-ID": given}
        resp = client.get("/v1/users/nobody/suggestions", headers=headers)
        rid = resp.headers["X-Request-ID"]
        assert resp.status_code == 404 and resp.get_json()["error"]["request_id"] == rid
        assert re.fullmatch(r"[0-9a-f]{32}", rid) and rid not in made, (given, rid)
        made.add(rid)
    assert client.get("/healthz", headers={"X-Request-ID": "h1"}).headers["X-Request-ID"] == "h1"

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(app.extensions["pymk"], "suggestions", crash)
    with caplog.at_level("ERROR", logger="api.errors"):
        resp = client.get("/v1/users/a1/suggestions", headers={"X-Request-ID": "r-500"})
    assert resp.status_code == 500 and resp.get_json()["error"] == {
        "code": "internal_error", "message": "internal error; it has been logged with its request_id",
        "request_id": "r-500"}
    assert "unhandled error (request r-500)" in caplog.text and "boom" in caplog.text


def test_a_served_log_record_that_cannot_be_written_is_lost_not_the_response(app, client, monkeypatch, caplog):
    import orjson

    svc = app.extensions["pymk"]

    def unwritable(records):
        raise orjson.JSONEncodeError("Type is not JSON serializable: numpy.float32")

    monkeypatch.setattr(svc.served_log, "append_records", unwritable)
    with caplog.at_level("ERROR"):
        for _ in range(2):
            assert client.get("/v1/users/a1/suggestions").status_code == 200
    assert svc.served_log_failures == 2
    assert caplog.text.count("served log: Type is not JSON serializable") == 1   # once a minute, with its traceback
    assert "Traceback" in caplog.text


def test_a_full_disk_fails_event_writes_with_503_but_never_suggestions(app, client, app_settings, monkeypatch):
    from graph.eventlog import EventLog
    from tests.test_ingest import _disk_fills_after

    _disk_fills_after(monkeypatch, keep=5)
    resp = client.post("/v1/events", json={"type": "send", "src": "a1", "dst": "b0", "ts": 1.0}, headers=KEY)
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert resp.get_json()["error"]["code"] == "event_log_unavailable"
    resp = client.get("/v1/users/a1/suggestions")            # its served-log record is lost, not the response
    assert resp.status_code == 200 and resp.get_json()["suggestions"]
    assert app.extensions["pymk"].served_log_failures == 1
    monkeypatch.undo()
    assert client.post("/v1/events", json={"type": "send", "src": "a1", "dst": "b0", "ts": 1.0},
                       headers=KEY).status_code == 202    # the client's retry, once there is room
    assert [e.type for e in EventLog(app_settings.event_log_dir).read()] == ["send"]
    assert list(EventLog(app_settings.data_dir / "served").read_records()) == []


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


def test_a_users_creation_time_is_read_as_every_timestamp_is(client, world):
    """Epoch seconds or ISO 8601, as in a users CSV (before, the API took a bare number only)."""
    for uid, created in (("u1", "2026-01-01T00:00:00Z"), ("u2", 1767225600)):
        assert client.post("/v1/users", json={"id": uid, "created_at": created}, headers=KEY).status_code == 201
    assert world.get_user("u1").created_at == world.get_user("u2").created_at == 1767225600.0


def test_a_sign_up_without_a_creation_time_is_dated_when_it_arrives(client, world):
    """Before, an account made through the API without `created_at` had none (the account-age signals of
    the embeddings and the newcomer stage read it); a later profile update never moves it."""
    before = time.time()
    assert client.post("/v1/users", json={"id": "signup"}, headers=KEY).status_code == 201
    dated = world.get_user("signup").created_at
    assert dated is not None and before <= dated <= time.time()
    assert client.post("/v1/users", json={"id": "signup", "city": "Oslo"}, headers=KEY).status_code == 201
    assert world.get_user("signup").created_at == dated


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
    assert "a2" not in _ids(client.get("/v1/users/c0/suggestions"))
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
    first = _ids(client.get("/v1/users/a1/suggestions?limit=5"))
    assert len(first) >= 3 and first[1] == "n1"
    now = time.time()
    shown = [{"type": "impression", "src": "a1", "dst": user, "ts": now + n, "position": position}
             for n in range(3) for position, user in ((0, first[0]), (1, "n1"))]   # three lists shown
    assert client.post("/v1/events", json=shown, headers=KEY).status_code == 202
    again = _ids(client.get("/v1/users/a1/suggestions?limit=5"))
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
    first = _ids(resp)
    assert "snapshot" in resp.get_json()["skipped_sources"] and len(first) == 4
    now = time.time()
    shown = [{"type": "impression", "src": "nu", "dst": u, "ts": now + n, "position": i}
             for n in range(2) for i, u in enumerate(first[:2])]
    assert client.post("/v1/events", json=shown, headers=KEY).status_code == 202
    again = _ids(client.get("/v1/users/nu/suggestions?limit=4"))
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
