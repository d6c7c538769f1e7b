"""`pymk snapshot ...`: export, build, inspect and roll back versioned graph snapshots; `pymk status`: what
every artifact store serves and how the nightly refresh went; `pymk rollback`: every artifact back together."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pymk.settings import Settings


@click.group()
def snapshot() -> None:
    """Export, build and inspect versioned graph snapshots."""


def _snapshots(settings: Settings):
    from pymk.artifacts import ArtifactStore

    return ArtifactStore(settings.snapshot_dir)


ALLOW_SHRINK = click.option("--allow-shrink", is_flag=True,
                            help="Publish even with under half the current snapshot's friendships.")


@snapshot.command("export")
@ALLOW_SHRINK
@click.pass_obj
def snapshot_export(settings: Settings, allow_shrink: bool) -> None:
    """Neo4j + event log -> a new snapshot version (made current)."""
    from pymk.refresh import stage_snapshot

    version = stage_snapshot(settings, progress=True, allow_shrink=allow_shrink)
    manifest = _snapshots(settings).manifest(_snapshots(settings).current())
    click.echo(f"snapshot {version}: {manifest['num_users']} users, {manifest['num_friendships']} friendships")


@snapshot.command("from-edges")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@ALLOW_SHRINK
@click.pass_obj
def snapshot_from_edges(settings: Settings, path: Path, allow_shrink: bool) -> None:
    """An edge list file -> a new snapshot version, without Neo4j."""
    from graph.snapshot import from_edge_list, save_snapshot
    from pymk.refresh import check_shrink

    snap = from_edge_list(path, progress=True)
    if not allow_shrink:
        check_shrink(snap.num_edges, _snapshots(settings))
    out = save_snapshot(snap, _snapshots(settings), source=f"edge list {path}")
    bad = snap.meta.get("rejected_rows", 0)
    click.echo(f"snapshot {out.name}: {snap.num_users} users, {snap.num_edges} friendships"
               + (f" ({bad} bad rows skipped, the first of them logged above)" if bad else ""))


@snapshot.command("info")
@click.pass_obj
def snapshot_info(settings: Settings) -> None:
    """The current snapshot's manifest: counts, times, what it was made from."""
    store = _snapshots(settings)
    current = store.current()
    click.echo(json.dumps({k: v for k, v in store.manifest(current).items() if k != "arrays"}, indent=2))


@snapshot.command("rollback")
@click.pass_obj
def snapshot_rollback(settings: Settings) -> None:
    """The snapshot back one version, and what was made from it with it (as `pymk rollback`)."""
    roll_back(settings, "snapshot")


def roll_back(settings: Settings, back: str | None, dry_run: bool = False) -> None:
    """Print the plan (pymk/rollback.py) and, unless `dry_run`, set it."""
    from pymk.rollback import apply, plan

    planned = plan(settings, back=back)
    click.echo("\n".join(planned.lines()))
    if dry_run:
        return
    if all(old == new for old, new in planned.moves.values()):
        click.echo("nothing to change")
        return
    apply(settings, planned.moves)
    click.echo(f"done: the API serves these within {settings.api.reload_check_s:g} s")


@click.command("rollback")
@click.argument("artifact", type=click.Choice(["snapshot", "embeddings", "ranker", "candidates"]), default="snapshot")
@click.option("--latest", is_flag=True, help="Instead: every artifact forward to its newest kept version made for "
                                             "the ones before it (undo a rollback).")
@click.option("--dry-run", is_flag=True, help="Print the plan and what the API would serve without; change nothing.")
@click.pass_obj
def rollback(settings: Settings, artifact: str, latest: bool, dry_run: bool) -> None:
    """ARTIFACT (default: the snapshot) back one version, and every artifact made after it back to the
    newest version made for it: a bad nightly refresh undone in one step, a set the API serves together."""
    roll_back(settings, None if latest else artifact, dry_run)


@click.command("status")
@click.option("--max-age-hours", type=click.FloatRange(min=0), default=36.0, show_default=True,
              help="A snapshot older than this is a problem (the nightly refresh has stopped).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
@click.pass_obj
def status(settings: Settings, max_age_hours: float, as_json: bool) -> None:
    """What is served (each artifact's version and age) and how the newest refresh run went.
    Exit code 1 when something needs a person (a monitoring check can run it)."""
    from graph.eventcols import summary
    from graph.eventlog import EventLog
    from pymk.status import status as read_status

    report = read_status(settings, max_age_hours)
    report.event_log = summary(EventLog(settings.event_log_dir))
    if as_json:
        click.echo(json.dumps({"artifacts": report.artifacts, "refresh": report.refresh,
                               "event_log": report.event_log, "problems": report.problems}, indent=2))
    else:
        click.echo("\n".join(report.lines()))
    raise SystemExit(1 if report.problems else 0)

