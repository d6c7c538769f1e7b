"""An app's life: hot swaps that never fail a request, reloads that serve the versions they read, the
publication times an operator alerts on, and what closing the app releases."""

from __future__ import annotations

import pytest

from api import close_app, create_app
from graph.memory_store import MemoryGraphStore
from graph.records import Friendship
from graph.snapshot import from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from tests.api.common import KEY, cliques_world


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
    cliques_world(opened)
    monkeypatch.setattr("graph.connect.open_store", lambda settings, for_requests=False: opened)
    own = create_app(app_settings)
    from types import SimpleNamespace

    from api.server import _worker_exit

    _worker_exit(None, SimpleNamespace(wsgi=own))   # gunicorn's hook as a worker stops
    assert opened.calls[-1] == "close"
    _worker_exit(None, SimpleNamespace())          # a worker that failed before loading the app


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


def test_a_reload_serves_the_versions_it_read_though_a_pointer_moves_meanwhile(app, world, app_settings,
                                                                                monkeypatch):
    """What the API records as served is what it loaded: a set released while it loads is the next check's."""
    import api.services

    svc = app.extensions["pymk"]
    snapshots = ArtifactStore(app_settings.snapshot_dir)
    world.add_friendships([Friendship("a1", "x9")])
    second = save_snapshot(from_store(world), snapshots, source="test").name
    later = []

    def released_meanwhile(*args, **kwargs):
        if not later:
            world.add_friendships([Friendship("a1", "x8")])
            later.append(save_snapshot(from_store(world), snapshots, source="test").name)
        return assemble(*args, **kwargs)

    assemble = api.services.assemble_pipeline
    monkeypatch.setattr(api.services, "assemble_pipeline", released_meanwhile)
    assert svc.reload(force=True) and svc.served.snapshot_version == second
    assert not svc.served.pipeline.snap.has_user("x8")
    assert svc.reload(force=True) and svc.served.snapshot_version == later[0] == snapshots.current_version()
    assert svc.served.pipeline.snap.has_user("x8")


def test_a_new_set_loads_in_the_background_while_requests_are_served_by_the_old_one(app, client, world,
                                                                                   app_settings, monkeypatch):
    """A request that finds a pointer moved starts the load and goes on; so do the requests after it, until
    the new pipeline is swapped in. Before, the request that noticed waited for the whole load (seconds at
    scale), and so did any that checked again while it ran."""
    import threading

    import api.services

    svc = app.extensions["pymk"]
    first = svc.served.snapshot_version
    world.add_friendships([Friendship("a1", "x9")])
    second = save_snapshot(from_store(world), ArtifactStore(app_settings.snapshot_dir), source="test").name
    go, started = threading.Event(), threading.Event()

    def slow(*args, **kwargs):
        started.set()
        assert go.wait(30)
        return assemble(*args, **kwargs)

    assemble = api.services.assemble_pipeline
    monkeypatch.setattr(api.services, "assemble_pipeline", slow)
    monkeypatch.setattr(svc, "_checked", -1e9)   # the check is due
    resp = client.get("/v1/users/a1/suggestions")
    assert started.wait(10) and resp.status_code == 200 and resp.headers["X-Pymk-Snapshot-Version"] == first
    assert client.get("/v1/users/a2/suggestions").headers["X-Pymk-Snapshot-Version"] == first
    go.set()
    svc._loading.join(30)
    resp = client.get("/v1/users/x9/suggestions")
    assert resp.status_code == 200 and resp.headers["X-Pymk-Snapshot-Version"] == second


def test_closing_the_app_while_a_set_loads_leaves_nothing_running(app, world, app_settings, monkeypatch):
    import threading

    import api.services

    svc = app.extensions["pymk"]
    world.add_friendships([Friendship("a1", "x9")])
    save_snapshot(from_store(world), ArtifactStore(app_settings.snapshot_dir), source="test")
    built, go, entered = [], threading.Event(), threading.Event()

    def slow(*args, **kwargs):
        entered.set()
        assert go.wait(30)
        built.append(assemble(*args, **kwargs))
        return built[-1]

    assemble = api.services.assemble_pipeline
    monkeypatch.setattr(api.services, "assemble_pipeline", slow)
    monkeypatch.setattr(svc, "_checked", -1e9)
    assert svc.reload() is False and entered.wait(30)   # the load is building the new pipeline
    threading.Timer(0.2, go.set).start()
    close_app(app)
    assert not svc._loading.is_alive() and svc.served.snapshot_version != built[0].snapshot_version
    with pytest.raises(RuntimeError, match="shutdown"):   # what it built was closed, not swapped in
        built[0].pipeline.runner._pool.submit(print)


def test_a_background_load_reads_the_pointers_once_they_have_settled(app, client, world, app_settings,
                                                                      monkeypatch):
    """A release writes its pointers one after another: the load reads them a moment after the first moved,
    so a check that lands between two writes loads the whole set once, not a mixed one and then the rest."""
    import api.services

    svc = app.extensions["pymk"]
    snapshots = ArtifactStore(app_settings.snapshot_dir)
    loads = []

    def counted(*args, **kwargs):
        loads.append(kwargs.get("stores") or args[2])
        return assemble(*args, **kwargs)

    assemble = api.services.assemble_pipeline
    monkeypatch.setattr(api.services, "assemble_pipeline", counted)
    monkeypatch.setattr(api.services, "SETTLE_S", 1.0)   # long enough for the next write on a busy machine
    world.add_friendships([Friendship("a1", "x9")])
    save_snapshot(from_store(world), snapshots, source="test")
    monkeypatch.setattr(svc, "_checked", -1e9)
    assert client.get("/v1/users/a1/suggestions").status_code == 200   # notices the first pointer: starts a load
    world.add_friendships([Friendship("a1", "x8")])
    last = save_snapshot(from_store(world), snapshots, source="test").name   # the release's next pointer
    svc._loading.join(30)
    assert len(loads) == 1 and loads[0]["snapshot"].current_version() == last
    assert svc.served.snapshot_version == last
