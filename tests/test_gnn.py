"""GraphSAGE encoder, sampler, training, the ANN source on a simulator world, and the refresh job's artifacts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from candidates.ann import EmbeddingAnnSource, current_embeddings
from gnn.features import build_features
from gnn.model import GraphSAGE, LinkEncoder, dot_decoder, link_loss
from gnn.refresh import RefusedToPublishError, refresh_embeddings
from gnn.sampler import sample_blocks, sample_neighbors
from gnn.train import TrainConfig, sparse_adjacency, split_edges, train_link_model
from graph.memory_store import MemoryGraphStore
from graph.records import Friendship, UserRecord
from graph.snapshot import from_pairs, from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.metrics import auc_and_hits
from sim.world import WorldConfig, generate_world


@pytest.fixture(scope="module")
def sim_snapshot():
    """A simulator world as a snapshot with profiles and tie times."""
    w = generate_world(WorldConfig(num_users=1500, seed=4))
    store = MemoryGraphStore()
    store.upsert_users([UserRecord(id=str(i), school=f"s{w.school[i]}", employer=f"e{w.employer[i]}",
                                   city=f"c{w.city[i]}", lat=float(w.lat[i]), lon=float(w.lon[i]),
                                   created_at=float(w.created_at[i])) for i in range(w.num_users)])
    store.add_friendships([Friendship(str(a), str(b), float(t)) for a, b, t in zip(w.src, w.dst, w.ts, strict=True)])
    return from_store(store)


def test_encoder_output_shapes_and_unit_norm(sim_snapshot):
    feats = build_features(sim_snapshot)
    model = LinkEncoder(feats.buckets, feats.numeric.shape[1], sim_snapshot.num_users, out_channels=16)
    split = split_edges(sim_snapshot, 0.1)
    adj = sparse_adjacency(sim_snapshot.num_users, split.train_src, split.train_dst, "cpu")
    z = model(feats, adj)
    assert z.shape == (sim_snapshot.num_users, 16)
    assert torch.allclose(z.norm(dim=-1), torch.ones(z.shape[0]), atol=1e-5)
    with pytest.raises(ValueError, match="neither"):
        LinkEncoder(feats.buckets, feats.numeric.shape[1], 0, use_features=False)


def test_one_training_step_lowers_the_loss(sim_snapshot):
    torch.manual_seed(0)
    feats = build_features(sim_snapshot)
    split = split_edges(sim_snapshot, 0.1)
    adj = sparse_adjacency(sim_snapshot.num_users, split.train_src, split.train_dst, "cpu")
    model = LinkEncoder(feats.buckets, feats.numeric.shape[1], sim_snapshot.num_users, dropout=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)  # a small plain gradient step must go downhill
    s, d = torch.from_numpy(split.train_src[:2000]), torch.from_numpy(split.train_dst[:2000])
    neg = torch.randint(0, sim_snapshot.num_users, (2000,))

    def loss() -> torch.Tensor:
        z = model(feats, adj)
        return link_loss(dot_decoder(z, s, d), dot_decoder(z, s, neg))

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    assert loss().item() < before.item()


def test_sampler_returns_only_true_neighbours():
    snap = from_pairs([str(i) for i in range(50)], [str((i * 7 + 3) % 50) for i in range(50)])
    rng = np.random.default_rng(0)
    dst, src = sample_neighbors(snap.indptr, snap.indices, np.arange(50), 3, rng)
    assert all(s in set(snap.neighbors(d).tolist()) for d, s in zip(dst.tolist(), src.tolist(), strict=True))
    nodes, blocks, sizes = sample_blocks(snap.indptr, snap.indices, np.array([0, 5]), [4, 2], rng)
    assert nodes[:2].tolist() == [0, 5]
    for block in blocks:
        for s, d in block.T.tolist():
            assert nodes[s] in set(snap.neighbors(int(nodes[d])).tolist())
    # hierarchical: a layer's targets are a prefix of the nodes, and the next layer reads only them
    assert sizes[-1] == 2 and sizes[0] < nodes.size
    assert int(blocks[0][1].max()) < sizes[0] and int(blocks[1][1].max()) < sizes[1]
    assert int(blocks[1][0].max()) < sizes[0]


def test_gcn_aggregator_is_the_mean_over_node_and_neighbours():
    # path 0-1-2 plus triangle 2-3-4: node 2's closed neighbourhood is {1, 2, 3, 4}
    src, dst = np.array([0, 1, 2, 3, 2]), np.array([1, 2, 3, 4, 4])
    torch.manual_seed(0)
    x = torch.randn(5, 3)
    sage = GraphSAGE(3, 3, 2, num_layers=1, aggregator="gcn").eval()
    lin = sage.convs[0].lin_l
    expected = torch.stack([lin(x[[0, 1]].mean(0)), lin(x[[0, 1, 2]].mean(0)), lin(x[[1, 2, 3, 4]].mean(0)),
                            lin(x[[2, 3, 4]].mean(0)), lin(x[[2, 3, 4]].mean(0))])
    assert torch.allclose(sage(x, sparse_adjacency(5, src, dst, "cpu")), expected, atol=1e-6)
    block = torch.from_numpy(np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]))
    assert torch.allclose(sage(x, [block]), expected, atol=1e-6)
    with pytest.raises(ValueError, match="'max'"):
        GraphSAGE(3, aggregator="max")


def test_the_self_looped_adjacency_is_made_once_per_adjacency(monkeypatch):
    """Full-batch training passes one adjacency at every step; adding the self loops each time leaked
    memory (CSR + CSR on the CPU), so it is made once and reused, with the same result."""
    import gnn.model

    made = []
    real = gnn.model.with_self_loops
    monkeypatch.setattr(gnn.model, "with_self_loops", lambda a, n: made.append(n) or real(a, n))
    src, dst = np.array([0, 1, 2]), np.array([1, 2, 3])
    x = torch.randn(4, 3)
    sage = GraphSAGE(3, 3, 2, num_layers=2, aggregator="gcn").eval()
    adj = sparse_adjacency(4, src, dst, "cpu")
    first = sage(x, adj)
    assert torch.equal(sage(x, adj), first) and torch.equal(sage(x, adj), first) and len(made) == 1
    other = sparse_adjacency(4, src[:2], dst[:2], "cpu")   # another graph: its own loops
    assert not torch.equal(sage(x, other), first) and len(made) == 2


@pytest.mark.parametrize("aggregator", ["gcn", "mean"])
def test_mini_batch_equals_full_batch_when_fanouts_cover_every_degree(sim_snapshot, aggregator):
    snap = sim_snapshot
    feats = build_features(snap)
    torch.manual_seed(0)
    model = LinkEncoder(feats.buckets, feats.numeric.shape[1], snap.num_users, num_layers=2,
                        aggregator=aggregator).eval()
    src, dst, _ = snap.ties()
    full = model(feats, sparse_adjacency(snap.num_users, src, dst, "cpu"))
    seeds = np.array([3, 70, 512, 1499])
    big = int(snap.degree.max())
    nodes, blocks, sizes = sample_blocks(snap.indptr, snap.indices, seeds, [big, big], np.random.default_rng(0))
    node_t = torch.from_numpy(nodes)
    z = model(feats.subset(node_t), blocks, node_t)
    assert nodes[:4].tolist() == seeds.tolist()
    assert torch.allclose(z[:4], full[seeds], atol=1e-5)
    # each layer computing only what the next reads (as training does): the seeds' vectors alone, the same
    trimmed = model(feats.subset(node_t), blocks, node_t, sizes)
    assert trimmed.shape[0] == 4 and sizes[0] < nodes.size
    assert torch.allclose(trimmed, full[seeds], atol=1e-5)


def test_the_snapshot_s_own_csr_is_the_adjacency_of_its_ties(sim_snapshot):
    """Serving embeddings read the snapshot's CSR as it is, not a CSR rebuilt from its ties: the same."""
    from gnn.train import csr_adjacency

    src, dst, _ = sim_snapshot.ties()
    rebuilt = sparse_adjacency(sim_snapshot.num_users, src, dst, "cpu")
    own = csr_adjacency(sim_snapshot.indptr, sim_snapshot.indices, "cpu")
    assert torch.equal(own.to_dense(), rebuilt.to_dense()) and own.to_dense().sum() == 2 * src.size


