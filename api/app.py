"""Flask application factory: wires settings, services, metrics, limits and error handlers."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import orjson
import torch
from flask import Flask, g, request
from flask.json.provider import JSONProvider
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from api import errors, ratelimit
from api.routes import bp
from api.services import Services
from candidates.newcomers import IndexRead
from graph.store import GraphStore
from graph.timestamps import TimeWindow, set_time_window
from pymk import logs
from pymk.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    suggestions: Counter
    removed: Counter
    stages: Histogram
    published: Gauge
    held_back: Counter
    paths: Counter
    skipped: Counter
    newcomers: Counter
    newcomer_reads: Histogram
    newcomer_read_at: Gauge
    newcomer_accounts: Gauge
    recent_read_at: Gauge
    recent_held: Gauge

    def newcomer_read(self, read: IndexRead) -> None:
        """A read of a worker's newcomer index (candidates/newcomers.py `on_read`)."""
        self.newcomer_reads.labels(read.kind, "ok" if read.ok else "failed").observe(read.seconds)
        self.newcomer_read_at.set(read.read_at or 0.0)   # 0: no read has worked yet
        self.newcomer_accounts.set(read.accounts)

    def recent_read(self, ok: bool, held: int) -> None:
        """A read of a worker's impressions logged since the snapshot (candidates/recent_shown.py `on_read`)."""
        if ok:
            self.recent_read_at.set(time.time())
        self.recent_held.set(held)


def _metrics() -> Metrics:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several worker processes (api/server.py): /metrics
        from prometheus_client import multiprocess  # reports all of them, read from the shared directory

        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
        return Metrics(scrape, *_instruments(CollectorRegistry()))
    reg = CollectorRegistry()
    return Metrics(reg, *_instruments(reg))


def _instruments(reg: CollectorRegistry) -> tuple:
    return (
        Counter("pymk_http_requests_total", "HTTP requests", ["endpoint", "status"], registry=reg),
        Histogram("pymk_http_request_seconds", "HTTP request latency", ["endpoint"], registry=reg,
                  buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2)),
        Counter("pymk_suggestions_returned_total", "Suggestions returned", registry=reg),
        Counter("pymk_candidates_removed_total", "Candidates removed by hard rules", ["reason"], registry=reg),
        Histogram("pymk_stage_seconds", "Time per pipeline stage of a suggestions request (sources by name; "
                  "generate, filters, total)", ["stage"], registry=reg,
                  buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1)),
        # alert on `time() - pymk_served_published_timestamp_seconds{artifact="snapshot"} > 36 * 3600`: the
        # nightly refresh stopped; with several workers the oldest any live worker serves (livemin); 0: none
        Gauge("pymk_served_published_timestamp_seconds", "When each served artifact's version was published "
              "(Unix time)", ["artifact"], registry=reg, multiprocess_mode="livemin"),
        Counter("pymk_graph_store_held_back_total", "Requests answered 503 at once, without trying the graph "
                "store, because it was found unreachable moments ago (PYMK_NEO4J_BREAKER_COOLDOWN_S)", registry=reg),
        # a rising share of `fresh` means many users the snapshot lacks: the nightly refresh is late or stopped
        Counter("pymk_suggestion_lists_total", "Suggestion lists by how they were made: precomputed (the nightly "
                "lists), online (ranked on request), fresh (a user newer than the snapshot)", ["path"], registry=reg),
        # alert on a rising rate of outcome="failed": a source, the learned ranker (the list then goes in
        # fusion order), the re-rank or the newcomer stage failing on requests, which still answer
        Counter("pymk_skipped_total", "Parts of suggestion requests that did not run: a source, the ranker, the "
                "re-rank, the newcomer stage or the snapshot (a user newer than it), by outcome: failed, "
                "over_budget, skipped", ["part", "outcome"], registry=reg),
        Counter("pymk_newcomer_suggestions_total", "Suggestions of accounts newer than the snapshot, in the "
                "newcomer slots (PYMK_NEWCOMER_SLOTS)", registry=reg),
        Histogram("pymk_newcomer_index_read_seconds", "Reads of Neo4j by the newcomer index of each worker: whole, "
                  "or what changed since the last read; ok or failed (the index then keeps its last read)",
                  ["kind", "outcome"], registry=reg, buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)),
        # alert on `time() - pymk_newcomer_index_read_timestamp_seconds > 600` (with the default 30 s refresh):
        # the index stopped reading, and accounts added since are suggested to no one; livemin: the worker
        # furthest behind
        Gauge("pymk_newcomer_index_read_timestamp_seconds", "When the newcomer index last read Neo4j with success "
              "(Unix time; 0: never)", registry=reg, multiprocess_mode="livemin"),
        Gauge("pymk_newcomer_index_accounts", "Accounts newer than the snapshot, with a friend, that the newcomer "
              "index holds", registry=reg, multiprocess_mode="livemax"),
        # alert on `time() - pymk_recent_impressions_read_timestamp_seconds > 300` (with the default 10 s
        # refresh): lists stop rotating within the day; livemin: the worker furthest behind
        Gauge("pymk_recent_impressions_read_timestamp_seconds", "When the worker last read the impressions logged "
              "since the snapshot (the seen penalty's) with success (Unix time; 0: never)", registry=reg,
              multiprocess_mode="livemin"),
        Gauge("pymk_recent_impressions_held", "Impressions logged since the snapshot that a worker holds for the "
              "seen penalty (PYMK_SEEN_MAX_IMPRESSIONS at most)", registry=reg, multiprocess_mode="livemax"),
    )


