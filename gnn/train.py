"""Link-prediction training of the GraphSAGE encoder on a snapshot.

Positives are friendships; validation friendships are the most recent ones (time split), and the
graph the encoder reads while training contains training friendships only. Negatives mix uniform
random pairs with hard ones (friends of friends who are not friends). Full batch over a sparse
adjacency when the graph fits, mini-batches from our own neighbour sampler when it does not.
Early stopping (and the kept epoch) on validation Hits@50 by default, AUC optionally.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from gnn.features import NodeFeatures
from gnn.model import LinkEncoder, dot_decoder, link_loss
from gnn.sampler import sample_blocks
from graph.snapshot import Snapshot, build_csr
from graph.splits import time_split_mask
from graph.walks import two_step_walk
from pymk.errors import TooLittleHistoryError
from pymk.metrics import auc_and_hits
from pymk.progress import progress_bar

log = logging.getLogger(__name__)


class TooFewTiesError(TooLittleHistoryError):
    """The snapshot's ties leave none to train on or none to validate with."""


@dataclass(frozen=True)
class TrainConfig:
    hidden_channels: int = 64
    out_channels: int = 64
    num_layers: int = 2
    aggregator: str = "gcn"  # GraphSAGE's GCN aggregator (self-inclusive mean); "mean" adds a root weight
    dropout: float = 0.1
    use_features: bool = True
    use_ids: bool = True
    use_gnn: bool = True  # False: shallow embeddings, no message passing ("pure-id" with use_features=False)
    lr: float = 0.01
    epochs: int = 60
    patience: int = 8
    select_by: str = "hits@50"  # validation metric for early stopping and the kept epoch: hits@50 or auc
    positives_per_epoch: int = 50_000
    hard_negative_share: float = 0.1  # more hard negatives trade random-pair AUC for 2-hop ranking
    val_share: float = 0.1
    full_batch_max_nodes: int = 200_000
    fanouts: tuple[int, ...] = (15, 10)
    batch_size: int = 4096
    seed: int = 0
    device: str = "cpu"   # CPU everywhere by default (tests too); "cuda" when asked for

    @classmethod
    def from_dict(cls, config: dict) -> TrainConfig:
        """The config an embeddings manifest recorded (asdict; JSON turned its tuples into lists)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in known})


@dataclass(frozen=True)
class EdgeSplit:
    train_src: np.ndarray
    train_dst: np.ndarray
    val_src: np.ndarray
    val_dst: np.ndarray
    cut: float | None


def split_edges(snap: Snapshot, val_share: float, seed: int = 0) -> EdgeSplit:
    """The newest `val_share` of friendships (by `since`) for validation; random if untimed."""
    src, dst, since = snap.ties()
    # No leakage: validation ties formed at or after the cut; the training graph (what the
    # encoder aggregates over) holds only ties formed before it (or of unknown time).
    train, cut = time_split_mask(since, 1 - val_share, seed)
    val = ~train
    return EdgeSplit(src[~val], dst[~val], src[val], dst[val], cut)


def sparse_adjacency(n: int, src: np.ndarray, dst: np.ndarray, device: str) -> torch.Tensor:
    indptr, indices, _ = build_csr(n, src, dst)
    return csr_adjacency(indptr, indices, device)


def csr_adjacency(indptr: np.ndarray, indices: np.ndarray, device: str) -> torch.Tensor:
    """A symmetric CSR (as build_csr makes it: rows sorted, in range, no duplicates) as torch's sparse CSR."""
    n = indptr.size - 1
    return torch.sparse_csr_tensor(torch.from_numpy(np.array(indptr, dtype=np.int64)),   # copies: may be read-only
                                   torch.from_numpy(indices.astype(np.int64)),
                                   torch.ones(indices.size), size=(n, n), device=device,
                                   check_invariants=False)


def negatives(indptr: np.ndarray, indices: np.ndarray, src: np.ndarray, hard_share: float,
              rng: np.random.Generator) -> np.ndarray:
    """One negative partner per source: a friend-of-friend (hard) or a random user."""
    n = indptr.size - 1
    neg = rng.integers(0, n, src.size)
    hard = rng.random(src.size) < hard_share
    walk = two_step_walk(indptr, indices, src[hard], rng)
    ok = walk >= 0
    idx = np.flatnonzero(hard)[ok]
    neg[idx] = walk[ok]
    return neg


@torch.no_grad()
def embed_all(model: LinkEncoder, feats: NodeFeatures, adj: torch.Tensor) -> np.ndarray:
    model.eval()
    return model(feats, adj).cpu().numpy().astype(np.float32)


