"""Settings from the environment, and the local server manager's bookkeeping."""

from __future__ import annotations

import pytest

from graph import server
from pymk.envvars import KNOWN_VARIABLES, unknown_variables
from pymk.errors import ConfigError
from pymk.settings import Settings


def test_settings_from_env(tmp_path):
    s = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_NEO4J_PORT": "7777", "PYMK_INGEST_BATCH": "5"})
    assert s.neo4j.bolt_uri == "bolt://127.0.0.1:7777"
    assert s.neo4j.home == tmp_path / "neo4j" and s.snapshot_dir == tmp_path / "snapshots"
    assert not s.neo4j.external and s.ingest_batch_size == 5
    assert s.api.served_log == "ids" and s.api.served_log_retention_h == 24
    assert s.api.newcomer_slots == (3, 8) and s.api.newcomer_refresh_s == 30 and s.api.newcomer_full_read_s == 900
    assert Settings.from_env({"PYMK_NEWCOMER_FULL_READ_S": "60"}).api.newcomer_full_read_s == 60
    assert Settings.from_env({"PYMK_NEWCOMER_SLOTS": " 9, 2"}).api.newcomer_slots == (2, 9)
    assert Settings.from_env({"PYMK_NEWCOMER_SLOTS": ""}).api.newcomer_slots == ()
    assert Settings.from_env({"PYMK_NEWCOMER_SLOTS": "0"}).api.newcomer_slots == ()
    assert s.edge_columns is None
    assert Settings.from_env({"PYMK_EDGE_COLUMNS": "TS, src,dst"}).edge_columns == ("ts", "src", "dst")
    ext = Settings.from_env({"NEO4J_URI": "neo4j://db.example:7687", "NEO4J_PASSWORD": "pw"})
    assert ext.neo4j.external and ext.neo4j.bolt_uri == "neo4j://db.example:7687"


@pytest.mark.parametrize(("name", "value"), [("PYMK_NEO4J_PORT", "http"), ("PYMK_NEO4J_PORT", "70000"),
                                             ("PYMK_INGEST_BATCH", "0"), ("PYMK_SERVED_LOG", "everything"),
                                             ("PYMK_SERVED_LOG_RETENTION_H", "-1"), ("PYMK_API_RATE_LIMIT", "-3"),
                                             ("PYMK_API_WORKERS", "0"), ("PYMK_API_THREADS", "-1"),
                                             ("PYMK_API_MAX_REQUEST_BYTES", "10"), ("PYMK_NEO4J_HEAP_MB", "0"),
                                             ("PYMK_NEO4J_REQUEST_TIMEOUT_S", "-1"), ("PYMK_NEWCOMER_SLOTS", "3,x"),
                                             ("PYMK_NEWCOMER_SLOTS", "3,3"), ("PYMK_NEWCOMER_SLOTS", "-2"),
                                             ("PYMK_NEWCOMER_REFRESH_S", "-5"),
                                             ("PYMK_NEWCOMER_FULL_READ_S", "-1"), ("PYMK_EXPLORE_SHARE", "lots"),
                                             ("PYMK_EXPLORE_SHARE", "2"), ("PYMK_EDGE_COLUMNS", "src,weight"),
                                             ("PYMK_EDGE_COLUMNS", "src,dst,ts,ts"), ("PYMK_EDGE_COLUMNS", "src,,dst")])
def test_bad_settings_name_the_variable_and_value(name, value):
    with pytest.raises(ConfigError, match=f"{name}.*{value}"):
        Settings.from_env({name: value})


def test_a_mistyped_variable_is_named_with_the_one_meant(caplog, monkeypatch):
    monkeypatch.setattr("pymk.settings._warned", set())   # it warns once a process
    env = {"PYMK_API_RATE_LIMT": "10", "PYMK_SOMETHING_ELSE": "1", "PYMK_API_KEYS": "k", "PATH": "/bin"}
    assert unknown_variables(env) == ["PYMK_API_RATE_LIMT (did you mean PYMK_API_RATE_LIMIT?)", "PYMK_SOMETHING_ELSE"]
    with caplog.at_level("WARNING", logger="pymk.settings"):
        assert Settings.from_env(env).api.rate_limit_per_minute == 6000   # ignored, as before, but said
    assert "ignoring PYMK_API_RATE_LIMT (did you mean PYMK_API_RATE_LIMIT?)" in caplog.text
    assert unknown_variables({name: "1" for name in KNOWN_VARIABLES}) == []


@pytest.mark.parametrize("args", [
    ["eval", "{edges}", "--users", "0"], ["eval", "{edges}", "--train-share", "1.5"],
    ["eval", "{edges}", "--seeds", "0"], ["eval", "{edges}", "--viewers-per-cut", "0"],
    ["serve", "--port", "0"], ["serve", "--workers", "0"],
    ["candidates", "precompute", "--block", "0"], ["candidates", "precompute", "--active-days", "-1"],
    ["ranker", "train", "--viewers-per-cut", "-5"], ["embeddings", "refresh", "--epochs", "0"],
    ["sim", "generate", "--out", "{tmp}", "--users", "0"], ["ingest", "edges", "{edges}", "--batch-size", "0"],
    ["neo4j", "start", "--timeout", "0"], ["suggest", "u1", "--limit", "0"]])
