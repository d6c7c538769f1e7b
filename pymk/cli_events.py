"""`pymk events ...`: the event logs' upkeep (erasure of deleted accounts)."""

from __future__ import annotations

import click

from pymk.settings import Settings


@click.group()
def events() -> None:
    """Upkeep of the event log and the served log."""


@events.command("erase")
@click.option("--settle-min", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Leave live segments written in the last N minutes (an API process may still append).")
@click.pass_obj
def events_erase(settings: Settings, settle_min: float) -> None:
    """Remove every record naming a deleted account (the graph store's tombstones) from the event log
    and the served log. Safe to re-run; run it after deletions, e.g. nightly."""
    from graph.connect import open_store
    from graph.eventlog import EventLog

    store = open_store(settings)
    try:
        deleted = store.deleted_users()
    finally:
        store.close()
    skipped = 0
    for name, root in (("event log", settings.event_log_dir), ("served log", settings.served_log_dir)):
        report = EventLog(root).erase(deleted, settle_s=settle_min * 60)
        skipped += len(report.skipped)
        click.echo(f"{name}: {report.lines} records of {len(deleted)} deleted accounts erased from "
                   f"{report.segments} segments")
    if skipped:
        click.echo(f"{skipped} live segment(s) written in the last {settle_min:g} min left for the next run")
