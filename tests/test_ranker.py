"""Ranker: focal loss by hand, both heads learn, no train/serve skew, no leakage from the future."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graph.eventlog import EventLog
from graph.memory_store import MemoryGraphStore
from graph.records import Event, Friendship, UserRecord
from graph.snapshot import from_store
from pymk.metrics import average_precision, ndcg_at_k, normalized_entropy
from ranker.data import build_examples
from ranker.features import FEATURE_NAMES, FeatureContext
from ranker.losses import balanced_bce, focal_loss
from ranker.model import MultiTaskRanker


def test_focal_loss_equals_hand_computed_values():
    logits = torch.tensor([0.0, 2.0, -1.0])
    y = torch.tensor([1.0, 0.0, 1.0])
    p = [0.5, 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))]
    p_t = [p[0], 1 - p[1], p[2]]
    alpha_t = [0.25, 0.75, 0.25]
    want = [-a * (1 - q) ** 2 * math.log(q) for a, q in zip(alpha_t, p_t, strict=True)]
    got = focal_loss(logits, y, alpha=0.25, gamma=2.0, reduction="none")
    assert got.tolist() == pytest.approx(want, rel=1e-6)
    assert focal_loss(logits, y).item() == pytest.approx(sum(want) / 3, rel=1e-6)


def test_focal_loss_reduces_to_cross_entropy_at_gamma_zero():
    logits, y = torch.randn(50), (torch.rand(50) > 0.7).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    assert focal_loss(logits, y, alpha=None, gamma=0.0).item() == pytest.approx(bce.item(), rel=1e-6)
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(logits, y, gamma=-1.0)


def test_balanced_bce_weighs_classes_equally():
    logits = torch.zeros(4)
    y = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert balanced_bce(logits, y).item() == pytest.approx(math.log(2), rel=1e-6)


def test_all_three_heads_learn():
    torch.manual_seed(0)
    x = torch.randn(512, 6)
    targets = [(x[:, 0] > 0).float(), (x[:, 1] > 0).float(), (x[:, 2] > 0).float()]
    model = MultiTaskRanker(6, hidden_channels=16)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def losses():
        return [focal_loss(logits, y) for logits, y in zip(model(x), targets, strict=True)]

    before = [v.item() for v in losses()]
    for _ in range(100):
        loss = sum(losses())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = [v.item() for v in losses()]
    assert all(a < 0.5 * b for a, b in zip(after, before, strict=True))


def test_an_input_constant_in_training_is_ignored_when_served_and_no_logit_ties():
    """The demo's served ranker (logistic, 2026-12-06) gave every candidate p_connect 0.0, ranked by id:
    the viewer's sends and the candidate's accept rate are constant in the graph's history (no impression
    log), vary at serving, and the batch norm scaled them by ~316; every logit fell below -30, where the
    old sigmoid's clip made them one tie. Now such an input is the batch norm's bias alone, as in training."""
    from ranker.calibration import Calibration, sigmoid
    from ranker.scorers import TorchScorer
    from ranker.train import RankerConfig, constant_columns, fit

    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(2000), rng.normal(size=2000), rng.normal(size=2000)]).astype(np.float32)
    y = (x[:, 1] + 0.3 * rng.normal(size=2000) > 0.5).astype(np.float32)
    assert constant_columns([x, x[:10]]) == [0] and constant_columns([x, x * 0]) == []
    for linear in (True, False):
        model = fit(RankerConfig(loss="bce", linear=linear, epochs=3), conn=(x, y))
        scorer = TorchScorer(model, Calibration())
        served = scorer(x[:5])["p_connect"]
        moved = x[:5].copy()
        moved[:, 0] = [0.0, 3.0, 7.0, 1.0, 2.0]          # values training never had
        assert np.array_equal(scorer(moved)["p_connect"], served)
        assert len(set(served.tolist())) == 5            # the columns that vary still order them
    assert sigmoid(np.array([-40.0, -35.0]))[0] < sigmoid(np.array([-40.0, -35.0]))[1]   # no tie below -30


def test_calibration_recovers_known_platt_parameters_and_scores_the_product():
    import numpy as np

    from ranker.calibration import Calibration, fit_platt

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, 200_000)
    y = (rng.random(logits.size) < 1 / (1 + np.exp(-(0.5 * logits - 1.0)))).astype(float)
    a, b = fit_platt(logits, y)
    assert a == pytest.approx(0.5, abs=0.02) and b == pytest.approx(-1.0, abs=0.02)
    assert fit_platt(logits[:10], np.ones(10)) == (1.0, 0.0)  # one class only: left as it is
    cal = Calibration((a, b), (1.0, 0.0))
    p_send, p_accept = cal.probabilities(np.array([0.0]), np.array([0.0]))
    assert p_send[0] == pytest.approx(1 / (1 + np.exp(1.0)), abs=0.01) and p_accept[0] == 0.5
    assert Calibration().score(np.array([0.5]), np.array([0.2]))[0] == pytest.approx(0.1)
    assert Calibration(accept_weight=0.5).score(np.array([0.5]), np.array([0.25]))[0] == pytest.approx(0.25)
    assert Calibration.from_dict(cal.to_dict()) == cal and Calibration.from_dict(None) == Calibration()


@pytest.fixture
def world(tmp_path):
    store = MemoryGraphStore()
    store.upsert_users([UserRecord(id=str(i), school="mit" if i < 4 else "yale", city="oslo", lat=59.9, lon=10.7,
                                   age_group="25-34") for i in range(8)])
    store.add_friendships([Friendship("0", "1", 10.0), Friendship("1", "2", 20.0), Friendship("0", "3", 30.0),
                           Friendship("3", "2", 500.0), Friendship("2", "4", 40.0)])
    events = [Event("impression", "0", "2", 100.0, position=0), Event("impression", "0", "4", 100.5, position=1),
              Event("send", "0", "2", 160.0), Event("accept", "2", "0", 300.0),
              Event("send", "5", "4", 50.0), Event("impression", "0", "2", 1000.0, position=0)]
    store.apply_events(events)
    log = EventLog(tmp_path / "events")
    log.write_segment("x", events)
    return from_store(store, log)


def test_features_at_time_t_ignore_everything_later(world):
    ctx = FeatureContext(world)
    i = world.index_of
    f = dict(zip(FEATURE_NAMES, ctx.pair_features(i("0"), np.array([i("2")]), 100.0)[0], strict=True))
    assert f["mutual"] == 1.0            # via 1 (since 20); the 3-2 tie forms at 500, later
    assert f["pair_impressions"] == 0    # the impression at t itself is not "before"
    assert f["viewer_sends_7d"] == 0     # the send at 160 is after t
    assert f["same_school"] == 1 and f["same_city"] == 1 and f["distance_missing"] == 0
    later = dict(zip(FEATURE_NAMES, ctx.pair_features(i("0"), np.array([i("2")]), 1000.0)[0], strict=True))
    assert later["mutual"] == 2 and later["pair_impressions"] == 1 and later["viewer_sends_7d"] == 1
    cand4 = dict(zip(FEATURE_NAMES, ctx.pair_features(i("0"), np.array([i("4")]), 100.0)[0], strict=True))
    assert cand4["log_cand_pending"] == pytest.approx(math.log(2))   # one unanswered request (from 5)
    assert cand4["cand_accept_rate"] == pytest.approx(1 / 3)


def test_account_age_is_a_share_of_the_graphs_age():
    """Ties a-b at 0, b-c at 50, c-d at 80, as of t = 100: the graph is 100 old, a's first tie 100 and
    c's 50 (shares 1.0 and 0.5); as of t = 60 the c-d tie does not exist yet and the graph is 60 old.
    Without tie times the age is unknown (-1)."""
    from graph.snapshot import as_of, from_pairs

    snap = from_pairs(["a", "b", "c"], ["b", "c", "d"], np.array([0.0, 50.0, 80.0]))
    i = snap.index_of

    def ages(g, t):
        f = dict(zip(FEATURE_NAMES, FeatureContext(g).pair_features(i("a"), np.array([i("c")]), t)[0], strict=True))
        return f["viewer_age_share"], f["cand_age_share"]

    assert ages(snap, 100.0) == pytest.approx((1.0, 0.5))
    assert ages(as_of(snap, 60.0), 60.0) == pytest.approx((1.0, 10 / 60))
    untimed = from_pairs(["a", "b", "c"], ["b", "c", "d"])
    assert ages(untimed, 100.0) == (-1.0, -1.0)


def test_recent_partner_degree_reads_the_latest_ties_partners():
    """Hub h tied with a..f at times 1..6, then b-c and b-d at 7: as of t = 10 h's five newest ties go to
    f, e, d, c, b (degrees 1, 1, 2, 2, 3), and b's three ties to h, c, d (degrees 6, 2, 2). As of t = 4 the
    later ties do not exist: h's three go to c, b, a (degree 1 each). Ties at the fifth-newest time all
    count; without times every friend counts."""
    from graph.snapshot import as_of, from_pairs

    src, dst = ["h"] * 6 + ["b", "b"], ["a", "b", "c", "d", "e", "f", "c", "d"]
    snap = from_pairs(src, dst, np.array([1, 2, 3, 4, 5, 6, 7, 7.0]))
    i = snap.index_of

    def partners(g, t, cand):
        return dict(zip(FEATURE_NAMES, FeatureContext(g).pair_features(i("a"), np.array([i(cand)]), t)[0],
                        strict=True))["cand_recent_partner_deg"]

    log = np.log
    assert partners(snap, 10.0, "h") == pytest.approx((2 * log(2) + 2 * log(3) + log(4)) / 5, rel=1e-6)
    assert partners(snap, 10.0, "b") == pytest.approx((log(7) + 2 * log(3)) / 3, rel=1e-6)
    assert partners(as_of(snap, 4.0), 4.0, "h") == pytest.approx(log(2), rel=1e-6)
    tied = from_pairs(["h"] * 6, ["a", "b", "c", "d", "e", "f"], np.array([1, 2, 2, 2, 2, 2.0]))
    assert partners(tied, 10.0, "h") == pytest.approx(log(2), rel=1e-6)   # all six: five share the 5th time
    untimed = from_pairs(src, dst)
    assert partners(untimed, 10.0, "b") == pytest.approx((log(7) + 2 * log(3)) / 3, rel=1e-6)


def test_features_identical_in_batch_for_training_and_online_for_serving(world):
    ctx = FeatureContext(world)
    imp, _ = build_examples(ctx)
    for g in np.unique(imp.group):
        rows = np.flatnonzero(imp.group == g)
        t0 = np.floor(imp.ts[rows].min() / 86_400) * 86_400  # the start of its day
        online = ctx.pair_features(int(imp.viewer[rows[0]]), imp.cand[rows], float(t0))
        assert np.array_equal(imp.x[rows], online)


def test_labels_come_from_later_events_only(world):
    imp, snd = build_examples(FeatureContext(world))
    by_pair = {(int(v), int(c), float(t)): y for v, c, t, y in zip(imp.viewer, imp.cand, imp.ts, imp.y, strict=True)}
    i = world.index_of
    assert by_pair[(i("0"), i("2"), 100.0)] == 1     # sent at 160
    assert by_pair[(i("0"), i("2"), 1000.0)] == 0    # nothing sent after 1000
    assert by_pair[(i("0"), i("4"), 100.5)] == 0
    accepted = {(int(v), int(c)): y for v, c, y in zip(snd.viewer, snd.cand, snd.y, strict=True)}
    assert accepted[(i("0"), i("2"))] == 1 and accepted[(i("5"), i("4"))] == 0


def test_metrics_by_hand():
    y, p = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.3, 0.1])
    assert average_precision(y, p) == pytest.approx((1 + 2 / 3) / 2)
    assert normalized_entropy(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(1.0)
    ndcg = ndcg_at_k(np.array([0, 0, 0]), np.array([0.0, 1.0, 0.0]), np.array([3.0, 2.0, 1.0]), k=10)
    assert ndcg == pytest.approx(1 / math.log2(3))


def test_sample_groups_keeps_whole_viewer_days_within_the_budget():
    from ranker.data import sample_groups

    rng = np.random.default_rng(5)
    viewer = rng.integers(0, 50, 2000)
    ts = rng.integers(0, 10, 2000) * 86_400.0 + rng.random(2000) * 3600
    keep = sample_groups(viewer, ts, 500, np.random.default_rng(0))
    assert 400 < keep.sum() <= 500
    groups = viewer * 100 + (ts // 86_400).astype(int)
    for g in np.unique(groups):   # every group wholly in or wholly out
        assert keep[groups == g].all() or not keep[groups == g].any()
    assert np.array_equal(keep, sample_groups(viewer, ts, 500, np.random.default_rng(0)))   # seeded
    assert sample_groups(viewer, ts, 2000, np.random.default_rng(0)).all()


def test_a_capped_build_is_a_sample_of_whole_groups_with_the_labels_of_the_full_build(tmp_path):
    store = MemoryGraphStore()
    store.add_friendships([Friendship(str(i), str(i + 1), 1.0) for i in range(30)])
    rng = np.random.default_rng(1)
    events = []
    for day in range(6):
        for viewer in range(30):
            for slot in range(5):
                cand = int(rng.integers(0, 31))
                t = day * 86_400.0 + 3600 + slot
                events.append(Event("impression", str(viewer), str(cand), t, position=slot))
                if rng.random() < 0.2:
                    events.append(Event("send", str(viewer), str(cand), t + 60))
    store.apply_events(events)
    log = EventLog(tmp_path)
    log.write_segment("x", events)
    snap = from_store(store, log)
    full, _ = build_examples(FeatureContext(snap))
    capped, _ = build_examples(FeatureContext(snap), max_rows=300)
    assert full.y.size == 900 and 250 < capped.y.size <= 300
    rows = {(int(v), int(c), float(t)): y for v, c, t, y in zip(full.viewer, full.cand, full.ts, full.y, strict=True)}
    for v, c, t, y in zip(capped.viewer, capped.cand, capped.ts, capped.y, strict=True):
        assert rows[(int(v), int(c), float(t))] == y   # labels read from every event, not the sample's
    day = (capped.ts // 86_400).astype(int)
    kept_groups = set(zip(capped.viewer.tolist(), day.tolist(), strict=True))
    full_day = (full.ts // 86_400).astype(int)
    in_kept = [(v, d) in kept_groups for v, d in zip(full.viewer.tolist(), full_day.tolist(), strict=True)]
    assert sum(in_kept) == capped.y.size   # each kept (viewer, day) whole
