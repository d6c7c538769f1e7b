"""The artifacts an app serves: embeddings, rankers and precomputed lists, each only with the versions it
was made for; what `pymk status` and `pymk rollback` say is served, against what is."""

from __future__ import annotations

import pytest

from api.schemas import SuggestionsOut
from graph.records import Friendship
from graph.snapshot import from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from tests.api.common import KEY, suggested


def _publish_embeddings(svc, settings, seed: int = 0):
    import faiss
    import numpy as np

    from candidates.ann import build_index

    snap = svc.served.pipeline.snap
    emb_store = ArtifactStore(settings.embeddings_dir)
    staging = emb_store.staging_dir()
    emb = np.random.default_rng(seed).normal(size=(snap.num_users, 8)).astype(np.float32)
    np.save(staging / "embeddings.npy", emb)
    faiss.write_index(build_index(emb), str(staging / "index.faiss"))
    return emb, emb_store.publish(staging, {"kind": "embeddings", "snapshot_version": svc.served.snapshot_version}).name


def test_ann_source_is_served_when_embeddings_match_the_snapshot(app, client, app_settings):
    svc = app.extensions["pymk"]
    _publish_embeddings(svc, app_settings)
    assert svc.reload(force=True)
    assert "ann" in [s.name for s in svc.served.pipeline.sources]
    resp = client.get("/v1/users/c0/suggestions?limit=50")
    assert resp.status_code == 200
    assert resp.headers["X-Pymk-Model-Version"] == f"ranker:none,embeddings:{svc.served.embeddings_version}"
    assert any("ann" in s["sources"] for s in resp.get_json()["suggestions"])


def _publish_untrained_ranker(settings, emb_version=None, per_source_k=None) -> str:
    """A randomly initialised connect-head ranker: its scores are arbitrary but fixed, which is all parity needs."""
    import torch

    from ranker.calibration import Calibration
    from ranker.features import FEATURE_NAMES
    from ranker.model import MultiTaskRanker
    from ranker.scorers import TorchScorer
    from ranker.train import RankerConfig, publish

    torch.manual_seed(0)
    scorer = TorchScorer(MultiTaskRanker(len(FEATURE_NAMES)), Calibration(), mode="connect")
    extra = {"per_source_k": per_source_k} if per_source_k is not None else {}
    return publish(scorer, RankerConfig(), {"note": "untrained"}, ArtifactStore(settings.ranker_dir), None,
                   emb_version, **extra)


def test_sources_propose_as_many_candidates_as_the_rankers_examples_had(app, app_settings):
    """List-relative features (rank in a source, percentiles in the viewer's list) mean what they meant in
    training only if every source proposes as many candidates when serving as when the examples were built."""
    from candidates.pipeline import PER_SOURCE_K

    svc = app.extensions["pymk"]
    assert svc.served.pipeline.config.per_source_k == PER_SOURCE_K     # heuristic order: the default
    _publish_untrained_ranker(app_settings, per_source_k=7)
    assert svc.reload(force=True) and svc.served.pipeline.config.per_source_k == 7
    _publish_untrained_ranker(app_settings)
    assert svc.reload(force=True) and svc.served.pipeline.config.per_source_k == PER_SOURCE_K


def test_learned_ranker_is_served_and_a_mismatched_one_falls_back(app, client, app_settings):
    import numpy as np

    from candidates.pipeline import Recommendation
    from graph.eventlog import EventLog

    svc = app.extensions["pymk"]
    store = ArtifactStore(app_settings.ranker_dir)
    _publish_untrained_ranker(app_settings)
    assert svc.reload(force=True) and svc.served.ranker_version == store.current_version()
    body = client.get("/v1/users/a1/suggestions").get_json()
    items = SuggestionsOut.model_validate(body).model_dump()["suggestions"]  # with the model's scores, too
    served = list(EventLog(app_settings.data_dir / "served").read_records())[-1]
    assert served["ranker"] == store.current_version()
    # parity through the serving object: ranking the same viewer again gives the served scores and the
    # logged features, candidate by candidate
    pipeline = svc.served.pipeline
    again = {c.user_id: c for c in pipeline.ranked(pipeline.snap.index_of("a1"), Recommendation("a1", []))}
    for item, logged in zip(items, served["candidates"], strict=True):
        c = again[item["user_id"]]
        assert item["p_connect"] == round(c.score("p_connect"), 6) == item["score"]
        assert np.array_equal(np.float32(logged["features"]), c.proof["ranker"]["features"])
    staging = store.staging_dir()
    (staging / "model.pt").write_bytes(b"")
    store.publish(staging, {"kind": "ranker", "features": ["something_else"], "config": {}})
    assert svc.reload(force=True) and svc.served.ranker_version is None  # heuristic order, still serving
    assert client.get("/v1/users/a1/suggestions").status_code == 200


