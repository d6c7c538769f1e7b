"""CLI commands for the simulator, offline evaluation, embeddings and the ranker (`COMMANDS`, added to
`main` in pymk/cli.py)."""

from __future__ import annotations

from pathlib import Path

import click

from pymk.cli_snapshot import ALLOW_SHRINK
from pymk.settings import Settings


# ---- simulator --------------------------------------------------------------------------------
@click.group()
def sim() -> None:
    """Synthetic social world with hidden send/accept behaviour."""


@sim.command("generate")
@click.option("--users", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--avg-degree", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=14, show_default=True,
              help="Length of the logged baseline period.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def sim_generate(users: int, avg_degree: float, days: int, seed: int, out: Path) -> None:
    """Write users.csv, edges.txt and events.jsonl (ingestion formats) for a generated world."""
    from sim.export import SampleSpec, write_sample
    from sim.world import WorldConfig

    manifest = write_sample(SampleSpec(WorldConfig(num_users=users, avg_degree=avg_degree, seed=seed), log_days=days),
                            out, progress=True)
    click.echo(f"{out}: {manifest['users']} users, {manifest['friendships']} friendships, "
               f"{manifest['events']} events {manifest['event_counts']}")


@sim.command("abtest")
@click.option("--users", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--policy", "policies", multiple=True, default=("mutual_friends", "random"), show_default=True,
              help="Policy names (repeat); users are split between them by a stable hash.")
def sim_abtest(users: int, days: int, seed: int, policies: tuple[str, ...]) -> None:
    """Closed-loop A/B test of simulator policies, with 95% bootstrap intervals."""
    from sim.abtest import compare, format_report
    from sim.behaviour import WorldState
    from sim.policies import POLICIES
    from sim.world import WorldConfig, generate_world

    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise click.BadParameter(f"unknown policy {unknown[0]!r}; known: {', '.join(POLICIES)}")
    world = generate_world(WorldConfig(num_users=users, seed=seed))
    state = WorldState(world)
    arms = {name: POLICIES[name](state, seed=seed) for name in policies}
    click.echo(format_report(compare(state, arms, days, world.end_ts, seed=seed, progress=True)))


# ---- offline evaluation -----------------------------------------------------------------------
@click.command("eval")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--users", type=click.IntRange(min=1), default=500, show_default=True, help="Test users sampled.")
@click.option("--train-share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8,
              show_default=True, help="Share of ties (by time) before the cut.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Runs (seeds 0..N-1); mean and sd are reported.")
@click.option("--viewers-per-cut", type=click.IntRange(min=1), default=800, show_default=True,
              help="Viewers per inner training cut.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench/out"), show_default=True)
@click.option("--with-ann", is_flag=True, help="Also train GraphSAGE on the training graph and add the ANN source.")
def evaluate_cmd(path: Path, users: int, train_share: float, seeds: int, viewers_per_cut: int, out: Path,
                 with_ann: bool) -> None:
    """Learn the ranker on the training period, then score it and every baseline on the test period.

    PATH is an edge list, or a snapshot directory (a version, or a snapshots root such as
    $PYMK_DATA_DIR/snapshots for the current one): a graph already in Neo4j, as `snapshot export` wrote it.
    """
    from evaluation.edgelist import snapshot_dir
    from evaluation.harness import evaluate_seeds, write_report
    from ranker.history import HistoryConfig

    if path.is_dir():
        path = snapshot_dir(path)
    report = evaluate_seeds(path, tuple(range(seeds)), users=users, train_share=train_share, with_ann=with_ann,
                            history=HistoryConfig(viewers_per_cut=viewers_per_cut))
    json_path, png_path = write_report(report, out)
    rows = sorted(report["summary"].items(), key=lambda kv: -kv[1].get("recall@20", [0])[0])
    for name, metrics in rows:
        click.echo(f"{name:<20} " + "  ".join(f"{m}={metrics[m][0]:.4f}±{metrics[m][1]:.4f}" for m in
                                               ("recall@20", "ndcg@20") if m in metrics))
    for metric, r in report["pipeline_vs_best_single"].items():
        ci = r.get("ratio_95ci")
        click.echo(f"pipeline {metric} = {r['ratio']:.4f} x best single ({r['best_single']})"
                   + (f", 95% CI over test users {ci[0]:.3f}-{ci[1]:.3f}" if ci else ""))
    click.echo(f"rankers chosen on validation: {report['chosen_rankers']}")
    click.echo(f"report: {json_path}  plot: {png_path}")


# ---- embeddings -------------------------------------------------------------------------------
@click.group()
def embeddings() -> None:
    """GraphSAGE embeddings and their FAISS index."""


@embeddings.command("refresh")
@click.option("--epochs", type=click.IntRange(min=1), default=60, show_default=True)
@click.option("--max-auc-drop", type=click.FloatRange(min=0), default=0.02, show_default=True,
              help="Refuse to publish below served AUC - this.")
@click.option("--no-features", is_flag=True, help="Id embeddings only (ablation).")
@click.pass_obj
def embeddings_refresh(settings: Settings, epochs: int, max_auc_drop: float, no_features: bool) -> None:
    """Current snapshot -> train -> embeddings + FAISS index, published atomically."""
    from pymk.artifacts import ArtifactStore
    from pymk.refresh import stage_embeddings

    version = stage_embeddings(settings, epochs, max_auc_drop, use_features=not no_features, progress=True)
    store = ArtifactStore(settings.embeddings_dir)
    metrics = store.manifest(store.current())["metrics"]
    click.echo(f"published {version}: val AUC {metrics['val_auc']:.4f}, Hits@50 {metrics['val_hits@50']:.4f}")


