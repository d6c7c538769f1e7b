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
    and the served log, and its entries in the lists served to others. Safe to re-run; `pymk refresh`
    runs it first every night."""
    from pymk.refresh import stage_erase

    done = stage_erase(settings, settle_s=settle_min * 60)
    for name in ("event_log", "served_log"):
        report = done[name]
        click.echo(f"{name.replace('_', ' ')}: {report['records_erased']} records of {done['accounts']} deleted "
                   f"accounts erased and {report['lists_cut']} served lists cut, in {report['segments']} segments")
    skipped = sum(done[name]["live_segments_left"] for name in ("event_log", "served_log"))
    if skipped:
        click.echo(f"{skipped} live segment(s) written in the last {settle_min:g} min left for the next run")
