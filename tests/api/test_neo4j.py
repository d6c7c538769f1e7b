"""The API against the real Neo4j: fresh rules, gunicorn worker processes, query bounds, and a graph
store that is down or stops answering (the circuit breaker)."""

from __future__ import annotations

import contextlib
import time

import pytest

from api import create_app
from graph.records import Friendship, UserRecord
from graph.snapshot import from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.settings import Settings
from tests.api.common import KEY, suggested


@pytest.mark.integration
def test_against_real_neo4j_block_respected_in_next_response(neo4j_store, prefix, tmp_path):
    p = prefix
    pairs = [(f"{p}{s}{i}", f"{p}{s}{j}") for s in "ab" for i in range(4) for j in range(i + 1, 4)]
    neo4j_store.add_friendships([Friendship(a, b) for a, b in [*pairs, (f"{p}a0", f"{p}b0")]])
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_API_KEYS": "k1", "PYMK_EXPLORE_SHARE": "0"})
    save_snapshot(from_store(neo4j_store), ArtifactStore(settings.snapshot_dir), source="neo4j")
    client = create_app(settings, store=neo4j_store).test_client()
    assert suggested(client.get(f"/v1/users/{p}a1/suggestions"))[0] == f"{p}b0"
    assert client.post("/v1/blocks", json={"src": f"{p}a1", "dst": f"{p}b0"}, headers=KEY).status_code == 201
    assert f"{p}b0" not in suggested(client.get(f"/v1/users/{p}a1/suggestions"))
    ev = {"type": "send", "src": f"{p}b1", "dst": f"{p}a0", "ts": 1}
    assert client.post("/v1/events", json=ev, headers=KEY).status_code == 202
    assert f"{p}a0" not in suggested(client.get(f"/v1/users/{p}b1/suggestions"))  # pending request
    assert client.get("/readyz").status_code == 200


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
        assert resp.status_code == 200 and suggested(resp)[0] == f"{p}b0"
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
