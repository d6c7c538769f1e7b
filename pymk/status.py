"""What an operator, or a monitoring check, asks of a deployment: what is served, how old, and how the
nightly refresh went. Read from the artifact directories alone: no Neo4j, no API, fast.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymk.artifacts import PUBLISHES, ArtifactStore
from pymk.errors import ArtifactError
from pymk.runlock import holder
from pymk.settings import Settings
from ranker.feature_names import feature_mismatch

log = logging.getLogger(__name__)
# what the API does without each optional artifact
WITHOUT = {"embeddings": "no embedding source", "ranker": "ranked by reciprocal rank fusion",
           "candidates": "every request ranked on request"}


@dataclass
class Report:
    artifacts: dict[str, dict] = field(default_factory=dict)   # name -> version, published_at, age_h, ...
    refresh: dict = field(default_factory=dict)               # the newest run: its state, or that none ran
    problems: list[str] = field(default_factory=list)
    event_log: dict = field(default_factory=dict)             # segments, bytes, earliest/latest (graph/eventcols)

    def lines(self) -> list[str]:
        out = []
        for name, a in self.artifacts.items():
            if a.get("version") is None:
                out.append(f"{name:<11} none ({WITHOUT.get(name, 'nothing to serve')})")
                continue
            if "error" in a:
                out.append(f"{name:<11} {a['version']}  unreadable")
                continue
            made = f", made from snapshot {a['snapshot_version']}" if a.get("snapshot_version") else ""
            out.append(f"{name:<11} {a['version']}  published {_utc(a['published_at'])} ({a['age_h']:.1f} h ago)"
                       f"{made}")
        out.append(f"{'refresh':<11} {self.refresh['summary']}")
        if self.event_log:
            e = self.event_log
            span = (f", events from {_utc(e['earliest'])} to {_utc(e['latest'])}" if e.get("latest") is not None
                    else "")
            later = f" ({e['unindexed']} not yet read by an export)" if e.get("unindexed") else ""
            out.append(f"{'event log':<11} {e['segments']} segment{'s' if e['segments'] != 1 else ''}, "
                       f"{e['bytes'] / 1e6:,.1f} MB{span}{later}")
        out += [f"problem: {p}" for p in self.problems] or ["ok"]
        return out


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def status(settings: Settings, max_age_h: float = 36.0, now: float | None = None) -> Report:
    """The served artifacts and the newest refresh run; `problems` lists what needs a person: no snapshot,
    a snapshot older than `max_age_h`, a ranker this code cannot use (other features or embeddings), lists
    made from another snapshot than the current one, a refresh run that stopped before its end with no
    process running it."""
    now = time.time() if now is None else now
    report = Report()
    for name, root in settings.artifact_dirs.items():
        report.artifacts[name] = artifact_entry(ArtifactStore(root), now)
        if "error" in report.artifacts[name]:
            report.problems.append(f"the current {name} cannot be read: {report.artifacts[name]['error']}")
    snap = report.artifacts["snapshot"]
    if snap["version"] is None:
        report.problems.append("no snapshot is published: the API cannot serve (run `pymk refresh`)")
    elif "error" not in snap and snap["age_h"] > max_age_h:
        report.problems.append(f"the snapshot {snap['version']} is {snap['age_h']:.1f} h old (over {max_age_h:g} h): "
                               "has the nightly refresh stopped?")
    report.problems += served_problems(report.artifacts)
    report.refresh = _refresh(settings.data_dir / "refresh", now, report.problems,
                              {name: a.get("version") for name, a in report.artifacts.items()})
    return report


@dataclass(frozen=True)
class Serving:
    """What the API serves of one set of versions, decided as it loads them (pymk/assemble.py,
    api/services.py), in the same order: each decision sets what the next one compares with."""

    embeddings: bool                  # made from the snapshot
    ranker: str | None                # the ranker version it ranks with (None: reciprocal rank fusion)
    lists_made_with: dict[str, str | None]   # what precomputed lists must have been made with to be used


def serving(artifacts: dict[str, dict]) -> Serving:
    """`Serving` of the entries (`artifact_entry`) of one set of versions."""
    snap, emb, ranker = (artifacts[k] for k in ("snapshot", "embeddings", "ranker"))
    emb_served = emb["version"] is not None and emb.get("snapshot_version") == snap["version"]
    wanted = ranker.get("embeddings_version")
    ranker_served = ranker["version"] is not None and not ranker.get("unusable") and (
        wanted is None or (emb_served and wanted == emb["version"]))
    # the API compares the lists with the current embeddings' version even where it does not use them
    return Serving(emb_served, ranker["version"] if ranker_served else None,
                   {"snapshot_version": snap["version"], "embeddings_version": emb["version"],
                    "ranker_version": ranker["version"] if ranker_served else None})


def served_problems(artifacts: dict[str, dict]) -> list[str]:
    """What the API would serve without, given the entries (`artifact_entry`) of one set of versions: embeddings
    made from another snapshot, a ranker this code cannot use or trained with embeddings it does not serve, lists
    made with other versions than it serves."""
    problems: list[str] = []
    snap, emb, ranker, lists = (artifacts[k] for k in ("snapshot", "embeddings", "ranker", "candidates"))
    served = serving(artifacts)
    if emb["version"] is not None and snap["version"] is not None and not served.embeddings:
        problems.append(f"the embeddings {emb['version']} were made from snapshot "
                        f"{emb.get('snapshot_version')}, not the current {snap['version']}: the API serves "
                        "without them (run the embeddings stage)")
    if ranker["version"] is not None and served.ranker is None:
        if ranker.get("unusable"):
            problems.append(f"the ranker {ranker['version']} {ranker['unusable']}: the API ranks by reciprocal "
                            "rank fusion until `pymk refresh` (or `pymk ranker train`) publishes one it can use")
        else:
            problems.append(f"the ranker {ranker['version']} was trained with embeddings "
                            f"{ranker.get('embeddings_version')}, and the API serves "
                            f"{(emb['version'] if served.embeddings else None) or 'none'}: it ranks by reciprocal "
                            "rank fusion (run the ranker stage)")
    made = lists.get("made_with") or {}
    stale = [k.removesuffix("_version") for k, v in served.lists_made_with.items() if made.get(k) != v]
    if lists["version"] is not None and stale:
        problems.append(f"the precomputed lists {lists['version']} were made with "
                        + ", ".join(f"{k} {made.get(f'{k}_version')}" for k in stale) + "; now served: "
                        + ", ".join(f"{k} {served.lists_made_with[f'{k}_version']}" for k in stale)
                        + ": the API ranks every request on request until the next precompute")
    return problems


def artifact_entry(store: ArtifactStore, now: float, version: str | None = None) -> dict:
    """What status reads of one version (the current one by default): when it was published, what from."""
    version = store.current_version() if version is None else version
    if version is None:
        return {"version": None}
    try:
        manifest = store.manifest(store.root / version)
    except (ArtifactError, OSError, ValueError) as exc:   # pruned, unreadable, or not JSON
        return {"version": version, "published_at": None, "age_h": None, "error": str(exc)}
    published = float(manifest.get("published_at") or 0.0)
    out = {"version": version, "published_at": published, "age_h": (now - published) / 3600}
    if manifest.get("snapshot_version"):
        out["snapshot_version"] = manifest["snapshot_version"]
    if manifest.get("kind") == "ranker":   # what the API checks before it ranks with it (ranker/serve.py)
        out.update(unusable=feature_mismatch(manifest), embeddings_version=manifest.get("embeddings_version"))
    if "ranker_version" in manifest:   # precomputed lists: every version they were ranked with
        out["made_with"] = {k: manifest.get(k) for k in ("snapshot_version", "embeddings_version", "ranker_version")}
    return out


def _refresh(root: Path, now: float, problems: list[str], served: dict[str, str | None]) -> dict:
    runs = sorted(root.glob("*/manifest.json")) if root.is_dir() else []
    running = holder(root / ".lock")
    if not runs:
        return {"summary": "no run yet" + (f"; one started (pid {running.get('pid')})" if running else "")}
    try:
        state = json.loads(runs[-1].read_text())
    except (OSError, ValueError) as exc:
        problems.append(f"the refresh run manifest {runs[-1]} cannot be read: {exc}")
        return {"summary": f"{runs[-1].parent.name}: unreadable manifest"}
    done = ", ".join(state.get("done", {})) or "nothing"
    if state.get("finished"):
        at = state.get("finished_at") or state.get("started_at", 0.0) + state.get("total_seconds", 0.0)
        summary = f"run {state['run']} finished {_utc(at)} ({done}; {state.get('total_seconds', 0):.0f} s of stages)"
        if running:
            summary += f"; a new run is starting (pid {running.get('pid')} on {running.get('host')})"
    elif running:
        summary = (f"run {state['run']} running stage {state.get('running')} (pid {running.get('pid')} on "
                   f"{running.get('host')}, started {_utc(state.get('started_at', now))}; done: {done})")
    else:
        summary = f"run {state['run']} stopped in stage {state.get('running')} (done: {done})"
        # a run releases what it made only at its end: what this one made is not served
        made = [f"{name} {d['version']}" for stage, d in state.get("done", {}).items()
                if (name := PUBLISHES.get(stage)) and d.get("version") not in (None, served.get(name))]
        problems.append(f"the refresh run {state['run']} stopped in stage {state.get('running')} with no process "
                        "running it (failed or killed): `pymk refresh --resume` continues it"
                        + (f"; what it made is not served ({', '.join(made)})" if made else ""))
    return {"summary": summary, **{k: state.get(k) for k in ("run", "finished", "running", "started_at",
                                                              "finished_at")},
            "done": list(state.get("done", {})), "running_pid": running.get("pid") if running else None}
