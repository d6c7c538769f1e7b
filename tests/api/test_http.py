"""The HTTP contract: errors as JSON naming the field, API keys, rate limits, probes, metrics and
OpenAPI, event and write validation, ids that need encoding, timestamps."""

from __future__ import annotations

import time

import pytest

from api import create_app
from api.routes import bucket
from graph.memory_store import MemoryGraphStore
from graph.records import Friendship
from graph.snapshot import from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.errors import ConfigError
from pymk.settings import Settings
from tests.api.common import KEY, suggested


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
            assert resp.status_code == 200 and resp.get_json()["user_id"] == user and "z" in suggested(resp)
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
