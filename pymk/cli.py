"""The `pymk` command line: a thin layer over plain functions (python -m pymk --help)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from pymk import logs
from pymk.cli_events import events, users
from pymk.cli_models import COMMANDS
from pymk.cli_snapshot import rollback, snapshot, status
from pymk.errors import GraphStoreUnavailableError, PymkError, UnknownUserError
from pymk.settings import Settings, log_format

log = logging.getLogger("pymk")


def _setup_logging(verbosity: int, fmt: str) -> None:
    """Warnings only by default (commands print their results); -v: progress of the stages; -vv: debug.
    As text lines or JSON objects (PYMK_LOG_FORMAT).

    Third-party loggers (the neo4j driver, faiss's loader) stay at WARNING unless -vv.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logs.setup(level, fmt)
    for name in ("neo4j", "faiss", "matplotlib"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except GraphStoreUnavailableError as exc:
            hint = ("set NEO4J_URI to a running server, or start the local one: python -m pymk neo4j start"
                    if ctx.obj is None or not ctx.obj.neo4j.external else "is the server at NEO4J_URI up?")
            raise click.ClickException(f"{exc}\n{hint}") from exc
        except PymkError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Cli)
@click.option("-v", "--verbose", count=True, help="-v: log each stage; -vv: debug, third-party libraries too.")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """pymk: people-you-may-know engine."""
    try:
        fmt = log_format(os.environ)
    except PymkError as exc:
        raise click.ClickException(str(exc)) from exc
    _setup_logging(verbose, fmt)
    ctx.obj = Settings.from_env()
    from graph.edge_columns import set_declared_columns
    from graph.timestamps import TimeWindow, set_time_window

    set_time_window(TimeWindow(ctx.obj.ts_earliest, ctx.obj.ts_max_future_s, ctx.obj.ts_unit_s))
    set_declared_columns(ctx.obj.edge_columns)


# ---- local Neo4j -----------------------------------------------------------------------------
@main.group()
def neo4j() -> None:
    """Run the local embedded Neo4j (ignored when NEO4J_URI points at a server)."""


@neo4j.command("start")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=180.0, show_default=True,
              help="Seconds to wait for Bolt.")
@click.pass_obj
def neo4j_start(settings: Settings, timeout: float) -> None:
    from graph import server

    st = server.start(settings.neo4j, timeout_s=timeout)
    click.echo(f"neo4j ready at {st.uri} ({st.detail})")


@neo4j.command("stop")
@click.pass_obj
def neo4j_stop(settings: Settings) -> None:
    from graph import server

    click.echo("neo4j stopped" if server.stop(settings.neo4j) else "neo4j was not running")


@neo4j.command("status")
@click.pass_obj
def neo4j_status(settings: Settings) -> None:
    from graph import server

    st = server.status(settings.neo4j)
    click.echo(f"{'up' if st.running else 'down'}: {st.uri} - {st.detail}")
    if st.running:
        from graph.connect import open_store

        store = open_store(settings)
        try:
            click.echo(f"server: {store.server_info()}")
            click.echo(f"counts: {store.counts()}")
        finally:
            store.close()
    sys.exit(0 if st.running else 3)


@neo4j.command("schema")
@click.pass_obj
def neo4j_schema(settings: Settings) -> None:
    """Create the indexes and constraints pymk reads by (idempotent; the API and `pymk ingest` do it too):
    after an upgrade, or on a server whose API credentials may not change the schema."""
    from graph.connect import open_store

    store = open_store(settings)
    try:
        store.ensure_schema()
        click.echo(f"schema in place on {store.server_info()}")
    finally:
        store.close()


@neo4j.command("build")
def neo4j_build() -> None:
    """Build the Java launcher with Maven (done on demand by start)."""
    from graph import server

    click.echo(f"launcher libraries in {server.build_launcher(force=True)}")


# ---- ingestion --------------------------------------------------------------------------------
@main.command()
@click.argument("kind", type=click.Choice(["edges", "users", "events", "deletions"]))
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Rows per transaction (default PYMK_INGEST_BATCH).")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), help="Write every rejected row here.")
@click.option("--allow-rejects", is_flag=True, help="Exit 0 even when rows were rejected (good rows load either way).")
@click.option("--interactions", is_flag=True,
              help="edges: also log every timed row as an interaction event (an edge list that repeats pairs, "
                   "such as messages: the ranker counts them).")
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def ingest(settings: Settings, kind: str, paths: tuple[Path, ...], batch_size: int | None,
           rejects: Path | None, allow_rejects: bool, interactions: bool, no_progress: bool) -> None:
    """Load edge lists, user CSVs or JSONL events into the graph, or delete the accounts a CSV with an
    `id` column names (`deletions`). Idempotent.

    Exits 2 when any row was rejected (so scripts notice), unless --allow-rejects.
    """
    from graph import ingest as ing
    from graph.connect import open_store
    from graph.eventlog import EventLog

    size = batch_size or settings.ingest_batch_size
    store = open_store(settings)
    reports = []
    try:
        store.ensure_schema()
        for path in paths:
            if kind == "edges":
                said = EventLog(settings.event_log_dir) if interactions else None
                reports.append(ing.ingest_edges(store, path, size, progress=not no_progress, interactions=said))
            elif kind == "users":
                reports.append(ing.ingest_users(store, path, size, progress=not no_progress))
            elif kind == "deletions":
                reports.append(ing.ingest_deletions(store, path, size, progress=not no_progress))
            else:
                reports.append(ing.ingest_events(store, path, EventLog(settings.event_log_dir), size,
                                                 progress=not no_progress))
    finally:
        store.close()
    for rep in reports:
        click.echo(rep.summary())
    if rejects is not None:
        rejects.write_text("".join(f"{err}\n" for rep in reports for err in rep.errors))
        click.echo(f"rejected rows written to {rejects}")
    _exit_on_rejects(sum(rep.rejected for rep in reports), allow_rejects)


