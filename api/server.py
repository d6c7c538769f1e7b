"""Run the API under a production WSGI server: gunicorn worker processes, or waitress threads.

Python runs one thread at a time per process, so throughput on several cores needs several
processes: `workers > 1` starts gunicorn with threaded workers, each building its own app (own
Neo4j driver, snapshot and models; the precomputed lists are memory-mapped, so the OS shares
them). Prometheus metrics are then aggregated across workers through PROMETHEUS_MULTIPROC_DIR,
which must be set before prometheus_client is first imported (`pymk serve` sets it before it
imports the api package).
Rate-limit counters are shared by the workers too (api/ratelimit.py: a SQLite file by default, any
storage `limits` supports across machines). `workers == 1` uses waitress.
"""

from __future__ import annotations

import logging
import os
import shutil

from pymk.errors import ConfigError
from pymk.settings import Settings

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve(settings: Settings, host: str, port: int, workers: int = 1, threads: int = 8) -> None:
    """Serve until interrupted (`pymk serve` has checked it can listen on host:port)."""
    settings.api.check_servable()   # here as well as in create_app: not in each gunicorn worker's boot
    if workers <= 1:
        from waitress import serve as waitress_serve

        from api import close_app, create_app

        app = create_app(settings)
        try:
            waitress_serve(app, host=host, port=port, threads=threads, ident="pymk")
        finally:
            close_app(app)
        return
    metrics_dir = os.environ.get(MULTIPROC_ENV)
    if not metrics_dir:
        raise ConfigError(f"{MULTIPROC_ENV} must be set before the api package is imported to serve with "
                          f"several workers (`pymk serve --workers {workers}` does)")
    try:
        _Gunicorn(settings, {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
                             "worker_class": "gthread", "preload_app": False, "timeout": 60, "reuse_port": True,
                             "graceful_timeout": 30, "keepalive": 5, "accesslog": None,
                             "child_exit": _child_exit, "worker_exit": _worker_exit,
                             # gunicorn's own lines through pymk's handler: JSON too with PYMK_LOG_FORMAT=json
                             **({"logger_class": _gunicorn_logger()} if settings.log_format == "json" else {}),
                             }).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _worker_exit(server, worker) -> None:
    """In the worker as it stops: close its app's Neo4j driver and log segments."""
    app = getattr(worker, "wsgi", None)
    if app is not None and "pymk" in getattr(app, "extensions", {}):
        from api import close_app

        close_app(app)


def _gunicorn_logger():
    from gunicorn.glogging import Logger

    class ThroughRoot(Logger):
        """gunicorn's logs handed to the root logger's handlers (pymk/logs.py) instead of its own."""

        def setup(self, cfg) -> None:
            super().setup(cfg)
            for logger in (self.error_log, self.access_log):
                logger.handlers.clear()
                logger.propagate = True

    return ThroughRoot


def _gunicorn_base():
    from gunicorn.app.base import BaseApplication

    return BaseApplication


class _Gunicorn(_gunicorn_base()):
    """gunicorn driven from Python: the app is built inside each worker after the fork."""

    def __init__(self, settings: Settings, options: dict) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from api import create_app

        return create_app(self.settings)
