"""GraphSAGE link prediction, PyG style: input encoder, GNN encoder, decoder and loss kept apart."""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F  # noqa: N812 (PyG's convention)
from torch import nn
from torch_geometric.nn import SAGEConv

from gnn.features import NodeFeatures
from graph.records import CATEGORICAL_FIELDS


class InputEncoder(nn.Module):
    """Profile features (+ optional learnable id embeddings) -> initial node vectors."""

    def __init__(self, buckets: int, numeric_channels: int, out_channels: int, num_nodes: int = 0,
                 use_features: bool = True) -> None:
        super().__init__()
        self.use_features = use_features
        self.categorical = nn.ModuleList(nn.Embedding(buckets, out_channels, padding_idx=0)
                                         for _ in CATEGORICAL_FIELDS)
        self.numeric = nn.Linear(numeric_channels, out_channels)
        self.ids = nn.Embedding(num_nodes, out_channels) if num_nodes > 0 else None
        if self.ids is None and not use_features:
            raise ValueError("InputEncoder needs features, id embeddings or both (got neither)")

    def forward(self, feats: NodeFeatures, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors for `nodes` (global ids; all nodes when None); `feats` rows match `nodes`."""
        out = 0
        if self.use_features:
            out = self.numeric(feats.numeric)
            for j, emb in enumerate(self.categorical):
                out = out + emb(feats.categorical[:, j])
        if self.ids is not None:
            idx = nodes if nodes is not None else torch.arange(feats.num_nodes, device=feats.numeric.device)
            out = out + self.ids(idx)
        return out


AGGREGATORS = ("gcn", "mean")


def with_self_loops(adj: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """`adj` (sparse [n, n] or an edge_index block) plus one self loop per node."""
    if adj.layout == torch.sparse_csr:
        idx = torch.arange(num_nodes, device=adj.device)
        ptr = torch.arange(num_nodes + 1, device=adj.device)
        eye = torch.sparse_csr_tensor(ptr, idx, torch.ones(num_nodes, device=adj.device), size=adj.shape,
                                      check_invariants=False)
        return adj + eye
    loops = torch.arange(num_nodes, device=adj.device).repeat(2, 1)
    return torch.cat([adj, loops], dim=1)


class GraphSAGE(nn.Module):
    """Stack of SAGEConv layers over a sparse adjacency (or per-layer blocks).

    aggregator="gcn" is GraphSAGE's GCN aggregator (Hamilton et al. 2017): the mean over the node
    and its neighbours, with no separate weight for the node itself, so a node's vector is always
    a smoothing of its neighbourhood. "mean" is SAGEConv's default: neighbour mean plus a root
    weight, which lets learnable id embeddings memorise training ties (see bench/gnn_tuning.py).

    Why not PyG's `torch_geometric.nn.models.GraphSAGE` (BasicGNN): on one graph it is this very model
    (same SAGEConv layers and parameter names; tests/test_gnn.py loads this state_dict into it with
    root_weight=False over the self-looped adjacency and gets identical output), but BasicGNN passes
    one adjacency to every layer. Mini-batch training here gets a different block per layer from our
    CSR sampler (gnn/sampler.py): PyG's NeighborLoader, whose hierarchical format BasicGNN can trim,
    needs pyg-lib or torch-sparse, which this platform cannot install. This loop is what the blocks need.
    """

    def __init__(self, in_channels: int, hidden_channels: int = 64, out_channels: int = 64, num_layers: int = 2,
                 dropout: float = 0.1, aggregator: str = "gcn") -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1 (got {num_layers})")
        if aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator must be one of {AGGREGATORS} (got {aggregator!r})")
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.convs = nn.ModuleList(SAGEConv(dims[i], dims[i + 1], aggr="mean", root_weight=aggregator == "mean")
                                   for i in range(num_layers))
        self.dropout = dropout
        self.self_loops = aggregator == "gcn"
        self._looped: tuple[weakref.ref, torch.Tensor] | None = None   # (the adjacency, it with self loops)

    def _with_loops(self, adj: torch.Tensor, num_nodes: int) -> torch.Tensor:
        """`adj` with self loops, made once per sparse adjacency: full-batch training passes the same one
        at every step, and adding two CSR tensors on the CPU keeps ~20 MB per call at 200,000 nodes
        (measured: a 200,000-user graph's training grew by 0.6 GB an epoch, to 18 GB)."""
        if adj.layout != torch.sparse_csr:
            return with_self_loops(adj, num_nodes)
        if self._looped is None or self._looped[0]() is not adj:
            self._looped = (weakref.ref(adj), with_self_loops(adj, num_nodes))
        return self._looped[1]

    def forward(self, x: torch.Tensor, adj: torch.Tensor | list[torch.Tensor],
                sizes: list[int] | None = None) -> torch.Tensor:
        """`adj`: one [n, n] sparse adjacency for every layer, or a list of edge_index blocks. `sizes`
        (with blocks laid out as gnn/sampler.py samples them): layer i computes only its first
        sizes[i] nodes, those the next layer reads; the output then has sizes[-1] rows."""
        if sizes is not None:
            return self._trimmed(x, adj, sizes)
        layers = adj if isinstance(adj, list) else [adj] * len(self.convs)
        if self.self_loops:
            layers = [self._with_loops(a, x.size(0)) for a in layers]
        for i, conv in enumerate(self.convs):
            x = conv(x, layers[i])
            if i < len(self.convs) - 1:
                x = F.dropout(F.relu(x), p=self.dropout, training=self.training)
        return x

    def _trimmed(self, x: torch.Tensor, blocks: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
        for i, (conv, block, size) in enumerate(zip(self.convs, blocks, sizes, strict=True)):
            if self.self_loops:   # the targets' own vectors: they are the first `size` nodes
                block = torch.cat([block, torch.arange(size, device=block.device).repeat(2, 1)], dim=1)
            x = conv((x, x[:size]), block, size=(x.size(0), size))
            if i < len(self.convs) - 1:
                x = F.dropout(F.relu(x), p=self.dropout, training=self.training)
        return x


class LinkEncoder(nn.Module):
    """Input encoder + GraphSAGE: what the refresh job trains and runs for every user."""

    def __init__(self, buckets: int, numeric_channels: int, num_nodes: int = 0, use_features: bool = True,
                 hidden_channels: int = 64, out_channels: int = 64, num_layers: int = 2, dropout: float = 0.1,
                 use_gnn: bool = True, aggregator: str = "gcn") -> None:
        super().__init__()
        # use_gnn=False is the shallow baseline: vectors straight from the input encoder, no message passing
        self.inputs = InputEncoder(buckets, numeric_channels, hidden_channels if use_gnn else out_channels,
                                   num_nodes, use_features)
        self.gnn = (GraphSAGE(hidden_channels, hidden_channels, out_channels, num_layers, dropout, aggregator)
                    if use_gnn else None)

    def forward(self, feats: NodeFeatures, adj, nodes: torch.Tensor | None = None,
                sizes: list[int] | None = None) -> torch.Tensor:
        """Unit vectors of `nodes` (all when None); with sampled blocks' `sizes`, of the first sizes[-1]."""
        x = self.inputs(feats, nodes)
        if self.gnn is not None:
            x = self.gnn(x, adj, sizes)
        elif sizes is not None:
            x = x[:sizes[-1]]
        return F.normalize(x, dim=-1)


def dot_decoder(z: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, scale: float = 5.0) -> torch.Tensor:
    """Link logits: scaled inner product of unit vectors (the same similarity FAISS searches)."""
    return scale * (z[src] * z[dst]).sum(-1)


def link_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over positive and negative pairs."""
    logits = torch.cat([pos_logits, neg_logits])
    labels = torch.cat([torch.ones_like(pos_logits), torch.zeros_like(neg_logits)])
    return F.binary_cross_entropy_with_logits(logits, labels)