def test_a_served_ranker_that_fails_on_a_request_leaves_it_in_fusion_order(app, client, app_settings):
    svc = app.extensions["pymk"]
    _publish_untrained_ranker(app_settings)
    assert svc.reload(force=True) and svc.served.ranker_version is not None
    model = client.get("/v1/users/a1/suggestions").get_json()
    assert "ranker" not in model["skipped_sources"] and "p_connect" in model["suggestions"][0]

    def fails(x):
        raise RuntimeError(f"scorer broke on {x.shape[0]} rows")

    svc.served.pipeline.ranker.scorer = fails
    resp = client.get("/v1/users/a1/suggestions")
    body = resp.get_json()
    assert resp.status_code == 200 and body["skipped_sources"]["ranker"].startswith("failed: RuntimeError('scorer")
    assert {s["user_id"] for s in body["suggestions"]} == {s["user_id"] for s in model["suggestions"]}
    assert all("p_connect" not in s for s in body["suggestions"])   # fused, not scored
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'pymk_skipped_total{outcome="failed",part="ranker"} 1.0' in metrics


def test_a_ranker_trained_on_another_feature_version_is_refused(app, client, app_settings, monkeypatch, caplog):
    """Same column names, other meanings (e.g. ranks at equal scores, changed 2026-12-07): a ranker
    published by older code is not served over this code's features; heuristic order until it is retrained."""
    import shutil

    import ranker.train
    from ranker.feature_names import FEATURE_VERSION

    svc = app.extensions["pymk"]
    store = ArtifactStore(app_settings.ranker_dir)
    _publish_untrained_ranker(app_settings)
    assert store.manifest(store.current())["feature_version"] == FEATURE_VERSION
    assert svc.reload(force=True) and svc.served.ranker_version == store.current_version()
    monkeypatch.setattr(ranker.train, "FEATURE_VERSION", FEATURE_VERSION - 1)
    old = _publish_untrained_ranker(app_settings)
    with caplog.at_level("ERROR"):
        assert svc.reload(force=True) and svc.served.ranker_version is None
    assert f"trained on feature version {FEATURE_VERSION - 1}" in caplog.text and old in caplog.text
    assert client.get("/v1/users/a1/suggestions").status_code == 200
    staging = store.staging_dir()   # a ranker published before versions were written: version 1
    shutil.copytree(store.current(), staging, dirs_exist_ok=True)
    manifest = store.manifest(store.current())
    for key in ("feature_version", "version", "published_at"):
        del manifest[key]
    store.publish(staging, manifest)
    caplog.clear()
    with caplog.at_level("ERROR"):
        assert svc.reload(force=True) and svc.served.ranker_version is None
    assert "trained on feature version 1," in caplog.text


def test_ranker_ranks_with_the_embeddings_it_was_trained_with_and_refuses_others(app, client, app_settings):

    from ranker.features import FEATURE_NAMES

    svc = app.extensions["pymk"]
    emb, emb_version = _publish_embeddings(svc, app_settings)
    _publish_untrained_ranker(app_settings, emb_version)
    assert svc.reload(force=True) and svc.served.ranker_version is not None
    client.get("/v1/users/a1/suggestions")
    from graph.eventlog import EventLog

    logged = list(EventLog(app_settings.data_dir / "served").read_records())[-1]["candidates"]
    snap = svc.served.pipeline.snap
    col = FEATURE_NAMES.index("emb_sim")
    for c in logged:  # emb_sim is the served embeddings' similarity, not the 0 it used to be
        expected = float(emb[snap.index_of(c["user_id"])] @ emb[snap.index_of("a1")])
        assert c["features"][col] == pytest.approx(expected, rel=1e-5) and expected != 0
    _publish_embeddings(svc, app_settings, seed=1)  # newer embeddings: the ranker was not trained with them
    assert svc.reload(force=True) and svc.served.ranker_version is None
    assert client.get("/v1/users/a1/suggestions").status_code == 200


