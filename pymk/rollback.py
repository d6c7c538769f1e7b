"""Roll the served artifacts back together, so that what is served stays a set the API can use together.

Each artifact is made from the ones before it: embeddings from a snapshot, a ranker with embeddings, lists
with all three, and the API serves a later one only with what it was made from (pymk/status.py
`served_problems`). Rolling back one store alone would leave the others made for the version it left: the
API would then serve no embeddings, rank by fusion and rank every request on request.
`plan` moves one store back a version and then every store after it to its newest kept version made with
what is now before it; or, with no store named, every store forward to its newest such version (the snapshot
to its newest). The plan names what the API would still serve without, before anything is changed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pymk.artifacts import ArtifactStore, live_stores, release
from pymk.errors import ArtifactError
from pymk.runlock import exclusive
from pymk.settings import Settings
from pymk.status import artifact_entry, served_problems, serving

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Each store's current and target version, and what the API would serve without once they are set."""

    moves: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{name:<11} {old or 'none'} -> {new or 'none'}" if old != new else f"{name:<11} {old or 'none'} (kept)"
               for name, (old, new) in self.moves.items()]
        return out + ([f"problem: {p}" for p in self.problems] or ["the API can serve every one of them together"])


def _made_for(name: str, target: dict[str, str | None], entries: dict[str, dict[str, dict]]
              ) -> Callable[[dict], bool]:
    """Whether a version (its entry) of store `name` is one the API serves beside the target versions."""
    chosen = {n: entries[n].get(v, {"version": v}) for n, v in target.items()}
    if name == "embeddings":
        return lambda e: serving({**chosen, "embeddings": e}).embeddings
    if name == "ranker":
        return lambda e: serving({**chosen, "ranker": e}).ranker is not None
    made = serving(chosen).lists_made_with
    return lambda e: e.get("made_with") == made


def plan(settings: Settings, back: str | None = "snapshot") -> Plan:
    """Store `back` one version back (to its newest earlier version made for the stores before it), then
    every store after it to its newest version made for the new set; `back` None: the snapshot to its newest
    version and every store after it likewise. A store with no such version keeps its current one (the
    plan's problems say what that costs)."""
    stores = live_stores(settings.artifact_dirs)   # in the order a refresh makes them: each from those before it
    order = tuple(stores)
    if back is not None and back not in order:
        raise ArtifactError(f"unknown artifact {back!r}; one of {', '.join(order)}")
    now = time.time()
    entries = {name: {v: artifact_entry(store, now, v) for v in store.versions()} for name, store in stores.items()}
    current = {name: store.current_version() for name, store in stores.items()}
    target = dict(current)
    first = order.index(back) if back is not None else 0
    for name in order[first:]:
        fits = (lambda e: True) if name == "snapshot" else _made_for(name, target, entries)
        kept = [v for v, e in entries[name].items() if "error" not in e and fits(e)]
        if name == back:
            if current[name] is None:
                raise ArtifactError(f"nothing to roll back: no {name} is current under {stores[name].root}")
            kept = [v for v in kept if v < current[name]]
            if not kept:
                raise ArtifactError(f"nothing to roll back to: no {name} older than {current[name]} under "
                                    f"{stores[name].root}" + ("" if name == "snapshot" else
                                                              " made for the versions served before it"))
        if kept:
            target[name] = kept[-1]
    chosen = {name: artifact_entry(stores[name], now, target[name]) for name in order}
    problems = [f"the {name} {e['version']} cannot be read: {e['error']}" for name, e in chosen.items() if "error" in e]
    if target["snapshot"] is None:
        problems.append("no snapshot is published: the API cannot serve (run `pymk refresh`)")
    return Plan({name: (current[name], target[name]) for name in order}, problems + served_problems(chosen))


def apply(settings: Settings, moves: dict[str, tuple[str | None, str | None]]) -> None:
    """Point each store's CURRENT at its target, the lists first and the snapshot last (the API reloads on
    any pointer it sees change; these few writes take a moment). JobRunningError while a refresh runs."""
    # the refresh's own lock: a run publishing now would publish over the rollback, and none starts meanwhile
    with exclusive(settings.data_dir / "refresh" / ".lock", "refresh or rollback", kind="rollback"):
        moved = release({name: ArtifactStore(root).pinned(moves[name][1])
                         for name, root in settings.artifact_dirs.items()})
    for name, version in moved.items():
        log.info("%s: %s -> %s", name, moves[name][0], version)