def _exit_on_rejects(rejected: int, allowed: bool) -> None:
    if rejected and not allowed:
        click.echo(f"{rejected} row(s) rejected: exiting with status 2 (--allow-rejects to accept)", err=True)
        sys.exit(2)


@main.command("initial-load")
@click.option("--users", "users", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Users CSV (repeatable).")
@click.option("--edges", "edges", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Edge list (repeatable).")
@click.option("--max-memory", default="2G", show_default=True, help="Importer off-heap memory limit.")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), help="Write every rejected row here.")
@click.option("--allow-rejects", is_flag=True, help="Exit 0 even when rows were rejected.")
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def initial_load(settings: Settings, users: tuple[Path, ...], edges: tuple[Path, ...], max_memory: str,
                 rejects: Path | None, allow_rejects: bool, no_progress: bool) -> None:
    """Fill an EMPTY local database fast with Neo4j's offline importer (stops and restarts the server).

    Same validation and the same resulting graph as `ingest users` + `ingest edges`; use `ingest`
    for everything after the first load and for an external NEO4J_URI server.
    """
    from graph.bulkload import initial_load as run

    report = run(settings.neo4j, list(users), list(edges), progress=not no_progress, max_memory=max_memory)
    click.echo(report.summary())
    if rejects is not None:
        rejects.write_text("".join(f"{err}\n" for err in report.errors))
        click.echo(f"rejected rows written to {rejects}")
    _exit_on_rejects(report.rejected, allow_rejects)


# ---- suggestions (graph-store preview until the full pipeline serves them) ------------------
@main.command()
@click.argument("user_ids", nargs=-1, required=True)
@click.option("--limit", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--max-friend-degree", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Hub cap for intermediaries.")
@click.pass_obj
def suggest(settings: Settings, user_ids: tuple[str, ...], limit: int, max_friend_degree: int) -> None:
    """Friends-of-friends suggestions straight from Neo4j, hard rules applied, with their proof."""
    from candidates.fresh import fresh_fof
    from graph.connect import open_store

    store = open_store(settings)
    try:
        for uid in user_ids:
            try:
                kept = fresh_fof(store, uid, limit, max_friend_degree).candidates  # the one hard-rule path
            except UnknownUserError:
                raise click.ClickException(f"unknown user {uid!r}") from None
            click.echo(f"user {uid} ({len(store.friends(uid))} friends):")
            for c in kept:
                proof = c.proof["fof"]
                m = proof["mutual_count"]
                names = ", ".join(proof["mutual_ids"][:5]) + (", ..." if m > 5 else "")
                click.echo(f"  {c.user_id:>8}  {m} mutual friends: {names}  (Adamic-Adar {proof['adamic_adar']:.2f})")
            if not kept:
                click.echo("  (no friends-of-friends candidates yet)")
    finally:
        store.close()


@main.command()
@click.argument("viewer")
@click.argument("candidate")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.pass_obj
def why(settings: Settings, viewer: str, candidate: str, limit: int) -> None:
    """Why CANDIDATE is or is not in VIEWER's suggestions: each stage's verdict, on the served artifacts
    and fresh Neo4j state (what the API would do)."""
    from candidates.filters import StoreStateReader
    from candidates.why import why as explain
    from graph.connect import open_store
    from pymk.assemble import add_live_state, assemble_pipeline

    store = open_store(settings)
    try:
        pipeline = assemble_pipeline(settings, StoreStateReader(store)).pipeline
        add_live_state(pipeline, settings, store)
        try:
            click.echo("\n".join(explain(pipeline, viewer, candidate, limit, store=store).lines()))
        finally:
            pipeline.close()
    finally:
        store.close()


# ---- serving ----------------------------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (gunicorn when > 1; default PYMK_API_WORKERS, one per core). 1: waitress.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads per worker (default PYMK_API_THREADS, 2).")
@click.pass_obj
def serve(settings: Settings, host: str, port: int, workers: int | None, threads: int | None) -> None:
    """Serve the HTTP API with a production WSGI server (gunicorn processes or waitress threads)."""
    from pymk.ports import check_can_listen

    workers, threads = workers or settings.api.workers, threads or settings.api.threads
    settings.api.check_servable()
    check_can_listen(host, port)   # before saying where it listens
    if workers > 1:
        # worker metrics are shared through this directory; prometheus_client reads the variable
        # when first imported, so it is set before the api package is loaded
        import os
        import tempfile

        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="pymk-metrics-"))
    from api.server import serve as run

    click.echo(f"pymk API on http://{host}:{port} ({workers} worker process{'es' if workers > 1 else ''}, "
               f"{threads} threads each)")
    run(settings, host, port, workers, threads)


# defined in pymk/cli_snapshot.py, cli_events.py, cli_models.py
for _command in (snapshot, status, rollback, events, users, *COMMANDS):
    main.add_command(_command)