def _to_json(obj):
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot serialize {type(obj).__name__} to JSON")


class OrjsonProvider(JSONProvider):
    """Flask JSON through orjson: several times faster on the suggestions payload; NaN becomes null."""

    def dumps(self, obj, **kwargs) -> str:
        return orjson.dumps(obj, default=_to_json).decode()

    def loads(self, s, **kwargs):
        return orjson.loads(s)


_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def create_app(settings: Settings | None = None, store: GraphStore | None = None) -> Flask:
    """Build the app. `store` defaults to the configured Neo4j store."""
    settings = settings or Settings.from_env()
    settings.api.check_servable()
    set_time_window(TimeWindow(settings.ts_earliest, settings.ts_max_future_s, settings.ts_unit_s))
    # Requests run on server threads; torch's own intra-op threads would only fight them on small batches.
    torch.set_num_threads(1)
    owns_store = store is None
    if owns_store:
        from graph.connect import open_store

        store = open_store(settings, for_requests=True)
    app = Flask(__name__)
    app.config["PYMK_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.api.max_request_bytes
    app.json = OrjsonProvider(app)
    metrics = app.extensions["pymk_metrics"] = _metrics()
    app.extensions["pymk"] = Services(settings, store, on_newcomer_read=metrics.newcomer_read,
                                         on_recent_read=metrics.recent_read, owns_store=owns_store)
    errors.register(app)
    ratelimit.install(app, settings)
    app.register_blueprint(bp)

    @app.before_request
    def _start() -> None:
        g.start = time.perf_counter()
        g.snapshot_version = app.extensions["pymk"].served.snapshot_version
        g.log_context = logs.REQUEST_ID.set(errors.request_id())   # JSON log lines carry it

    @app.teardown_request
    def _end(_exc: BaseException | None) -> None:
        if "log_context" in g:
            logs.REQUEST_ID.reset(g.log_context)

    shown = [None]   # the served artifacts whose publication times the gauge holds

    def _publish_times() -> None:
        served = app.extensions["pymk"].served
        if served is not shown[0]:
            shown[0] = served
            at = dict(served.published_at)
            for artifact in settings.artifact_dirs:
                metrics.published.labels(artifact).set(at.get(artifact, 0.0))   # 0: none served

    _publish_times()

    @app.after_request
    def _finish(resp):
        _publish_times()
        # the route as written, without converters: `<path:user_id>` is labelled `<user_id>`
        endpoint = _CONVERTER.sub(r"<\1>", request.url_rule.rule) if request.url_rule else "unmatched"
        metrics.requests.labels(endpoint, str(resp.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - g.get("start", time.perf_counter()))
        resp.headers["X-Request-ID"] = errors.request_id()
        resp.headers["X-Pymk-Snapshot-Version"] = str(g.get("snapshot_version") or "none")
        served = app.extensions["pymk"].served
        resp.headers["X-Pymk-Model-Version"] = (f"ranker:{served.ranker_version or 'none'},"
                                                f"embeddings:{served.embeddings_version or 'none'}")
        return resp

    return app


def close_app(app: Flask) -> None:
    """Release what create_app opened: the logs' live segments, and the graph store it opened itself."""
    app.extensions["pymk"].close()
