"""The ranker training job behind `pymk ranker train`: current artifacts in, a published ranker out."""

from __future__ import annotations

import logging
from functools import partial

import numpy as np

from candidates.ann import current_embeddings
from gnn.train import TrainConfig, embed_graph
from graph.snapshot import load_snapshot
from graph.snapshot.format import EVENT_CODE
from pymk.artifacts import ArtifactStore, live_stores
from pymk.settings import Settings
from ranker.connect import ConnectConfig, NothingToLearnError, train_connect
from ranker.features import FeatureContext
from ranker.history import ConnectExamples, HistoryConfig, history_examples
from ranker.samples import downsample
from ranker.scorers import FeatureScorer
from ranker.train import HEURISTIC_FEATURE, RankerConfig, guarded, publish, train_ranker

log = logging.getLogger(__name__)
MIN_IMPRESSIONS = 1_000


def train_and_publish(settings: Settings, history: HistoryConfig, epochs: int = 8, compare: bool = False,
                      progress: bool = False, stores: dict[str, ArtifactStore] | None = None) -> dict:
    """Train on the current snapshot (and embeddings made from it) and publish; `stores`: the artifact stores
    by name to read and publish to (a refresh run's pinned views), default the served ones."""
    stores = stores or live_stores(settings.artifact_dirs)
    snap_path = stores["snapshot"].current()
    snap = load_snapshot(snap_path)
    if snap.num_edges == 0:
        raise NothingToLearnError(f"snapshot {snap_path.name} holds no tie: nothing to learn from")
    # the embeddings serving will use with this snapshot (none if the current ones were made from another)
    embeddings = stores["embeddings"]
    version, emb, _ = current_embeddings(embeddings, snap_path.name)
    emb_version = version if emb is not None else None
    # embeddings at the history's cuts are trained on the graph before the earliest cut, never on later ties,
    # and the way the served ones were (their manifest's config), so emb_sim means the same in both
    embed = None
    if emb is not None:
        cfg = TrainConfig.from_dict(embeddings.manifest(embeddings.current()).get("config") or {})
        embed = partial(embed_graph, cfg=cfg, progress=progress)
    train_ex, val_ex = history_examples(snap, history, embed, progress=progress)
    store = stores["ranker"]
    impressions = int((snap.events["type"] == EVENT_CODE["impression"]).sum())
    if impressions < MIN_IMPRESSIONS:
        learned = train_connect(train_ex, val_ex, ConnectConfig())
        version = publish(learned["scorer"], learned["config"], learned["report"], store, snap_path.name,
                          emb_version, history.per_source_k)
        summary = [f"{name:<34} R@20 {m['recall@20']:.4f}  NDCG@20 {m['ndcg@20']:.4f}"
                   for name, m in learned["report"]["validation"].items()]
        return {"version": version, "chosen": learned["chosen"], "report": learned["report"],
                "summary": ["validation (graph history, no impression log):", *summary]}
    configs = {"focal": RankerConfig(epochs=epochs)}
    if compare:
        configs.update(balanced=RankerConfig(epochs=epochs, loss="balanced"),
                       logistic=RankerConfig(epochs=epochs, loss="bce", linear=True))
    # the connect head learns from every cut of the history, negatives downsampled as for the impressions
    connect = downsample(ConnectExamples.concat([train_ex, val_ex]), ConnectConfig().mlp.negatives_per_positive,
                         np.random.default_rng(0))
    out = train_ranker(FeatureContext(snap, emb), configs, progress=progress, connect=connect,
                       max_rows=settings.ranker_max_impressions)
    # publish guard: a model that does not beat the one-line heuristic on validation is not served; the
    # heuristic is (a feature scorer), so a bad training run never makes the suggestions worse
    won, why = guarded(out["report"]["results"], "focal")
    out["report"]["publish_guard"] = why
    if won:
        scorer, cfg, chosen = out["scorers"]["focal"], configs["focal"], "focal (send x accept)"
    else:
        scorer, cfg = FeatureScorer(HEURISTIC_FEATURE), None
        chosen = "mutual friends (the focal ranker lost on validation)"
        log.warning("publishing the mutual-friends heuristic, not the model: %s", why)
    version = publish(scorer, cfg, out["report"], store, snap_path.name, emb_version, history.per_source_k)
    summary = [f"{name:<26} send AUC {res.get('send_head', {}).get('auc')}  accept AUC "
               f"{res.get('accept_head', {}).get('auc')}  NDCG@10(connections) {res['ndcg@10_connections']}"
               for name, res in out["report"]["results"].items()]
    return {"version": version, "chosen": chosen, "report": out["report"], "summary": [*summary, why]}