def test_split_is_by_time_and_has_no_leakage(sim_snapshot):
    split = split_edges(sim_snapshot, 0.1)
    assert split.cut is not None and 0.05 < split.val_src.size / (split.val_src.size + split.train_src.size) < 0.15
    since = {}
    for i in range(sim_snapshot.num_users):
        for j, t in zip(sim_snapshot.neighbors(i).tolist(), sim_snapshot.since[sim_snapshot.indptr[i]:
                                                                             sim_snapshot.indptr[i + 1]].tolist(),
                        strict=True):
            since[(i, j)] = t
    assert max(since[(a, b)] for a, b in zip(split.train_src[:500], split.train_dst[:500], strict=True)) < split.cut
    assert min(since[(a, b)] for a, b in zip(split.val_src, split.val_dst, strict=True)) >= split.cut


def test_auc_and_hits_by_hand():
    m = auc_and_hits(np.array([0.9, 0.4]), np.array([0.5, 0.1, 0.4]), k=1)
    assert m["auc"] == pytest.approx((3 + 1.5) / 6)   # 0.9 beats all; 0.4 beats 0.1, ties 0.4
    assert m["hits@1"] == 0.5                          # only 0.9 is above the best negative


def test_graphsage_beats_random_id_only_and_pure_id_embeddings(sim_snapshot):
    feats = build_features(sim_snapshot)
    cfg = TrainConfig(epochs=15, patience=5, positives_per_epoch=20_000, seed=1)
    _, _, sage = train_link_model(sim_snapshot, feats, cfg)
    _, _, ids_only = train_link_model(sim_snapshot, feats, TrainConfig(**{**cfg.__dict__, "use_features": False}))
    _, _, shallow = train_link_model(sim_snapshot, feats, TrainConfig(**{**cfg.__dict__, "use_features": False,
                                                                         "use_gnn": False}))
    split = split_edges(sim_snapshot, 0.1)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(sim_snapshot.num_users, 64))
    neg = rng.integers(0, sim_snapshot.num_users, (2, split.val_src.size))
    random = auc_and_hits((z[split.val_src] * z[split.val_dst]).sum(1), (z[neg[0]] * z[neg[1]]).sum(1))
    print(f"\nval AUC: graphsage {sage['val_auc']:.3f}, id-only {ids_only['val_auc']:.3f}, "
          f"shallow {shallow['val_auc']:.3f}, random {random['auc']:.3f}")
    assert sage["val_auc"] > random["auc"] + 0.05
    assert sage["val_auc"] > ids_only["val_auc"]
    # message passing over ids alone beats learning the ids without it (the pure-id model)
    assert ids_only["val_auc"] > shallow["val_auc"] and ids_only["val_hits@50"] > shallow["val_hits@50"]


