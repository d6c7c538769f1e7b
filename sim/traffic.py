"""Closed-loop traffic: users see suggestions from a policy, react by the hidden model, the graph grows.

One engine serves both the logging period (a single baseline policy, its events written out for
training) and A/B tests (users split into arms by a stable hash, each arm with its policy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pymk.progress import progress_bar
from sim.behaviour import HiddenBehaviour, WorldState
from sim.world import DAY

log = logging.getLogger(__name__)
Policy = Callable[[int, int], list[int]]
EVENT_NAMES = ("impression", "send", "accept", "decline", "dismiss")


@dataclass
class TrafficLog:
    """Everything that happened, as parallel arrays (one row per event), plus per-viewer tallies."""

    type: list[np.ndarray] = field(default_factory=list)
    src: list[np.ndarray] = field(default_factory=list)
    dst: list[np.ndarray] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    position: list[np.ndarray] = field(default_factory=list)
    arm: list[np.ndarray] = field(default_factory=list)

    def add(self, etype: int, src, dst, ts, position, arm) -> None:
        n = len(src)
        self.type.append(np.full(n, etype, np.int8))
        for name, values in (("src", src), ("dst", dst), ("ts", ts), ("position", position), ("arm", arm)):
            getattr(self, name).append(np.asarray(values))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: np.concatenate(getattr(self, k)) if getattr(self, k) else np.zeros(0)
               for k in ("type", "src", "dst", "ts", "position", "arm")}
        order = np.argsort(out["ts"], kind="stable")
        return {k: v[order] for k, v in out.items()}


def arm_of_users(n: int, arms: int) -> np.ndarray:
    """Stable arm per user index: (v * 2654435761 mod 2^32) mod arms (Knuth's multiplicative hash)."""
    return ((np.arange(n, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)
            % np.uint64(arms)).astype(np.int64)


def run_traffic(
    state: WorldState,
    arms: list[Policy],
    days: int,
    start_ts: float,
    k: int = 10,
    daily_active: float = 0.15,
    behaviour: HiddenBehaviour | None = None,
    seed: int = 0,
    progress: bool = False,
) -> TrafficLog:
    """Simulate `days` days. Viewers are split between `arms` by `arm_of_users`."""
    behaviour = behaviour or HiddenBehaviour()
    rng = np.random.default_rng(seed)
    n = state.world.num_users
    arm_of = arm_of_users(n, len(arms)).astype(np.int8)
    out = TrafficLog()
    p = behaviour.params
    for day in progress_bar(range(days), desc="simulated days", enabled=progress):
        day_start = start_ts + day * DAY
        for policy in arms:  # policies that refresh daily (like pymk's snapshot job) get told the time
            if hasattr(policy, "start_day"):
                policy.start_day(day_start)
        viewers = np.flatnonzero(rng.random(n) < daily_active)
        v_list, c_list, pos_list = [], [], []
        for v in viewers.tolist():
            shown = arms[arm_of[v]](v, k)[:k]
            v_list.extend([v] * len(shown))
            c_list.extend(shown)
            pos_list.extend(range(len(shown)))
        if not v_list:
            continue
        v_arr, c_arr, pos = np.array(v_list), np.array(c_list), np.array(pos_list)
        ts = day_start + rng.random(len(v_arr)) * DAY * 0.5
        out.add(0, v_arr, c_arr, ts, pos, arm_of[v_arr])
        blocked = state.are_friends(v_arr, c_arr) | (v_arr == c_arr) | np.isin(state.key(v_arr, c_arr),
                                                                               list(state.requested))
        p_send = np.where(blocked, 0.0, behaviour.p_send(state, v_arr, c_arr, pos))
        for key in state.key(v_arr, c_arr).tolist():
            state.impressions[key] = state.impressions.get(key, 0) + 1
        sent = rng.random(len(v_arr)) < p_send
        # one request per pair even if shown twice in a day
        _, first = np.unique(state.key(v_arr[sent], c_arr[sent]), return_index=True)
        sv, sc, sts = v_arr[sent][first], c_arr[sent][first], ts[sent][first] + 60.0
        out.add(1, sv, sc, sts, np.full(len(sv), -1), arm_of[sv])
        state.requested.update(state.key(sv, sc).tolist())
        state.requested.update(state.key(sc, sv).tolist())
        p_acc = behaviour.p_accept(state, sv, sc)
        u = rng.random(len(sv))
        acc = u < p_acc
        dec = ~acc & (u < p_acc + (1 - p_acc) * p.decline_share)
        reply_ts = sts + rng.random(len(sv)) * DAY * 0.4
        out.add(2, sc[acc], sv[acc], reply_ts[acc], np.full(acc.sum(), -1), arm_of[sv[acc]])
        out.add(3, sc[dec], sv[dec], reply_ts[dec], np.full(dec.sum(), -1), arm_of[sv[dec]])
        ignored = ~acc & ~dec
        np.add.at(state.pending, sc[ignored], 1)
        dismiss = ~sent & ~blocked & (rng.random(len(v_arr)) < p.dismiss_rate)
        out.add(4, v_arr[dismiss], c_arr[dismiss], ts[dismiss] + 30.0, np.full(dismiss.sum(), -1),
                arm_of[v_arr[dismiss]])
        state.add_friendships(sv[acc], sc[acc])
    return out
