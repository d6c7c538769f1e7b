"""Flask application factory: wires settings, services, metrics, limits and error handlers."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from flask import Flask, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram

from api import errors
from api.errors import ApiError
from api.ratelimit import RateLimiter
from api.routes import bp
from api.services import Services
from graph.store import GraphStore
from pymk.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    suggestions: Counter
    removed: Counter


def _metrics() -> Metrics:
    reg = CollectorRegistry()
    return Metrics(
        reg,
        Counter("pymk_http_requests_total", "HTTP requests", ["endpoint", "status"], registry=reg),
        Histogram("pymk_http_request_seconds", "HTTP request latency", ["endpoint"], registry=reg,
                  buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2)),
        Counter("pymk_suggestions_returned_total", "Suggestions returned", registry=reg),
        Counter("pymk_candidates_removed_total", "Candidates removed by hard rules", ["reason"], registry=reg),
    )


def create_app(settings: Settings | None = None, store: GraphStore | None = None) -> Flask:
    """Build the app. `store` defaults to the configured Neo4j store."""
    settings = settings or Settings.from_env()
    # Requests run on server threads; torch's own intra-op threads would only fight them on small batches.
    torch.set_num_threads(1)
    if store is None:
        from graph.connect import open_store

        store = open_store(settings)
    app = Flask(__name__)
    app.config["PYMK_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.api.max_request_bytes
    app.json.sort_keys = False
    app.extensions["pymk"] = Services(settings, store)
    metrics = app.extensions["pymk_metrics"] = _metrics()
    limiter = RateLimiter(settings.api.rate_limit_per_minute)
    errors.register(app)
    app.register_blueprint(bp)

    @app.before_request
    def _start() -> None:
        g.start = time.perf_counter()
        g.snapshot_version = app.extensions["pymk"].served.snapshot_version
        client = request.headers.get("X-API-Key") or request.remote_addr or "unknown"
        if request.path not in ("/healthz", "/readyz", "/metrics") and not limiter.allow(client):
            raise ApiError(429, "rate_limited", "too many requests; slow down")

    @app.after_request
    def _finish(resp):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(endpoint, str(resp.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - g.get("start", time.perf_counter()))
        resp.headers["X-Pymk-Snapshot-Version"] = str(g.get("snapshot_version") or "none")
        served = app.extensions["pymk"].served
        resp.headers["X-Pymk-Model-Version"] = (f"ranker:{served.ranker_version or 'none'},"
                                                f"embeddings:{served.embeddings_version or 'none'}")
        return resp

    return app
