"""A/B comparison of suggestion policies in the simulator, with bootstrap confidence intervals.

Viewers are the unit of randomization, so intervals come from a Poisson bootstrap over viewers
(ratio of sums recomputed per replicate), not over events.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from sim.behaviour import HiddenBehaviour, WorldState
from sim.traffic import Policy, arm_of_users, run_traffic

log = logging.getLogger(__name__)
METRICS = ("send_rate", "accept_rate", "connections_per_1000", "decline_rate", "top1pct_request_share")


@dataclass(frozen=True)
class ArmResult:
    name: str
    viewers: int
    impressions: int
    sends: int
    accepts: int
    estimates: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    replicates: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)


def _interval(replicates: np.ndarray) -> tuple[float, float]:
    """The 95% bootstrap interval; NaN for an arm with no viewer (no replicate has a value), silently."""
    if np.isnan(replicates).all():
        return math.nan, math.nan
    lo, hi = np.nanpercentile(replicates, [2.5, 97.5])
    return float(lo), float(hi)


def difference(a: ArmResult, b: ArmResult, metric: str = "connections_per_1000") -> tuple[float, float, float]:
    """a - b with a 95% bootstrap interval. The arms hold disjoint viewers, so pairing their independent
    replicates one to one is itself a bootstrap of the difference."""
    return (a.estimates[metric] - b.estimates[metric], *_interval(a.replicates[metric] - b.replicates[metric]))


def _per_viewer(log_arrays: dict[str, np.ndarray], n: int, top: np.ndarray) -> dict[str, np.ndarray]:
    t, src, dst = log_arrays["type"], log_arrays["src"].astype(np.int64), log_arrays["dst"].astype(np.int64)

    def count(mask: np.ndarray, who: np.ndarray) -> np.ndarray:
        return np.bincount(who[mask], minlength=n).astype(np.float64)

    return {
        "impressions": count(t == 0, src), "sends": count(t == 1, src), "accepts": count(t == 2, dst),
        "declines": count(t == 3, dst), "top_sends": count((t == 1) & top[dst], src),
    }


def _ratios(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "send_rate": c["sends"] / c["impressions"],
            "accept_rate": c["accepts"] / c["sends"],
            "connections_per_1000": 1000 * c["accepts"] / c["impressions"],
            "decline_rate": c["declines"] / c["sends"],
            "top1pct_request_share": c["top_sends"] / c["sends"],
        }


def compare(
    state: WorldState,
    policies: dict[str, Policy],
    days: int,
    start_ts: float,
    k: int = 10,
    seed: int = 0,
    replicates: int = 400,
    behaviour: HiddenBehaviour | None = None,
    progress: bool = False,
) -> list[ArmResult]:
    """Run all policies side by side (users split by stable hash) and estimate each arm's metrics."""
    n = state.world.num_users
    deg = state.degree
    top = deg >= np.quantile(deg, 0.99)
    names = list(policies)
    traffic = run_traffic(state, [policies[x] for x in names], days, start_ts, k=k, seed=seed,
                          behaviour=behaviour, progress=progress).arrays()
    per_viewer = _per_viewer(traffic, n, top)
    arm_of = arm_of_users(n, len(names))
    rng = np.random.default_rng(seed + 1)
    results = []
    for i, name in enumerate(names):
        members = np.flatnonzero((arm_of == i) & (per_viewer["impressions"] > 0))
        sums = {k_: v[members] for k_, v in per_viewer.items()}
        point = {m: float(x[0]) for m, x in _ratios({k_: v.sum(keepdims=True) for k_, v in sums.items()}).items()}
        weights = rng.poisson(1.0, size=(replicates, len(members))).astype(np.float64)
        boot = _ratios({k_: weights @ v for k_, v in sums.items()})
        intervals = {m: _interval(boot[m]) for m in METRICS}
        results.append(ArmResult(name, len(members), int(sums["impressions"].sum()), int(sums["sends"].sum()),
                                 int(sums["accepts"].sum()), point, intervals, boot))
    return results


def format_report(results: list[ArmResult]) -> str:
    lines = [f"{'metric':<24}" + "".join(f"{r.name:>34}" for r in results)]
    for m in METRICS:
        cells = "".join(f"{r.estimates[m]:>12.4f} [{r.intervals[m][0]:.4f}, {r.intervals[m][1]:.4f}]"
                        for r in results)
        lines.append(f"{m:<24}{cells}")
    lines.append(f"{'viewers / impressions':<24}" + "".join(f"{f'{r.viewers} / {r.impressions}':>34}" for r in results))
    return "\n".join(lines)
