"""The simulator: generator statistics, determinism, behaviour directions, A/B harness, output formats."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from graph.edge_reader import EdgeRow, read_edges
from graph.readers import ByteCounter, RowError, read_events, read_users
from sim.abtest import compare, difference, format_report
from sim.behaviour import HiddenBehaviour, WorldState
from sim.export import SampleSpec, write_sample
from sim.policies import MutualFriendsPolicy, RandomPolicy
from sim.world import World, WorldConfig, generate_world


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WorldConfig(num_users=8000, seed=3))


def test_degree_distribution_is_heavy_tailed(world):
    deg = np.bincount(np.concatenate([world.src, world.dst]), minlength=world.num_users)
    assert deg.max() > 8 * deg.mean()  # a random graph of this density has max/mean near 3
    # Hill estimator of the tail exponent over the top 2% of degrees: power-law-like, not exponential
    top = np.sort(deg)[-int(0.02 * len(deg)):]
    alpha = 1 + len(top) / np.log(top / top[0]).sum()
    assert 1.5 < alpha < 5.0


def test_clustering_far_above_a_random_graph_of_same_density(world):
    g = nx.Graph()
    g.add_nodes_from(range(world.num_users))
    g.add_edges_from(zip(world.src.tolist(), world.dst.tolist(), strict=True))
    sample = list(range(0, world.num_users, 10))
    clustering = nx.average_clustering(g, nodes=sample)
    random_graph = nx.gnm_random_graph(world.num_users, g.number_of_edges(), seed=1)
    random_clustering = nx.average_clustering(random_graph, nodes=sample)
    assert clustering > 10 * max(random_clustering, 1e-4)
    giant = max(nx.connected_components(g), key=len)
    assert len(giant) > 0.9 * world.num_users


def test_cold_start_users_have_zero_or_one_friend(world):
    deg = np.bincount(np.concatenate([world.src, world.dst]), minlength=world.num_users)
    share = world.cold_start.mean()
    assert 0.015 < share < 0.045
    assert deg[world.cold_start].max() <= 1
    assert (deg[world.cold_start] == 0).any() and (deg[world.cold_start] == 1).any()


def test_friendships_are_after_both_users_joined(world):
    assert (world.ts >= np.maximum(world.created_at[world.src], world.created_at[world.dst]) - 1e-6).all()
    assert (world.src < world.dst).all()


def test_generation_is_deterministic_under_a_seed():
    a, b = (generate_world(WorldConfig(num_users=2000, seed=9)) for _ in range(2))
    c = generate_world(WorldConfig(num_users=2000, seed=10))
    for name in ("src", "dst", "ts", "school", "city", "created_at"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.src[:100], c.src[:100])


def _tiny_world() -> World:
    """Viewer 0; candidate 1 shares 3 friends (2,3,4) with 0; candidate 5 shares none."""
    n = 12
    edges = [(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (5, 6), (7, 8)]
    src = np.array([a for a, _ in edges], np.int32)
    dst = np.array([b for _, b in edges], np.int32)
    zeros = np.zeros(n, np.int32)
    return World(WorldConfig(num_users=n), community=zeros.copy(), school=np.arange(n, dtype=np.int32),
                 employer=np.arange(n, dtype=np.int32), city=np.arange(n, dtype=np.int32),
                 lat=np.zeros(n, np.float32), lon=np.zeros(n, np.float32), age_group=zeros.copy(),
                 language=zeros.copy(), created_at=np.zeros(n), cold_start=np.zeros(n, bool),
                 src=src, dst=dst, ts=np.zeros(len(edges)))


def test_send_probability_moves_with_its_factors():
    w = _tiny_world()
    state, model = WorldState(w), HiddenBehaviour()
    v = np.array([0])

    def p_send(c: int, pos: int = 0) -> float:
        return float(model.p_send(state, v, np.array([c]), np.array([pos]))[0])

    assert p_send(1) > p_send(5)                    # mutual friends
    assert p_send(1, pos=0) > p_send(1, pos=5)      # position bias
    base = p_send(9)
    for attr in ("school", "employer", "city"):
        getattr(w, attr)[9] = getattr(w, attr)[0]
    assert p_send(9) > base                         # shared school / employer / city
    near = p_send(9)
    w.lat[9], w.lon[9] = 40.0, 100.0
    assert p_send(9) < near                         # distance
    before = p_send(1)
    state.impressions[int(state.key(v, np.array([1]))[0])] = 3
    assert p_send(1) < before                       # fatigue from repeated impressions


def test_accept_probability_moves_with_different_factors():
    w = _tiny_world()
    state, model = WorldState(w), HiddenBehaviour()

    def p_acc(viewer: int, cand: int) -> float:
        return float(model.p_accept(state, np.array([viewer]), np.array([cand]))[0])

    assert p_acc(0, 1) > p_acc(0, 5)                # candidate's own ties to the viewer's circle
    before = p_acc(0, 1)
    state.pending[1] = 20
    assert p_acc(0, 1) < before                     # many pending requests
    state.pending[1] = 0
    many = np.arange(9, 12)
    state.add_friendships(np.full(len(many), 1), many)  # candidate 1 gets more popular
    assert p_acc(0, 1) < before                     # popularity lowers acceptance...
    assert float(model.p_send(state, np.array([0]), np.array([1]), np.array([0]))[0]) > 0  # ...not sends


def test_ab_harness_mutual_friends_beats_random():
    w = generate_world(WorldConfig(num_users=4000, seed=5))
    state = WorldState(w)
    results = compare(state, {"mutual_friends": MutualFriendsPolicy(state), "random": RandomPolicy(state)},
                      days=5, start_ts=w.end_ts, seed=5)
    print("\n" + format_report(results))
    mutual, rand = results
    lo_mutual, _ = mutual.intervals["connections_per_1000"]
    _, hi_random = rand.intervals["connections_per_1000"]
    assert lo_mutual > hi_random
    assert mutual.estimates["send_rate"] > rand.estimates["send_rate"]
    d, lo, hi = difference(mutual, rand)
    assert d == pytest.approx(mutual.estimates["connections_per_1000"] - rand.estimates["connections_per_1000"])
    assert 0 < lo < d < hi
    assert difference(mutual, mutual)[0] == 0.0


def test_sample_files_read_cleanly_with_pymk_readers(tmp_path):
    manifest = write_sample(SampleSpec(WorldConfig(num_users=1500, seed=2), log_days=3), tmp_path)
    users = list(read_users(ByteCounter(tmp_path / "users.csv")))
    edges = list(read_edges(ByteCounter(tmp_path / "edges.txt")))
    events = list(read_events(ByteCounter(tmp_path / "events.jsonl")))
    assert not any(isinstance(r, RowError) for r in users + edges + events)
    assert len(users) == 1500 and sum(isinstance(r, EdgeRow) for r in edges) == manifest["friendships"]
    kinds = {ev.type for _, ev in events}
    assert kinds == {"impression", "send", "accept", "decline", "dismiss"}
    assert all(ev.position is not None for _, ev in events if ev.type == "impression")
    assert min(ev.ts for _, ev in events) >= manifest["log_start"]


def test_pymk_pipeline_serves_inside_the_simulator():
    from ranker.features import FEATURE_NAMES
    from ranker.model import MultiTaskRanker
    from sim.pymk_policy import PymkPolicy
    from sim.traffic import run_traffic

    w = generate_world(WorldConfig(num_users=800, seed=2))
    state = WorldState(w)
    policy = PymkPolicy(state, MultiTaskRanker(len(FEATURE_NAMES)))
    with pytest.raises(RuntimeError, match="start_day"):
        policy(0, 5)
    log = run_traffic(state, [policy], days=1, start_ts=w.end_ts, daily_active=0.1).arrays()
    shown = log["type"] == 0
    assert shown.sum() > 0
    friends_before = WorldState(w).are_friends(log["src"][shown].astype(int), log["dst"][shown].astype(int))
    assert not friends_before.any()  # the pipeline's hard rules held inside the loop


@pytest.mark.parametrize(("users", "avg_degree"), [(1, 20.0), (2, 20.0), (5, 20.0), (50, 0.01)])
def test_tiny_and_sparse_worlds_are_generated_and_logged(tmp_path, users, avg_degree):
    """`pymk sim generate --users 5` failed in the random policy (a sample of k + 1 users from 5), and a world
    whose rounds made no tie failed to concatenate no parts."""
    manifest = write_sample(SampleSpec(WorldConfig(num_users=users, avg_degree=avg_degree, seed=0), log_days=2),
                            tmp_path)
    assert manifest["users"] == users
    edges = [r for r in read_edges(ByteCounter(tmp_path / "edges.txt")) if isinstance(r, EdgeRow)]
    assert len(edges) == manifest["friendships"] and (avg_degree >= 1 or not edges)   # seed 0: no tie at all
    picks = RandomPolicy(WorldState(generate_world(WorldConfig(num_users=users, seed=3))))(0, 20)
    assert len(picks) == min(20, users - 1) and 0 not in picks


def test_an_arm_without_viewers_reports_no_figures_and_no_warning(recwarn):
    w = generate_world(WorldConfig(num_users=1, seed=1))
    state = WorldState(w)
    results = compare(state, {"mutual_friends": MutualFriendsPolicy(state), "random": RandomPolicy(state)},
                      days=1, start_ts=w.end_ts, seed=1)
    assert all(r.viewers == 0 and np.isnan(r.intervals["connections_per_1000"]).all() for r in results)
    assert np.isnan(difference(*results)[1:]).all() and not [w for w in recwarn if w.category is RuntimeWarning]
    assert "nan [nan, nan]" in format_report(results)