def test_precomputed_lists_are_served_while_their_versions_are_and_hard_rules_still_apply(app, client, world,
                                                                                         app_settings):
    import numpy as np
    from click.testing import CliRunner

    from candidates.pipeline import Recommendation
    from graph.eventlog import EventLog
    from pymk.cli import main

    svc = app.extensions["pymk"]
    _publish_untrained_ranker(app_settings)
    assert svc.reload(force=True) and svc.served.precomputed_version is None
    online = suggested(client.get("/v1/users/a1/suggestions"))
    result = CliRunner().invoke(main, ["candidates", "precompute", "--all-users"],
                                env={"PYMK_DATA_DIR": str(app_settings.data_dir)})
    assert result.exit_code == 0, result.output
    assert svc.reload(force=True)
    pipeline = svc.served.pipeline
    assert svc.served.precomputed_version == ArtifactStore(app_settings.candidates_dir).current_version()
    a1 = pipeline.snap.index_of("a1")
    stored = pipeline.precomputed.get(a1)
    fresh = pipeline.ranked(a1, Recommendation("a1", []))
    assert [c.user_id for c in stored] == [c.user_id for c in fresh] and "b0" in online
    for s, f in zip(stored, fresh, strict=True):
        assert s.sources == f.sources and s.proof.keys() == f.proof.keys()
        if "fof" in f.proof:
            assert s.proof["fof"]["mutual_ids"] == f.proof["fof"]["mutual_ids"]
            assert np.isclose(s.proof["fof"]["adamic_adar"], f.proof["fof"]["adamic_adar"], rtol=1e-6)
        assert s.scores.keys() == f.scores.keys()
        assert all(np.isclose(s.scores[k], f.scores[k], rtol=1e-6) for k in s.scores)
        # stored features are exactly those the serving ranker computes now, at the same time
        assert s.proof["ranker"]["t"] == f.proof["ranker"]["t"]
        assert np.array_equal(np.float32(s.proof["ranker"]["features"]), f.proof["ranker"]["features"])
    assert pipeline.precomputed.get(pipeline.snap.index_of("c0")) is None  # no friends: ranked on request
    assert suggested(client.get("/v1/users/a1/suggestions")) == online
    served = list(EventLog(app_settings.data_dir / "served").read_records())[-1]
    assert served["precomputed"] == svc.served.precomputed_version
    assert 'pymk_suggestion_lists_total{path="precomputed"} 1.0' in client.get("/metrics").get_data(as_text=True)
    assert client.post("/v1/blocks", json={"src": "b0", "dst": "a1"}, headers=KEY).status_code == 201
    assert "b0" not in suggested(client.get("/v1/users/a1/suggestions"))  # fresh rules beat the stored list
    world.add_friendships([Friendship("a1", "c0", 2.0)])
    save_snapshot(from_store(world), ArtifactStore(app_settings.snapshot_dir), source="test")
    assert svc.reload(force=True) and svc.served.precomputed_version is None  # made for the old snapshot
    assert client.get("/v1/users/a1/suggestions").status_code == 200
    assert list(EventLog(app_settings.data_dir / "served").read_records())[-1]["precomputed"] is None


def test_active_users_are_the_recent_actors_and_targets():
    import numpy as np

    from candidates.precompute import active_users
    from graph.snapshot import from_pairs
    from graph.snapshot.format import EVENT_CODE

    snap = from_pairs(["a", "b", "c", "d"], ["b", "c", "d", "e"])
    ix = snap.index_of
    day = 86_400.0
    snap.events = {"type": np.array([EVENT_CODE[t] for t in ("impression", "send", "impression", "accept")]),
                   "src": np.array([ix("a"), ix("b"), ix("c"), ix("e")]),
                   "dst": np.array([ix("e"), ix("d"), ix("a"), ix("b")]),
                   "ts": np.array([0.0, 9 * day, 9.5 * day, 10 * day]), "position": np.zeros(4, np.int32)}
    got = {snap.external_id(i) for i in active_users(snap, days=3)}
    assert got == {"b", "c", "d", "e"}  # a acted 10 days ago; e was only shown, but later accepted


def test_what_status_and_rollback_say_is_served_is_what_the_api_serves(app, world, app_settings):
    """`served_problems` (pymk status, pymk rollback's plan) against the API itself, on real artifacts: two
    nights' sets, the snapshot alone moved back (what `pymk snapshot rollback` once did), then `pymk rollback
    --latest` and `pymk rollback`."""
    from click.testing import CliRunner

    from pymk.cli import main
    from pymk.status import status

    svc = app.extensions["pymk"]
    env = {"PYMK_DATA_DIR": str(app_settings.data_dir)}

    def night(seed: int) -> dict[str, str]:
        emb_version = _publish_embeddings(svc, app_settings, seed)[1]
        ranker_version = _publish_untrained_ranker(app_settings, emb_version)
        result = CliRunner().invoke(main, ["candidates", "precompute", "--all-users"], env=env)
        assert result.exit_code == 0, result.output
        assert svc.reload(force=True)
        return {"snapshot": svc.served.snapshot_version, "embeddings": emb_version, "ranker": ranker_version,
                "candidates": ArtifactStore(app_settings.candidates_dir).current_version()}

    def served() -> dict[str, str | None]:
        svc.reload(force=True)
        s = svc.served
        ann = "ann" in [source.name for source in s.pipeline.sources]
        return {"snapshot": s.snapshot_version, "embeddings": s.embeddings_version if ann else None,
                "ranker": s.ranker_version, "candidates": s.precomputed_version}

    first = night(0)
    world.add_friendships([Friendship("a1", "c0", 2.0)])
    save_snapshot(from_store(world), ArtifactStore(app_settings.snapshot_dir), source="test")
    assert svc.reload(force=True)
    second = night(1)
    assert served() == second and status(app_settings).problems == []

    ArtifactStore(app_settings.snapshot_dir).set_current(first["snapshot"])   # the snapshot alone
    assert served() == {**first, "embeddings": None, "ranker": None, "candidates": None}
    embeddings, ranker, lists = status(app_settings).problems
    assert f"embeddings {second['embeddings']} were made from snapshot {second['snapshot']}" in embeddings
    assert f"ranker {second['ranker']}" in ranker and f"precomputed lists {second['candidates']}" in lists

    assert CliRunner().invoke(main, ["rollback", "--latest"], env=env).exit_code == 0
    assert served() == second and status(app_settings).problems == []
    assert CliRunner().invoke(main, ["rollback"], env=env).exit_code == 0
    assert served() == first and status(app_settings).problems == []
