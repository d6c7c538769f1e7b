"""`pymk events ...` and `pymk users ...`: what accounts ask of their data (erasure, access)."""

from __future__ import annotations

from pathlib import Path

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
    if "segments_expired" in done["event_log"]:
        click.echo(f"event log: {done['event_log']['segments_expired']} segments past PYMK_EVENT_RETENTION_DAYS "
                   f"({settings.event_retention_days:g} days) deleted")
    skipped = sum(done[name]["live_segments_left"] for name in ("event_log", "served_log"))
    if skipped:
        click.echo(f"{skipped} live segment(s) written in the last {settle_min:g} min left for the next run")


@click.group()
def users() -> None:
    """One account's data."""


@users.command("export")
@click.argument("user_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON document here (default: stdout).")
@click.pass_obj
def users_export(settings: Settings, user_id: str, out: Path | None) -> None:
    """Everything stored about USER_ID as one JSON document (an access request): profile, ties, its own
    requests, blocks and dismissals, its events and the suggestions served to it."""
    import orjson

    from pymk.access import export_account

    doc = orjson.dumps(export_account(settings, user_id), option=orjson.OPT_INDENT_2).decode()
    if out is None:
        click.echo(doc)
        return
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(doc + "\n")
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(f"cannot write {out}: {exc}") from exc
    click.echo(f"{user_id}: {out}", err=True)
