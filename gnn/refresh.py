"""The embedding refresh job: snapshot -> train -> embed every user -> FAISS index -> publish.

Each run writes a versioned artifact (embeddings.npy, index.faiss, model.pt, manifest.json with
the model config, snapshot version and validation metrics) and switches the serving pointer
atomically. It refuses to publish when validation AUC falls more than `max_auc_drop` below the
version being served; the previous versions stay for rollback.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import torch

from candidates.ann import build_index
from gnn.features import build_features
from gnn.train import TrainConfig, train_link_model
from graph.snapshot import load_snapshot
from pymk.artifacts import ArtifactStore
from pymk.errors import ArtifactError

log = logging.getLogger(__name__)


class RefusedToPublishError(ArtifactError):
    """The new embeddings validate worse than the served ones by more than the allowed margin."""


@dataclass(frozen=True)
class RefreshResult:
    path: Path
    metrics: dict


def refresh_embeddings(snapshot_path: Path, out: ArtifactStore, cfg: TrainConfig | None = None,
                       max_auc_drop: float = 0.02, progress: bool = False) -> RefreshResult:
    cfg = cfg or TrainConfig()
    snap = load_snapshot(snapshot_path)
    model, emb, metrics = train_link_model(snap, build_features(snap), cfg, progress=progress)
    previous = out.current_version()
    if previous is not None:
        old = out.manifest(out.current()).get("metrics", {}).get("val_auc")
        if old is not None and metrics["val_auc"] < old - max_auc_drop:
            raise RefusedToPublishError(
                f"validation AUC {metrics['val_auc']:.4f} is more than {max_auc_drop} below the served version "
                f"{previous} ({old:.4f}); not publishing (--max-auc-drop sets how far below it may be)")
    staging = out.staging_dir()
    np.save(staging / "embeddings.npy", emb)
    faiss.write_index(build_index(emb), str(staging / "index.faiss"))
    torch.save(model.state_dict(), staging / "model.pt")
    manifest = {"kind": "embeddings", "snapshot_version": snap.meta.get("version"), "num_users": snap.num_users,
                "dim": int(emb.shape[1]), "model": "GraphSAGE", "config": asdict(cfg),
                "metrics": {k: v for k, v in metrics.items() if k != "config"}}
    path = out.publish(staging, manifest)
    return RefreshResult(path, metrics)
