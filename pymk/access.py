"""An access request: everything pymk stores about one account, as one JSON document.

From the graph store: the profile, the ties, the account's own requests, blocks and dismissals, and
the requests it received with its answers. From the event log: the events the account made (its
impressions are the suggestions it was shown). From the served log: the lists served to it. Others'
actions toward the account (their blocks or dismissals of it, their lists it appeared in) are theirs
and are left out. Derived artifacts (snapshots, embeddings, models, precomputed lists) hold the id
until they are rebuilt; the document names the versions current now.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import orjson

from graph.erasure import lines_with, spelling, theirs
from graph.eventlog import EventLog
from graph.store import GraphStore
from pymk.artifacts import ArtifactStore
from pymk.errors import UnknownUserError
from pymk.settings import Settings

log = logging.getLogger(__name__)


def records_of(event_log: EventLog, user_id: str, field: str) -> Iterator[dict]:
    """The log's records whose `field` is `user_id`, in segment order (only the lines that spell the id
    are parsed; unreadable ones are skipped)."""
    pattern = spelling([user_id])
    for seg in event_log.segments():
        try:
            f = open(seg, "rb")  # noqa: SIM115 (closed by the with below)
        except FileNotFoundError:   # expired meanwhile
            continue
        with f:
            for _, _, line in lines_with(f, pattern):
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(obj, dict) and str(obj.get(field)) == user_id:
                    yield obj


def _without_others_features(record: dict) -> dict:
    """A served list as shown to the account: who, where, from which sources, with which scores; each
    candidate's ranking features (with PYMK_SERVED_LOG=features: that user's degree, activity, accept
    rate...) describe the candidate, another person, and are left out."""
    shown = record.get("candidates")
    if not isinstance(shown, list):
        return record
    return {**record, "candidates": [{k: v for k, v in c.items() if k not in ("features", "features_at")}
                                     if isinstance(c, dict) else c for c in shown]}


def export_account(settings: Settings, user_id: str, store: GraphStore | None = None) -> dict:
    """The access-request document for `user_id` (UnknownUserError if the graph store has no such user)."""
    from graph.connect import given_or_opened

    with given_or_opened(settings, store) as graph:
        data = graph.account_data(user_id)
        # an id deleted before and created again: the former account's records (until the nightly erasure
        # takes them out of the logs) are not this account's
        former = graph.deletions([user_id])
    if data is None:
        raise UnknownUserError(user_id)
    start = time.perf_counter()
    events = [r for r in records_of(EventLog(settings.event_log_dir), user_id, "src")
              if not theirs(former, user_id, r.get("ts"))]
    served = [_without_others_features(r) for r in records_of(EventLog(settings.served_log_dir), user_id, "viewer")
              if not theirs(former, user_id, r.get("ts"))]
    log.info("read %d events and %d served lists of %s from the logs in %.1fs", len(events), len(served),
             user_id, time.perf_counter() - start)
    artifacts: dict[str, Path] = {"snapshot": settings.snapshot_dir, "embeddings": settings.embeddings_dir,
                                  "ranker": settings.ranker_dir, "precomputed_lists": settings.candidates_dir}
    return {
        "account": user_id,
        "exported_at": time.time(),
        "time_unit": "seconds since the epoch",
        "profile": data.profile,
        "friends": [{"id": f.b, "since": f.since} for f in data.friends],
        "requests_sent": [asdict(r) for r in data.requests_sent],
        "requests_received": [asdict(r) for r in data.requests_received],
        "blocks": [{"id": other, "at": at} for other, at in data.blocks],
        "dismissals": [{"id": other, "at": at} for other, at in data.dismissals],
        "events": events,
        "suggestions_served": served,
        "derived_artifacts": {name: ArtifactStore(path).current_version() for name, path in artifacts.items()},
    }