def test_cli_numeric_options_out_of_range_are_usage_errors(tmp_path, args):
    """Parsed before anything runs: click's message names the option (some were tracebacks mid-run)."""
    from click.testing import CliRunner

    from pymk.cli import main

    edges = tmp_path / "e.txt"
    edges.write_text("a b 1\n")
    argv = [a.format(edges=edges, tmp=tmp_path / "out") for a in args]
    result = CliRunner().invoke(main, argv, env={"PYMK_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2 and f"Invalid value for '{args[-2]}'" in result.output, result.output


def test_external_server_is_never_started_or_stopped():
    cfg = Settings.from_env({"NEO4J_URI": "bolt://127.0.0.1:1"}).neo4j
    assert server.start(cfg).external
    assert server.stop(cfg) is False


def test_an_unreachable_store_is_a_named_error_on_every_path(tmp_path):
    """Bulk reads (snapshot export) and server info, as the serving reads already were; the CLI prints it
    with what to do, no traceback. (Writes and the schema retry for 30 s first: not timed here.)"""
    from click.testing import CliRunner

    from graph.neo4j_store import Neo4jGraphStore
    from pymk.cli import main
    from pymk.errors import GraphStoreUnavailableError

    env = {"PYMK_DATA_DIR": str(tmp_path), "PYMK_NEO4J_PORT": "1", "PYMK_NEO4J_CONNECT_TIMEOUT_S": "0.5"}
    store = Neo4jGraphStore(Settings.from_env(env).neo4j)
    try:
        for call in (lambda: next(store.iter_friendships()), store.server_info, lambda: store.friends("u1")):
            with pytest.raises(GraphStoreUnavailableError, match=r"bolt://127\.0\.0\.1:1 unavailable"):
                call()
    finally:
        store.close()
    result = CliRunner().invoke(main, ["snapshot", "export"], env=env)
    assert result.exit_code == 1 and "unavailable" in result.output and "pymk neo4j start" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def test_status_of_a_server_that_never_ran(tmp_path):
    cfg = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_NEO4J_PORT": "1"}).neo4j
    st = server.status(cfg)
    assert not st.running and st.pid is None and st.detail == "stopped"


@pytest.mark.integration
def test_a_bounded_store_ends_long_reads_but_never_an_erasure(neo4j_store, settings, prefix):
    """The API's store (PYMK_NEO4J_REQUEST_TIMEOUT_S) has the server end a read past the bound, a named
    error; deleting an account asks for no bound (its cost grows with its ties, and an erasure must end)."""
    import time

    from graph.neo4j_store import Neo4jGraphStore
    from graph.records import Friendship
    from pymk.errors import GraphStoreTimeoutError, GraphStoreUnavailableError

    hub = f"{prefix}hub"
    neo4j_store.add_friendships([Friendship(hub, f"{prefix}f{i}") for i in range(2_000)])
    bounded = Neo4jGraphStore(settings.neo4j, query_timeout_s=2.0)   # cold plans of the small reads fit; 0.05 did not
    try:
        start = time.perf_counter()
        with pytest.raises(GraphStoreTimeoutError, match=r"ran past its 2 s bound") as caught:
            bounded._read("UNWIND range(1, 2000000000) AS x RETURN count(x) AS n")
        assert time.perf_counter() - start < 10 and isinstance(caught.value, GraphStoreUnavailableError)
        assert len(bounded.friends(f"{prefix}f1")) == 1       # a small read is well inside it
        # (Neo4j 5.26 does not end a DETACH DELETE at the bound anyway; other versions may: it asks for none)
        sent = []
        execute = bounded._driver.execute_query
        bounded._driver.execute_query = lambda query, *a, **kw: sent.append(query.timeout) or execute(query, *a, **kw)
        assert bounded.delete_users([hub]) == 1 and sent == [None]
        assert neo4j_store.get_user(hub) is None and neo4j_store.friends(f"{prefix}f1") == []
        assert bounded.remove_friendship(f"{prefix}f2", f"{prefix}f3") is False and sent == [None, 2.0]
    finally:
        bounded.close()
        neo4j_store.delete_users_with_prefix(prefix)


@pytest.mark.integration
def test_real_server_round_trip(neo4j_store, prefix):
    """Create, read and delete through the real Neo4j over Bolt, and say which server it was."""
    from graph.records import Friendship

    info = neo4j_store.server_info()
    print(f"server version: {info}")
    assert info.startswith("Neo4j/5.")
    neo4j_store.add_friendships([Friendship(f"{prefix}x", f"{prefix}y", 1.0)])
    assert neo4j_store.friends(f"{prefix}x") == [f"{prefix}y"]
    assert neo4j_store.delete_users([f"{prefix}x", f"{prefix}y"]) == 2
    assert neo4j_store.get_user(f"{prefix}x") is None


def test_serve_refuses_an_address_it_cannot_listen_on_before_starting(tmp_path):
    """A taken port is named at once (gunicorn retried in every worker; waitress ended in a traceback);
    a port whose last server has just stopped (connections in TIME_WAIT) is free."""
    import socket
    import threading

    from click.testing import CliRunner

    from pymk.cli import main
    from pymk.errors import ConfigError
    from pymk.ports import check_can_listen

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as gunicorn and waitress listen
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port} .*in use"):
            check_can_listen("127.0.0.1", port)
        result = CliRunner().invoke(main, ["serve", "--port", str(port), "--workers", "1"],
                                    env={"PYMK_DATA_DIR": str(tmp_path)})
        assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output
        assert "pymk API on" not in result.output
        # a connection the server side closes first leaves the port in TIME_WAIT once the listener is gone
        server = threading.Thread(target=lambda: taken.accept()[0].close(), daemon=True)
        server.start()
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.recv(1)
        server.join()
    check_can_listen("127.0.0.1", port)