@embeddings.command("rollback")
@click.pass_obj
def embeddings_rollback(settings: Settings) -> None:
    """The embeddings back one version, and the ranker and lists made after them (as `pymk rollback embeddings`)."""
    from pymk.cli_snapshot import roll_back

    roll_back(settings, "embeddings")


# ---- ranker -----------------------------------------------------------------------------------
@click.group()
def ranker() -> None:
    """The ranker: learned from how the graph grew, and from the impression log when there is one."""


@ranker.command("train")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True,
              help="Epochs of the send/accept heads (impression log).")
@click.option("--compare", is_flag=True, help="Also train balanced-CE and logistic baselines and report them.")
@click.option("--viewers-per-cut", type=click.IntRange(min=1), default=800, show_default=True,
              help="Viewers per cut of the graph's history.")
@click.pass_obj
def ranker_train(settings: Settings, epochs: int, compare: bool, viewers_per_cut: int) -> None:
    """Current snapshot -> trained ranker, published atomically with its report.

    Learns from how the graph grew (ranker/history.py); with an impression log, the send and
    accept heads train on it too, through the same trunk, and serving ranks by P(send) * P(accept)^w.
    """
    from ranker.history import HistoryConfig
    from ranker.jobs import train_and_publish

    out = train_and_publish(settings, HistoryConfig(viewers_per_cut=viewers_per_cut), epochs, compare,
                            progress=True)
    for line in out["summary"]:
        click.echo(line)
    click.echo(f"published ranker {out['version']} ({out['chosen']})")


# ---- precomputed candidate lists ----------------------------------------------------------------
@click.group()
def candidates() -> None:
    """Candidate lists ranked ahead of time for likely viewers."""


@candidates.command("precompute")
@click.option("--active-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Rank only the users active in the snapshot's last N days of events.")
@click.option("--all-users", is_flag=True, help="Rank every user with at least one friend (the default).")
@click.option("--keep", type=click.IntRange(min=1), default=60, show_default=True,
              help="Ranked candidates kept per user.")
@click.option("--engine", type=click.Choice(["block", "online", "spark"]), default="block", show_default=True,
              help="block: stages over blocks of users in worker processes; online: the serving path per user; "
                   "spark: the block engine on Spark, two-hop candidates as Spark joins.")
@click.option("--master", default="local[*]", show_default=True,
              help="Spark master for --engine spark ('' under spark-submit; SPARK_REMOTE selects Spark Connect).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default: one per core).")
@click.option("--block", type=click.IntRange(min=1), default=64, show_default=True, help="Users per block.")
@click.pass_obj
def candidates_precompute(settings: Settings, active_days: float | None, all_users: bool, keep: int, engine: str,
                          master: str, workers: int | None, block: int) -> None:
    """Run sources -> merge -> cheap filters -> rank now with the served artifacts; publish the lists.

    The API uses them while the snapshot, embeddings and ranker they were made with are served.
    """
    from pymk.artifacts import ArtifactStore
    from pymk.refresh import stage_precompute

    if all_users and active_days is not None:
        raise click.UsageError("--all-users and --active-days exclude each other")
    version = stage_precompute(settings, active_days or 7.0, active_days is None, keep, progress=True, engine=engine,
                               workers=workers, block=block, master=master or None)
    store = ArtifactStore(settings.candidates_dir)
    click.echo(f"precomputed {store.manifest(store.current())['users']} users' lists -> {store.root / version}")


@click.command("refresh")
@click.option("--stages", default="erase,snapshot,embeddings,ranker,precompute", show_default=True,
              help="Comma-separated stages to run, in their fixed order.")
@click.option("--resume", is_flag=True, help="Continue the newest unfinished run after its last finished stage.")
@ALLOW_SHRINK
@click.option("--active-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Lists only for users active in the snapshot's last N days of events (the rest are ranked "
                   "on request). Default: every user with a friend.")
@click.option("--max-auc-drop", type=click.FloatRange(min=0), default=0.02, show_default=True,
              help="The embeddings stage refuses to publish below the served version's validation AUC - this "
                   "(e.g. 1 with --resume: publish anyway).")
@click.pass_obj
def refresh(settings: Settings, stages: str, resume: bool, allow_shrink: bool, active_days: float | None,
            max_auc_drop: float) -> None:
    """The nightly job: erase -> snapshot -> embeddings -> ranker -> precomputed lists, resumable, timed per
    stage (erase: deleted accounts' records out of the logs the snapshot reads); what it makes is served
    together when the last stage is done."""
    from pymk.refresh import run_refresh

    state = run_refresh(settings, tuple(s.strip() for s in stages.split(",") if s.strip()), resume, progress=True,
                        allow_shrink=allow_shrink, active_days=active_days, max_auc_drop=max_auc_drop)
    for stage, done in state["done"].items():
        what = done.get("version") or ("skipped" if "skipped" in done else
                                       f"{done['event_log']['records_erased'] + done['served_log']['records_erased']} "
                                       f"records of {done['accounts']} deleted")
        click.echo(f"{stage:<11} {what:<28} {done['seconds']:>8.1f} s")
    click.echo("released " + (", ".join(f"{name} {v}" for name, v in state["released"].items()) or "nothing new"))
    for problem in state["release_problems"]:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"refresh {state['run']} finished in {state['total_seconds']:.1f} s "
               f"(manifest: {settings.data_dir / 'refresh' / state['run'] / 'manifest.json'})")


COMMANDS = (sim, evaluate_cmd, embeddings, ranker, candidates, refresh)