def train_link_model(snap: Snapshot, feats: NodeFeatures, cfg: TrainConfig, progress: bool = False
                     ) -> tuple[LinkEncoder, np.ndarray, dict]:
    """Train; returns the best model, embeddings of every user (full graph) and metrics."""
    torch.manual_seed(cfg.seed)
    if cfg.select_by not in ("hits@50", "auc"):
        raise ValueError(f"select_by must be hits@50 or auc (got {cfg.select_by!r})")
    rng = np.random.default_rng(cfg.seed)
    n, dev = snap.num_users, torch.device(cfg.device)
    split = split_edges(snap, cfg.val_share, cfg.seed)
    if not split.train_src.size or not split.val_src.size:
        raise TooFewTiesError(f"too few ties to train embeddings: the snapshot's {snap.num_edges} split into "
                              f"{split.train_src.size} to train on and {split.val_src.size} to validate with "
                              f"(the newest {cfg.val_share:.0%}); at least one of each is needed")
    tr_indptr, tr_indices, _ = build_csr(n, split.train_src, split.train_dst)
    train_adj = csr_adjacency(tr_indptr, tr_indices, cfg.device)
    feats = feats.to(dev)
    model = LinkEncoder(feats.buckets, feats.numeric.shape[1], n if cfg.use_ids else 0, cfg.use_features,
                        cfg.hidden_channels, cfg.out_channels, cfg.num_layers, cfg.dropout, cfg.use_gnn,
                        cfg.aggregator).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    val_neg = rng.integers(0, n, (split.val_src.size, 2)).T
    full_batch = n <= cfg.full_batch_max_nodes
    best, best_state, bad, history, best_row = -1.0, None, 0, [], {}
    start = time.perf_counter()
    for epoch in progress_bar(range(cfg.epochs), desc="gnn epochs", enabled=progress):
        model.train()
        pick = rng.integers(0, split.train_src.size, min(cfg.positives_per_epoch, split.train_src.size))
        src, dst = split.train_src[pick], split.train_dst[pick]
        neg = negatives(tr_indptr, tr_indices, src, cfg.hard_negative_share, rng)
        if full_batch:
            loss = float(np.mean([
                _full_batch_step(model, opt, feats, train_adj, src[lo:lo + cfg.batch_size], dst[lo:lo + cfg.batch_size],
                                 neg[lo:lo + cfg.batch_size], dev)
                for lo in range(0, src.size, cfg.batch_size)]))
        else:
            loss = _mini_batch_epoch(model, opt, feats, tr_indptr, tr_indices, src, dst, neg, cfg, rng, dev)
        z = torch.from_numpy(embed_all(model, feats, train_adj))
        pos_s = dot_decoder(z, torch.from_numpy(split.val_src), torch.from_numpy(split.val_dst)).numpy()
        neg_s = dot_decoder(z, torch.from_numpy(val_neg[0]), torch.from_numpy(val_neg[1])).numpy()
        metrics = auc_and_hits(pos_s, neg_s)
        history.append({"epoch": epoch, "loss": loss, **metrics})
        if metrics[cfg.select_by] > best + 1e-4:
            best, bad, best_row = metrics[cfg.select_by], 0, history[-1]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    # Serving embeddings read the whole graph: validation is over, every tie is known now.
    full_adj = csr_adjacency(snap.indptr, snap.indices, cfg.device)   # every tie: the snapshot's own CSR
    emb = embed_all(model, feats, full_adj)
    metrics = {"val_auc": best_row["auc"], "val_hits@50": best_row["hits@50"], "best_epoch": best_row["epoch"],
               "epochs_run": len(history), "seconds": time.perf_counter() - start,
               "seconds_per_epoch": (time.perf_counter() - start) / max(1, len(history)),
               "train_edges": int(split.train_src.size), "val_edges": int(split.val_src.size),
               "time_cut": split.cut, "full_batch": full_batch, "config": asdict(cfg)}
    log.info("trained GraphSAGE: val AUC %.4f, Hits@50 %.4f after %d epochs", metrics["val_auc"],
             metrics["val_hits@50"], metrics["epochs_run"])
    return model, emb, metrics


def _full_batch_step(model, opt, feats, adj, src, dst, neg, dev) -> float:
    opt.zero_grad()
    z = model(feats, adj)
    s, d, ng = (torch.from_numpy(a).to(dev) for a in (src, dst, neg))
    loss = link_loss(dot_decoder(z, s, d), dot_decoder(z, s, ng))
    loss.backward()
    opt.step()
    return float(loss.detach())


def _mini_batch_epoch(model, opt, feats, indptr, indices, src, dst, neg, cfg, rng, dev) -> float:
    losses = []
    for lo in range(0, src.size, cfg.batch_size):
        s, d, ng = src[lo:lo + cfg.batch_size], dst[lo:lo + cfg.batch_size], neg[lo:lo + cfg.batch_size]
        seeds = np.concatenate([s, d, ng])
        nodes, blocks, sizes = sample_blocks(indptr, indices, seeds, list(cfg.fanouts)[: cfg.num_layers], rng)
        seed_nodes = nodes[:sizes[-1]]   # the seeds come first, sorted and distinct
        local = {name: torch.from_numpy(np.searchsorted(seed_nodes, a)).to(dev)
                 for name, a in (("s", s), ("d", d), ("n", ng))}
        node_t = torch.from_numpy(nodes).to(dev)
        opt.zero_grad()
        # each layer computes only the nodes the next one reads (the seeds last): z holds the seeds' rows
        z = model(feats.subset(node_t), [b.to(dev) for b in blocks], node_t, sizes)
        loss = link_loss(dot_decoder(z, local["s"], local["d"]), dot_decoder(z, local["s"], local["n"]))
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


def embed_graph(snap: Snapshot, cfg: TrainConfig | None = None, progress: bool = False) -> np.ndarray:
    """Train GraphSAGE (`cfg`, default config) on `snap` alone and return every user's vector."""
    from gnn.features import build_features

    return train_link_model(snap, build_features(snap), cfg or TrainConfig(), progress=progress)[1]
