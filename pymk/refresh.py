"""The nightly refresh as one resumable job: erase -> snapshot -> embeddings -> ranker -> precomputed lists.

Each stage is a plain function (also behind its own CLI command) that publishes a versioned
artifact, except the first: it erases deleted accounts from the logs the snapshot reads, so that
nothing made from this run holds their records. The run keeps its state in
`$PYMK_DATA_DIR/refresh/<run id>/manifest.json`, written atomically after every stage: which stages
finished, the version each published (erase: its counts), and its seconds. One run at a time: a second
one started meanwhile (a cron run overlapping a slow night) stops at once with JobRunningError.
The run publishes to pinned views of the artifact stores: each stage reads what the earlier ones made,
and the API keeps serving the last released set until the run releases all its versions at its end (a
new snapshot served alone would be served without the embeddings, ranker and lists made for the old
one, for as long as the later stages take); a run that fails releases nothing. `resume` continues the
newest unfinished run from its first unfinished stage with the versions its finished stages published,
provided they are still kept (otherwise it starts over).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from graph.store import GraphStore
from pymk.artifacts import MANIFEST, PUBLISHES, ArtifactStore, live_stores, release
from pymk.errors import ArtifactError, ConfigError, TooLittleHistoryError
from pymk.runlock import exclusive
from pymk.settings import Settings

log = logging.getLogger(__name__)
STAGES = ("erase", "snapshot", "embeddings", "ranker", "precompute")
Stores = dict[str, ArtifactStore]
Runner = Callable[[Stores], str | dict]


# A snapshot with under this share of the current one's friendships is refused: an export from the
# wrong or an emptied database would otherwise be served at once (the API hot-swaps to it).
MIN_KEPT_SHARE = 0.5


def check_shrink(num_friendships: int, snapshots: ArtifactStore, min_kept: float = MIN_KEPT_SHARE) -> None:
    """ArtifactError when a new snapshot keeps under `min_kept` of the current one's friendships."""
    if snapshots.current_version() is None:
        return
    current = snapshots.current()
    before = int(snapshots.manifest(current).get("num_friendships", 0))
    if num_friendships < min_kept * before:
        raise ArtifactError(
            f"the new snapshot has {num_friendships:,} friendships where the current one ({current.name}) has "
            f"{before:,}: under {min_kept:.0%} of it, so it is not published (a wrong or emptied database?); "
            f"if the graph really shrank, publish it with --allow-shrink")


def stage_erase(settings: Settings, store: GraphStore | None = None, settle_s: float = 3600.0) -> dict:
    """Every record naming an account deleted from the graph store (its tombstones), out of the event log
    and the served log, and out of the lists served to others; live segments written in the last
    `settle_s` are left for the next run. With PYMK_EVENT_RETENTION_DAYS, also the event log's segments
    whose events are all older than that. Returns the counts (safe to re-run: then all zero)."""
    from graph.connect import given_or_opened
    from graph.eventlog import EventLog

    with given_or_opened(settings, store) as graph:
        deleted = graph.deletions()
    done = {"accounts": len(deleted)}
    for name, root in (("event_log", settings.event_log_dir), ("served_log", settings.served_log_dir)):
        report = EventLog(root).erase(deleted, settle_s=settle_s)
        done[name] = {"records_erased": report.lines, "lists_cut": report.scrubbed, "segments": report.segments,
                      "live_segments_left": len(report.skipped)}
    if settings.event_retention_days > 0:   # and the event log's segments past its retention
        from graph.eventcols import expire

        gone = expire(EventLog(settings.event_log_dir), time.time() - settings.event_retention_days * 86_400.0,
                      settle_s=settle_s)
        done["event_log"]["segments_expired"] = len(gone)
    return done


def stage_snapshot(settings: Settings, store: GraphStore | None = None, progress: bool = False,
                   allow_shrink: bool = False, stores: Stores | None = None) -> str:
    """Neo4j (or `store`) + event log -> a new current snapshot version (refused if it lost most of the
    current one's friendships, unless `allow_shrink`). `stores` (every stage): the artifact stores to read
    and publish to by name, a refresh run's pinned views; default the served ones (published at once)."""
    from graph.connect import given_or_opened
    from graph.eventlog import EventLog
    from graph.snapshot import from_store, save_snapshot

    snapshots = (stores or live_stores(settings.artifact_dirs))["snapshot"]
    with given_or_opened(settings, store) as graph:
        snap = from_store(graph, EventLog(settings.event_log_dir), progress=progress,
                          event_days=settings.event_history_days)
        if not allow_shrink:
            check_shrink(snap.num_edges, snapshots)
        return save_snapshot(snap, snapshots, source=graph.server_info()).name


