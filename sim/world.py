"""World generator: users with profiles in communities, and a friendship graph grown over time.

Growth runs in rounds (time windows). In each round every existing user adds ties by homophily
(someone from the same community), triadic closure (a friend's friend, from a two-step walk on
the graph so far) and preferential attachment (an endpoint of a random existing tie, so chosen
in proportion to degree). Per-user sociability is log-normal, which with preferential attachment
gives a heavy-tailed degree distribution. Everything is vectorized numpy and seeded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from graph.snapshot.build import build_csr, empty_tables
from graph.snapshot.format import Snapshot, empty_columns
from graph.walks import two_step_walk

log = logging.getLogger(__name__)
DAY = 86_400.0
AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55+")
LANGUAGES = ("en", "es", "pt", "de", "fr", "hi", "ja", "ar")


@dataclass(frozen=True)
class WorldConfig:
    num_users: int = 20_000
    avg_degree: float = 20.0            # target before duplicate ties merge; realized mean is ~0.73x
    community_size: int = 150           # mean community size
    num_cities: int = 60
    rounds: int = 5
    history_days: float = 3 * 365.0
    cold_start_share: float = 0.03      # brand-new users with zero or one friend
    mix: tuple[float, float, float] = (0.5, 0.3, 0.2)  # triadic, homophily, preferential attachment
    start_ts: float = 1_600_000_000.0
    seed: int = 0


@dataclass
class World:
    """Users (profile columns as arrays, index = user id) and friendships with formation times."""

    config: WorldConfig
    community: np.ndarray
    school: np.ndarray
    employer: np.ndarray
    city: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    age_group: np.ndarray
    language: np.ndarray
    created_at: np.ndarray
    cold_start: np.ndarray
    src: np.ndarray                     # one row per friendship (src < dst)
    dst: np.ndarray
    ts: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return int(self.community.shape[0])

    @property
    def end_ts(self) -> float:
        return self.config.start_ts + self.config.history_days * DAY

    def adjacency(self, before: float | None = None) -> sp.csr_matrix:
        """Symmetric 0/1 CSR adjacency, optionally only ties formed before `before`."""
        keep = slice(None) if before is None else self.ts < before
        n = self.num_users
        indptr, indices, _ = build_csr(n, self.src[keep], self.dst[keep])
        return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(n, n))


def _profiles(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = cfg.num_users
    n_comm = max(1, n // cfg.community_size)
    comm_weight = rng.pareto(1.5, n_comm) + 1.0
    community = rng.choice(n_comm, n, p=comm_weight / comm_weight.sum()).astype(np.int32)
    city_weight = 1.0 / np.arange(1, cfg.num_cities + 1) ** 0.8
    city_lat = rng.uniform(-50, 60, cfg.num_cities)
    city_lon = rng.uniform(-160, 160, cfg.num_cities)
    city_lang = rng.integers(0, len(LANGUAGES), cfg.num_cities)
    comm_city = rng.choice(cfg.num_cities, n_comm, p=city_weight / city_weight.sum())
    n_school, n_employer = max(1, n_comm // 2), max(1, n_comm // 3)
    comm_school = rng.integers(0, n_school, n_comm)
    comm_employer = rng.integers(0, n_employer, n_comm)
    comm_age = rng.integers(0, len(AGE_GROUPS), n_comm)

    def own_or_random(own: np.ndarray, p_own: float, k: int, p: np.ndarray | None = None) -> np.ndarray:
        other = rng.choice(k, n, p=p)
        return np.where(rng.random(n) < p_own, own, other).astype(np.int32)

    city = own_or_random(comm_city[community], 0.85, cfg.num_cities, city_weight / city_weight.sum())
    return {
        "community": community,
        "school": own_or_random(comm_school[community], 0.6, n_school),
        "employer": own_or_random(comm_employer[community], 0.5, n_employer),
        "city": city,
        "lat": (city_lat[city] + rng.normal(0, 0.08, n)).astype(np.float32),
        "lon": (city_lon[city] + rng.normal(0, 0.08, n)).astype(np.float32),
        "age_group": own_or_random(comm_age[community], 0.7, len(AGE_GROUPS)),
        "language": np.where(rng.random(n) < 0.95, city_lang[city],
                             rng.integers(0, len(LANGUAGES), n)).astype(np.int32),
    }


def _same_community_pick(community: np.ndarray, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random member of each user's community (vectorized via a sorted member list)."""
    order = np.argsort(community, kind="stable")
    sizes = np.bincount(community, minlength=int(community.max()) + 1)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    c = community[users]
    return order[starts[c] + (rng.random(len(users)) * sizes[c]).astype(np.int64)]


