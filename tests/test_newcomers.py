"""Accounts newer than the served snapshot, suggested to the friends of their friends through the API
(candidates/newcomers.py): slots, files, metrics, failures, every hard rule, `pymk why`."""

from __future__ import annotations

import time

import pytest

from api import create_app
from candidates.newcomers import NewcomerConfig
from graph.memory_store import MemoryGraphStore
from graph.records import Friendship, UserRecord
from graph.snapshot import from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.errors import GraphStoreUnavailableError
from pymk.settings import Settings

KEY = {"X-API-Key": "k1"}


def newcomer_world() -> MemoryGraphStore:
    """v's friends f1, f2, f3; f1-f3 a triangle with x; y and z friends of x only (two hops from v)."""
    store = MemoryGraphStore()
    store.add_friendships([Friendship(a, b, 1.0) for a, b in (
        ("v", "f1"), ("v", "f2"), ("v", "f3"), ("f1", "x"), ("f2", "x"), ("f3", "x"), ("x", "y"), ("x", "z"))])
    store.upsert_users([UserRecord(id=u, created_at=10.0) for u in store.users])
    return store


@pytest.fixture
def world() -> MemoryGraphStore:
    return newcomer_world()


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
    off = _client(tmp_path / "off", newcomer_world(), PYMK_NEWCOMER_SLOTS="")
    _sign_up(off, "n", "f1")
    assert "n" not in {s["user_id"] for s in _list(off, "v")}


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