def stage_embeddings(settings: Settings, epochs: int = 60, max_auc_drop: float = 0.02, use_features: bool = True,
                     progress: bool = False, stores: Stores | None = None) -> str:
    """Current snapshot -> GraphSAGE embeddings + FAISS index, published."""
    from gnn.refresh import refresh_embeddings
    from gnn.train import TrainConfig

    stores = stores or live_stores(settings.artifact_dirs)
    res = refresh_embeddings(stores["snapshot"].current(), stores["embeddings"],
                             TrainConfig(epochs=epochs, use_features=use_features), max_auc_drop=max_auc_drop,
                             progress=progress)
    return res.path.name


def stage_ranker(settings: Settings, epochs: int = 8, viewers_per_cut: int = 800, progress: bool = False,
                 stores: Stores | None = None) -> str:
    """Current snapshot (+ embeddings, + impression log) -> the ranker, published."""
    from ranker.history import HistoryConfig
    from ranker.jobs import train_and_publish

    return train_and_publish(settings, HistoryConfig(viewers_per_cut=viewers_per_cut), epochs, progress=progress,
                             stores=stores)["version"]


def stage_precompute(settings: Settings, active_days: float = 7.0, all_users: bool = True, keep: int = 60,
                     progress: bool = False, engine: str = "block", workers: int | None = None,
                     block: int = 64, limit: int | None = None, seed: int = 0,
                     master: str | None = "local[*]", stores: Stores | None = None) -> str:
    """Rank every user's list (every user with a friend; with all_users=False, those active in the
    last `active_days` of events) now with the served artifacts; publish them.

    engine `block` ranks blocks of users at once in `workers` processes (default: one per core);
    `online` runs the serving pipeline user by user (the reference; also used when the served
    ranker is the heuristic order, which has no block form); `spark` runs the block engine on Spark
    (`master`; pymk/spark_precompute.py). `limit`: rank a random `limit` of the
    users only (dry runs and benchmarks).
    """
    from candidates.precompute import active_users, build_precomputed
    from pymk.assemble import assemble_pipeline
    from ranker.batch import BlockRanker, NotBlockRankableError

    if engine not in ("block", "online", "spark"):
        raise ValueError(f"unknown precompute engine {engine!r} (block, online or spark)")
    stores = stores or live_stores(settings.artifact_dirs)
    built = assemble_pipeline(settings, stores=stores)
    # offline, a slow source is waited for rather than skipped (serving keeps its tight budget)
    built.pipeline.config = replace(built.pipeline.config, source_budget_s=60.0)
    snap = built.pipeline.snap
    users = np.flatnonzero(snap.degree > 0) if all_users else active_users(snap, active_days)
    if not all_users and users.size == 0:
        log.warning("precompute: no user acted or was shown suggestions in the snapshot's last %g days of "
                    "events (%d events in all): no lists are made, every request is ranked on request",
                    active_days, snap.events["ts"].size)
    if limit is not None and users.size > limit:
        users = np.sort(np.random.default_rng(seed).choice(users, limit, replace=False))
    if engine == "spark":
        from pymk.spark_precompute import spark_precompute

        try:
            return spark_precompute(settings, built, users, keep, block, master, progress,
                                    stores["candidates"]).name
        finally:
            built.pipeline.close()
    rank = None
    if engine == "block":
        try:
            rank = BlockRanker(built.pipeline, keep)
        except NotBlockRankableError as exc:
            log.warning("precompute: %s; ranking user by user", exc)
    workers = workers or os.cpu_count() or 1
    try:
        return build_precomputed(built.pipeline, users, built.versions, stores["candidates"], keep,
                                 progress=progress, rank=rank, block=block,
                                 workers=workers if rank is not None else 1).name
    finally:
        built.pipeline.close()