def test_mini_batch_training_learns_as_full_batch_does(sim_snapshot):
    """Graphs over `full_batch_max_nodes` train on sampled blocks, each layer computing only what the next
    reads: it learns (validation AUC well above random, near full batch), the shallow variant too."""
    feats = build_features(sim_snapshot)
    cfg = TrainConfig(epochs=8, patience=8, positives_per_epoch=10_000, batch_size=1024, seed=1)
    _, _, full = train_link_model(sim_snapshot, feats, cfg)
    _, emb, mini = train_link_model(sim_snapshot, feats, TrainConfig(**{**cfg.__dict__, "full_batch_max_nodes": 0}))
    _, _, shallow = train_link_model(sim_snapshot, feats, TrainConfig(**{**cfg.__dict__, "full_batch_max_nodes": 0,
                                                                        "use_gnn": False}))
    print(f"\nval AUC: full batch {full['val_auc']:.3f}, mini-batch {mini['val_auc']:.3f}, "
          f"shallow mini-batch {shallow['val_auc']:.3f}")
    assert not mini["full_batch"] and full["full_batch"]
    assert emb.shape == (sim_snapshot.num_users, cfg.out_channels)
    assert mini["val_auc"] > 0.6 and mini["val_auc"] > full["val_auc"] - 0.05
    assert shallow["val_auc"] > 0.6


def test_ann_source_excludes_self_and_friends(sim_snapshot):
    emb = np.random.default_rng(1).normal(size=(sim_snapshot.num_users, 8)).astype(np.float32)
    src = EmbeddingAnnSource(sim_snapshot, emb)
    u = int(np.argmax(sim_snapshot.degree))
    got = src.generate(u, 20)
    friends = set(sim_snapshot.neighbors(u).tolist())
    assert len(got) == 20 and not {c.index for c in got} & (friends | {u})
    with pytest.raises(ValueError, match="cover"):
        EmbeddingAnnSource(sim_snapshot, emb[:10])