def generate_world(cfg: WorldConfig) -> World:
    """Generate users and friendships. Deterministic for a given config (seed included)."""
    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    n = cfg.num_users
    prof = _profiles(cfg, rng)
    horizon = cfg.history_days * DAY
    # More users join later (growth); the newest `cold_start_share` join in the last two days.
    created = cfg.start_ts + horizon * np.sqrt(rng.random(n)) * (1 - 2 * DAY / horizon)
    cold = rng.random(n) < cfg.cold_start_share
    created[cold] = cfg.start_ts + horizon - rng.random(cold.sum()) * 2 * DAY
    sociability = rng.lognormal(0.0, 0.9, n)
    sociability[cold] = 0.0
    stubs_total = sociability / sociability.sum() * (n * cfg.avg_degree / 2.0)

    windows = cfg.start_ts + horizon * np.linspace(0, 1, cfg.rounds + 1)
    # each starts with an empty part: a world so small or sparse that no round makes a tie has none
    src_parts: list[np.ndarray] = [np.zeros(0, np.int64)]
    dst_parts: list[np.ndarray] = [np.zeros(0, np.int64)]
    ts_parts: list[np.ndarray] = [np.zeros(0)]
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices = np.zeros(0, dtype=np.int32)
    all_src = np.zeros(0, np.int64)
    for r in range(cfg.rounds):
        w0, w1 = windows[r], windows[r + 1]
        alive = (created < w1) & ~cold
        # each user spreads its stubs over the rounds it is alive for
        rounds_alive = np.maximum(1, cfg.rounds - np.floor((created - cfg.start_ts) / (horizon / cfg.rounds)))
        expected = np.where(alive, stubs_total / rounds_alive, 0.0)
        count = rng.poisson(expected)
        initiators = np.repeat(np.arange(n), count)
        if len(initiators) == 0:
            continue
        mech = rng.choice(3, len(initiators), p=cfg.mix if r > 0 else (0.0, 0.8, 0.2))
        target = _same_community_pick(prof["community"], initiators, rng)
        if r > 0 and len(indices):
            tri = mech == 0
            walk = two_step_walk(indptr, indices, initiators[tri], rng)
            target[np.flatnonzero(tri)[walk >= 0]] = walk[walk >= 0]
            pa = mech == 2
            target[pa] = indices[rng.integers(0, len(indices), pa.sum())]
        elif r == 0:
            pa = mech == 2
            if len(all_src) == 0:
                target[pa] = rng.integers(0, n, pa.sum())
        ok = (target != initiators) & alive[target]
        a, b = initiators[ok], target[ok]
        t = np.maximum(np.maximum(created[a], created[b]), w0)
        t = t + rng.random(len(a)) * np.maximum(w1 - t, 1.0)
        src_parts.append(np.minimum(a, b))
        dst_parts.append(np.maximum(a, b))
        ts_parts.append(t)
        all_src = np.concatenate(src_parts)
        indptr, indices, _ = build_csr(n, all_src, np.concatenate(dst_parts))
    # cold-start users: half get no friend, half one friend in their city, made just after joining
    cold_ids = np.flatnonzero(cold)
    one = cold_ids[rng.random(len(cold_ids)) < 0.5]
    if len(one):
        city_peer = _same_city_peer(prof["city"], one, ~cold, rng)
        good = city_peer >= 0
        src_parts.append(np.minimum(one[good], city_peer[good]))
        dst_parts.append(np.maximum(one[good], city_peer[good]))
        ts_parts.append(np.minimum(created[one[good]] + rng.random(good.sum()) * DAY / 4, cfg.start_ts + horizon))
    src, dst, ts = _dedupe(np.concatenate(src_parts), np.concatenate(dst_parts), np.concatenate(ts_parts))
    world = World(cfg, created_at=created, cold_start=cold, src=src, dst=dst, ts=ts, **prof)
    world.stats["generate_s"] = time.perf_counter() - start
    log.info("generated %d users, %d friendships in %.1fs", n, len(src), world.stats["generate_s"])
    return world


def _same_city_peer(city: np.ndarray, users: np.ndarray, eligible: np.ndarray, rng: np.random.Generator
                    ) -> np.ndarray:
    pool = np.flatnonzero(eligible)
    order = pool[np.argsort(city[pool], kind="stable")]
    sizes = np.bincount(city[pool], minlength=int(city.max()) + 1)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    c = city[users]
    out = np.full(len(users), -1, dtype=np.int64)
    has = sizes[c] > 0
    out[has] = order[starts[c[has]] + (rng.random(has.sum()) * sizes[c[has]]).astype(np.int64)]
    return out


def _dedupe(src: np.ndarray, dst: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per pair (earliest time), sorted by time."""
    key = src.astype(np.int64) << 32 | dst.astype(np.int64)
    order = np.lexsort((ts, key))
    key, ts = key[order], ts[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    key, ts = key[first], ts[first]
    by_time = np.argsort(ts, kind="stable")
    key, ts = key[by_time], ts[by_time]
    return (key >> 32).astype(np.int32), (key & 0xFFFFFFFF).astype(np.int32), ts


def world_snapshot(world: World, adjacency: sp.csr_matrix | None = None) -> Snapshot:
    """The world as a pymk snapshot (profiles included), without going through a store.

    `adjacency` replaces the world's generated ties (e.g. the simulator's graph as it is now);
    its ties have no known formation time, so they count as formed before any t.
    """
    n = world.num_users
    ids = np.arange(n, dtype=np.int64)
    if adjacency is None:
        indptr, indices, since = build_csr(n, world.src, world.dst, world.ts)
    else:
        adj = adjacency.tocsr()
        adj.sort_indices()
        indptr, indices = adj.indptr.astype(np.int64), adj.indices.astype(np.int32)
        since = np.full(indices.size, np.nan)
    numeric, categorical, vocab = empty_columns(n)
    numeric.update(created_at=world.created_at.astype(np.float64), lat=world.lat.astype(np.float64),
                   lon=world.lon.astype(np.float64))
    for col, codes, names in (("school", world.school, None), ("employer", world.employer, None),
                              ("city", world.city, None), ("age_group", world.age_group, AGE_GROUPS),
                              ("language", world.language, LANGUAGES)):
        k = int(codes.max()) + 1
        vocab[col] = list(names[:k]) if names is not None else [f"{col}-{i}" for i in range(k)]
        categorical[col] = codes.astype(np.int32)
    requests, blocks, events = empty_tables()
    return Snapshot(ids, indptr, indices, since, numeric, categorical, vocab, np.zeros(n, dtype=bool), requests,
                    blocks, events, meta={"source": "sim world"})