def _write(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def _resumable(settings: Settings, stages: tuple[str, ...]) -> tuple[Path, dict] | None:
    root = settings.data_dir / "refresh"
    runs = sorted(root.glob("*/manifest.json")) if root.exists() else []
    if not runs:
        return None
    state = json.loads(runs[-1].read_text())
    if state.get("finished") or tuple(state["stages"]) != stages:
        return None
    gone = [f"{stage} {done['version']}" for stage, done in state["done"].items() if stage in PUBLISHES
            and "version" in done and not (settings.artifact_dirs[PUBLISHES[stage]] / done["version"] / MANIFEST
                                           ).exists()]
    if gone:
        log.warning("refresh %s: %s no longer kept; starting over", state["run"], ", ".join(gone))
        return None
    return runs[-1], state


def _problems(stores: Stores) -> list[str]:
    """What the API would serve without, were the run's versions released (pymk/status.py)."""
    from pymk.status import artifact_entry, served_problems

    now = time.time()
    return served_problems({name: artifact_entry(store, now) for name, store in stores.items()})


def _pinned(settings: Settings, state: dict) -> Stores:
    """The run's artifact stores: each read at what this run published to it, else at what is served."""
    made = {PUBLISHES[stage]: done["version"] for stage, done in state["done"].items()
            if stage in PUBLISHES and "version" in done}   # a skipped stage published nothing
    return {name: store.pinned(made.get(name, store.current_version()))
            for name, store in live_stores(settings.artifact_dirs).items()}


def _unless_too_little_history(artifact: str, stage: Callable[[], str]) -> str | dict:
    """A learning stage, skipped with a warning when the graph is too small or young for it (too few ties for
    embeddings, no new tie at any cut for a ranker) instead of failing the run, which would leave the new
    snapshot unserved: the API then serves without that artifact (no ANN source, fusion order)."""
    try:
        return stage()
    except TooLittleHistoryError as exc:
        log.warning("refresh: no %s trained: %s", artifact, exc)
        return {"skipped": str(exc)}


def run_refresh(settings: Settings, stages: tuple[str, ...] = STAGES, resume: bool = False,
                runners: dict[str, Runner] | None = None, progress: bool = False,
                allow_shrink: bool = False, active_days: float | None = None, max_auc_drop: float = 0.02) -> dict:
    """Run `stages` in order (each publishes its artifact); returns the run's manifest.

    `runners` maps a stage to a callable taking the run's artifact stores (pinned views: what it publishes
    is read by the later stages and served only when the run releases every version at its end) and
    returning the published version, or (erase) a dict of what it did (defaults: the stage_* functions with
    default arguments; `allow_shrink` goes to stage_snapshot, `max_auc_drop` to stage_embeddings).
    `active_days`: lists only for the users active in the snapshot's last `active_days` of events (the
    rest are ranked on request); None: every user with a friend.
    """
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown refresh stage {unknown[0]!r}; stages: {', '.join(STAGES)}")
    stages = tuple(s for s in STAGES if s in stages)
    runners = {"embeddings": lambda stores: _unless_too_little_history("embeddings", lambda: stage_embeddings(
                   settings, max_auc_drop=max_auc_drop, progress=progress, stores=stores)),
        "ranker": lambda stores: _unless_too_little_history("ranker", lambda: stage_ranker(
            settings, progress=progress, stores=stores)),
        "precompute": lambda stores: stage_precompute(settings, active_days or 7.0, active_days is None,
                                                      progress=progress, stores=stores),
        "erase": lambda stores: stage_erase(settings),
        "snapshot": lambda stores: stage_snapshot(settings, progress=progress, allow_shrink=allow_shrink,
                                                  stores=stores), **(runners or {})}
    # two runs at once would each hold a million-user world in memory and race to publish
    with exclusive(settings.data_dir / "refresh" / ".lock", "refresh", stages=",".join(stages)):
        return _run(settings, stages, resume, runners, active_days)


def _run(settings: Settings, stages: tuple[str, ...], resume: bool, runners: dict[str, Runner],
         active_days: float | None) -> dict:
    found = _resumable(settings, stages) if resume else None
    if found is None:
        run = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
        path = settings.data_dir / "refresh" / run / "manifest.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"run": run, "stages": list(stages), "done": {}, "finished": False, "started_at": time.time()}
    else:
        path, state = found
        log.info("resuming refresh %s after %s", state["run"], ", ".join(state["done"]) or "nothing")
    if "precompute" in stages and "precompute" not in state["done"]:   # what the lists will cover
        state["precompute_users"] = "every user with a friend" if active_days is None else \
            f"active in the last {active_days:g} days"
    stores = _pinned(settings, state)
    for stage in stages:
        if stage in state["done"]:
            continue
        start = time.perf_counter()
        state["running"] = stage
        _write(path, state)
        result = runners[stage](stores)   # the version it published (erase: its counts)
        state["done"][stage] = {**({"version": result} if isinstance(result, str) else result),
                                "seconds": round(time.perf_counter() - start, 2)}
        log.info("refresh stage %s: %s in %.1fs", stage, result, state["done"][stage]["seconds"])
        _write(path, state)
    state.pop("running", None)
    # every version at once, the lists first and the snapshot last (the API reloads on any pointer it sees
    # change): until here it served the last released set whole, never a new snapshot without the rest
    state["release_problems"] = _problems(stores)
    for problem in state["release_problems"]:   # e.g. only some stages run: the rest were made for another set
        log.warning("refresh %s releases a set the API serves only in part: %s", state["run"], problem)
    state["released"] = release(stores)
    state["finished"] = True
    state["finished_at"] = time.time()
    state["total_seconds"] = round(sum(d["seconds"] for d in state["done"].values()), 2)
    _write(path, state)
    return state
