"""The batch precompute gives every user exactly the list the serving path gives it on request."""

from __future__ import annotations

import gc
from dataclasses import replace

import numpy as np
import orjson
import pytest
import torch

from candidates.base import propose
from candidates.filters import SnapshotStateReader
from candidates.pipeline import CandidatePipeline, PipelineConfig
from candidates.precompute import PrecomputedCandidates, build_precomputed
from candidates.registry import REGISTRY
from candidates.types import Recommendation
from graph.snapshot.format import EVENT_CODE
from pymk.artifacts import ArtifactStore
from ranker.batch import BlockRanker, NotBlockRankableError
from ranker.calibration import Calibration
from ranker.features import FEATURE_NAMES, FeatureContext
from ranker.model import MultiTaskRanker
from ranker.scorers import TorchScorer
from ranker.serve import ModelRanker
from sim.world import WorldConfig, generate_world, world_snapshot


@pytest.fixture(scope="module")
def served():
    """A simulated world with events, opt-outs, cold-start users and embeddings, served by the full
    registered source set and a (random-weight) multi-task model."""
    snap = world_snapshot(generate_world(WorldConfig(num_users=700, seed=5)))
    rng = np.random.default_rng(0)
    n, m = snap.num_users, 3000
    t_max = float(np.nanmax(snap.since))
    types = rng.choice([EVENT_CODE[x] for x in ("send", "accept", "decline", "impression")], m)
    snap = replace(snap, opted_out=rng.random(n) < 0.05, events={
        "type": types.astype(np.int8), "src": rng.integers(0, n, m), "dst": rng.integers(0, n, m),
        "ts": t_max - rng.random(m) * 30 * 86_400.0, "position": rng.integers(0, 20, m)})
    emb = rng.normal(size=(n, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    torch.manual_seed(0)
    scorer = TorchScorer(MultiTaskRanker(len(FEATURE_NAMES), hidden_channels=16), Calibration(connect=(1.0, 0.0)))
    pipeline = CandidatePipeline(snap, REGISTRY.build_all(snap, embeddings=emb), SnapshotStateReader(snap),
                                 PipelineConfig(per_source_k=40, source_budget_s=60.0),
                                 ranker=ModelRanker(FeatureContext(snap, emb), scorer))
    yield pipeline
    pipeline.close()


def test_every_source_proposes_for_a_block_what_it_generates_for_each_user(served):
    users = np.array([0, 3, 4, 50, 699, 3])   # a viewer twice in a block is two viewers
    for source in served.sources:
        block = propose(source, users, 25)
        proofs = block.proof(np.arange(block.cand.size))
        for i, user in enumerate(users.tolist()):
            rows = np.flatnonzero(block.owner == i)
            one = source.generate(user, 25)
            assert [c.index for c in one] == block.cand[rows].tolist(), source.name
            assert [c.score(source.name) for c in one] == block.score[rows].tolist(), source.name
            assert [c.proof.get(source.name) for c in one] == [proofs[r] for r in rows], source.name


def test_block_features_equal_one_viewer_at_a_time(served):
    ctx = served.ranker.ctx
    t = served.ranker.clock()
    viewers = np.array([5, 9, 300])
    cands = [np.arange(0, 700, 7), np.arange(1, 700, 11), np.array([300, 5, 9, 9])]  # incl. self, repeats
    owner = np.repeat(np.arange(3), [c.size for c in cands])
    block = ctx.block_features(viewers, owner, np.concatenate(cands), t)
    for i, v in enumerate(viewers.tolist()):
        assert np.array_equal(block[owner == i], ctx.pair_features(v, cands[i], t))


@pytest.mark.parametrize("block,workers", [(1, 1), (17, 1), (64, 2)])
def test_batch_precompute_lists_are_identical_to_the_online_path(served, tmp_path, block, workers):
    snap = served.snap
    users = np.flatnonzero(snap.degree >= 0)[::3]   # includes users without friends and cold-start ones
    online = build_precomputed(served, users, {}, ArtifactStore(tmp_path / "online"), keep=25, progress=False)
    batch = build_precomputed(served, users, {}, ArtifactStore(tmp_path / "batch"), keep=25, progress=False,
                              rank=BlockRanker(served, keep=25), block=block, workers=workers)
    assert (online / "lists.bin").read_bytes() == (batch / "lists.bin").read_bytes()
    for name in ("offsets.npy", "feature_offsets.npy", "features.npy"):
        assert np.array_equal(np.load(online / name), np.load(batch / name)), name
    read = PrecomputedCandidates(batch, snap)
    for user in users[:40].tolist():   # and what is read back is what the pipeline ranks on request
        ranked = served.ranked(user, Recommendation(snap.external_id(user), []))[:25]
        got = read.get(user)
        assert [c.index for c in got] == [c.index for c in ranked]
        assert [c.sources for c in got] == [c.sources for c in ranked]
        assert all(np.allclose(g.proof["ranker"]["features"], r.proof["ranker"]["features"])
                   for g, r in zip(got, ranked, strict=True))


def test_the_heap_is_frozen_while_blocks_rank_and_thawed_after(served, tmp_path, monkeypatch):
    """Full collections would rescan the snapshot and models for nothing; the freeze ends with the job."""
    seen = []
    engine = BlockRanker(served, keep=5)

    def rank(users):
        seen.append(gc.get_freeze_count())
        return engine(users)

    gc.unfreeze()   # (an app built by another test may have frozen its heap)
    build_precomputed(served, np.arange(10), {}, ArtifactStore(tmp_path), keep=5, progress=False, rank=rank,
                      block=4)
    assert len(seen) == 3 and min(seen) > 1000   # the pipeline's objects among them
    assert gc.get_freeze_count() == 0
    # A freeze made before the job (a serving process's) is not undone by it. Counted by the calls, not
    # by gc.get_freeze_count(): a frozen object whose last reference goes is freed and leaves the count
    # (the job's caches let go of a few; an assertion on the count failed once in ~10 full suites).
    gc.freeze()
    thawed: list[bool] = []
    monkeypatch.setattr(gc, "unfreeze", lambda: thawed.append(True))
    build_precomputed(served, np.arange(10), {}, ArtifactStore(tmp_path), keep=5, progress=False, rank=rank,
                      block=4)
    assert thawed == [] and len(seen) == 6
    monkeypatch.undo()
    gc.unfreeze()


def test_the_heuristic_order_has_no_block_engine(served):
    pipeline = CandidatePipeline(served.snap, served.sources[:1], SnapshotStateReader(served.snap))
    with pytest.raises(NotBlockRankableError, match="not a learned ranker"):
        BlockRanker(pipeline)
    pipeline.close()


def test_a_request_ranks_through_the_block_stages_as_the_candidate_path_did(served):
    """pipeline.ranked hands the learned ranker its sources' proposals (arrays); the list equals the one
    built from Candidates (generate -> merge -> cheap filters -> ModelRanker), removals counted alike."""
    snap = served.snap
    for user in (0, 4, 17, 250, 699):
        new_rec, old_rec = Recommendation(snap.external_id(user), []), Recommendation(snap.external_id(user), [])
        new = served.ranked(user, new_rec)
        kept = served.cheap_filters(user, served.merge(served.generate(user, old_rec)), old_rec)
        old = served.ranker(snap.external_id(user), kept)
        assert len(new) == len(old) and new_rec.removed == old_rec.removed
        for a, b in zip(new[:], old[:], strict=True):
            assert (a.user_id, a.index, a.sources, dict(a.scores)) == (b.user_id, b.index, b.sources, dict(b.scores))
            pa, pb = dict(a.proof), dict(b.proof)
            assert np.array_equal(pa.pop("ranker")["features"], pb.pop("ranker")["features"])
            assert pa == pb
        assert set(new_rec.timings_ms) >= {s.name for s in served.sources} | {"generate"}


def test_a_request_pushes_its_viewers_walk_once(served, monkeypatch):
    """The PPR source's proposals and the ranking features share one push per request (memoised per
    viewer, read-only), and the memoised push is the block push's."""
    import candidates.ppr as ppr

    calls = []
    real = ppr.forward_push_block
    monkeypatch.setattr(ppr, "forward_push_block", lambda *a, **kw: calls.append(a[3].size) or real(*a, **kw))
    source = next(s for s in served.sources if isinstance(s, ppr.PersonalizedPageRankSource))
    source._push_one.cache_clear()
    served.ranked(123, Recommendation(served.snap.external_id(123), []))
    assert calls == [1]
    memo = source.push(np.array([123]))
    assert not any(a.flags.writeable for a in memo)
    block = source.push(np.array([7, 123, 9]))
    rows = block[0] == 1
    assert np.array_equal(memo[1], block[1][rows]) and np.array_equal(memo[2], block[2][rows])


def test_an_artifact_of_another_format_is_refused_by_name(served, tmp_path):
    import json

    from pymk.errors import ArtifactError

    path = build_precomputed(served, np.array([0, 1]), {}, ArtifactStore(tmp_path), keep=5, progress=False)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format": 1}))
    with pytest.raises(ArtifactError, match="format 1, this code reads 2"):
        PrecomputedCandidates(path, served.snap)


def test_a_list_whose_bytes_do_not_read_is_ranked_on_request(served, tmp_path, caplog):
    """One user's damaged bytes cost that user its stored list for the day, not its suggestions."""
    users = np.array([5, 6])
    path = build_precomputed(served, users, {}, ArtifactStore(tmp_path), keep=5, progress=False)
    offsets = np.load(path / "offsets.npy")
    blob = bytearray((path / "lists.bin").read_bytes())
    blob[offsets[5]:offsets[5] + 4] = b"\x00oops"[:4]   # user 5's list no longer opens as JSON
    (path / "lists.bin").write_bytes(bytes(blob))
    served.precomputed = PrecomputedCandidates(path, served.snap)
    try:
        with caplog.at_level("ERROR"):
            damaged = served.recommend(served.snap.external_id(5), k=10)
        assert damaged.precomputed is None and len(damaged.candidates) == 10   # ranked on request
        assert "precomputed list of user 5" in caplog.text and "ranking it on request" in caplog.text
        assert served.recommend(served.snap.external_id(6), k=10).precomputed is not None   # the others read
    finally:
        served.precomputed = None


def test_compact_array_rounds_every_float_as_compact_does():
    """The block engine rounds score arrays at once; each value must be `compact`'s, bit for bit:
    values of every magnitude, exact halves at the 7th digit, zeros, infinities, NaN, subnormals."""
    from candidates.precompute import compact, compact_array

    rng = np.random.default_rng(0)
    halves = (rng.integers(1_000_000, 10_000_000, 20_000) + 0.5) / 10.0 ** rng.integers(-3, 12, 20_000)
    x = np.concatenate([rng.random(50_000), rng.random(50_000) * 10.0 ** rng.integers(-30, 30, 50_000),
                        -rng.random(10_000) * 1e5, halves, np.round(rng.random(10_000), 8) + 5e-9,
                        [0.0, -0.0, 1.0, 1e7, 9_999_999.5, 0.12345675, 1e22, 1e23, 1e-23, 5e-324,
                         1.7976931348623157e308, np.inf, -np.inf, np.nan, 0.1 + 0.2]])
    want = np.array([compact(v) for v in x.tolist()])
    got = compact_array(x.reshape(-1, 5)).ravel()
    assert got.tobytes() == want.tobytes() or np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    assert (got != x)[np.isfinite(x)].mean() > 0.5   # it rounds


def test_compact_rows_is_compact_of_each_row():
    """Stored lists round each source's proofs column by column; the JSON must be `compact`'s of every
    row, byte for byte: float columns, ids, nested lists, None, and rows whose keys differ (in set or
    in order), which fall back to row by row."""
    from candidates.precompute import compact, compact_rows

    rng = np.random.default_rng(1)
    floats = (rng.random(200) * 10.0 ** rng.integers(-8, 8, 200)).tolist()
    same = [{"mutual_count": i, "adamic_adar": f, "resource_allocation": f / 7, "mutual_ids": [str(i), "7"]}
            for i, f in enumerate(floats)]
    mixed_column = [{"ppr": f if i % 3 else i, "error_bound": None if i % 5 == 0 else f * 1e-4}
                    for i, f in enumerate(floats)]
    nested = [{"shared": ["city"], "distance_km": round(f, 1), "more": {"x": f}} for f in floats]
    reordered = [{"a": 0.123456789, "b": 1.0}, {"b": 2.0000000001, "a": 0.5}]
    other_keys = [{"a": 0.123456789}, {"c": 1.23456789}]
    scalars = [0.123456789, "id", 3, None, [0.98765432109]]
    for rows in (same, mixed_column, nested, reordered, other_keys, scalars, []):
        want = orjson.dumps([compact(r) for r in rows])
        assert orjson.dumps(compact_rows(rows)) == want
    assert sum(r["adamic_adar"] != f for r, f in zip(compact_rows(same), floats, strict=True)) > 150   # it rounds


class _Coarse:
    """A scorer with a few distinct scores (a boosted model after a round or two): most rows tie."""

    kind = "coarse"

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"score": np.floor(x[:, FEATURE_NAMES.index("mutual")] / 2.0)}


def test_equal_scores_keep_merge_order_on_every_path(served, tmp_path):
    """A learned ranker's ties go in merge order (each row's first source and its place there, as training saw
    them), not by candidate index (ids often follow sign-up order): on request through the block stages and
    through the Candidate path alike, and in the precomputed lists."""
    snap = served.snap
    coarse = CandidatePipeline(snap, served.sources, SnapshotStateReader(snap), served.config,
                               ranker=ModelRanker(served.ranker.ctx, _Coarse()))
    by_index_differs = 0
    users = [u for u in np.flatnonzero(snap.degree >= 2)[:60].tolist()]
    for user in users:
        rec = Recommendation(snap.external_id(user), [])
        merged = coarse.cheap_filters(user, coarse.merge(coarse.generate(user, rec)), rec)
        if not merged:
            continue
        score = _Coarse()(coarse.ranker.ctx.features(user, merged, coarse.ranker.clock()))["score"]
        want = [merged[i].index for i in np.argsort(-score, kind="stable")]
        assert [c.index for c in coarse.ranked(user, rec)] == want
        assert [c.index for c in coarse.ranker(snap.external_id(user), merged)] == want
        by_index_differs += want != [merged[i].index for i in np.lexsort(([c.index for c in merged], -score))]
    assert by_index_differs > len(users) // 2   # ties are common, and the index order would differ
    users = np.array(users)
    online = build_precomputed(coarse, users, {}, ArtifactStore(tmp_path / "online"), keep=25, progress=False)
    batch = build_precomputed(coarse, users, {}, ArtifactStore(tmp_path / "batch"), keep=25, progress=False,
                              rank=BlockRanker(coarse, keep=25), block=7)
    assert (online / "lists.bin").read_bytes() == (batch / "lists.bin").read_bytes()
    coarse.close()