def test_exact_ann_for_a_block_is_the_exact_top_k_and_each_viewers_own(sim_snapshot):
    """Exact search for a block of viewers: each viewer's list is the true top k by inner product
    (float64, ties to the lower index), never itself or a friend, and the one it gets alone."""
    n = sim_snapshot.num_users
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(n, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    emb[n // 2:n // 2 + 30] = emb[3]   # exact ties
    src = EmbeddingAnnSource(sim_snapshot, emb)
    assert type(src.index).__name__ == "IndexFlatIP"
    users = np.concatenate([[3], rng.choice(n, 40, replace=False), [int(np.argmax(sim_snapshot.degree))]])
    block = src.propose(users, 25)
    dots = emb.astype(np.float64) @ emb.astype(np.float64).T
    for o, u in enumerate(users.tolist()):
        banned = {u, *sim_snapshot.neighbors(u).tolist()}
        allowed = np.array([c for c in range(n) if c not in banned])
        want = allowed[np.lexsort((allowed, -dots[u, allowed].astype(np.float32)))][:25]
        mine = block.owner == o
        assert block.cand[mine].tolist() == want.tolist()
        np.testing.assert_allclose(block.score[mine], dots[u, want], atol=1e-6)
        alone = src.propose(np.array([u]), 25)
        assert alone.cand.tolist() == want.tolist() and alone.score.tobytes() == block.score[mine].tobytes()
    tied = [c for c in range(n // 2, n // 2 + 30) if c not in set(sim_snapshot.neighbors(3).tolist())]
    assert block.cand[block.owner == 0].tolist() == tied[:25]   # equal scores: lower index first


def test_refresh_writes_artifact_refuses_regressions_and_rolls_back(sim_snapshot, tmp_path):
    snap_path = save_snapshot(sim_snapshot, ArtifactStore(tmp_path / "snaps"), source="test")
    out = ArtifactStore(tmp_path / "emb")
    cfg = TrainConfig(epochs=3, positives_per_epoch=5000)
    first = refresh_embeddings(snap_path, out, cfg)
    files = {p.name for p in first.path.iterdir()}
    assert files == {"embeddings.npy", "index.faiss", "model.pt", "manifest.json"}
    manifest = out.manifest(first.path)
    assert manifest["snapshot_version"] == snap_path.name and "val_auc" in manifest["metrics"]
    with pytest.raises(RefusedToPublishError, match="not publishing"):
        refresh_embeddings(snap_path, out, cfg, max_auc_drop=-1.0)  # demands +1.0 AUC: impossible
    assert out.current() == first.path
    second = refresh_embeddings(snap_path, out, cfg, max_auc_drop=1.0)
    assert out.current() == second.path
    out.set_current(first.path.name)   # rolled back (tests/test_rollback.py)
    version, emb, index = current_embeddings(out, snap_path.name)  # what serving loads
    assert version == first.path.name and emb.shape == (sim_snapshot.num_users, 64) and index.ntotal == emb.shape[0]
    assert current_embeddings(out, "another-snapshot")[1:] == (None, None)


def test_shallow_variant_has_no_message_passing(sim_snapshot):
    feats = build_features(sim_snapshot)
    model = LinkEncoder(feats.buckets, feats.numeric.shape[1], sim_snapshot.num_users, use_features=False,
                        use_gnn=False, out_channels=16)
    split = split_edges(sim_snapshot, 0.1)
    adj = sparse_adjacency(sim_snapshot.num_users, split.train_src, split.train_dst, "cpu")
    empty = sparse_adjacency(sim_snapshot.num_users, np.zeros(0, np.int64), np.zeros(0, np.int64), "cpu")
    assert torch.allclose(model(feats, adj), model(feats, empty))  # the graph does not matter to it


def test_our_graphsage_is_pyg_graphsage_on_a_whole_graph():
    """The same parameters in PyG's BasicGNN GraphSAGE (no root weight, self-looped adjacency) give the
    same vectors: the only reason for our layer loop is the sampler's per-layer blocks (gnn/model.py)."""
    from torch_geometric.nn.models import GraphSAGE as PygGraphSAGE

    from gnn.model import GraphSAGE, with_self_loops

    torch.manual_seed(0)
    n = 30
    edges = torch.randint(0, n, (2, 80))
    edges = edges[:, edges[0] != edges[1]]
    edges = torch.cat([edges, edges.flip(0)], dim=1)
    ours = GraphSAGE(8, hidden_channels=16, out_channels=4, num_layers=2, dropout=0.0).eval()
    pyg = PygGraphSAGE(8, hidden_channels=16, num_layers=2, out_channels=4, dropout=0.0, root_weight=False).eval()
    pyg.load_state_dict(ours.state_dict())
    x = torch.randn(n, 8)
    assert torch.allclose(ours(x, [edges, edges]), pyg(x, with_self_loops(edges, n)), atol=1e-6)
