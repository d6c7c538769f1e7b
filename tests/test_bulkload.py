"""Initial load with Neo4j's offline importer: the same graph as MERGE ingestion, empty databases only."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest

from graph import server
from graph.bulkload import InitialLoadError, initial_load
from graph.connect import open_store
from graph.ingest import ingest_edges, ingest_users
from graph.memory_store import MemoryGraphStore
from pymk.settings import Settings
from tests.conftest import SERVER_SEEN

USERS = """id,created_at,school,employer,city,lat,lon,age_group,language,opted_out
u1,1000,MIT,,Oslo,59.9,10.7,25-34,no,
u2,2000,"Smith, Jones & Co",Acme,Bergen,,,,,true
u3,,,,,,,,,
bad,notatime,,,,,,,,
u1,,,Initech,,,,,,false
"""
# duplicates both ways with different times, a missing time, a bad row, a self-loop, unknown endpoints
EDGES = """# src dst ts
u1 u2 50
u2 u1 40
u1 u3
u3 u1 70
u2 u3 abc
u4 u4 1
u4 u5 5.25
u5 u1 1e3
"""


def _graph(store) -> tuple[dict, dict]:
    users = {u.id: u for batch in store.iter_users() for u in batch}
    ties = {(f.a, f.b): f.since for batch in store.iter_friendships() for f in batch}
    return users, ties


@pytest.fixture
def files(tmp_path):
    (tmp_path / "users.csv").write_text(USERS)
    (tmp_path / "edges.txt").write_text(EDGES)
    return tmp_path / "users.csv", tmp_path / "edges.txt"


@pytest.mark.integration
def test_initial_load_builds_the_graph_merge_ingestion_builds(tmp_path, files):
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path / "data"), "PYMK_NEO4J_PORT": "7694",
                                  "PYMK_NEO4J_HEAP_MB": "512", "PYMK_NEO4J_PAGECACHE_MB": "64"})
    if settings.neo4j.external:
        pytest.skip("the offline importer needs the local server")
    users_csv, edges_txt = files
    expected = MemoryGraphStore()
    ingest_users(expected, users_csv, batch_size=2, progress=False)
    ingest_edges(expected, edges_txt, batch_size=2, progress=False)
    loaded = time.time()
    try:
        report = initial_load(settings.neo4j, [users_csv], [edges_txt], progress=False, max_memory="256M")
        assert [(e.path, e.line) for e in report.errors] == [
            (str(users_csv), 5), (str(edges_txt), 6), (str(edges_txt), 7)]
        assert (report.users, report.friendships, report.edge_rows) == (5, 4, 6)
        store = open_store(settings)
        try:
            SERVER_SEEN.append(store.server_info())
            assert store.counts() == expected.counts()
            got_users, got_ties = _graph(store)
            want_users, want_ties = _graph(expected)
            assert got_ties == want_ties == {("u1", "u2"): 40.0, ("u1", "u3"): 70.0, ("u4", "u5"): 5.25,
                                             ("u1", "u5"): 1000.0}
            assert got_users == want_users
            assert dataclasses.asdict(got_users["u1"])["employer"] == "Initech"  # later row adds a field
            assert got_users["u2"].employer == "Acme" and got_users["u2"].opted_out is True
            fof = store.friends_of_friends("u3", limit=10, max_friend_degree=100)   # through u1, tied
            assert sorted((r.candidate, r.mutual_count) for r in fof) == [("u2", 1), ("u5", 1)]
            # every user and tie is stamped with when it entered the store, as MERGE ingestion stamps them
            assert {a.id for a in store.new_accounts(loaded, 100, 10)} == {"u1", "u2", "u3", "u4", "u5"}
            assert store.new_accounts(time.time(), 100, 10) == []
            unstamped = store._driver.execute_query(
                "MATCH ()-[r:FRIENDS_WITH]->() WHERE r.written_at IS NULL OR r.written_at < $t RETURN count(r) AS n",
                t=loaded).records[0]["n"]
            assert unstamped == 0
        finally:
            store.close()
        with pytest.raises(InitialLoadError, match="already has users"):
            initial_load(settings.neo4j, [users_csv], [edges_txt], progress=False)
        started = server._read_pid(settings.neo4j)
    finally:
        server.stop(settings.neo4j)
    with pytest.raises(ChildProcessError):   # the server this process started was reaped when it stopped
        os.waitpid(started, os.WNOHANG)


def test_initial_load_refuses_an_external_server(files):
    settings = Settings.from_env({"NEO4J_URI": "bolt://db.example:7687"})
    with pytest.raises(InitialLoadError, match=r"db\.example"):
        initial_load(settings.neo4j, [files[0]], [files[1]], progress=False)
